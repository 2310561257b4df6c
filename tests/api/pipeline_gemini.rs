//! Triage with Gemini end to end: a ticket opened through the REST API is triaged by the
//! embedded executor against a fake Gemini on loopback, then routed. Every answer the API can
//! give ends in a triaged ticket (by Gemini, or by the rules engine as a fallback) that is
//! assigned or queued, never one left `pending`.

use std::time::Duration;

use serde_json::Value;
use ticketing::domain::user::Role;
use ticketing::inngest::executor::{Outcome, RunState};

use crate::helpers::{TestApp, spawn_app_with};
use crate::pipeline_common::*;
use crate::support::fake_gemini::{
    FAKE_GEMINI_KEY, FAKE_GEMINI_MODEL, FakeGemini, GeminiReply, auto_triage,
};

const TITLE: &str = "Checkout fails with deadlocks";

struct Setup {
    app: TestApp,
    admin: String,
    dba_id: String,
    customer: String,
}

/// The service with Gemini at `fake` (using `model`), an admin, a moderator with database
/// skills, one with unrelated skills, and a customer.
async fn setup(fake: &FakeGemini, model: &str) -> Setup {
    let app = spawn_app_with(&[
        ("GEMINI_API_KEY", FAKE_GEMINI_KEY),
        ("GEMINI_BASE_URL", fake.base_url()),
        ("GEMINI_MODEL", model),
    ])
    .await;
    let (_, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    let (dba_id, _) = app
        .staff("dba@example.com", Role::Moderator, &["SQL", "MongoDB"])
        .await;
    app.staff("web@example.com", Role::Moderator, &["React", "CSS"])
        .await;
    let (_, customer) = app.register("customer@example.com").await;
    Setup {
        app,
        admin,
        dba_id,
        customer,
    }
}

/// Opens the ticket as the customer and waits until triage and routing finished.
async fn open_and_process(s: &Setup, title: &str) -> Value {
    let id = open_db_ticket(&s.app, &s.customer, title).await;
    wait_processed(&s.app, &s.admin, &id).await
}

/// Triaged by the rules engine after Gemini failed, and still routed to the database expert.
async fn assert_fallback(s: &Setup, t: &Value) {
    assert_eq!(t["triage_status"], "fallback", "{t}");
    assert_eq!(t["triage"]["source"], "rules", "{t}");
    assert!(
        t["triage"]["required_skills"]
            .as_array()
            .is_some_and(|s| s.iter().any(|k| k == "Database"))
    );
    assert_eq!(t["assigned_to"], s.dba_id.as_str(), "{t}");
    let st = stats(&s.app, &s.admin).await;
    assert_eq!(count(&st, "by_triage_source", "rules"), 1, "{st}");
    assert_eq!(count(&st, "by_triage_source", "gemini"), 0, "{st}");
    assert_eq!(count(&st, "by_triage_status", "fallback"), 1, "{st}");
    assert_eq!(count(&st, "by_triage_status", "pending"), 0, "{st}");
}

#[tokio::test]
async fn valid_answer_triages_with_gemini_and_routes_by_skill() {
    let fake = FakeGemini::start().await;
    let s = setup(&fake, FAKE_GEMINI_MODEL).await;
    let t = open_and_process(&s, TITLE).await;

    let expected = auto_triage(TITLE);
    assert_eq!(t["triage_status"], "done", "{t}");
    assert_eq!(t["triage"]["source"], "gemini");
    assert_eq!(t["triage"]["summary"], expected["summary"]);
    assert_eq!(t["category"], "technical_issue");
    assert_eq!(t["priority"], "high");
    assert_eq!(t["triage"]["required_skills"], expected["required_skills"]);
    assert_eq!(t["assigned_to"], s.dba_id.as_str());
    let reason = t["routing_reason"].as_str().unwrap();
    assert!(reason.contains("Database"), "{reason}");

    // The request the service sent: key in the header, JSON schema, the ticket delimited.
    fake.assert_no_violations();
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.api_key.as_deref(), Some(FAKE_GEMINI_KEY));
    assert_eq!(r.model.as_deref(), Some(FAKE_GEMINI_MODEL));
    assert!(
        r.user_text()
            .contains(&format!("<ticket>\n<title>{TITLE}</title>")),
        "{}",
        r.user_text()
    );
    assert!(r.user_text().contains("Postgres database"));
    assert!(r.body["generationConfig"]["responseJsonSchema"].is_object());

    let st = stats(&s.app, &s.admin).await;
    assert_eq!(count(&st, "by_triage_source", "gemini"), 1, "{st}");
    assert_eq!(count(&st, "by_triage_status", "done"), 1, "{st}");
}

