//! The role x route matrix: who may see and change what.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use ticketing::domain::user::Role;

struct World {
    app: TestApp,
    user: String,
    other_user: String,
    moderator_id: String,
    moderator: String,
    other_moderator: String,
    admin: String,
    ticket: String,
}

async fn world() -> World {
    let app = spawn_app().await;
    let (_, user) = app.register("user@example.com").await;
    let (_, other_user) = app.register("other@example.com").await;
    let (moderator_id, moderator) = app
        .staff("mod@example.com", Role::Moderator, &["SQL"])
        .await;
    let (_, other_moderator) = app.staff("mod2@example.com", Role::Moderator, &[]).await;
    let (_, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    let ticket = app
        .create_ticket(&user, "Cannot connect to the database")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Let automatic routing finish first, so the assignment below is the last word.
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
        moderator_id,
        moderator,
        other_moderator,
        admin,
        ticket,
    }
}

#[tokio::test]
async fn tickets_are_visible_only_to_creator_assignee_and_admins() {
    let w = world().await;
    let path = format!("/api/tickets/{}", w.ticket);
    for (token, expected) in [
        (&w.user, StatusCode::OK),
        (&w.moderator, StatusCode::OK),
        (&w.admin, StatusCode::OK),
        (&w.other_user, StatusCode::NOT_FOUND),
        (&w.other_moderator, StatusCode::NOT_FOUND),
    ] {
        assert_eq!(w.app.get(&path, token).await.status, expected);
        assert_eq!(
            w.app.get(&format!("{path}/comments"), token).await.status,
            expected
        );
        let listed = w.app.get("/api/tickets", token).await;
        let ids: Vec<_> = listed.body["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.contains(&w.ticket), expected == StatusCode::OK);
    }
    // Invisible tickets cannot be changed or commented on either, and the answer is the same 404.
    let r = w
        .app
        .patch(&path, &w.other_user, json!({"status": "closed"}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = w
        .app
        .post(
            &format!("{path}/comments"),
            &w.other_moderator,
            json!({"body": "hi"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn status_changes_follow_each_role() {
    let w = world().await;
    let path = format!("/api/tickets/{}", w.ticket);
    // The creator cannot work the ticket; the assignee can.
    assert_eq!(
        w.app
            .patch(&path, &w.user, json!({"status": "in_progress"}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.app
            .patch(&path, &w.moderator, json!({"status": "in_progress"}))
            .await
            .status,
        StatusCode::OK
    );
    let r = w
        .app
        .patch(&path, &w.moderator, json!({"status": "resolved"}))
        .await;
    assert_eq!(r.body["ticket"]["status"], "resolved");
    assert!(r.body["ticket"]["resolved_at"].is_string());
    // A moderator cannot close; the creator can, and can reopen.
    assert_eq!(
        w.app
            .patch(&path, &w.moderator, json!({"status": "closed"}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.app
            .patch(&path, &w.user, json!({"status": "closed"}))
            .await
            .body["ticket"]["status"],
        "closed"
    );
    let r = w.app.patch(&path, &w.user, json!({"status": "open"})).await;
    assert_eq!(r.body["ticket"]["status"], "open");
    assert!(r.body["ticket"]["resolved_at"].is_null());
    // Invalid moves are a conflict, not a silent change.
    let r = w
        .app
        .patch(&path, &w.moderator, json!({"status": "in_progress"}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = w.app.patch(&path, &w.user, json!({"status": "open"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "invalid_transition");
}

#[tokio::test]
async fn only_admins_reassign_and_override_priority() {
    let w = world().await;
    let path = format!("/api/tickets/{}", w.ticket);
    for token in [&w.user, &w.moderator] {
        assert_eq!(
            w.app
                .patch(&path, token, json!({"priority": "high"}))
                .await
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            w.app
                .patch(&path, token, json!({"assignee_id": null}))
                .await
                .status,
            StatusCode::FORBIDDEN
        );
    }
    let r = w
        .app
        .patch(&path, &w.admin, json!({"priority": "high"}))
        .await;
    assert_eq!(r.body["ticket"]["priority"], "high");
    assert_eq!(r.body["ticket"]["priority_locked"], true);
    let r = w
        .app
        .patch(&path, &w.admin, json!({"assignee_id": null}))
        .await;
    assert!(r.body["ticket"]["assigned_to"].is_null());
    // The unassigned moderator no longer sees it.
    assert_eq!(
        w.app.get(&path, &w.moderator).await.status,
        StatusCode::NOT_FOUND
    );
    // Tickets go to staff only.
    let (plain_id, _) = w.app.register("plain@example.com").await;
    let r = w
        .app
        .patch(&path, &w.admin, json!({"assignee_id": plain_id}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let _ = w.moderator_id;
}

#[tokio::test]
async fn internal_notes_are_staff_only() {
    let w = world().await;
    let path = format!("/api/tickets/{}/comments", w.ticket);
    assert_eq!(
        w.app
            .post(&path, &w.user, json!({"body": "any news?"}))
            .await
            .status,
        StatusCode::CREATED
    );
    let r = w
        .app
        .post(&path, &w.user, json!({"body": "psst", "internal": true}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        w.app
            .post(
                &path,
                &w.moderator,
                json!({"body": "checking logs", "internal": true})
            )
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        w.app
            .post(&path, &w.moderator, json!({"body": "Looking into it"}))
            .await
            .status,
        StatusCode::CREATED
    );
    let seen_by_user = w.app.get(&path, &w.user).await.body["comments"]
        .as_array()
        .unwrap()
        .len();
    let seen_by_staff = w.app.get(&path, &w.admin).await.body["comments"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!((seen_by_user, seen_by_staff), (2, 3));
    // The moderator's public reply is the first response.
    let t = w
        .app
        .get(&format!("/api/tickets/{}", w.ticket), &w.user)
        .await;
    assert!(t.body["ticket"]["first_response_at"].is_string());
}

#[tokio::test]
async fn admin_routes_refuse_everyone_else() {
    let w = world().await;
    for token in [&w.user, &w.moderator] {
        assert_eq!(
            w.app.get("/api/users", token).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            w.app.get("/api/stats", token).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            w.app
                .patch(
                    &format!("/api/users/{}", w.moderator_id),
                    token,
                    json!({"role": "admin"})
                )
                .await
                .status,
            StatusCode::FORBIDDEN
        );
    }
    for path in ["/api/users", "/api/stats", "/api/tickets"] {
        assert_eq!(
            w.app.request(Method::GET, path, None, None).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = w
        .app
        .patch(
            &format!("/api/users/{}", w.moderator_id),
            &w.admin,
            json!({"skills": ["SQL", "Postgres"], "capacity": 5}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["user"]["skills"], json!(["SQL", "Postgres"]));
    assert_eq!(r.body["user"]["capacity"], 5);
    let stats = w.app.get("/api/stats", &w.admin).await;
    assert_eq!(stats.body["total"], 1);
    assert_eq!(
        stats.body["by_status"],
        json!([{"key": "open", "count": 1}])
    );
    assert_eq!(
        stats.body["by_assignee"],
        json!([{"key": w.moderator_id, "count": 1}])
    );
    let users = w.app.get("/api/users?role=moderator", &w.admin).await;
    assert_eq!(users.body["users"].as_array().unwrap().len(), 2);
}
