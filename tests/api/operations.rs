//! Operating the service: graceful stop, metrics, JSON logs, and the Vercel entry.

use crate::helpers::*;
use crate::support::binary::{self, KillOnDrop};
use crate::support::fake_gemini::{FAKE_GEMINI_KEY, FAKE_GEMINI_MODEL, FakeGemini, GeminiReply};
use crate::support::{free_port, wait_until};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `bin` with the test support's environment (a data directory, a JWT secret, no rate limit)
/// and `envs` over it; the port is whatever `envs` says.
fn command(bin: &str, data_dir: &std::path::Path, envs: &[(&str, String)]) -> Command {
    let mut env = binary::env(data_dir, 0);
    env.remove("PORT");
    env.extend(envs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    binary::command_of(bin, &env)
}

async fn wait_ready(base: &str) {
    let client = http_client();
    wait_until(Duration::from_secs(30), async || {
        match client.get(format!("{base}/healthz")).send().await {
            Ok(r) if r.status() == StatusCode::OK => Ok(()),
            _ => Err(format!("server at {base} did not start")),
        }
    })
    .await
}

async fn json_post(
    base: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut req = http_client().post(format!("{base}{path}")).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn json_get(base: &str, path: &str, token: &str) -> Value {
    http_client()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits up to 30 s for `f` to yield a value.
async fn poll<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    wait_until(Duration::from_secs(30), async || {
        f().await.ok_or_else(|| format!("waiting for {what}"))
    })
    .await
}

#[tokio::test]
async fn sigterm_lets_the_running_step_finish_and_loses_nothing() {
    let gemini = FakeGemini::start().await;
    gemini.set_default(GeminiReply::Delayed(
        Duration::from_millis(1500),
        Box::new(GeminiReply::Auto),
    ));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let envs = [
        ("PORT", port.to_string()),
        ("GEMINI_API_KEY", FAKE_GEMINI_KEY.to_owned()),
        ("GEMINI_MODEL", FAKE_GEMINI_MODEL.to_owned()),
        ("GEMINI_BASE_URL", gemini.base_url().to_owned()),
        ("BOOTSTRAP_ADMIN_EMAIL", "admin@example.com".to_owned()),
        ("BOOTSTRAP_ADMIN_PASSWORD", "change-me-now".to_owned()),
    ];
    let bin = env!("CARGO_BIN_EXE_ticketing");
    let mut server = KillOnDrop(
        command(bin, dir.path(), &envs)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_ready(&base).await;
    let (_, auth) = json_post(
        &base,
        "/api/auth/register",
        None,
        json!({"email": "ann@example.com", "password": "password123"}),
    )
    .await;
    let token = auth["token"].as_str().unwrap().to_owned();
    let (status, created) = json_post(
        &base,
        "/api/tickets",
        Some(&token),
        json!({"title": "Database is down", "description": "Postgres refuses connections"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["ticket"]["id"].as_str().unwrap().to_owned();

    // The triage step is now waiting on the slow AI: stop the service in the middle of it.
    poll("the triage call to start", async || {
        (gemini.request_count() >= 1).then_some(())
    })
    .await;
    let started = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = poll("the process to exit", async || server.0.try_wait().unwrap()).await;
    assert!(exit.success(), "clean exit after SIGTERM, got {exit:?}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "shutdown is bounded"
    );

    // Restarted, the run continues from the saved step: the AI is not asked again.
    let mut server = KillOnDrop(
        command(bin, dir.path(), &envs)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _ = &mut server;
    wait_ready(&base).await;
    let (_, login) = json_post(
        &base,
        "/api/auth/login",
        None,
        json!({"email": "admin@example.com", "password": "change-me-now"}),
    )
    .await;
    let admin = login["token"].as_str().unwrap().to_owned();
    let ticket = poll("the ticket to be routed", async || {
        let t = json_get(&base, &format!("/api/tickets/{id}"), &admin).await;
        (!t["ticket"]["routing_reason"].is_null() || !t["ticket"]["assigned_to"].is_null())
            .then_some(t)
    })
    .await;
    assert_eq!(ticket["ticket"]["triage_status"], "done");
    assert_eq!(ticket["ticket"]["triage"]["source"], "gemini");
    assert_eq!(
        gemini.request_count(),
        1,
        "the step that finished during shutdown never runs again"
    );
    gemini.assert_no_violations();
}

fn metric(body: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_move_with_real_traffic() {
    let app = spawn_app().await;
    let scrape = async || {
        app.client
            .get(format!("{}/metrics", app.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = scrape().await;
    let (_, token) = app.register("ann@example.com").await;
    app.staff(
        "mod@example.com",
        ticketing::domain::user::Role::Moderator,
        &["Billing"],
    )
    .await;
    app.create_ticket(&token, "Charged twice for my invoice")
        .await;
    app.wait_until_processed().await;
    // Mail goes out in the steps after routing; wait for it too.
    let after = poll("mail to be sent", async || {
        let body = scrape().await;
        (metric(&body, "mails_sent_total", &[]) >= metric(&before, "mails_sent_total", &[]) + 2.0)
            .then_some(body)
    })
    .await;
    let created = [
        ("method", "POST"),
        ("route", "/api/tickets"),
        ("status", "201"),
    ];
    assert!(
        metric(&after, "http_requests_total", &created)
            >= metric(&before, "http_requests_total", &created) + 1.0
    );
    assert!(metric(&after, "http_request_duration_seconds_count", &created) >= 1.0);
    for name in [
        "inngest_executor_runs_started_total",
        "inngest_executor_steps_total",
        "ai_calls_total",
        "outbox_events_delivered_total",
    ] {
        assert!(
            metric(&after, name, &[]) > metric(&before, name, &[]),
            "{name} moved:\n{after}"
        );
    }
    assert!(metric(&after, "ai_calls_total", &[("provider", "rules")]) >= 1.0);
    assert!(after.contains("outbox_backlog"), "backlog gauge exported");
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let app = spawn_app_with(&[("METRICS_TOKEN", "scrape-me")]).await;
    let url = format!("{}/metrics", app.base);
    assert_eq!(
        app.client.get(&url).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let ok = app
        .client
        .get(&url)
        .bearer_auth("scrape-me")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(ok.text().await.unwrap().contains("http_requests_total"));
}

#[tokio::test]
async fn json_logs_carry_request_ids() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = KillOnDrop(
        command(
            env!("CARGO_BIN_EXE_ticketing"),
            dir.path(),
            &[("PORT", port.to_string()), ("LOG_FORMAT", "json".into())],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    wait_ready(&base).await;
    let resp = http_client()
        .get(format!("{base}/api/auth/me"))
        .header("x-request-id", "req-under-test-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["x-request-id"], "req-under-test-42");
    Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    let mut out = String::new();
    server
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert!(!lines.is_empty());
    let request_line = lines
        .iter()
        .find(|l| l.to_string().contains("req-under-test-42"))
        .expect("a log line with the request id");
    assert_eq!(
        request_line["span"]["request_id"], "req-under-test-42",
        "{request_line}"
    );
}

const SIGNING_KEY: &str =
    "signkey-test-8ee2262a15e8d3c42d6a840db7af3de2aab08ef632b32a37a687f24b34dba3ff";

#[tokio::test]
async fn vercel_entry_serves_the_same_router_under_the_runtime_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let ipc_path = dir.path().join("ipc.sock");
    let ipc = std::os::unix::net::UnixListener::bind(&ipc_path).unwrap();
    let data = dir.path().join("data");
    let _server = KillOnDrop(
        command(
            env!("CARGO_BIN_EXE_vercel"),
            &data,
            &[
                ("VERCEL_DEV_PORT", port.to_string()),
                ("VERCEL_IPC_PATH", ipc_path.display().to_string()),
                // Cloud keys, as on a real deployment; the sync target is closed, so it retries quietly.
                ("INNGEST_SIGNING_KEY", SIGNING_KEY.into()),
                ("INNGEST_EVENT_KEY", "test-event-key".into()),
                (
                    "INNGEST_BASE_URL",
                    format!("http://127.0.0.1:{}", free_port()),
                ),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    // The runtime announces itself over the IPC socket, as Vercel's host expects.
    let (conn, _) = ipc.accept().unwrap();
    let mut reader = BufReader::new(conn);
    let mut first = Vec::new();
    reader.read_until(0, &mut first).unwrap();
    let started: Value = serde_json::from_slice(first.strip_suffix(&[0]).unwrap()).unwrap();
    assert_eq!(started["type"], "server-started");
    assert_eq!(started["payload"]["httpPort"], port);

    let base = format!("http://127.0.0.1:{port}");
    let client = http_client();
    let send = async |req: reqwest::RequestBuilder, n: u64| {
        req.header("x-vercel-internal-invocation-id", format!("inv-{n}"))
            .header("x-vercel-internal-request-id", n.to_string())
            .header("x-forwarded-for", "198.51.100.7")
            .send()
            .await
            .unwrap()
    };
    let r = send(
        client
            .post(format!("{base}/api/auth/register"))
            .json(&json!({"email": "ann@example.com", "password": "password123"})),
        1,
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = send(
        client
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"email": "ann@example.com", "password": "password123"})),
        2,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = send(
        client
            .post(format!("{base}/api/tickets"))
            .bearer_auth(&token)
            .json(&json!({"title": "Works on Vercel?", "description": "yes"})),
        3,
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let signature =
        ticketing::inngest::SigningKey::new(SIGNING_KEY).sign(b"", chrono::Utc::now().timestamp());
    let r = send(
        client
            .get(format!("{base}/api/inngest"))
            .header("x-inngest-signature", signature),
        4,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let intro: Value = r.json().await.unwrap();
    assert!(intro["function_count"].as_u64().unwrap() >= 4, "{intro}");
    assert_eq!(intro["authentication_succeeded"], true);
    // Each invocation is reported back to the host as finished.
    let mut ended = Vec::new();
    while ended.len() < 4 {
        let mut msg = Vec::new();
        reader.read_until(0, &mut msg).unwrap();
        let msg: Value = serde_json::from_slice(msg.strip_suffix(&[0]).unwrap_or(&msg)).unwrap();
        if msg["type"] == "end" {
            ended.push(
                msg["payload"]["context"]["invocationId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    assert!(ended.contains(&"inv-3".to_owned()), "{ended:?}");
}

#[tokio::test]
async fn vercel_entry_refuses_to_start_without_mongodb_and_inngest_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(
        env!("CARGO_BIN_EXE_vercel"),
        dir.path(),
        &[("VERCEL", "1".into())],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for name in ["DATABASE_URL", "INNGEST_SIGNING_KEY", "INNGEST_EVENT_KEY"] {
        // JWT_SECRET is set by the test command, so it is not among the missing.
        assert!(stderr.contains(name), "{stderr}");
    }
}
