//! Routing end to end: tickets opened through the REST API, triaged by the rules engine in the
//! embedded executor, land with the right person (or in the queue) with the reason recorded.

use reqwest::StatusCode;
use serde_json::json;
use ticketing::domain::user::Role;

use crate::helpers::{TestApp, spawn_app};
use crate::pipeline_common::*;

async fn set_capacity(app: &TestApp, admin: &str, user_id: &str, capacity: u32) {
    let r = app
        .patch(
            &format!("/api/users/{user_id}"),
            admin,
            json!({ "capacity": capacity }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["user"]["capacity"], capacity);
}

/// Opens a database ticket as `token` and waits until it is triaged and routed.
async fn routed(app: &TestApp, token: &str, admin: &str, title: &str) -> serde_json::Value {
    let id = open_db_ticket(app, token, title).await;
    let t = wait_processed(app, admin, &id).await;
    assert_eq!(t["triage_status"], "done", "{t}");
    assert_eq!(t["triage"]["source"], "rules");
    assert!(
        t["triage"]["required_skills"]
            .as_array()
            .is_some_and(|s| s.iter().any(|k| k == "Database")),
        "{t}"
    );
    t
}

#[tokio::test]
async fn a_database_ticket_goes_to_the_moderator_with_database_skills() {
    let app = spawn_app().await;
    let (_, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    // Created first, so a tie-break by age or id would favour the wrong one.
    let (web_id, _) = app
        .staff("web@example.com", Role::Moderator, &["React", "CSS"])
        .await;
    let (dba_id, dba) = app
        .staff("dba@example.com", Role::Moderator, &["SQL", "MongoDB"])
        .await;
    let (_, customer) = app.register("customer@example.com").await;

    let t = routed(&app, &customer, &admin, "Database deadlocks at checkout").await;
    assert_eq!(t["assigned_to"], dba_id.as_str(), "{t}");
    assert_ne!(t["assigned_to"], web_id.as_str());
    let reason = t["routing_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("Moderator matches 1 of") && reason.contains("Database"),
        "{reason}"
    );
    // The moderator sees it in their queue.
    let mine = app.get("/api/tickets", &dba).await;
    assert_eq!(mine.body["tickets"][0]["id"], t["id"]);
}

#[tokio::test]
async fn capacity_is_respected_and_frees_up_when_work_is_resolved() {
    let app = spawn_app().await;
    let (admin_id, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    let (dba_id, dba) = app
        .staff("dba@example.com", Role::Moderator, &["Postgres"])
        .await;
    let (_, customer) = app.register("customer@example.com").await;
    set_capacity(&app, &admin, &dba_id, 1).await;

    let first = routed(&app, &customer, &admin, "Database deadlocks at checkout").await;
    assert_eq!(first["assigned_to"], dba_id.as_str(), "{first}");

    // The only matching moderator is full: the least-loaded admin takes the next one.
    let second = routed(&app, &customer, &admin, "Database replica lagging").await;
    assert_eq!(second["assigned_to"], admin_id.as_str(), "{second}");
    let reason = second["routing_reason"].as_str().unwrap();
    assert!(
        reason.contains("matching Database is at capacity")
            && reason.contains("least-loaded admin"),
        "{reason}"
    );

    // Resolving frees the slot.
    let id = first["id"].as_str().unwrap();
    let r = app
        .patch(
            &format!("/api/tickets/{id}"),
            &dba,
            json!({"status": "resolved"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let third = routed(&app, &customer, &admin, "Database backups failing").await;
    assert_eq!(third["assigned_to"], dba_id.as_str(), "{third}");
    assert!(
        third["routing_reason"]
            .as_str()
            .unwrap()
            .contains("0 open tickets of 1"),
        "{third}"
    );
}

#[tokio::test]
async fn without_moderators_the_least_loaded_admin_takes_it() {
    let app = spawn_app().await;
    let (a_id, admin) = app.staff("a@example.com", Role::Admin, &[]).await;
    let (b_id, _) = app.staff("b@example.com", Role::Admin, &[]).await;
    let (_, customer) = app.register("customer@example.com").await;

    let first = routed(&app, &customer, &admin, "Database deadlocks at checkout").await;
    let second = routed(&app, &customer, &admin, "Database replica lagging").await;
    let first_admin = first["assigned_to"].as_str().unwrap();
    let second_admin = second["assigned_to"].as_str().unwrap();
    assert!([a_id.as_str(), b_id.as_str()].contains(&first_admin));
    assert!([a_id.as_str(), b_id.as_str()].contains(&second_admin));
    assert_ne!(
        first_admin, second_admin,
        "the second goes to the idle admin"
    );
    let reason = second["routing_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("No moderator has the skills Database")
            && reason.contains("least-loaded admin (0 open tickets"),
        "{reason}"
    );
}

#[tokio::test]
async fn with_nobody_able_to_take_it_the_ticket_waits_in_the_queue() {
    let app = spawn_app().await;
    let (admin_id, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    let (dba_id, _) = app
        .staff("dba@example.com", Role::Moderator, &["SQL"])
        .await;
    let (_, customer) = app.register("customer@example.com").await;
    set_capacity(&app, &admin, &dba_id, 0).await;
    set_capacity(&app, &admin, &admin_id, 0).await;

    let t = routed(&app, &customer, &admin, "Database deadlocks at checkout").await;
    assert!(t["assigned_to"].is_null(), "{t}");
    let reason = t["routing_reason"].as_str().unwrap();
    assert!(
        reason.contains("every admin is at capacity")
            && reason.ends_with("the ticket waits in the unassigned queue."),
        "{reason}"
    );
    // The creator sees that nobody has it yet (the reason is for staff), and the queue lists it.
    let own = ticket(&app, &customer, t["id"].as_str().unwrap()).await;
    assert!(
        own["assigned_to"].is_null() && own["assignee_name"].is_null(),
        "{own}"
    );
    assert!(own.get("routing_reason").is_none(), "{own}");
    let queue = app.get("/api/tickets?assignee=none", &admin).await;
    assert_eq!(queue.body["tickets"][0]["id"], t["id"]);
    let st = stats(&app, &admin).await;
    assert_eq!(count(&st, "by_assignee", "unassigned"), 1, "{st}");
}
