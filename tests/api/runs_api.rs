//! `/api/runs`: admins list, inspect, re-run and cancel the runs of the embedded executor; the
//! executor's counters reach `/metrics`.

use crate::helpers::*;
use crate::support::fake_gemini::{FAKE_GEMINI_KEY, FakeGemini, GeminiReply};
use crate::support::wait_until;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;
use ticketing::domain::user::Role;

/// Polls `GET path` until `done(body)`.
async fn poll(app: &TestApp, token: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    wait_until(Duration::from_secs(30), async || {
        let r = app.get(path, token).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
        if done(&r.body) {
            Ok(r.body)
        } else {
            Err(format!("{path} never got there: {:#}", r.body))
        }
    })
    .await
}

fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["name"] == name))
        .unwrap_or(&Value::Null)
}

fn ids(list: &Value) -> Vec<String> {
    list["runs"]
        .as_array()
        .map(|runs| {
            runs.iter()
                .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The `on-ticket-created` run of a fresh ticket, once it waits for the ticket's resolution.
async fn waiting_ticket_run(app: &TestApp, admin: &str, user: &str) -> (Value, Value) {
    let ticket = app.create_ticket(user, "Printer on fire").await;
    let list = poll(app, admin, "/api/runs?function=on-ticket-created", |b| {
        !ids(b).is_empty()
    })
    .await;
    let id = ids(&list)[0].clone();
    let run = poll(app, admin, &format!("/api/runs/{id}"), |b| {
        step(&b["run"], "wait-for-resolution")["status"] == "waiting"
    })
    .await;
    (ticket, run["run"].clone())
}

#[tokio::test]
async fn admins_list_inspect_rerun_and_cancel_runs() {
    let app = spawn_app().await;
    let (_, admin) = app.staff("ops-admin@example.com", Role::Admin, &[]).await;
    let (_, user) = app.register("ops-user@example.com").await;
    let (ticket, run) = waiting_ticket_run(&app, &admin, &user).await;
    let run_id = run["id"].as_str().unwrap().to_owned();

    // One run with its event, steps, timings and attempts.
    assert_eq!(run["function"], "on-ticket-created");
    assert_eq!(run["function_id"], "ticketing-on-ticket-created");
    assert_eq!(run["status"], "running");
    assert_eq!(run["event"]["name"], "ticket/created");
    assert_eq!(run["event"]["data"]["ticket_id"], ticket["id"]);
    let outbox_ids: Vec<String> = app.events().await.into_iter().map(|e| e.id).collect();
    assert!(
        outbox_ids.contains(&run["event"]["id"].as_str().unwrap().to_owned()),
        "the run's event keeps its outbox id"
    );
    for name in ["triage", "route", "notify-creator", "start-sla"] {
        let s = step(&run, name);
        assert_eq!(s["status"], "completed", "{name}: {s}");
        assert_eq!(s["attempts"], 1, "{name}");
        assert!(
            s["duration_ms"].as_i64().is_some_and(|ms| ms >= 0),
            "{name}"
        );
        assert!(
            s["result"]["data"].is_object() || s["result"]["data"].is_string(),
            "{name}: {s}"
        );
    }
    let wait = step(&run, "wait-for-resolution");
    assert_eq!(wait["op"], "WaitForEvent");
    assert!(wait["until"].is_string(), "the wait has a deadline: {wait}");
    assert!(run["history"].as_array().is_some_and(|h| h.len() >= 5));
    assert!(run["ended_at"].is_null());

    // Filters by function (short or full id) and status; pages with a cursor.
    let welcome = poll(
        &app,
        &admin,
        "/api/runs?function=on-user-signup&status=completed",
        |b| ids(b).len() == 2,
    )
    .await;
    let full = app
        .get("/api/runs?function=ticketing-on-user-signup", &admin)
        .await;
    assert_eq!(ids(&full.body), ids(&welcome));
    let running = app.get("/api/runs?status=running", &admin).await;
    assert_eq!(ids(&running.body), vec![run_id.clone()]);
    let all = ids(&app.get("/api/runs", &admin).await.body);
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first");
    let first = app.get("/api/runs?limit=2", &admin).await;
    assert_eq!(ids(&first.body), all[..2]);
    let cursor = first.body["next_cursor"].as_str().expect("a next page");
    let second = app
        .get(&format!("/api/runs?limit=2&cursor={cursor}"), &admin)
        .await;
    assert_eq!(ids(&second.body), all[2..]);
    assert!(second.body["next_cursor"].is_null());

    // A re-run is a new run of the same event; the mail it would send was sent already.
    let old = ids(&welcome)[0].clone();
    let r = app
        .request(
            Method::POST,
            &format!("/api/runs/{old}/rerun"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let new = r.body["run"]["id"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(r.body["run"]["rerun_of"], old.as_str());
    let done = poll(&app, &admin, &format!("/api/runs/{new}"), |b| {
        b["run"]["status"] == "completed"
    })
    .await;
    assert_eq!(
        step(&done["run"], "send-welcome")["result"]["data"],
        "already_sent"
    );

    // Cancelling stops the waiting run; a finished run cannot be cancelled.
    let r = app
        .request(
            Method::POST,
            &format!("/api/runs/{run_id}/cancel"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["run"]["status"], "cancelled");
    assert!(r.body["run"]["ended_at"].is_string());
    let again = app
        .request(
            Method::POST,
            &format!("/api/runs/{run_id}/cancel"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "run_finished");
    let cancelled = app.get("/api/runs?status=cancelled", &admin).await;
    assert_eq!(ids(&cancelled.body), vec![run_id]);
}

#[tokio::test]
async fn runs_are_admin_only_and_bad_input_is_a_4xx() {
    let app = spawn_app().await;
    let (_, admin) = app.staff("ops-admin2@example.com", Role::Admin, &[]).await;
    let (_, moderator) = app
        .staff("ops-mod@example.com", Role::Moderator, &["SQL"])
        .await;
    let (_, user) = app.register("ops-user2@example.com").await;
    let unknown = ticketing::domain::new_id();

    let anonymous = app.request(Method::GET, "/api/runs", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    for token in [&user, &moderator] {
        assert_eq!(
            app.get("/api/runs", token).await.status,
            StatusCode::FORBIDDEN
        );
        let r = app
            .request(
                Method::POST,
                &format!("/api/runs/{unknown}/cancel"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }

    for (path, status, code) in [
        ("/api/runs?status=bogus", 400, "invalid_query"),
        ("/api/runs?limit=0", 400, "invalid_limit"),
        ("/api/runs?limit=101", 400, "invalid_limit"),
        ("/api/runs?limit=ten", 400, "invalid_query"),
        ("/api/runs?cursor=!!!", 400, "invalid_cursor"),
        (
            "/api/runs?function=no-such-function",
            422,
            "validation_failed",
        ),
        ("/api/runs/not-a-run-id", 404, "not_found"),
        ("/api/runs/%7B%22$ne%22:null%7D", 404, "not_found"),
        (&format!("/api/runs/{unknown}"), 404, "not_found"),
    ] {
        let r = app.get(path, &admin).await;
        assert_eq!(r.status.as_u16(), status, "{path}: {:?}", r.body);
        assert_eq!(r.code(), code, "{path}");
    }
    let r = app.get("/api/runs?function=nope", &admin).await;
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("on-ticket-created")),
        "the error lists the known functions: {:?}",
        r.body
    );
    for action in ["rerun", "cancel"] {
        for id in [unknown.as_str(), "garbage"] {
            let r = app
                .request(
                    Method::POST,
                    &format!("/api/runs/{id}/{action}"),
                    Some(&admin),
                    None,
                )
                .await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{action} {id}");
        }
    }
}

/// The value of one series in Prometheus text, e.g. `name{label="x"}`.
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn executor_metrics_reach_prometheus_after_real_traffic() {
    let gemini = FakeGemini::start().await;
    // The first triage is rate limited for longer than the provider waits: the step is retried.
    gemini.enqueue([GeminiReply::RateLimited {
        retry_delay: "600s".into(),
    }]);
    let app = spawn_app_with(&[
        ("GEMINI_API_KEY", FAKE_GEMINI_KEY),
        ("GEMINI_BASE_URL", gemini.base_url()),
    ])
    .await;
    let metrics = || async {
        let r = app.request(Method::GET, "/metrics", None, None).await;
        assert_eq!(r.status, StatusCode::OK);
        r.body.as_str().unwrap_or_default().to_owned()
    };
    let before = metrics().await;
    for name in [
        "inngest_executor_runs_finished_total{status=\"failed\"}",
        "inngest_executor_steps_total{outcome=\"failed\"}",
        "inngest_executor_retries_total",
    ] {
        assert!(
            series(&before, name).is_some(),
            "{name} exists from the start:\n{before}"
        );
    }
    let retries_before = series(&before, "inngest_executor_retries_total").unwrap_or(0.0);

    let (_, user) = app.register("metrics-user@example.com").await;
    app.create_ticket(&user, "Rate limited triage").await;
    let text = wait_until(Duration::from_secs(30), async || {
        let text = metrics().await;
        let retried =
            series(&text, "inngest_executor_retries_total").is_some_and(|n| n > retries_before);
        let finished = series(
            &text,
            "inngest_executor_runs_finished_total{status=\"completed\"}",
        )
        .is_some_and(|n| n >= 1.0);
        if retried && finished {
            Ok(text)
        } else {
            Err(format!("no retry or finished run reported:\n{text}"))
        }
    })
    .await;
    for name in [
        "inngest_executor_events_total{outcome=\"accepted\"}",
        "inngest_executor_runs_started_total",
        "inngest_executor_steps_total{outcome=\"completed\"}",
        "inngest_executor_calls_total",
        "inngest_executor_call_duration_seconds_count",
    ] {
        assert!(
            series(&text, name).is_some_and(|n| n >= 1.0),
            "{name} counts real traffic:\n{text}"
        );
    }
    // The triage retry waits in the queue.
    assert!(
        series(&text, "inngest_executor_queue_depth{state=\"scheduled\"}")
            .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(series(&text, "outbox_backlog").is_some());
}
