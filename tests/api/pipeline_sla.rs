//! The SLA end to end with a 2-second deadline: `on-ticket-created` waits for `ticket/resolved`
//! of its own ticket; a ticket resolved in time is left alone, one that is not is escalated.

use reqwest::StatusCode;
use serde_json::{Value, json};
use ticketing::domain::user::Role;
use ticketing::inngest::executor::RunStatus;

use crate::helpers::spawn_app_with;
use crate::pipeline_common::*;
use crate::support::smtp_peer::SmtpPeer;

async fn open(app: &crate::helpers::TestApp, token: &str, title: &str) -> String {
    let r = app
        .post(
            "/api/tickets",
            token,
            json!({
                "title": title,
                "description": "How can I export the records of our SQL database to a CSV file? \
                                No rush, just curious.",
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["ticket"]["id"].as_str().unwrap().to_owned()
}

fn at(t: &Value, field: &str) -> chrono::DateTime<chrono::Utc> {
    t[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing: {t}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn an_unresolved_ticket_is_escalated_and_a_resolved_one_is_not() {
    let peer = SmtpPeer::start();
    let smtp_url = peer.smtp_url();
    let app = spawn_app_with(&[
        ("SMTP_URL", &smtp_url),
        ("APP_URL", APP_URL),
        ("SLA_LOW", "2s"),
        ("SLA_MEDIUM", "2s"),
        ("SLA_HIGH", "2s"),
    ])
    .await;
    let (_, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    let (dba_id, dba) = app
        .staff("dba@example.com", Role::Moderator, &["SQL"])
        .await;
    let (_, customer) = app.register("customer@example.com").await;

    let resolved_id = open(&app, &customer, "Export question, answered").await;
    let late_id = open(&app, &customer, "Export question, forgotten").await;
    // Both runs reached their wait for `ticket/resolved`.
    for id in [&resolved_id, &late_id] {
        wait_run(&app, "on-ticket-created", id, is_waiting_for_event).await;
    }
    let late_before = ticket(&app, &admin, &late_id).await;
    assert_eq!(late_before["assigned_to"], dba_id.as_str());
    assert_ne!(
        late_before["priority"], "high",
        "pick a text the rules engine does not rate high: {late_before}"
    );
    assert!(late_before["escalated_at"].is_null());

    // The assignee resolves one ticket before its deadline.
    let r = app
        .patch(
            &format!("/api/tickets/{resolved_id}"),
            &dba,
            json!({"status": "resolved"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let resolved = r.body["ticket"].clone();
    let due = at(&resolved, "sla_due_at");
    assert!(
        chrono::Utc::now() < due,
        "the machine was too slow to resolve within the 2s SLA"
    );

    // Its run ends when the event arrives, before the deadline, with the SLA met.
    let run = wait_run(&app, "on-ticket-created", &resolved_id, |r| {
        r.status == RunStatus::Completed
    })
    .await;
    assert_eq!(run.output.as_ref().unwrap()["sla"], "met");
    assert!(
        run.ended_at.unwrap() < due,
        "ended by the event, not the timeout"
    );

    // The other one passes its deadline unresolved: escalated.
    let late = wait_ticket(&app, &admin, &late_id, |t| t["escalated_at"].is_string()).await;
    let raised = match late_before["priority"].as_str().unwrap() {
        "low" => "medium",
        _ => "high",
    };
    assert_eq!(late["priority"], raised, "{late}");
    assert!(at(&late, "escalated_at") >= at(&late, "sla_due_at"));
    let run = wait_run(&app, "on-ticket-created", &late_id, |r| {
        r.status == RunStatus::Completed
    })
    .await;
    assert_eq!(run.output.as_ref().unwrap()["sla"], "breached");

    // The admin and the assignee are told, about that ticket only.
    let subject = "SLA breached: Export question, forgotten";
    let mails = wait_until(DEADLINE, || async {
        let mails = peer.messages();
        let n = mails.iter().filter(|m| m.subject() == subject).count();
        if n == 2 {
            Ok(mails)
        } else {
            Err(format!("{:?}", summary(&mails)))
        }
    })
    .await;
    for who in ["admin@example.com", "dba@example.com"] {
        let m = the_mail(&mails, who, subject);
        assert_links_to(m, &format!("{APP_URL}/tickets/{late_id}"));
    }
    assert!(
        !mails
            .iter()
            .any(|m| m.subject() == "SLA breached: Export question, answered"),
        "{:?}",
        summary(&mails)
    );
    assert!(ticket(&app, &admin, &resolved_id).await["escalated_at"].is_null());

    let st = stats(&app, &admin).await;
    assert_eq!(st["sla_breaches"], 1, "{st}");
}
