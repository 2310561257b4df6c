//! Shared pieces of the end-to-end pipeline tests: polling with a deadline, tickets and stats
//! through the REST API, the embedded executor's runs, and checks on received mail.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use ticketing::inngest::executor::state::Pending;
use ticketing::inngest::executor::store::RunFilter;
use ticketing::inngest::executor::{Executor, state::RunState};

use crate::helpers::TestApp;
use crate::support::smtp_peer::ReceivedMail;
pub use crate::support::wait_until;

/// Long enough for a loaded CI machine; every wait ends as soon as its condition holds.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The base of every link in mail, distinct from the listen address so a wrong base shows.
pub const APP_URL: &str = "http://support.test:8080";

/// A ticket that gives the rules engine (and a reader) a clear database problem.
pub async fn open_db_ticket(app: &TestApp, token: &str, title: &str) -> String {
    let r = app
        .post(
            "/api/tickets",
            token,
            json!({
                "title": title,
                "description": "Since 9am every checkout fails with an error. Our Postgres database \
                                logs show deadlocks on the orders table and queries time out.",
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["ticket"]["triage_status"], "pending");
    r.body["ticket"]["id"]
        .as_str()
        .expect("ticket id")
        .to_owned()
}

pub async fn ticket(app: &TestApp, token: &str, id: &str) -> Value {
    let r = app.get(&format!("/api/tickets/{id}"), token).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["ticket"].clone()
}

/// Polls the ticket through the API until `done` holds.
pub async fn wait_ticket(
    app: &TestApp,
    token: &str,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    wait_until(DEADLINE, || async {
        let t = ticket(app, token, id).await;
        if done(&t) { Ok(t) } else { Err(t.to_string()) }
    })
    .await
}

/// The ticket once triage and routing finished: triaged (never left `pending`) and either
/// assigned or queued with a reason.
pub async fn wait_processed(app: &TestApp, token: &str, id: &str) -> Value {
    wait_ticket(app, token, id, |t| {
        t["triage_status"] != "pending" && t["routing_reason"].is_string()
    })
    .await
}

pub async fn stats(app: &TestApp, admin_token: &str) -> Value {
    let r = app.get("/api/stats", admin_token).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

/// `count` of `key` in a stats breakdown such as `by_triage_source` (0 when absent).
pub fn count(stats: &Value, breakdown: &str, key: &str) -> u64 {
    stats[breakdown]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["key"] == key)
        .and_then(|c| c["count"].as_u64())
        .unwrap_or(0)
}

pub fn executor(app: &TestApp) -> &Executor {
    app.executor.as_ref().expect("the embedded executor runs")
}

/// The executor's id of one of the app's functions.
pub fn function_id(name: &str) -> String {
    format!("{}-{name}", ticketing::functions::APP_ID)
}

/// Every run of `function`, oldest first, in full.
pub async fn runs(app: &TestApp, function: &str) -> Vec<RunState> {
    let exec = executor(app);
    let summaries = exec
        .list_runs(RunFilter {
            function_id: Some(function_id(function)),
            limit: 1000,
            ..RunFilter::default()
        })
        .await
        .expect("list runs");
    let mut out = Vec::new();
    for s in summaries.iter().rev() {
        out.push(
            exec.get_run(&s.id)
                .await
                .expect("load run")
                .expect("listed run exists"),
        );
    }
    out
}

/// Waits for the first run of `function` whose event is about `ticket_id` to satisfy `done`.
pub async fn wait_run(
    app: &TestApp,
    function: &str,
    ticket_id: &str,
    done: impl Fn(&RunState) -> bool,
) -> RunState {
    wait_until(DEADLINE, || async {
        let all = runs(app, function).await;
        let run = all
            .iter()
            .find(|r| r.rerun_of.is_none() && r.event["data"]["ticket_id"] == ticket_id);
        match run {
            Some(r) if done(r) => Ok(r.clone()),
            Some(r) => Err(format!(
                "run {} is {:?}, pending {:?}, history {}",
                r.id,
                r.status,
                r.pending,
                json!(r.history)
            )),
            None => Err(format!("no {function} run for ticket {ticket_id} yet")),
        }
    })
    .await
}

/// The run waits in `step.waitForEvent`.
pub fn is_waiting_for_event(run: &RunState) -> bool {
    run.pending.values().any(|p| *p == Pending::Wait)
}

/// How many memoized step results in the run are exactly `value` (steps keep `{"data": …}`).
pub fn step_results_equal(run: &RunState, value: &Value) -> usize {
    fn walk(v: &Value, target: &Value) -> usize {
        let here = usize::from(v == target);
        here + match v {
            Value::Array(items) => items.iter().map(|i| walk(i, target)).sum(),
            Value::Object(map) => map.values().map(|i| walk(i, target)).sum(),
            _ => 0,
        }
    }
    run.steps.values().map(|s| walk(s, value)).sum()
}

pub fn mails_to<'a>(mails: &'a [ReceivedMail], address: &str) -> Vec<&'a ReceivedMail> {
    mails
        .iter()
        .filter(|m| m.to.iter().any(|t| t == address))
        .collect()
}

/// The one mail to `address` with this subject; fails listing what arrived otherwise.
pub fn the_mail<'a>(mails: &'a [ReceivedMail], address: &str, subject: &str) -> &'a ReceivedMail {
    let found: Vec<&ReceivedMail> = mails_to(mails, address)
        .into_iter()
        .filter(|m| m.subject() == subject)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one mail {subject:?} to {address}; got: {:#?}",
        summary(mails)
    );
    found[0]
}

/// Both parts of the mail link to `url`.
pub fn assert_links_to(mail: &ReceivedMail, url: &str) {
    assert!(
        mail.text().contains(url),
        "{url} not in text: {}",
        mail.text()
    );
    assert!(
        mail.html().contains(&format!("href=\"{url}\"")),
        "{url} not in HTML: {}",
        mail.html()
    );
}

/// `(recipients, subject)` of each mail, for failure messages.
pub fn summary(mails: &[ReceivedMail]) -> Vec<(Vec<String>, String)> {
    mails.iter().map(|m| (m.to.clone(), m.subject())).collect()
}
