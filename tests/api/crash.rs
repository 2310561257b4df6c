//! Crash safety with real processes. The binary is killed with SIGKILL while one ticket's triage
//! is in flight (the fake Gemini holds the answer) and while another ticket's run waits for its
//! resolution until the SLA deadline. Restarted on the same `DATA_DIR`, every run completes, a
//! step whose result was saved is not executed again, no mail goes out twice, and every event
//! has exactly one run per function it triggers.

use crate::support::binary::{self, Binary};
use crate::support::fake_gemini::{FAKE_GEMINI_KEY, FakeGemini, GeminiReply};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use ticketing::store::OutboxStore;

const ADMIN: &str = "crash-admin@example.com";
const PASSWORD: &str = "password123";
const TITLE_A: &str = "Database replica lagging behind";
const TITLE_B: &str = "Login page times out";

fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["name"] == name))
        .unwrap_or(&Value::Null)
}

/// The `on-ticket-created` run of a ticket, in full.
async fn ticket_run(server: &Binary, admin: &str, ticket_id: &str) -> Option<Value> {
    let (status, list) = server
        .get("/api/runs?function=on-ticket-created&limit=100", admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    for summary in list["runs"].as_array()? {
        let run = server.run(admin, summary["id"].as_str()?).await;
        if run["event"]["data"]["ticket_id"] == ticket_id {
            return Some(run);
        }
    }
    None
}

async fn waiting_for_resolution(server: &Binary, admin: &str, ticket_id: &str) -> Value {
    server
        .until(
            "the run to wait for the resolution",
            Duration::from_secs(60),
            async || {
                ticket_run(server, admin, ticket_id)
                    .await
                    .filter(|r| step(r, "wait-for-resolution")["status"] == "waiting")
            },
        )
        .await
}

/// `(Message-ID, Subject)` of every mail written to the outbox folder.
fn outbox_mails(dir: &std::path::Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir.join("outbox")) else {
        return Vec::new();
    };
    let header = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            (header(&text, "Message-ID:"), header(&text, "Subject:"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_step_and_mid_wait_every_run_completes_exactly_once() {
    let gemini = FakeGemini::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env: BTreeMap<String, String> = binary::env(dir.path(), binary::free_port());
    env.extend([
        ("GEMINI_API_KEY".into(), FAKE_GEMINI_KEY.into()),
        ("GEMINI_BASE_URL".into(), gemini.base_url().into()),
        // The fake triages every ticket as high priority.
        ("SLA_HIGH".into(), "12s".into()),
        ("BOOTSTRAP_ADMIN_EMAIL".into(), ADMIN.into()),
        ("BOOTSTRAP_ADMIN_PASSWORD".into(), PASSWORD.into()),
    ]);

    let mut server = Binary::start(&env).await;
    let admin = server.login(ADMIN, PASSWORD).await;
    let (_, user) = server.register("crash-user@example.com").await;

    // Ticket A gets through triage, routing and mail, and waits for its resolution.
    let a = server.create_ticket(&user, TITLE_A).await;
    let run_a = waiting_for_resolution(&server, &admin, &a).await;

    // Ticket B's triage hangs at the AI.
    gemini.set_default(GeminiReply::Delayed(
        Duration::from_secs(3600),
        Box::new(GeminiReply::Auto),
    ));
    let b = server.create_ticket(&user, TITLE_B).await;
    server
        .until(
            "B's triage to reach the AI",
            Duration::from_secs(60),
            async || {
                gemini
                    .requests()
                    .iter()
                    .any(|r| r.user_text().contains(TITLE_B))
                    .then_some(())
            },
        )
        .await;
    let (_, ticket_a) = server.get(&format!("/api/tickets/{a}"), &admin).await;
    let due: chrono::DateTime<chrono::Utc> = ticket_a["ticket"]["sla_due_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("A has an SLA deadline");
    assert!(
        due > chrono::Utc::now(),
        "A is still waiting when the process dies"
    );
    assert_eq!(run_a["status"], "running");
    server.kill();

    // Same data directory, AI answering again.
    gemini.set_default(GeminiReply::Auto);
    let server = Binary::start(&env).await;
    let admin = server.login(ADMIN, PASSWORD).await;

    // B resumes at its unfinished triage, then waits; resolving the ticket ends its run.
    waiting_for_resolution(&server, &admin, &b).await;
    let (status, body) = server
        .send(
            Method::PATCH,
            &format!("/api/tickets/{b}"),
            &admin,
            json!({"status": "resolved"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A's SLA timer survived the crash: it fires and escalates.
    let store = ticketing::store::sqlite::SqliteStore::open(dir.path().join("ticketing.db"))
        .await
        .expect("open the store beside the server");
    let trigger = |name: &str| match name {
        "user/signup" => Some("on-user-signup"),
        "ticket/created" => Some("on-ticket-created"),
        "ticket/updated" | "ticket/commented" => Some("on-ticket-updated"),
        "ticket/retriage.requested" => Some("retriage-ticket"),
        "ticket/reroute.requested" => Some("reroute-ticket"),
        _ => None,
    };
    let (events, runs) = server
        .until(
            "every run to complete",
            Duration::from_secs(60),
            async || {
                let events = store.list_events(0, 10_000).await.ok()?;
                if store.outbox_backlog().await.ok()? != 0 {
                    return None;
                }
                let mut runs = Vec::new();
                for summary in server.runs(&admin).await {
                    if summary["status"] != "completed" {
                        return None;
                    }
                    runs.push(server.run(&admin, summary["id"].as_str()?).await);
                }
                let has_run = |e: &ticketing::store::OutboxEvent| {
                    trigger(&e.name).is_none_or(|f| {
                        runs.iter()
                            .any(|r| r["function"] == f && r["event"]["id"] == e.id.as_str())
                    })
                };
                let a_done = runs.iter().any(|r| {
                    r["event"]["data"]["ticket_id"] == a.as_str()
                        && r["function"] == "on-ticket-created"
                });
                (a_done && events.iter().all(has_run)).then_some((events, runs))
            },
        )
        .await;

    // Exactly one run per event and function; every event that triggers something has its run.
    let mut per_event: HashMap<(String, String), usize> = HashMap::new();
    for r in &runs {
        let key = (
            r["function"].as_str().unwrap_or_default().to_owned(),
            r["event"]["id"].as_str().unwrap_or_default().to_owned(),
        );
        *per_event.entry(key).or_default() += 1;
    }
    let mut expected = HashSet::new();
    for e in &events {
        if let Some(function) = trigger(&e.name) {
            let key = (function.to_owned(), e.id.clone());
            assert_eq!(per_event.get(&key), Some(&1), "{} {}", e.name, e.id);
            expected.insert(key);
        }
    }
    let extra: Vec<_> = per_event
        .keys()
        .filter(|k| !expected.contains(*k))
        .collect();
    assert!(
        extra.is_empty(),
        "runs no outbox event asked for: {extra:?}"
    );
    assert!(events.iter().any(|e| e.name == "ticket/resolved"));

    // Saved steps ran once: A's triage reached the AI once; B's twice (the first answer never
    // arrived), and each ticket got exactly one successful triage.
    let asked = |title: &str| {
        gemini
            .requests()
            .iter()
            .filter(|r| r.user_text().contains(title))
            .count()
    };
    let answered = |title: &str| {
        gemini
            .answered_titles()
            .iter()
            .filter(|t| t.contains(title))
            .count()
    };
    assert_eq!(asked(TITLE_A), 1);
    assert_eq!(answered(TITLE_A), 1);
    assert_eq!(asked(TITLE_B), 2);
    assert_eq!(answered(TITLE_B), 1);
    gemini.assert_no_violations();
    for (ticket, sla) in [(&a, "breached"), (&b, "met")] {
        let run = runs
            .iter()
            .find(|r| {
                r["event"]["data"]["ticket_id"] == ticket.as_str()
                    && r["function"] == "on-ticket-created"
            })
            .expect("the ticket's run");
        assert_eq!(run["output"]["sla"], sla, "{run:#}");
        assert_eq!(run["output"]["triage"], "done");
        let mut completed: HashMap<&str, usize> = HashMap::new();
        for h in run["history"].as_array().unwrap() {
            if h["outcome"] == "completed" && h["op"] == "StepRun" {
                *completed
                    .entry(h["name"].as_str().unwrap_or("?"))
                    .or_default() += 1;
            }
        }
        assert!(completed.values().all(|n| *n == 1), "{completed:?}");
        assert_eq!(completed.get("triage"), Some(&1));
        let (_, t) = server.get(&format!("/api/tickets/{ticket}"), &admin).await;
        assert_eq!(t["ticket"]["triage_status"], "done");
    }

    // No mail twice, and the ones that matter are there.
    let mails = outbox_mails(dir.path());
    let ids: HashSet<&String> = mails.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), mails.len(), "a mail went out twice: {mails:#?}");
    let subjects: Vec<&str> = mails.iter().map(|(_, s)| s.as_str()).collect();
    for expected in [
        format!("We received your ticket: {TITLE_A}"),
        format!("We received your ticket: {TITLE_B}"),
        format!("SLA breached: {TITLE_A}"),
    ] {
        assert!(
            subjects.contains(&expected.as_str()),
            "{expected} in {subjects:#?}"
        );
    }
    assert_eq!(
        subjects
            .iter()
            .filter(|s| s.starts_with("We received"))
            .count(),
        2
    );
}
