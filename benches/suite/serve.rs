//! The Rust serve endpoint against the official JS SDK on the same signed replay request: a
//! three-step function (`step.run`, `step.sleep`, `step.run`) whose steps are all memoized, so
//! each call replays the function and returns its result. Both sides serve the functions of the
//! SDK crate's differential suite (`crates/inngest-axum/tests/conformance/app.rs` and
//! `crates/inngest-axum/tests/js-oracle/server.mjs`) in cloud mode with the same key.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use ticketing::inngest::protocol::hash_step_id;
use ticketing::inngest::signature::{self, SigningKey, canonical_json};
use ticketing::inngest::{InngestSettings, ServeHandler, headers};

use crate::inngest_app;
use crate::load::closed_loop;
use crate::report::Report;
use crate::server::start_js;
use crate::settings::Settings;

const KEY: &str = "signkey-test-8ee2262a15e8d3c42d6a840db7af3de2aab08ef632b32a37a687f24b34dba3ff";
const PATH: &str = "/api/inngest?fnId=my-app-steps&stepId=step";
const RATIO_TARGET: f64 = 25.0;
/// The serve endpoint against the probe below, which does only what no serve endpoint can skip.
const PROBE_RATIO_TARGET: f64 = 0.75;

/// The same environment for both: cloud mode with the same key, an event API nobody calls.
pub fn sdk_env() -> Vec<(&'static str, String)> {
    vec![
        ("INNGEST_SIGNING_KEY", KEY.to_owned()),
        ("INNGEST_EVENT_KEY", "bench".to_owned()),
        ("INNGEST_BASE_URL", "http://127.0.0.1:9/".to_owned()),
    ]
}

fn replay_body() -> String {
    let event = json!({"name": "app/steps", "data": {}, "id": "01HEVT", "ts": 1_700_000_000_000u64, "user": {}});
    let ids = ["first step", "sleep", "second step"].map(hash_step_id);
    canonical_json(&json!({
        "ctx": {
            "attempt": 0,
            "disable_immediate_execution": false,
            "run_id": "01HRUN",
            "stack": { "current": 3, "stack": ids },
            "use_api": false,
        },
        "event": event,
        "events": [event],
        "steps": { ids[0].clone(): {"data": "A"}, ids[1].clone(): null, ids[2].clone(): {"data": "AB"} },
        "version": 2,
    }))
}

/// The irreducible work of a serve call: check the signature over the body, parse the JSON, and
/// answer with a signed JSON body. No function runs; the answer is the replayed run's result.
async fn probe(key: Arc<SigningKey>, headers: HeaderMap, body: Bytes) -> Response {
    let now = chrono::Utc::now();
    let header = headers
        .get(headers::SIGNATURE)
        .and_then(|v| v.to_str().ok());
    if signature::verify(header, &body, Some(&key), None, now).is_err() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let result = request
        .pointer("/ctx/stack/stack")
        .and_then(Value::as_array)
        .and_then(|ids| ids.last())
        .and_then(Value::as_str)
        .and_then(|last| request["steps"].get(last))
        .and_then(|step| step.get("data"))
        .cloned()
        .unwrap_or(Value::Null);
    let answer = serde_json::to_vec(&json!({ "b": result })).unwrap_or_default();
    let signed = key.sign(&answer, now.timestamp());
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/json".to_owned(),
            ),
            (
                axum::http::HeaderName::from_static(headers::SIGNATURE),
                signed,
            ),
        ],
        answer,
    )
        .into_response()
}

/// Requests per second answered 200 with the expected result, and failures.
async fn throughput(url: String, body: &str, clients: usize, limit: Duration) -> (f64, usize) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .tcp_nodelay(true)
        .build()
        .expect("client");
    let signature = SigningKey::new(KEY).sign(body.as_bytes(), chrono::Utc::now().timestamp());
    let shared = Arc::new((client, url, body.to_owned(), signature));
    let hit = move |_| {
        let shared = shared.clone();
        async move {
            let (client, url, body, sig) = &*shared;
            let res = client
                .post(url)
                .header("content-type", "application/json")
                .header("x-inngest-signature", sig)
                .body(body.clone())
                .send()
                .await;
            match res {
                Ok(r) if r.status() == 200 => r
                    .bytes()
                    .await
                    .is_ok_and(|b| b.windows(4).any(|w| w == b"\"AB\"")),
                _ => false,
            }
        }
    };
    // Warm-up: connections, and the JIT on the JS side.
    closed_loop(clients, usize::MAX, Duration::from_secs(1), hit.clone()).await;
    let run = closed_loop(clients, usize::MAX, limit, hit).await;
    (run.rps(), run.failed)
}

pub async fn run(report: &mut Report, settings: &Settings) {
    let js = tokio::task::spawn_blocking(|| start_js(&sdk_env()))
        .await
        .expect("JS app");
    let env: HashMap<&str, String> = sdk_env().into_iter().collect();
    let handler = ServeHandler::new(
        inngest_app::APP_ID,
        InngestSettings::from_lookup(|k| env.get(k).cloned()),
        inngest_app::functions(),
    );
    let server = crate::served::Served::start(handler.router()).await;
    let addr = server.addr();

    let body = replay_body();
    let clients = settings.serve_clients;
    println!(
        "\nserve endpoint: replay request of {} bytes, {clients} clients, {:?} per side",
        body.len(),
        settings.serve_duration
    );
    let (rust, rust_failed) = throughput(
        format!("http://{addr}{PATH}"),
        &body,
        clients,
        settings.serve_duration,
    )
    .await;
    let (node, node_failed) =
        throughput(js.url(PATH), &body, clients, settings.serve_duration).await;
    drop(server);
    drop(js);
    let key = Arc::new(SigningKey::new(KEY));
    let probe_app = axum::Router::new().fallback(axum::routing::post(
        move |headers: HeaderMap, body: Bytes| probe(key.clone(), headers, body),
    ));
    let probe_server = crate::served::Served::start(probe_app).await;
    let (probe_rps, probe_failed) = throughput(
        format!("{}{PATH}", probe_server.url()),
        &body,
        clients,
        settings.serve_duration,
    )
    .await;
    drop(probe_server);
    let bench = "serve endpoint (replay)";
    report.row(
        bench,
        "Rust (axum)",
        format!("{rust:.0} req/s ({rust_failed} failed)"),
    );
    report.row(
        bench,
        "JS SDK (node)",
        format!("{node:.0} req/s ({node_failed} failed)"),
    );
    let ratio = if rust_failed + node_failed > 0 || node == 0.0 {
        0.0
    } else {
        rust / node
    };
    report.row(bench, "ratio", format!("{ratio:.1}x"));
    report.row(
        bench,
        "axum probe (HMAC + JSON parse + signed JSON answer)",
        format!("{probe_rps:.0} req/s ({probe_failed} failed)"),
    );
    let of_probe = if rust_failed + probe_failed > 0 || probe_rps == 0.0 {
        0.0
    } else {
        rust / probe_rps
    };
    report.row(bench, "Rust / probe", format!("{of_probe:.2}x"));
    report.at_least("serve endpoint vs JS SDK", ratio, RATIO_TARGET, "x");
    report.at_least(
        "serve endpoint vs axum probe",
        of_probe,
        PROBE_RATIO_TARGET,
        "x",
    );
}
