//! `GET /api/tickets?sort=newest|sla_due`: both orders page with their own cursors.

use crate::helpers::*;
use chrono::{DateTime, SubsecRound, Utc};
use reqwest::StatusCode;
use serde_json::json;
use ticketing::domain::user::Role;

/// An app whose durable functions never run (its Inngest dev server is a closed port), so the
/// test alone decides every deadline.
async fn quiet_app() -> TestApp {
    let closed = crate::support::free_port();
    spawn_app_with(&[("INNGEST_DEV", &format!("http://127.0.0.1:{closed}"))]).await
}

/// Every page of `path` (which has a `?`), following `next_cursor`; the ids and the page count.
async fn all_pages(app: &TestApp, token: &str, path: &str) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_owned(),
        };
        let r = app.get(&url, token).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {:?}", r.body);
        pages += 1;
        ids.extend(
            r.body["tickets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_owned()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (ids, pages),
        }
        assert!(pages < 20, "paging does not end");
    }
}

#[tokio::test]
async fn both_orders_page_through_every_ticket_once() {
    let app = quiet_app().await;
    let (_, user) = app.register("user@example.com").await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let t = app.create_ticket(&user, &format!("Ticket {i}")).await;
        ids.push(t["id"].as_str().unwrap().to_owned());
    }
    let base = Utc::now().trunc_subsecs(3);
    let due = |t: usize, hours: i64| {
        let store = app.store.clone();
        let id = ids[t].clone();
        async move {
            store
                .set_sla_due(&id, base + chrono::Duration::hours(hours))
                .await
                .unwrap()
        }
    };
    due(0, 5).await;
    due(1, 1).await;
    due(2, 3).await;
    due(3, 3).await;
    due(6, -2).await;
    // Overdue first, then soonest; equal deadlines by id; tickets without one last, by id.
    let by_deadline: Vec<String> = [6, 1, 2, 3, 0, 4, 5]
        .iter()
        .map(|&i| ids[i].clone())
        .collect();
    let (seen, pages) = all_pages(&app, &user, "/api/tickets?sort=sla_due&limit=2").await;
    assert_eq!(seen, by_deadline);
    assert_eq!(pages, 4);

    let newest: Vec<String> = ids.iter().rev().cloned().collect();
    let (seen, pages) = all_pages(&app, &user, "/api/tickets?sort=newest&limit=3").await;
    assert_eq!(seen, newest);
    assert_eq!(pages, 3);
    assert_eq!(
        all_pages(&app, &user, "/api/tickets?limit=3").await.0,
        newest
    );

    // The deadlines are what the list says they are.
    let r = app.get("/api/tickets?sort=sla_due&limit=1", &user).await;
    let first: DateTime<Utc> =
        serde_json::from_value(r.body["tickets"][0]["sla_due_at"].clone()).unwrap();
    assert_eq!(first, base - chrono::Duration::hours(2));
}

#[tokio::test]
async fn a_moderator_queue_is_their_tickets_by_deadline() {
    let app = quiet_app().await;
    let (_, user) = app.register("user@example.com").await;
    let (mod_id, moderator) = app.staff("mod@example.com", Role::Moderator, &[]).await;
    let (_, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let t = app.create_ticket(&user, &format!("Ticket {i}")).await;
        ids.push(t["id"].as_str().unwrap().to_owned());
    }
    for id in &ids[..4] {
        let r = app
            .patch(
                &format!("/api/tickets/{id}"),
                &admin,
                json!({"assignee_id": mod_id}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let now = Utc::now().trunc_subsecs(3);
    for (i, minutes) in [(0, 90), (1, 30), (2, 60), (4, 10)] {
        app.store
            .set_sla_due(&ids[i], now + chrono::Duration::minutes(minutes))
            .await
            .unwrap();
    }
    let path = format!("/api/tickets?sort=sla_due&assignee={mod_id}&limit=3");
    let (queue, pages) = all_pages(&app, &moderator, &path).await;
    // Ticket 4 is not theirs; ticket 3 has no deadline yet.
    assert_eq!(queue, [1, 2, 0, 3].map(|i| ids[i].clone()));
    assert_eq!(pages, 2);
}

#[tokio::test]
async fn a_cursor_only_continues_its_own_order() {
    let app = quiet_app().await;
    let (_, user) = app.register("user@example.com").await;
    for i in 0..3 {
        app.create_ticket(&user, &format!("Ticket {i}")).await;
    }
    let cursor_of = |sort: &'static str| {
        let app = &app;
        let user = user.clone();
        async move {
            let r = app
                .get(&format!("/api/tickets?sort={sort}&limit=1"), &user)
                .await;
            r.body["next_cursor"].as_str().unwrap().to_owned()
        }
    };
    let newest = cursor_of("newest").await;
    let by_deadline = cursor_of("sla_due").await;
    for path in [
        format!("/api/tickets?sort=sla_due&cursor={newest}"),
        format!("/api/tickets?sort=newest&cursor={by_deadline}"),
        format!("/api/tickets?cursor={by_deadline}"),
        "/api/tickets?sort=sla_due&cursor=bm9wZQ".to_owned(),
    ] {
        let r = app.get(&path, &user).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(r.code(), "invalid_cursor", "{path}");
    }
    let r = app.get("/api/tickets?sort=oldest", &user).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "invalid_query");
}
