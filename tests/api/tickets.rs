use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashSet;
use ticketing::domain::user::Role;

#[tokio::test]
async fn lists_filter_and_page_with_a_cursor() {
    let app = spawn_app().await;
    let (_, user) = app.register("user@example.com").await;
    let (_, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(
            app.create_ticket(&user, &format!("Printer {i} jammed"))
                .await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    app.create_ticket(&user, "Invoice 100% wrong_total").await;
    let first = created[0].clone();
    app.patch(
        &format!("/api/tickets/{first}"),
        &admin,
        json!({"priority": "high", "status": "in_progress"}),
    )
    .await;

    // Paging visits every ticket once, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/tickets?limit=3&cursor={c}"),
            None => "/api/tickets?limit=3".into(),
        };
        let r = app.get(&path, &user).await;
        assert_eq!(r.status, StatusCode::OK);
        seen.extend(
            r.body["tickets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_owned()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 8);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");

    // Triage and routing run in the background and may set priority, category and assignee:
    // wait for them, then check each filter against the full list.
    app.wait_until_processed().await;
    let all = app.get("/api/tickets?limit=100", &admin).await.body["tickets"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(all.len(), 8);
    let ids = |r: &Resp| -> HashSet<String> {
        r.body["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let expected = |f: &dyn Fn(&serde_json::Value) -> bool| -> HashSet<String> {
        all.iter()
            .filter(|t| f(t))
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    for (query, field) in [
        ("priority=high", "priority"),
        ("status=in_progress", "status"),
        ("status=open", "status"),
        ("category=billing", "category"),
        ("category=technical_issue", "category"),
    ] {
        let value = query.split('=').nth(1).unwrap();
        let want = expected(&|t| t[field] == value);
        assert_eq!(
            ids(&app
                .get(&format!("/api/tickets?{query}&limit=100"), &admin)
                .await),
            want,
            "{query}"
        );
    }
    assert!(ids(&app.get("/api/tickets?priority=high", &user).await).contains(&first));
    assert_eq!(
        ids(&app.get("/api/tickets?status=in_progress", &user).await),
        HashSet::from([first.clone()])
    );
    let unassigned = expected(&|t| t["assigned_to"].is_null());
    assert_eq!(
        ids(&app
            .get("/api/tickets?assignee=none&limit=100", &admin)
            .await),
        unassigned
    );
    if let Some(assignee) = all.iter().find_map(|t| t["assigned_to"].as_str()) {
        let want = expected(&|t| t["assigned_to"] == assignee);
        assert_eq!(
            ids(&app
                .get(
                    &format!("/api/tickets?assignee={assignee}&limit=100"),
                    &admin
                )
                .await),
            want
        );
    }
    let count = |r: &Resp| r.body["tickets"].as_array().unwrap().len();
    assert_eq!(
        count(&app.get("/api/tickets?q=printer%203", &user).await),
        1
    );
    // LIKE wildcards in the search text are literal.
    assert_eq!(count(&app.get("/api/tickets?q=100%25", &user).await), 1);
    assert_eq!(count(&app.get("/api/tickets?q=_", &user).await), 1);
    for bad in [
        "status=nope",
        "limit=0",
        "limit=1000",
        "cursor=%%%",
        "assignee=someone",
    ] {
        let r = app.get(&format!("/api/tickets?{bad}"), &user).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad} -> {:?}", r.body);
    }
    // Operator-shaped keys are not operators: an unknown parameter is ignored, never interpreted.
    assert_eq!(
        count(&app.get("/api/tickets?priority[$ne]=low", &user).await),
        8
    );
}

#[tokio::test]
async fn every_change_writes_exactly_one_event() {
    let app = spawn_app().await;
    let (user_id, user) = app.register("user@example.com").await;
    let (mod_id, moderator) = app.staff("mod@example.com", Role::Moderator, &[]).await;
    let (_, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    let ticket = app.create_ticket(&user, "Search is slow").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/tickets/{ticket}");
    app.patch(&path, &admin, json!({"assignee_id": mod_id}))
        .await;
    app.patch(&path, &moderator, json!({"status": "resolved"}))
        .await;
    // A no-op change writes nothing.
    app.patch(&path, &moderator, json!({"status": "resolved"}))
        .await;
    app.post(
        &format!("{path}/comments"),
        &user,
        json!({"body": "thanks!"}),
    )
    .await;

    let events = app.events().await;
    let names: Vec<_> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "user/signup",
            "user/signup",
            "user/signup",
            "ticket/created",
            "ticket/updated",
            "ticket/updated",
            "ticket/resolved",
            "ticket/commented"
        ]
    );
    assert_eq!(events[0].data, json!({"user_id": user_id}));
    assert_eq!(events[3].data["ticket_id"], ticket.as_str());
    assert_eq!(
        events[5].data["changes"]["status"],
        json!({"from": "open", "to": "resolved"})
    );
    // Ids are unique and stable; the outbox is ordered.
    assert_eq!(
        events.iter().map(|e| &e.id).collect::<HashSet<_>>().len(),
        events.len()
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    // No event carries a document: ids and small values only.
    assert!(
        events
            .iter()
            .all(|e| !e.data.to_string().contains("Search is slow"))
    );
}

#[tokio::test]
async fn creating_a_ticket_validates_its_fields() {
    let app = spawn_app().await;
    let (_, user) = app.register("user@example.com").await;
    for body in [
        json!({"title": "ab", "description": "long enough"}),
        json!({"title": "A fine title", "description": "   "}),
        json!({"title": "x".repeat(201), "description": "d"}),
        json!({"title": "A fine title"}),
        json!({"title": 42, "description": "d"}),
        json!({"title": "A fine title", "description": "d", "status": "closed"}),
    ] {
        let r = app.post("/api/tickets", &user, body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} -> {:?}",
            r.body
        );
    }
    assert_eq!(app.store.stats().await.unwrap().total, 0);
}
