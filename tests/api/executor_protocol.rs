//! The wire protocol as the SDK sees it: request shape and headers, signing, the HTTP
//! transport, replay of the official JS SDK's recorded answers, the event API and syncing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use chrono::Duration;
use serde_json::{Value, json};
use ticketing::inngest::executor::{
    Executor, ExecutorOptions, HttpTransport, ManualClock, MemoryStore, RouterTransport, RunStatus,
    ServerKind, SyncOutcome, server_api,
};
use ticketing::inngest::signature::{SigningKey, canonical_json};
use tower::ServiceExt;

use crate::executor_support::{
    FakeFn, FakeSdk, Harness, Step, harness, harness_with, hash, options, run, t0,
};

const KEY: &str = "signkey-test-8ee2262a15e8d3c42d6a840db7af3de2aab08ef632b32a37a687f24b34dba3ff";

#[tokio::test]
async fn call_requests_carry_what_inngest_sends() {
    let f = FakeFn::new("proto", "app/proto")
        .step(run("first", json!("A")))
        .step(run("second", json!("B")));
    let h = harness(&[f]).await;
    let event_id = h.publish("app/proto", json!({"who": "Ada"})).await;
    h.settle().await;
    let r = h.only_run("proto").await;
    assert_eq!(r.status, RunStatus::Completed);

    let calls = h.sdk.calls_of("proto");
    assert_eq!(calls.len(), 3);
    let first = &calls[0];
    assert_eq!(first.step_id, "step");
    assert_eq!(first.headers["x-run-id"], r.id.as_str());
    assert_eq!(first.headers["x-inngest-step-id"], "step");
    assert_eq!(first.headers["x-inngest-req-version"], "-1");
    assert_eq!(first.headers["content-type"], "application/json");
    assert!(
        first.headers.get("x-inngest-signature").is_none(),
        "unsigned without a key (dev)"
    );
    let b = &first.body;
    assert_eq!(b["version"], -1);
    assert_eq!(b["use_api"], false);
    assert_eq!(b["steps"], json!({}));
    assert_eq!(b["ctx"]["run_id"], json!(r.id));
    assert_eq!(b["ctx"]["attempt"], 0);
    assert_eq!(b["ctx"]["max_attempts"], 5, "default: 4 retries");
    assert_eq!(b["ctx"]["step_id"], "step");
    assert_eq!(b["ctx"]["stack"], json!({"current": 0, "stack": []}));
    assert_eq!(b["ctx"]["disable_immediate_execution"], false);
    assert!(b["ctx"]["fn_id"].is_string());
    assert_eq!(b["event"]["id"], json!(event_id));
    assert_eq!(b["event"]["data"], json!({"who": "Ada"}));
    assert_eq!(b["event"]["user"], json!({}));
    assert!(b["event"]["ts"].as_i64().is_some_and(|t| t > 0));
    assert_eq!(b["events"], json!([b["event"]]));
    // The body is JCS-canonical, as the server signs it.
    assert_eq!(first.raw, Bytes::from(canonical_json(b)));

    let second = &calls[1];
    assert_eq!(
        second.headers["x-inngest-req-version"], "2",
        "the SDK's version is kept"
    );
    assert_eq!(second.body["version"], 2);
    assert_eq!(
        second.body["ctx"]["stack"],
        json!({"current": 1, "stack": [hash("first")]})
    );
    assert_eq!(second.body["steps"], json!({hash("first"): {"data": "A"}}));
}

/// An executor that signs its calls and wants `key` on `/fn/register`.
async fn signed_harness(sdk: Arc<FakeSdk>, key: SigningKey) -> Harness {
    harness_with(
        sdk,
        Arc::new(MemoryStore::new()),
        Arc::new(ManualClock::new(t0())),
        |o| ExecutorOptions {
            signing_key: Some(key),
            ..o
        },
    )
    .await
}

