//! `GET /api/tickets/{id}/activity`: the timeline, with the visibility of the ticket itself.

use crate::helpers::*;
use crate::pipeline_common::{DEADLINE, open_db_ticket, wait_until};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketing::domain::user::Role;

struct World {
    app: TestApp,
    user_id: String,
    user: String,
    other_user: String,
    moderator_id: String,
    moderator: String,
    other_moderator: String,
    admin_id: String,
    admin: String,
    ticket: String,
}

/// A ticket triaged and routed by the durable functions, then reassigned by an admin, worked by
/// its moderator with an internal note and a reply, and commented on by its creator.
async fn world() -> World {
    let app = spawn_app().await;
    let (user_id, user) = app.register("ann@example.com").await;
    let (_, other_user) = app.register("bob@example.com").await;
    let (moderator_id, moderator) = app.staff("mo@example.com", Role::Moderator, &["SQL"]).await;
    let (_, other_moderator) = app.staff("max@example.com", Role::Moderator, &[]).await;
    let (admin_id, admin) = app.staff("ada@example.com", Role::Admin, &[]).await;
    let r = app
        .patch(
            &format!("/api/users/{moderator_id}"),
            &admin,
            json!({"name": "Mo Staff"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let ticket = open_db_ticket(&app, &user, "Checkout is down").await;
    app.wait_until_processed().await;
    let w = World {
        app,
        user_id,
        user,
        other_user,
        moderator_id,
        moderator,
        other_moderator,
        admin_id,
        admin,
        ticket,
    };
    // The SLA clock starts after triage, routing and the first mails.
    wait_until(DEADLINE, || async {
        let kinds = kinds(&activity(&w, &w.admin).await);
        if kinds.contains(&"sla_set".to_owned()) {
            Ok(())
        } else {
            Err(format!("{kinds:?}"))
        }
    })
    .await;
    let path = format!("/api/tickets/{}", w.ticket);
    // Whoever routing chose, the admin takes the ticket and then hands it to the moderator.
    for assignee in [&w.admin_id, &w.moderator_id] {
        let r = w
            .app
            .patch(&path, &w.admin, json!({"assignee_id": assignee}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let r = w
        .app
        .patch(&path, &w.moderator, json!({"status": "in_progress"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    for (token, body) in [
        (
            &w.moderator,
            json!({"body": "Looks like the pool size", "internal": true}),
        ),
        (&w.moderator, json!({"body": "Looking into it now."})),
        (&w.user, json!({"body": "Thanks!"})),
    ] {
        let r = w.app.post(&format!("{path}/comments"), token, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    w
}

async fn activity(w: &World, token: &str) -> Vec<Value> {
    let r = w
        .app
        .get(&format!("/api/tickets/{}/activity", w.ticket), token)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["activity"].as_array().unwrap().clone()
}

fn kinds(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn of_kind<'a>(entries: &'a [Value], kind: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["kind"] == kind).collect()
}

#[tokio::test]
async fn staff_see_the_whole_timeline_from_the_durable_functions_on() {
    let w = world().await;
    for token in [&w.moderator, &w.admin] {
        let entries = activity(&w, token).await;
        let kinds = kinds(&entries);
        assert_eq!(kinds[0], "created");
        assert_eq!(kinds[1], "triaged");
        let at = |e: &Value| e["at"].as_str().unwrap().to_owned();
        assert!(
            entries.windows(2).all(|p| at(&p[0]) <= at(&p[1])),
            "oldest first"
        );
        assert_eq!(
            entries[0]["actor"],
            json!({"id": w.user_id, "name": "ann"}),
            "a person without a name shows as their address's local part"
        );

        // Triage and routing are the service's own doing.
        let triaged = &entries[1];
        assert!(triaged["actor"].is_null());
        assert_eq!(triaged["data"]["source"], "rules");
        assert_eq!(triaged["data"]["status"], "done");
        assert!(triaged["data"]["category"].is_string());
        assert!(triaged["data"]["priority"].is_string());
        let assigned = of_kind(&entries, "assigned");
        assert_eq!(assigned.len(), 3, "{kinds:?}");
        assert!(assigned[0]["actor"].is_null());
        assert!(assigned[0]["data"]["reason"].is_string());
        assert_eq!(assigned[1]["data"]["assignee"]["id"], w.admin_id);
        assert_eq!(assigned[2]["actor"]["id"], w.admin_id);
        assert_eq!(
            assigned[2]["data"],
            json!({"assignee": {"id": w.moderator_id, "name": "Mo Staff"}, "reason": "Assigned by an admin."})
        );
        let sla = of_kind(&entries, "sla_set");
        assert_eq!(sla.len(), 1);
        assert!(sla[0]["actor"].is_null());
        assert!(sla[0]["data"]["due_at"].is_string());

        let status = of_kind(&entries, "status_changed");
        assert_eq!(status.len(), 1);
        assert_eq!(
            status[0]["data"],
            json!({"from": "open", "to": "in_progress"})
        );
        assert_eq!(status[0]["actor"]["id"], w.moderator_id);

        let comments = of_kind(&entries, "commented");
        let internal: Vec<bool> = comments
            .iter()
            .map(|c| c["data"]["internal"].as_bool().unwrap())
            .collect();
        assert_eq!(internal, [true, false, false]);
        assert!(comments.iter().all(|c| c["data"]["comment_id"].is_string()));
        assert!(entries.iter().all(|e| e["id"].is_string()));
    }
}

#[tokio::test]
async fn the_creator_sees_no_internal_notes_or_routing_reasons() {
    let w = world().await;
    let staff_view = activity(&w, &w.admin).await;
    let mine = activity(&w, &w.user).await;
    // Everything but the internal note, in the same order.
    let note = of_kind(&staff_view, "commented")[0]["id"].clone();
    let expected: Vec<&Value> = staff_view
        .iter()
        .map(|e| &e["id"])
        .filter(|id| **id != note)
        .collect();
    let got: Vec<&Value> = mine.iter().map(|e| &e["id"]).collect();
    assert_eq!(got, expected);
    assert!(
        of_kind(&mine, "commented")
            .iter()
            .all(|c| c["data"]["internal"] == false)
    );
    let assigned = of_kind(&mine, "assigned");
    assert_eq!(assigned.len(), 3);
    for a in &assigned {
        let data = a["data"].as_object().unwrap();
        assert!(!data.contains_key("reason"), "{a}");
        assert!(data.contains_key("assignee"));
    }
    assert_eq!(assigned[2]["data"]["assignee"]["name"], "Mo Staff");
    // The rest reads as staff read it.
    assert_eq!(
        of_kind(&mine, "triaged")[0]["data"],
        of_kind(&staff_view, "triaged")[0]["data"]
    );
}

#[tokio::test]
async fn whoever_cannot_see_the_ticket_gets_404() {
    let w = world().await;
    let path = format!("/api/tickets/{}/activity", w.ticket);
    for token in [&w.other_user, &w.other_moderator] {
        let r = w.app.get(&path, token).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
        assert_eq!(r.code(), "not_found");
    }
    let unknown = ticketing::domain::new_id();
    for bad in [unknown.as_str(), "not-an-id", "%24ne"] {
        let r = w
            .app
            .get(&format!("/api/tickets/{bad}/activity"), &w.admin)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{bad}");
    }
    let r = w.app.request(Method::GET, &path, None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = w
        .app
        .request(Method::POST, &path, Some(&w.admin), Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);

    // Reassigned away, the former assignee loses the timeline with the ticket.
    let r = w
        .app
        .patch(
            &format!("/api/tickets/{}", w.ticket),
            &w.admin,
            json!({"assignee_id": w.admin_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        w.app.get(&path, &w.moderator).await.status,
        StatusCode::NOT_FOUND
    );
}