#[tokio::test]
async fn malformed_json_falls_back_to_the_rules_engine() {
    let fake = FakeGemini::start().await;
    fake.set_default(GeminiReply::Text("{\"summary\": \"unterminated".into()));
    let s = setup(&fake, FAKE_GEMINI_MODEL).await;
    let t = open_and_process(&s, TITLE).await;
    assert_fallback(&s, &t).await;
    // One retry after unusable output, then the rules engine.
    assert_eq!(fake.request_count(), 2);
    fake.assert_no_violations();
}

#[tokio::test]
async fn safety_blocks_fall_back_to_the_rules_engine() {
    let fake = FakeGemini::start().await;
    fake.set_default(GeminiReply::SafetyFinish);
    let s = setup(&fake, FAKE_GEMINI_MODEL).await;
    let t = open_and_process(&s, TITLE).await;
    assert_fallback(&s, &t).await;
    // A block is final: no retry.
    assert_eq!(fake.request_count(), 1);

    fake.set_default(GeminiReply::PromptBlocked("PROHIBITED_CONTENT".into()));
    let t = open_and_process(&s, "Second ticket about the database").await;
    assert_eq!(t["triage_status"], "fallback", "{t}");
    assert_eq!(t["triage"]["source"], "rules");
    assert!(t["routing_reason"].is_string());
    assert_eq!(fake.request_count(), 2);
    let st = stats(&s.app, &s.admin).await;
    assert_eq!(count(&st, "by_triage_source", "rules"), 2, "{st}");
    fake.assert_no_violations();
}

#[tokio::test]
async fn unavailable_model_falls_back_after_retries() {
    let fake = FakeGemini::start().await;
    fake.set_default(GeminiReply::Unavailable);
    let s = setup(&fake, FAKE_GEMINI_MODEL).await;
    let t = open_and_process(&s, TITLE).await;
    assert_fallback(&s, &t).await;
    // 503 is retried within the call (3 attempts), then the rules engine decides.
    assert_eq!(fake.request_count(), 3);
    fake.assert_no_violations();
}

#[tokio::test]
async fn unknown_model_falls_back_without_retrying() {
    let fake = FakeGemini::start().await;
    let s = setup(&fake, "gemini-0.1-retired").await;
    let t = open_and_process(&s, TITLE).await;
    assert_fallback(&s, &t).await;
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "a 404 cannot get better by retrying");
    assert_eq!(requests[0].model.as_deref(), Some("gemini-0.1-retired"));
    fake.assert_no_violations();
}

/// History entries of the run's `triage` step.
fn triage_history(run: &RunState) -> Vec<&ticketing::inngest::executor::HistoryEntry> {
    run.history
        .iter()
        .filter(|h| h.name.as_deref() == Some("triage"))
        .collect()
}

#[tokio::test]
async fn rate_limit_is_retried_by_the_durable_step_after_the_delay() {
    let fake = FakeGemini::start().await;
    // Three 429s exhaust the call's own retries; the fourth request is answered.
    fake.enqueue(vec![
        GeminiReply::RateLimited {
            retry_delay: "1s".into()
        };
        3
    ]);
    let s = setup(&fake, FAKE_GEMINI_MODEL).await;
    let id = open_db_ticket(&s.app, &s.customer, TITLE).await;
    let t = wait_processed(&s.app, &s.admin, &id).await;

    // Succeeded on the next answer: Gemini's triage, not the fallback.
    assert_eq!(t["triage_status"], "done", "{t}");
    assert_eq!(t["triage"]["source"], "gemini");
    assert_eq!(t["assigned_to"], s.dba_id.as_str());
    assert_eq!(fake.request_count(), 4);

    let run = wait_run(&s.app, "on-ticket-created", &id, |r| {
        triage_history(r)
            .iter()
            .any(|h| h.outcome == Outcome::Completed)
    })
    .await;
    let history = triage_history(&run);
    let retry = history
        .iter()
        .find(|h| h.outcome == Outcome::Retrying)
        .unwrap_or_else(|| panic!("the triage step was not retried: {history:#?}"));
    assert_eq!(retry.attempt, 0);
    // `until` is computed when the answer arrives, `at` when it is recorded: a hair apart.
    let delay = retry.until.expect("retry time") - retry.at;
    assert!(
        delay >= chrono::Duration::milliseconds(900) && delay < chrono::Duration::seconds(3),
        "the retry follows Gemini's retryDelay, not the default backoff: {delay}"
    );
    let done = history
        .iter()
        .find(|h| h.outcome == Outcome::Completed)
        .unwrap();
    assert_eq!(done.attempt, 1, "succeeded on the step's second attempt");
    assert!(done.at >= retry.until.unwrap());

    let st = stats(&s.app, &s.admin).await;
    assert_eq!(count(&st, "by_triage_source", "gemini"), 1, "{st}");
    fake.assert_no_violations();
}