#[tokio::test]
async fn signed_calls_verify_and_a_wrong_key_is_retried_not_trusted() {
    let f = FakeFn::new("signed", "app/signed").step(run("s", json!(1)));
    let sdk = FakeSdk::new(std::slice::from_ref(&f), Some(SigningKey::new(KEY)));
    let h = signed_harness(sdk, SigningKey::new(KEY)).await;
    h.publish("app/signed", json!({})).await;
    h.settle().await;
    assert_eq!(h.only_run("signed").await.status, RunStatus::Completed);
    assert!(
        h.sdk
            .calls()
            .iter()
            .all(|c| c.headers.contains_key("x-inngest-signature"))
    );

    let other = SigningKey::new(
        "signkey-test-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    );
    let sdk = FakeSdk::new(&[f], Some(SigningKey::new(KEY)));
    let bad = signed_harness(sdk, other).await;
    bad.publish("app/signed", json!({})).await;
    bad.settle().await;
    let r = bad.only_run("signed").await;
    assert_eq!(
        r.status,
        RunStatus::Running,
        "a 401 without no-retry is retried"
    );
    let last = r.history.last().expect("history");
    assert_eq!(last.op, "FunctionError");
    assert_eq!(
        last.error.as_ref().map(|e| e["message"].clone()),
        Some(json!("Unauthorized"))
    );
}

#[tokio::test]
async fn the_http_transport_drives_a_real_server() {
    let f = FakeFn::new("remote", "app/remote")
        .step(run("one", json!(1)))
        .step(Step::Sleep {
            id: "nap",
            duration: "2s",
        })
        .step(run("two", json!(2)));
    let sdk = FakeSdk::new(&[f], None);
    let server = crate::support::Served::start(sdk.router()).await;
    let addr = server.addr();

    let mut functions = sdk.functions_json();
    for f in &mut functions {
        let url = f["steps"]["step"]["runtime"]["url"]
            .as_str()
            .expect("url")
            .to_string();
        f["steps"]["step"]["runtime"]["url"] = json!(url.replace("127.0.0.1", &addr.to_string()));
    }
    let clock = Arc::new(ManualClock::new(t0()));
    let transport =
        Arc::new(HttpTransport::new(std::time::Duration::from_secs(10), None).expect("client"));
    let executor = Executor::new(
        Arc::new(MemoryStore::new()),
        transport,
        options(clock.clone()),
    );
    executor
        .register("test-app", functions)
        .await
        .expect("register");
    executor
        .publish(vec![json!({"name": "app/remote"})])
        .await
        .expect("publish");
    executor.run_until_idle().await.expect("run");
    clock.advance(Duration::seconds(2));
    executor.run_until_idle().await.expect("run");
    let runs = executor.list_runs(Default::default()).await.expect("list");
    let r = executor
        .get_run(&runs[0].id)
        .await
        .expect("get")
        .expect("run");
    assert_eq!(r.status, RunStatus::Completed, "{r:?}");
    assert_eq!(r.output, Some(json!({"one": 1, "nap": null, "two": 2})));
    assert_eq!(sdk.calls().len(), 4);
    drop(server);
}

/// Answers with the JS SDK's recorded response to the request that carried the same memoized
/// state; anything the SDK never saw is a 500, so the run cannot complete by accident.
#[derive(Clone)]
struct TranscriptSdk {
    exchanges: Arc<Vec<Value>>,
    served: Arc<Mutex<Vec<String>>>,
}

fn without_user(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "user")
                .map(|(k, v)| (k.clone(), without_user(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

async fn transcript_handler(
    State(t): State<TranscriptSdk>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let fn_id = q.get("fnId").cloned().unwrap_or_default();
    for ex in t.exchanges.iter() {
        let rec = &ex["request"];
        let same_fn = rec["path"]
            .as_str()
            .is_some_and(|p| p.contains(&format!("fnId={fn_id}&")));
        if same_fn
            && without_user(&rec["body"]["steps"]) == without_user(&req["steps"])
            && rec["body"]["ctx"]["stack"] == req["ctx"]["stack"]
            && rec["body"]["event"] == req["event"]
        {
            t.served
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(ex["label"].as_str().unwrap_or("").to_string());
            let resp = &ex["response"];
            let mut out = (
                StatusCode::from_u16(resp["status"].as_u64().unwrap_or(500) as u16)
                    .expect("status"),
                resp["body"].as_str().unwrap_or("").to_string(),
            )
                .into_response();
            for (k, v) in resp["headers"].as_object().into_iter().flatten() {
                if let (Ok(name), Some(Ok(value))) = (
                    axum::http::HeaderName::try_from(k.as_str()),
                    v.as_str().map(axum::http::HeaderValue::from_str),
                ) {
                    out.headers_mut().insert(name, value);
                }
            }
            return out;
        }
    }
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("no recorded exchange for {req}"),
    )
        .into_response()
}

#[tokio::test]
async fn replays_the_js_sdk_transcripts_for_steps_sleep_and_wait() {
    let exchanges: Vec<Value> =
        serde_json::from_str(include_str!("executor_js_transcripts.json")).expect("fixture");
    let sdk = TranscriptSdk {
        exchanges: Arc::new(exchanges),
        served: Arc::new(Mutex::new(Vec::new())),
    };
    let router = Router::new()
        .route("/api/inngest", post(transcript_handler))
        .with_state(sdk.clone());
    let clock = Arc::new(ManualClock::new(t0()));
    let function = |id: &str, event: &str| {
        json!({"id": id, "name": id, "triggers": [{"event": event}],
               "steps": {"step": {"id": "step", "name": "step",
                 "runtime": {"type": "http", "url": format!("http://127.0.0.1:3939/api/inngest?fnId={id}&stepId=step")}}}})
    };
    // One executor per recorded function: both transcripts use the same trigger event id.
    let make = || async {
        let executor = Executor::new(
            Arc::new(MemoryStore::new()),
            Arc::new(RouterTransport::new(router.clone())),
            options(clock.clone()),
        );
        executor
            .register(
                "my-app",
                vec![
                    function("my-app-steps", "app/steps"),
                    function("my-app-wait", "app/wait"),
                ],
            )
            .await
            .expect("register");
        executor
    };
    let executor = make().await;
    let trigger = |name: &str, data: Value| json!({"data": data, "id": "01HEVT0000000000000000000", "name": name, "ts": 1700000000000_i64, "user": {}});

    executor
        .publish(vec![trigger("app/steps", json!({}))])
        .await
        .expect("publish");
    executor.run_until_idle().await.expect("run");
    clock.advance(Duration::minutes(1));
    executor.run_until_idle().await.expect("run");
    let steps_run = executor
        .list_runs(ticketing::inngest::executor::RunFilter {
            function_id: Some("my-app-steps".into()),
            ..Default::default()
        })
        .await
        .expect("list");
    let r = executor
        .get_run(&steps_run[0].id)
        .await
        .expect("get")
        .expect("run");
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.history);
    assert_eq!(r.output, Some(json!({"b": "AB"})));

    // The wait: resumed by a matching event.
    let executor = make().await;
    executor
        .publish(vec![trigger("app/wait", json!({"id": "123"}))])
        .await
        .expect("publish");
    executor.run_until_idle().await.expect("run");
    executor
        .publish(vec![json!({"data": {"id": "999"}, "id": "01HOTHER", "name": "test/resume", "ts": 1700000000500_i64})])
        .await
        .expect("publish");
    executor
        .publish(vec![json!({"data": {"id": "123"}, "id": "01HRESUME", "name": "test/resume", "ts": 1700000001000_i64})])
        .await
        .expect("publish");
    executor.run_until_idle().await.expect("run");
    let waits = executor
        .list_runs(ticketing::inngest::executor::RunFilter {
            function_id: Some("my-app-wait".into()),
            ..Default::default()
        })
        .await
        .expect("list");
    let w = executor
        .get_run(&waits[0].id)
        .await
        .expect("get")
        .expect("run");
    assert_eq!(w.status, RunStatus::Completed, "{:?}", w.history);
    assert_eq!(w.output.as_ref().expect("output")["got"]["id"], "01HRESUME");

    // The same trigger again (a re-run): nobody answers, so it times out after 10 s.
    let again = executor.rerun(&w.id).await.expect("rerun");
    executor.run_until_idle().await.expect("run");
    clock.advance(Duration::seconds(10));
    executor.run_until_idle().await.expect("run");
    let t = executor.get_run(&again).await.expect("get").expect("run");
    assert_eq!(t.output, Some(json!({"got": null})));

    let served = sdk.served.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(
        served,
        vec![
            "steps #1 (no state)",
            "steps #2 (first step memoized)",
            "steps #3 (sleep memoized as null)",
            "steps #4 (all memoized)",
            "wait #1",
            "wait resumed with event",
            "wait #1",
            "wait timed out (null)",
        ]
    );
}

async fn post_json(
    router: &Router,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, Value) {
    let mut req = Request::post(path).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = router
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_event_api_deduplicates_seeded_resends() {
    let f = FakeFn::new("hello", "app/hello");
    let h = harness(&[f]).await;
    let api = server_api::router(h.executor.clone());
    let body = r#"[{"name":"app/hello","data":{"n":1}},{"name":"app/hello","data":{"n":2}}]"#;
    let seed = [("x-inngest-event-id-seed", "1795356375321,0doGyVJOpygTqw==")];
    let (status, first) = post_json(&api, "/e/any-key", &seed, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["status"], 200);
    assert_eq!(first["ids"].as_array().map(Vec::len), Some(2));
    let (_, again) = post_json(&api, "/e/any-key", &seed, body).await;
    assert_eq!(again["ids"], first["ids"], "a retried send keeps its ids");
    h.settle().await;
    assert_eq!(h.runs_of("hello").await.len(), 2);
    assert_eq!(h.executor.stats().await.expect("stats").events_duplicate, 2);

    let (status, bad) = post_json(&api, "/e/any-key", &[], r#"{"data":{}}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(bad["status"], 400);
    assert!(bad["error"].as_str().is_some_and(|e| e.contains("name")));
    let (status, _) = post_json(&api, "/e/any-key", &[], "not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn fn_register_accepts_sdk_syncs_and_checks_the_server_kind() {
    let h = harness(&[]).await;
    let api = server_api::router(h.executor.clone());
    let body = json!({"url": "http://127.0.0.1:3000/api/inngest", "appName": "other", "deployType": "ping",
        "functions": [{"id": "other-f", "triggers": [{"event": "x"}]}], "sdk": "rust:v0.1.0", "v": "0.1"})
    .to_string();
    let (status, reply) = post_json(
        &api,
        "/fn/register",
        &[("x-inngest-expected-server-kind", "dev")],
        &body,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["ok"], true);
    assert!(h.executor.function_ids().contains(&"other-f".to_string()));

    let (status, reply) = post_json(
        &api,
        "/fn/register",
        &[("x-inngest-expected-server-kind", "cloud")],
        &body,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reply["error"], "Expected server kind cloud, got dev");

    let bad = json!({"appName": "other", "functions": [{"id": "other-g", "triggers": [{"event": "x", "expression": "size(event) > 1"}]}]});
    let (status, reply) = post_json(&api, "/fn/register", &[], &bad.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|e| e.contains("other-g"))
    );
}

#[tokio::test]
async fn fn_register_wants_the_signing_key_raw_or_hashed_when_one_is_set() {
    let h = signed_harness(FakeSdk::new(&[], None), SigningKey::new(KEY)).await;
    let api = server_api::router(h.executor.clone());
    let body =
        json!({"appName": "other", "functions": [{"id": "other-f", "triggers": [{"event": "x"}]}]})
            .to_string();
    // The JS SDK's hashed form of KEY (the reference vector).
    let hashed = "signkey-test-e4bf4a2e7f55c7eb954b6e72f8f69628fbc409fe7da6d0f6958770987dcf0e02";
    for (auth, expected) in [
        (None, StatusCode::UNAUTHORIZED),
        (
            Some("Bearer signkey-test-00".to_string()),
            StatusCode::UNAUTHORIZED,
        ),
        (Some(format!("Bearer {hashed}")), StatusCode::OK),
        (Some(format!("Bearer {KEY}")), StatusCode::OK),
    ] {
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let (status, reply) = post_json(&api, "/fn/register", &headers, &body).await;
        assert_eq!(status, expected, "{auth:?}: {reply}");
    }
    assert!(h.executor.function_ids().contains(&"other-f".to_string()));
}

#[derive(Clone)]
struct SyncPeer {
    executor_api: Router,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
    key: Option<SigningKey>,
}

async fn sync_handler(State(p): State<SyncPeer>, headers: HeaderMap, body: Bytes) -> Response {
    p.seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(headers.clone());
    let functions = json!([{"id": "synced-f", "triggers": [{"event": "app/synced"}],
        "steps": {"step": {"id": "step", "name": "step", "runtime": {"type": "http", "url": "/api/inngest"}}}}]);
    if headers
        .get("x-inngest-sync-kind")
        .is_some_and(|v| v == "in_band")
    {
        let Some(key) = &p.key else {
            return StatusCode::UNAUTHORIZED.into_response();
        };
        let sig = headers
            .get("x-inngest-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let t: i64 = sig
            .split('&')
            .find_map(|s| s.strip_prefix("t="))
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        if key.sign(&body, t) != sig {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        return axum::Json(json!({"app_id": "synced", "functions": functions, "url": "x"}))
            .into_response();
    }
    // Out of band: register with the executor like an SDK in dev mode would.
    let reg = json!({"appName": "synced", "functions": functions}).to_string();
    let (status, _) = post_json(&p.executor_api, "/fn/register", &[], &reg).await;
    (
        status,
        axum::Json(json!({"message": "Successfully registered", "modified": true})),
    )
        .into_response()
}

#[tokio::test]
async fn sync_asks_the_serve_endpoint_in_band_or_out_of_band() {
    for key in [None, Some(SigningKey::new(KEY))] {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let slot: Arc<std::sync::OnceLock<Router>> = Arc::new(std::sync::OnceLock::new());
        let slot2 = slot.clone();
        let seen2 = seen.clone();
        let key2 = key.clone();
        // The peer needs the executor's API, and the executor needs the peer: tie the knot lazily.
        let lazy = Router::new().route(
            "/api/inngest",
            put(move |headers: HeaderMap, body: Bytes| {
                let peer = SyncPeer {
                    executor_api: slot2.get().cloned().unwrap_or_default(),
                    seen: seen2.clone(),
                    key: key2.clone(),
                };
                async move { sync_handler(State(peer), headers, body).await }
            }),
        );
        let executor = Executor::new(
            Arc::new(MemoryStore::new()),
            Arc::new(RouterTransport::new(lazy)),
            ExecutorOptions {
                signing_key: key.clone(),
                server_kind: if key.is_some() {
                    ServerKind::Cloud
                } else {
                    ServerKind::Dev
                },
                ..ExecutorOptions::default()
            },
        );
        let _ = slot.set(server_api::router(executor.clone()));
        let outcome = executor
            .sync("http://127.0.0.1:3000/api/inngest")
            .await
            .expect("sync");
        let headers = seen.lock().unwrap_or_else(|e| e.into_inner())[0].clone();
        if key.is_some() {
            assert_eq!(
                outcome,
                SyncOutcome::InBand {
                    app_id: "synced".into(),
                    functions: 1
                }
            );
            assert_eq!(headers["x-inngest-server-kind"], "cloud");
        } else {
            assert_eq!(outcome, SyncOutcome::OutOfBand);
            assert_eq!(headers["x-inngest-server-kind"], "dev");
            assert!(headers.get("x-inngest-signature").is_none());
        }
        assert_eq!(executor.function_ids(), vec!["synced-f"]);
    }
}

#[tokio::test]
async fn a_panicking_handler_is_a_failed_attempt_that_is_retried() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let router = Router::new().route(
        "/api/inngest",
        post(move || {
            let seen = seen.clone();
            async move {
                if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    panic!("handler bug");
                }
                (
                    StatusCode::OK,
                    [
                        ("x-inngest-sdk", "fake:v0.1.0"),
                        ("content-type", "application/json"),
                    ],
                    r#"{"ok":true}"#,
                )
            }
        }),
    );
    let clock = Arc::new(ManualClock::new(t0()));
    let executor = Executor::new(
        Arc::new(MemoryStore::new()),
        Arc::new(RouterTransport::new(router)),
        options(clock.clone()),
    );
    let f = json!({"id": "a-p", "triggers": [{"event": "app/p"}],
        "steps": {"step": {"runtime": {"url": "/api/inngest"}}}});
    executor.register("a", vec![f]).await.expect("register");
    executor
        .publish(vec![json!({"name": "app/p"})])
        .await
        .expect("publish");
    executor.run_until_idle().await.expect("run");
    let id = executor.list_runs(Default::default()).await.expect("list")[0]
        .id
        .clone();
    let r = executor.get_run(&id).await.expect("get").expect("run");
    assert_eq!(r.status, RunStatus::Running);
    assert!(
        r.history[0].error.as_ref().expect("error")["message"]
            .as_str()
            .is_some_and(|m| m.contains("panicked"))
    );
    clock.advance(Duration::seconds(15));
    executor.run_until_idle().await.expect("run");
    let r = executor.get_run(&id).await.expect("get").expect("run");
    assert_eq!(r.status, RunStatus::Completed);
    assert_eq!(r.output, Some(json!({"ok": true})));
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}
