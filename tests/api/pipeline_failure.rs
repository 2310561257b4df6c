//! The failure handler of `on-ticket-created`, through the embedded executor: when a run fails
//! for good, the ticket is marked `failed` (never left `pending`) and the admins are mailed.
//!
//! Nothing a client can send through the API makes triage and routing fail for good in
//! seconds: every AI failure ends in the rules engine, and store errors are retried for
//! minutes. So the test lets the executor build a real `inngest/function.failed` (from a run
//! that fails on an event about a ticket that does not exist) and delivers that event, aimed at
//! a real ticket whose run is held back by Gemini's rate limit, as Inngest would after the
//! last attempt.

use serde_json::json;
use ticketing::domain::user::Role;
use ticketing::inngest::executor::{Outcome, RunStatus, state::RunState};

use crate::helpers::{TestApp, spawn_app_with};
use crate::pipeline_common::*;
use crate::support::fake_gemini::{FAKE_GEMINI_KEY, FAKE_GEMINI_MODEL, FakeGemini, GeminiReply};
use crate::support::smtp_peer::SmtpPeer;

const TITLE: &str = "Invoices page shows a database error";
const FAILURE_HANDLER: &str = "on-ticket-created-failure";

/// The failure handler's runs, waiting until `n` of them completed.
async fn completed_failure_runs(app: &TestApp, n: usize) -> Vec<RunState> {
    wait_until(DEADLINE, || async {
        let all = runs(app, FAILURE_HANDLER).await;
        let done = all
            .iter()
            .filter(|r| r.status == RunStatus::Completed)
            .count();
        if done >= n && done == all.len() {
            Ok(all)
        } else {
            Err(format!(
                "{:?}",
                all.iter()
                    .map(|r| (r.status, r.history.clone()))
                    .collect::<Vec<_>>()
            ))
        }
    })
    .await
}

#[tokio::test]
async fn a_run_that_fails_for_good_marks_the_ticket_and_tells_the_admins() {
    let fake = FakeGemini::start().await;
    // The quota is out for ten minutes: the triage step is rescheduled, the ticket pending.
    fake.set_default(GeminiReply::RateLimited {
        retry_delay: "600s".into(),
    });
    let peer = SmtpPeer::start();
    let smtp_url = peer.smtp_url();
    let app = spawn_app_with(&[
        ("GEMINI_API_KEY", FAKE_GEMINI_KEY),
        ("GEMINI_BASE_URL", fake.base_url()),
        ("GEMINI_MODEL", FAKE_GEMINI_MODEL),
        ("SMTP_URL", &smtp_url),
        ("APP_URL", APP_URL),
    ])
    .await;
    let exec = executor(&app);
    let (_, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    app.staff("dba@example.com", Role::Moderator, &["SQL"])
        .await;
    let (_, customer) = app.register("customer@example.com").await;

    let id = open_db_ticket(&app, &customer, TITLE).await;
    let held = wait_run(&app, "on-ticket-created", &id, |r| {
        r.history
            .iter()
            .any(|h| h.name.as_deref() == Some("triage") && h.outcome == Outcome::Retrying)
    })
    .await;
    assert_eq!(ticket(&app, &admin, &id).await["triage_status"], "pending");

    // A run that really fails: its event names a ticket this store does not have.
    let ghost = ticketing::domain::new_id();
    exec.publish(vec![json!({
        "name": "ticket/created",
        "id": ticketing::domain::new_id(),
        "data": { "ticket_id": ghost, "user_id": ghost },
    })])
    .await
    .unwrap();
    let failed = wait_run(&app, "on-ticket-created", &ghost, |r| {
        r.status == RunStatus::Failed
    })
    .await;
    // The executor told the failure handler, which found no ticket to mark and nobody to tell.
    let handled = completed_failure_runs(&app, 1).await;
    let real = handled[0].event.clone();
    assert_eq!(real["name"], "inngest/function.failed");
    assert_eq!(real["id"], failed.id.as_str());
    assert_eq!(real["data"]["run_id"], failed.id.as_str());
    assert_eq!(
        real["data"]["function_id"],
        function_id("on-ticket-created")
    );
    assert_eq!(real["data"]["event"], failed.event);
    assert!(
        real["data"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not exist")),
        "{real}"
    );
    assert_eq!(
        handled[0].output,
        Some(json!({"ticket_id": ghost, "admins_told": 0}))
    );

    // The same event, as Inngest sends it when the held run fails for good.
    let last_error = held
        .history
        .iter()
        .rev()
        .find_map(|h| h.error.clone())
        .expect("the held run recorded the rate limit");
    let mut event = real.clone();
    event["id"] = json!(held.id);
    event["data"]["run_id"] = json!(held.id);
    event["data"]["event"] = held.event.clone();
    event["data"]["events"] = json!(held.events);
    event["data"]["error"] = last_error.clone();
    exec.publish(vec![event.clone()]).await.unwrap();

    let t = wait_ticket(&app, &admin, &id, |t| t["triage_status"] != "pending").await;
    assert_eq!(t["triage_status"], "failed", "{t}");
    let reason = t["routing_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("Automatic processing failed: ") && reason.contains("rate limited"),
        "{reason}"
    );
    let handled = completed_failure_runs(&app, 2).await;
    assert_eq!(
        handled[1].output,
        Some(json!({"ticket_id": id, "admins_told": 1}))
    );

    let mails = peer.wait_for(4, DEADLINE).await;
    let subject = format!("Needs attention: {TITLE}");
    let alert = the_mail(&mails, "admin@example.com", &subject);
    assert_links_to(alert, &format!("{APP_URL}/tickets/{id}"));
    assert!(alert.text().contains("rate limited"), "{}", alert.text());
    assert!(
        mails_to(&mails, "customer@example.com")
            .iter()
            .all(|m| m.subject() != subject)
    );

    let st = stats(&app, &admin).await;
    assert_eq!(count(&st, "by_triage_status", "failed"), 1, "{st}");
    assert_eq!(count(&st, "by_triage_status", "pending"), 0, "{st}");

    // Delivered again, or the handler rerun: no second alert.
    exec.publish(vec![event]).await.unwrap();
    let rerun = exec.rerun(&handled[1].id).await.unwrap();
    let rerun = wait_until(DEADLINE, || async {
        let r = exec.get_run(&rerun).await.unwrap().unwrap();
        if r.status == RunStatus::Completed {
            Ok(r)
        } else {
            Err(format!("{:?}", r.status))
        }
    })
    .await;
    assert_eq!(step_results_equal(&rerun, &json!("already_sent")), 1);
    assert_eq!(runs(&app, FAILURE_HANDLER).await.len(), 3);
    let alerts = peer
        .messages()
        .iter()
        .filter(|m| m.subject() == subject)
        .count();
    assert_eq!(alerts, 1);
}