#[tokio::test]
async fn persistent_rate_limit_falls_back_on_the_last_attempt() {
    let fake = FakeGemini::start().await;
    // Short enough that five step attempts stay quick; the executor waits at least 1s.
    fake.set_default(GeminiReply::RateLimited {
        retry_delay: "0.2s".into(),
    });
    let s = setup(&fake, FAKE_GEMINI_MODEL).await;
    let id = open_db_ticket(&s.app, &s.customer, TITLE).await;
    let t = wait_until(Duration::from_secs(60), || async {
        let t = ticket(&s.app, &s.admin, &id).await;
        if t["routing_reason"].is_string() {
            Ok(t)
        } else {
            Err(t.to_string())
        }
    })
    .await;
    assert_fallback(&s, &t).await;

    let run = wait_run(&s.app, "on-ticket-created", &id, |r| {
        triage_history(r)
            .iter()
            .any(|h| h.outcome == Outcome::Completed)
    })
    .await;
    let history = triage_history(&run);
    let retries = history
        .iter()
        .filter(|h| h.outcome == Outcome::Retrying)
        .count();
    let done = history
        .iter()
        .find(|h| h.outcome == Outcome::Completed)
        .unwrap();
    assert_eq!(
        done.attempt + 1,
        run.max_attempts,
        "fell back on the last attempt"
    );
    assert_eq!(retries as u32, run.max_attempts - 1, "{history:#?}");
    // Each attempt spent its three calls on the rate limit.
    assert_eq!(fake.request_count() as u32, 3 * run.max_attempts);
    fake.assert_no_violations();
}

#[tokio::test]
async fn an_admins_assignment_made_during_triage_is_not_undone_by_routing() {
    let fake = FakeGemini::start().await;
    fake.set_default(GeminiReply::Delayed(
        Duration::from_millis(800),
        Box::new(GeminiReply::Auto),
    ));
    let s = setup(&fake, FAKE_GEMINI_MODEL).await;
    let id = open_db_ticket(&s.app, &s.customer, TITLE).await;
    // While triage waits on the AI, an admin assigns the ticket and then takes it back.
    wait_until(Duration::from_secs(10), async || {
        if fake.request_count() >= 1 {
            Ok(())
        } else {
            Err("no triage call yet".to_owned())
        }
    })
    .await;
    let path = format!("/api/tickets/{id}");
    let r = s
        .app
        .patch(
            &path,
            &s.admin,
            serde_json::json!({"assignee_id": s.dba_id}),
        )
        .await;
    assert_eq!(r.status, reqwest::StatusCode::OK);
    let r = s
        .app
        .patch(&path, &s.admin, serde_json::json!({"assignee_id": null}))
        .await;
    assert_eq!(r.status, reqwest::StatusCode::OK);
    // Once the run waits for resolution, triage and routing are behind it.
    wait_run(&s.app, "on-ticket-created", &id, is_waiting_for_event).await;
    let t = wait_processed(&s.app, &s.admin, &id).await;
    assert_eq!(t["triage_status"], "done", "{t}");
    assert!(
        t["assigned_to"].is_null(),
        "routing left the admin's decision alone: {t}"
    );
    assert!(
        t["routing_reason"]
            .as_str()
            .unwrap()
            .starts_with("Unassigned by an admin"),
        "{t}"
    );
}
