//! `POST /api/tickets/{id}/rating`: the creator rates a finished ticket once; the rating shows on
//! the ticket and in the stats.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use ticketing::domain::user::Role;

struct World {
    app: TestApp,
    user: String,
    other_user: String,
    moderator: String,
    other_moderator: String,
    admin: String,
    ticket: String,
}

async fn world() -> World {
    let app = spawn_app().await;
    let (_, user) = app.register("ann@example.com").await;
    let (_, other_user) = app.register("bob@example.com").await;
    let (moderator_id, moderator) = app.staff("mo@example.com", Role::Moderator, &[]).await;
    let (_, other_moderator) = app.staff("max@example.com", Role::Moderator, &[]).await;
    let (_, admin) = app.staff("ada@example.com", Role::Admin, &[]).await;
    let ticket = app.create_ticket(&user, "Printer jammed").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_until_processed().await;
    let r = app
        .patch(
            &format!("/api/tickets/{ticket}"),
            &admin,
            json!({"assignee_id": moderator_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    World {
        app,
        user,
        other_user,
        moderator,
        other_moderator,
        admin,
        ticket,
    }
}

impl World {
    async fn rate(&self, token: &str, body: Value) -> Resp {
        self.app
            .post(&format!("/api/tickets/{}/rating", self.ticket), token, body)
            .await
    }

    async fn set_status(&self, token: &str, status: &str) {
        let r = self
            .app
            .patch(
                &format!("/api/tickets/{}", self.ticket),
                token,
                json!({"status": status}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
}

#[tokio::test]
async fn the_creator_rates_a_resolved_ticket_once() {
    let w = world().await;
    let ticket = w
        .app
        .get(&format!("/api/tickets/{}", w.ticket), &w.user)
        .await;
    assert!(ticket.body["ticket"]["rating"].is_null());

    let r = w.rate(&w.user, json!({"score": 4})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "not_resolved");

    w.set_status(&w.moderator, "resolved").await;
    let r = w
        .rate(
            &w.user,
            json!({"score": 4, "comment": "  Quick and kind  "}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let rating = &r.body["rating"];
    assert_eq!(rating["score"], 4);
    assert_eq!(rating["comment"], "Quick and kind");
    assert!(rating["created_at"].is_string());

    let again = w.rate(&w.user, json!({"score": 1})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "already_rated");

    // On the ticket, for its creator and for staff, whatever happens to it after.
    w.set_status(&w.user, "closed").await;
    for token in [&w.user, &w.moderator, &w.admin] {
        let t = w
            .app
            .get(&format!("/api/tickets/{}", w.ticket), token)
            .await;
        assert_eq!(&t.body["ticket"]["rating"], rating);
    }
    let listed = w.app.get("/api/tickets", &w.admin).await;
    assert_eq!(&listed.body["tickets"][0]["rating"], rating);
    let r = w.rate(&w.user, json!({"score": 5})).await;
    assert_eq!(r.code(), "already_rated");

    // And on the timeline, by its creator.
    let log = w
        .app
        .get(&format!("/api/tickets/{}/activity", w.ticket), &w.admin)
        .await;
    let rated: Vec<&Value> = log.body["activity"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "rated")
        .collect();
    assert_eq!(rated.len(), 1);
    assert_eq!(rated[0]["data"], json!({"score": 4}));
    assert_eq!(rated[0]["actor"]["name"], "ann");
}

#[tokio::test]
async fn only_the_creator_rates_and_only_valid_ratings() {
    let w = world().await;
    w.set_status(&w.user, "closed").await;
    // Those who can see the ticket may not rate it; the others do not learn it exists.
    for token in [&w.moderator, &w.admin] {
        let r = w.rate(token, json!({"score": 5})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    }
    for token in [&w.other_user, &w.other_moderator] {
        let r = w.rate(token, json!({"score": 5})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    }
    let missing = format!("/api/tickets/{}/rating", ticketing::domain::new_id());
    let r = w.app.post(&missing, &w.user, json!({"score": 5})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    for (body, field) in [
        (json!({"score": 0}), Some("score")),
        (json!({"score": 6}), Some("score")),
        (json!({"score": -1}), Some("score")),
        (
            json!({"score": 3, "comment": "x".repeat(2001)}),
            Some("comment"),
        ),
        (json!({"score": 3.5}), None),
        (json!({"score": "5"}), None),
        (json!({"comment": "no score"}), None),
        (json!({"score": 3, "stars": 3}), None),
    ] {
        let r = w.rate(&w.user, body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
        if let Some(field) = field {
            assert_eq!(r.body["error"]["details"]["field"], field, "{body}");
        }
    }
    let r = w
        .rate(&w.user, json!({"score": 1, "comment": "x".repeat(2000)}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["rating"]["comment"].as_str().unwrap().len(), 2000);
    // A blank comment is no comment.
    let second = w.app.create_ticket(&w.user, "Another one").await;
    let id = second["id"].as_str().unwrap();
    let r = w
        .app
        .patch(
            &format!("/api/tickets/{id}"),
            &w.user,
            json!({"status": "closed"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = w
        .app
        .post(
            &format!("/api/tickets/{id}/rating"),
            &w.user,
            json!({"score": 2, "comment": "   "}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert!(r.body["rating"]["comment"].is_null());
}

#[tokio::test]
async fn ratings_and_daily_counts_reach_the_stats() {
    let w = world().await;
    let stats = w.app.get("/api/stats", &w.admin).await.body;
    assert_eq!(stats["satisfaction"]["count"], 0);
    assert!(stats["satisfaction"]["average"].is_null());

    w.set_status(&w.moderator, "resolved").await;
    let r = w.rate(&w.user, json!({"score": 5})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let second = w.app.create_ticket(&w.user, "Second printer").await;
    let id = second["id"].as_str().unwrap();
    w.app
        .patch(
            &format!("/api/tickets/{id}"),
            &w.user,
            json!({"status": "closed"}),
        )
        .await;
    let r = w
        .app
        .post(
            &format!("/api/tickets/{id}/rating"),
            &w.user,
            json!({"score": 2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    let r = w.app.get("/api/stats", &w.admin).await;
    assert_eq!(r.status, StatusCode::OK);
    let s = &r.body["satisfaction"];
    assert_eq!(s["count"], 2);
    assert_eq!(s["average"], 3.5);
    assert_eq!(
        s["by_score"],
        json!([
            {"key": "1", "count": 0}, {"key": "2", "count": 1}, {"key": "3", "count": 0},
            {"key": "4", "count": 0}, {"key": "5", "count": 1},
        ])
    );
    let days = r.body["per_day"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let last = days.last().unwrap();
    assert_eq!(last["date"], today.as_str());
    assert_eq!(last["created"], 2);
    assert_eq!(
        last["resolved"], 1,
        "the closed-unresolved ticket does not count"
    );
    assert!(
        days[..29]
            .iter()
            .all(|d| d["created"] == 0 && d["resolved"] == 0)
    );
    // Stats stay admin-only.
    assert_eq!(
        w.app.get("/api/stats", &w.moderator).await.status,
        StatusCode::FORBIDDEN
    );
}
