//! The serve endpoint on its own: the golden signed exchanges (with an injected clock) and the
//! branches the differential suite cannot reach.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Bytes, to_bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use chrono::{TimeZone, Utc};
use inngest_axum::protocol::hash_step_id as h;
use inngest_axum::signature::SigningKey;
use inngest_axum::{
    Clock, Ctx, Event, EventClient, FnError, Function, InngestSettings, SendError, ServeHandler,
    Step, SyncError, Trigger,
};
use serde_json::{Value, json};

use super::app;
use super::harness::{CallBody, EVENT_KEY, FALLBACK, KEY, sign};

const GOLDEN_T: i64 = 1_795_356_375;

fn vectors() -> Value {
    serde_json::from_str(include_str!("../../src/testdata/inngest-test-vectors.json"))
        .expect("vectors")
}

/// The register entries of a function using every flow-control option (and its failure
/// handler) are exactly the JS SDK's, from the reference transcript's in-band sync.
#[test]
fn configured_function_matches_the_js_register_entries() {
    let exchange = vectors()["golden_signed_exchanges"]
        .as_array()
        .expect("array")
        .iter()
        .find(|e| e["label"] == "PUT in-band sync")
        .cloned()
        .expect("in-band exchange");
    let body: Value =
        serde_json::from_str(exchange["response_body"].as_str().expect("body")).expect("json");
    let theirs: Vec<&Value> = body["functions"]
        .as_array()
        .expect("functions")
        .iter()
        .filter(|f| {
            f["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("my-app-configured"))
        })
        .collect();
    let url = url::Url::parse("http://127.0.0.1:3939/api/inngest").expect("url");
    let ours = app::configured().configs(app::APP_ID, &url);
    assert_eq!(ours.len(), 2);
    assert_eq!(&ours[0], theirs[0]);
    assert_eq!(&ours[1], theirs[1]);
}

fn golden_clock() -> Clock {
    Clock::fixed(Utc.timestamp_opt(GOLDEN_T, 0).single().expect("instant"))
}

fn cloud_settings() -> InngestSettings {
    InngestSettings::cloud(KEY, EVENT_KEY)
        .with_signing_key_fallback(FALLBACK)
        .with_base_url("http://127.0.0.1:3940/")
}

fn handler(settings: InngestSettings) -> ServeHandler {
    ServeHandler::new(app::APP_ID, settings, app::functions())
}

struct Out {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Out {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

async fn request(
    h: &ServeHandler,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Out {
    let mut map = HeaderMap::new();
    map.insert("host", HeaderValue::from_static("127.0.0.1:3939"));
    for (k, v) in headers {
        map.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    let uri: Uri = path.parse().expect("uri");
    let res = h
        .handle(method, uri, map, Bytes::from(body.to_owned()))
        .await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = to_bytes(res.into_body(), usize::MAX).await.expect("body");
    Out {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

#[tokio::test]
async fn golden_exchanges_replay_with_an_injected_clock() {
    let v = vectors();
    let keys = &v["keys"];
    let h = handler(cloud_settings()).with_clock(golden_clock());
    let exchanges = v["golden_signed_exchanges"].as_array().expect("array");
    assert_eq!(exchanges.len(), 6);
    for ex in exchanges {
        let label = ex["label"].as_str().expect("label");
        let method = Method::from_bytes(ex["request_method"].as_str().expect("m").as_bytes())
            .expect("method");
        let mut headers = vec![(
            "x-inngest-signature",
            ex["request_signature"].as_str().expect("sig"),
        )];
        if label.contains("in-band") {
            headers.push(("x-inngest-sync-kind", "in_band"));
        }
        let out = request(
            &h,
            method,
            ex["request_path"].as_str().expect("path"),
            &headers,
            ex["request_body"].as_str().expect("body"),
        )
        .await;
        assert_eq!(
            out.status as u64,
            ex["response_status"].as_u64().expect("status"),
            "{label}: {}",
            out.body
        );
        let key = SigningKey::new(
            keys[ex["key_used"].as_str().expect("key")]
                .as_str()
                .expect("key"),
        );
        // Our response must be signed with the key that verified the request, at the clock's t.
        assert_eq!(
            out.header("x-inngest-signature"),
            Some(key.sign(out.body.as_bytes(), GOLDEN_T).as_str()),
            "{label}"
        );
        let golden_body = ex["response_body"].as_str().expect("body");
        match label {
            // Same function, same bytes: the response signature is byte-identical to JS's.
            "POST hello" | "POST hello signed with fallback key" | "POST trust probe" => {
                assert_eq!(out.body, golden_body, "{label}");
                assert_eq!(
                    out.header("x-inngest-signature"),
                    ex["response_signature"].as_str(),
                    "{label}"
                );
            }
            "steps #1 (no state)" => {
                let (mut ours, mut theirs) = (
                    out.json(),
                    serde_json::from_str::<Value>(golden_body).expect("json"),
                );
                ours[0].as_object_mut().map(|o| o.remove("timing"));
                theirs[0].as_object_mut().map(|o| o.remove("timing"));
                assert_eq!(ours, theirs, "{label}");
            }
            "GET signed (cloud)" => {
                let theirs: Value = serde_json::from_str(golden_body).expect("json");
                let ours = out.json();
                for f in [
                    "authentication_succeeded",
                    "api_origin",
                    "app_id",
                    "event_key_hash",
                    "signing_key_hash",
                    "signing_key_fallback_hash",
                    "function_count",
                    "mode",
                ] {
                    assert_eq!(ours[f], theirs[f], "{label}: {f}");
                }
            }
            "PUT in-band sync" => {
                let theirs: Value = serde_json::from_str(golden_body).expect("json");
                assert_eq!(out.json()["functions"], theirs["functions"], "{label}");
                assert_eq!(out.json()["url"], theirs["url"], "{label}");
                assert_eq!(out.header("x-inngest-sync-kind"), Some("in_band"));
            }
            other => panic!("unexpected golden exchange {other}"),
        }
    }
}

#[tokio::test]
async fn golden_requests_are_rejected_outside_their_window() {
    let v = vectors();
    let ex = &v["golden_signed_exchanges"][0];
    for offset in [-301, 301] {
        let clock = Clock::fixed(Utc.timestamp_opt(GOLDEN_T + offset, 0).single().expect("t"));
        let h = handler(cloud_settings()).with_clock(clock);
        let out = request(
            &h,
            Method::POST,
            ex["request_path"].as_str().expect("path"),
            &[(
                "x-inngest-signature",
                ex["request_signature"].as_str().expect("sig"),
            )],
            ex["request_body"].as_str().expect("body"),
        )
        .await;
        assert_eq!(out.status, 401);
        assert_eq!(out.body, r#"{"message":"Unauthorized"}"#);
        assert!(
            out.header("x-inngest-sdk").is_none(),
            "no identity to unverified callers"
        );
        assert!(out.header("user-agent").is_none());
        assert_eq!(out.header("x-inngest-sdk-handled"), Some("true"));
    }
}

#[tokio::test]
async fn cloud_mode_without_a_signing_key_answers_500_everywhere() {
    let h = handler(InngestSettings::dev().with_mode(inngest_axum::Mode::Cloud));
    for method in [Method::GET, Method::POST, Method::PUT] {
        let out = request(
            &h,
            method,
            "/api/inngest?fnId=my-app-hello&stepId=step",
            &[],
            "{}",
        )
        .await;
        assert_eq!(
            (out.status, out.json()),
            (500, json!({"code": "internal_server_error"}))
        );
    }
}

#[tokio::test]
async fn malformed_calls_get_clear_errors() {
    let h = handler(InngestSettings::dev());
    let out = request(&h, Method::POST, "/api/inngest?fnId=my-app-hello", &[], "").await;
    assert_eq!(out.status, 401, "a call without a body is refused");
    let out = request(&h, Method::POST, "/api/inngest?stepId=step", &[], "{}").await;
    assert_eq!(
        (out.status, out.json()["message"].as_str()),
        (500, Some("No function ID found in async request"))
    );
    let out = request(
        &h,
        Method::POST,
        "/api/inngest?fnId=my-app-hello",
        &[],
        "not json",
    )
    .await;
    assert_eq!(out.status, 500);
    assert!(
        out.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("parse"))
    );
    let out = request(&h, Method::POST, "/api/inngest?probe=other", &[], "{}").await;
    assert_eq!(
        (out.status, out.json()["message"].as_str()),
        (400, Some("Unknown probe \"other\""))
    );
    // The bare function id (older servers) is accepted too.
    let body = CallBody::new("app/hello", json!({"name": "bare"})).render();
    let out = request(
        &h,
        Method::POST,
        "/api/inngest?fnId=hello&stepId=step",
        &[],
        &body,
    )
    .await;
    assert_eq!(out.json(), json!({"hello": "bare"}));
    // The step id may come in a header instead of the query.
    let body = CallBody::new("app/steps", json!({})).die().render();
    let out = request(
        &h,
        Method::POST,
        "/api/inngest?fnId=my-app-steps",
        &[(
            "x-inngest-step-id",
            &inngest_axum::protocol::hash_step_id("first step"),
        )],
        &body,
    )
    .await;
    assert_eq!(out.json()[0]["op"], "StepRun");
}

#[tokio::test]
async fn unauthed_sync_can_be_disabled_and_in_band_can_be_refused() {
    let strict = handler(cloud_settings().with_enable_unauthed_sync(false));
    let out = request(&strict, Method::PUT, "/api/inngest", &[], "").await;
    assert_eq!(out.status, 401);
    let out = request(&strict, Method::DELETE, "/api/inngest", &[], "").await;
    assert_eq!(out.status, 401);

    // With in-band disabled, an in-band PUT is treated as out-of-band (and fails to reach the
    // unreachable API, reported as a 502 naming no upstream URL, with the out-of-band sync kind).
    let no_in_band = handler(
        cloud_settings()
            .with_allow_in_band_sync(false)
            .with_base_url("http://127.0.0.1:9/"),
    )
    .with_serve_url("https://app.example.com/api/inngest".parse().expect("url"));
    let body = r#"{"url":"http://127.0.0.1:3939/api/inngest"}"#;
    let sig = sign(body, KEY, Utc::now().timestamp());
    let out = request(
        &no_in_band,
        Method::PUT,
        "/api/inngest",
        &[
            ("x-inngest-sync-kind", "in_band"),
            ("x-inngest-signature", &sig),
        ],
        body,
    )
    .await;
    assert_eq!(out.status, 502);
    assert_eq!(out.header("x-inngest-sync-kind"), Some("out_of_band"));
    assert_eq!(out.json()["modified"], false);
    assert!(!out.body.contains("127.0.0.1:9"), "{}", out.body);
}

#[tokio::test]
async fn dev_mode_never_signs_and_reports_overrides() {
    let h = handler(
        InngestSettings::dev()
            .with_serve_origin("https://app.example.com")
            .with_serve_path("/inngest")
            .with_env("preview"),
    );
    let body = r#"{"url":"http://10.0.0.1:3000/api/inngest"}"#;
    let out = request(
        &h,
        Method::PUT,
        "/api/inngest",
        &[("x-inngest-sync-kind", "in_band")],
        body,
    )
    .await;
    assert_eq!(out.status, 200);
    assert!(out.header("x-inngest-signature").is_none());
    assert_eq!(out.header("x-inngest-env"), Some("preview"));
    let json = out.json();
    assert_eq!(json["url"], "https://app.example.com/inngest");
    assert_eq!(json["env"], "preview");
    assert_eq!(
        json["functions"][0]["steps"]["step"]["runtime"]["url"],
        "https://app.example.com/inngest?fnId=my-app-hello&stepId=step"
    );
    assert_eq!(
        json["sdk_language"], "",
        "unauthenticated in-band bodies do not name the SDK"
    );
}

#[tokio::test]
async fn unexpected_methods_get_405_without_configuration() {
    let h = handler(InngestSettings::dev().with_env("secret-branch"));
    for method in [Method::DELETE, Method::PATCH, Method::OPTIONS] {
        let out = request(&h, method, "/api/inngest", &[], "").await;
        assert_eq!(
            (out.status, out.body.as_str()),
            (405, r#"{"message":"Method not allowed"}"#)
        );
    }
}

#[tokio::test]
async fn streaming_wraps_the_response() {
    let h = handler(InngestSettings::dev().with_streaming(true));
    let body = CallBody::new("app/hello", json!({"name": "S"})).render();
    let out = request(
        &h,
        Method::POST,
        "/api/inngest?fnId=my-app-hello&stepId=step",
        &[],
        &body,
    )
    .await;
    assert_eq!(out.status, 201);
    let wrapped: Value = serde_json::from_str(out.body.trim()).expect("final JSON");
    assert_eq!(wrapped["status"], 200);
    assert_eq!(wrapped["body"], r#"{"hello":"S"}"#);
    assert_eq!(wrapped["headers"]["x-inngest-req-version"], "2");
    // Probes are never streamed.
    let out = request(&h, Method::POST, "/api/inngest?probe=trust", &[], "{}").await;
    assert_eq!(out.status, 200);
}

#[tokio::test]
async fn handler_panics_are_retriable_errors() {
    let f = Function::new("boom", "boom")
        .trigger(Trigger::event("app/boom"))
        .handler(|_ctx: Ctx, _step: Step| async move {
            if true {
                panic!("kaboom");
            }
            Ok::<_, FnError>(())
        });
    let h = ServeHandler::new("app", InngestSettings::dev(), vec![f]);
    let body = CallBody::new("app/boom", json!({})).render();
    let out = request(
        &h,
        Method::POST,
        "/api/inngest?fnId=app-boom&stepId=step",
        &[],
        &body,
    )
    .await;
    assert_eq!(
        (out.status, out.header("x-inngest-no-retry")),
        (500, Some("false"))
    );
    assert!(
        out.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("kaboom"))
    );
}

#[tokio::test]
async fn sleep_until_and_retry_at_use_iso_instants() {
    let at = Utc
        .with_ymd_and_hms(2030, 1, 2, 3, 4, 5)
        .single()
        .expect("date");
    let f = Function::new("later", "later")
        .trigger(Trigger::event("app/later"))
        .handler(move |_ctx: Ctx, step: Step| async move {
            step.sleep_until("nap", at).await?;
            Err::<(), _>(FnError::retry_at("busy", at))
        });
    let h = ServeHandler::new("app", InngestSettings::dev(), vec![f]);
    let body = CallBody::new("app/later", json!({}));
    let out = request(
        &h,
        Method::POST,
        "/api/inngest?fnId=app-later&stepId=step",
        &[],
        &body.render(),
    )
    .await;
    assert_eq!(out.json()[0]["name"], "2030-01-02T03:04:05.000Z");
    let woke = body.memo(&h_id("nap"), Value::Null).render();
    let out = request(
        &h,
        Method::POST,
        "/api/inngest?fnId=app-later&stepId=step",
        &[],
        &woke,
    )
    .await;
    assert_eq!(
        (out.status, out.header("retry-after")),
        (500, Some("2030-01-02T03:04:05.000Z"))
    );
}

fn h_id(id: &str) -> String {
    h(id)
}

/// A request seen by [`Api`]: URI, headers, body.
type Seen = (String, HashMap<String, String>, String);

/// A tiny stand-in for the Inngest API with scripted answers.
#[derive(Clone, Default)]
struct Api {
    seen: Arc<Mutex<Vec<Seen>>>,
    answers: Arc<Mutex<Vec<(u16, String)>>>,
}

impl Api {
    async fn start(answers: Vec<(u16, &str)>) -> (Self, String) {
        let api = Api {
            seen: Arc::default(),
            answers: Arc::new(Mutex::new(
                answers
                    .into_iter()
                    .rev()
                    .map(|(s, b)| (s, b.to_owned()))
                    .collect(),
            )),
        };
        let state = api.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                let hdrs = headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                    .collect();
                state.seen.lock().expect("lock").push((
                    uri.to_string(),
                    hdrs,
                    String::from_utf8_lossy(&body).into_owned(),
                ));
                let (status, body) = state
                    .answers
                    .lock()
                    .expect("lock")
                    .pop()
                    .unwrap_or((200, r#"{"ids":[],"status":200}"#.to_owned()));
                (
                    axum::http::StatusCode::from_u16(status).expect("status"),
                    body,
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (api, format!("http://{addr}/"))
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

#[tokio::test]
async fn event_client_sends_with_a_seed_and_returns_ids() {
    let (api, url) = Api::start(vec![(200, r#"{"ids":["a","b"],"status":200}"#)]).await;
    let settings = InngestSettings::cloud(KEY, EVENT_KEY)
        .with_base_url(url)
        .with_env("stage");
    let client = EventClient::new(&settings);
    let ids = client
        .send(&[
            Event::new("ticket/created", json!({"id": 1})).with_id("outbox-1"),
            Event::new("ticket/updated", Value::Null).with_ts(5),
        ])
        .await
        .expect("sent");
    assert_eq!(ids, ["a", "b"]);
    let seen = api.seen();
    let (uri, headers, body) = &seen[0];
    assert_eq!(uri, &format!("/e/{EVENT_KEY}"));
    assert_eq!(
        headers.get("x-inngest-env").map(String::as_str),
        Some("stage")
    );
    assert!(
        headers.get("authorization").is_none(),
        "event sends carry no bearer token"
    );
    let seed = headers.get("x-inngest-event-id-seed").expect("seed");
    let (millis, entropy) = seed.split_once(',').expect("seed format");
    assert!(millis.parse::<i64>().expect("millis") > 1_700_000_000_000);
    assert_eq!(entropy.len(), 16, "base64 of 10 bytes");
    let body: Value = serde_json::from_str(body).expect("json");
    assert_eq!(body[0]["id"], "outbox-1");
    assert!(body[0]["ts"].as_i64().is_some());
    assert_eq!(body[1]["ts"], 5);
    assert_eq!(body[1]["data"], json!({}));
    assert!(client.send(&[]).await.expect("nothing").is_empty());
}

#[tokio::test]
async fn event_client_retries_transient_failures_with_the_same_seed() {
    let (api, url) = Api::start(vec![
        (503, "busy"),
        (500, "{}"),
        (200, r#"{"ids":["x"],"status":200}"#),
    ])
    .await;
    let client = EventClient::new(&InngestSettings::dev().with_base_url(url))
        .with_base_delay(Duration::from_millis(1));
    let id = client
        .send_one(Event::new("a/b", json!({})))
        .await
        .expect("sent");
    assert_eq!(id, "x");
    let seen = api.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[0].0, "/e/NO_EVENT_KEY_SET",
        "dev mode uses the dummy key"
    );
    let seeds: Vec<_> = seen
        .iter()
        .map(|s| s.1.get("x-inngest-event-id-seed").cloned())
        .collect();
    assert!(seeds.iter().all(|s| s == &seeds[0]));
}

#[tokio::test]
async fn event_client_maps_permanent_failures_to_typed_errors() {
    let cases = [
        (
            401,
            r#"{"status":401,"error":"Event key not found"}"#,
            SendError::Unauthorized,
        ),
        (
            400,
            r#"{"ids":[],"status":400,"error":"bad name"}"#,
            SendError::BadRequest("bad name".into()),
        ),
        (413, "too big", SendError::PayloadTooLarge),
    ];
    for (status, body, expected) in cases {
        let (api, url) = Api::start(vec![(status, body)]).await;
        let client = EventClient::new(&InngestSettings::cloud(KEY, EVENT_KEY).with_base_url(url));
        let err = client
            .send(&[Event::new("a/b", json!({}))])
            .await
            .expect_err("fails");
        assert_eq!(err, expected);
        assert_eq!(api.seen().len(), 1, "{status} is not retried");
    }
    let no_key = EventClient::new(&InngestSettings::dev().with_mode(inngest_axum::Mode::Cloud));
    assert_eq!(
        no_key.send(&[Event::new("a/b", json!({}))]).await,
        Err(SendError::MissingEventKey)
    );
}

#[tokio::test]
async fn sync_uses_the_fallback_key_after_401_and_reports_rejections() {
    let (api, url) = Api::start(vec![
        (401, r#"{"error":"unauthorized"}"#),
        (200, r#"{"ok":true,"modified":true}"#),
        (400, r#"{"error":"Expected server kind dev, got cloud"}"#),
    ])
    .await;
    let h = handler(
        cloud_settings()
            .with_base_url(url)
            .with_app_version("1.2.3"),
    );
    let report = h
        .sync("http://127.0.0.1:3000/api/inngest?deployId=x")
        .await
        .expect("synced");
    assert!(report.modified);
    let seen = api.seen();
    assert_eq!(seen.len(), 2);
    let bearer = |i: usize| seen[i].1.get("authorization").cloned();
    assert_eq!(
        bearer(0),
        Some(format!("Bearer {}", SigningKey::new(KEY).hashed()))
    );
    assert_eq!(
        bearer(1),
        Some(format!("Bearer {}", SigningKey::new(FALLBACK).hashed()))
    );
    let body: Value = serde_json::from_str(&seen[1].2).expect("json");
    assert_eq!(body["url"], "http://127.0.0.1:3000/api/inngest");
    assert_eq!(body["appVersion"], "1.2.3");
    assert_eq!(
        body["functions"],
        json!(
            h.function_configs("http://127.0.0.1:3000/api/inngest")
                .expect("configs")
        )
    );
    assert_eq!(body["functions"].as_array().map(Vec::len), Some(13));

    let err = h
        .sync("http://127.0.0.1:3000/api/inngest")
        .await
        .expect_err("rejected");
    assert_eq!(
        err,
        SyncError::Rejected {
            status: 400,
            message: "Expected server kind dev, got cloud".into()
        }
    );
    assert!(matches!(
        h.sync("not a url").await,
        Err(SyncError::InvalidUrl(_))
    ));
}

#[tokio::test]
async fn trimmed_payloads_are_fetched_from_the_api() {
    let (api, url) = Api::start(vec![
        (200, r#"[{"name":"app/hello","data":{"name":"big"}}]"#),
        (200, r#"{}"#),
    ])
    .await;
    let h = handler(
        InngestSettings::dev()
            .with_signing_key(KEY)
            .with_base_url(url),
    );
    let body = r#"{"ctx":{"run_id":"R1","attempt":0,"use_api":true},"event":{},"events":[],"steps":{},"version":2}"#;
    let out = request(
        &h,
        Method::POST,
        "/api/inngest?fnId=my-app-hello&stepId=step",
        &[],
        body,
    )
    .await;
    assert_eq!(out.json(), json!({"hello": "big"}));
    let seen = api.seen();
    assert_eq!(seen[0].0, "/v0/runs/R1/batch");
    assert_eq!(seen[1].0, "/v0/runs/R1/actions");
    assert!(
        seen[0]
            .1
            .get("authorization")
            .is_some_and(|a| a.starts_with("Bearer signkey-test-"))
    );

    let (_, down) = Api::start(vec![(500, "no")]).await;
    let h = handler(InngestSettings::dev().with_base_url(down));
    let out = request(
        &h,
        Method::POST,
        "/api/inngest?fnId=my-app-hello&stepId=step",
        &[],
        body,
    )
    .await;
    assert_eq!(out.status, 500);
}

#[tokio::test]
async fn router_serves_the_route_path_only() {
    let h = handler(InngestSettings::dev()).with_route_path("/hooks/inngest");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = h.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = super::harness::http();
    let ok = client
        .get(format!("http://{addr}/hooks/inngest"))
        .send()
        .await
        .expect("get");
    assert_eq!(ok.status(), 200);
    let intro: Value = ok.json().await.expect("json");
    assert_eq!(intro["mode"], "dev");
    let missing = client
        .get(format!("http://{addr}/api/inngest"))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn streaming_sends_keep_alive_spaces_while_the_handler_runs() {
    use futures::StreamExt;
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let slow = Function::new("slow", "slow")
        .trigger(Trigger::event("app/slow"))
        .handler(move |_ctx: Ctx, _step: Step| {
            let gate = gate.clone();
            async move {
                gate.notified().await;
                Ok::<_, FnError>(json!("done"))
            }
        });
    let h = ServeHandler::new(
        "app",
        InngestSettings::dev().with_streaming(true),
        vec![slow],
    )
    .with_stream_heartbeat(Duration::from_millis(10));
    let body = CallBody::new("app/slow", json!({})).render();
    let res = h
        .handle(
            Method::POST,
            "/api/inngest?fnId=app-slow&stepId=step"
                .parse()
                .expect("uri"),
            HeaderMap::new(),
            Bytes::from(body),
        )
        .await;
    assert_eq!(res.status(), 201);
    let mut stream = res.into_body().into_data_stream();
    let mut seen = String::new();
    // The handler only finishes once two keep-alive spaces have arrived.
    while seen.len() < 2 {
        let chunk = stream.next().await.expect("chunk").expect("bytes");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(seen, "  ");
    release.notify_one();
    while let Some(chunk) = stream.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("bytes")));
    }
    let wrapped: Value = serde_json::from_str(seen.trim()).expect("final JSON");
    assert_eq!(
        (wrapped["status"].as_u64(), wrapped["body"].as_str()),
        (Some(200), Some("\"done\""))
    );
}

#[tokio::test]
async fn batches_reach_the_handler_as_events() {
    let f = Function::new("batch", "batch")
        .trigger(Trigger::event("app/item"))
        .batch_events(inngest_axum::Batch {
            max_size: 10,
            timeout: Duration::from_secs(5),
            key: None,
            if_exp: None,
        })
        .handler(|ctx: Ctx, _step: Step| async move {
            let ids: Vec<Value> = ctx.events.iter().map(|e| e.data["n"].clone()).collect();
            Ok::<_, FnError>(json!({ "first": ctx.event.data["n"], "all": ids, "run": ctx.run_id, "fn": ctx.function_id }))
        });
    let h = ServeHandler::new("app", InngestSettings::dev(), vec![f]);
    let body = json!({
        "ctx": {"run_id": "R", "attempt": 0},
        "event": {"name": "app/item", "data": {"n": 1}},
        "events": [{"name": "app/item", "data": {"n": 1}}, {"name": "app/item", "data": {"n": 2}}],
        "steps": {},
        "version": 2,
    })
    .to_string();
    let out = request(
        &h,
        Method::POST,
        "/api/inngest?fnId=app-batch&stepId=step",
        &[],
        &body,
    )
    .await;
    assert_eq!(
        out.json(),
        json!({"first": 1, "all": [1, 2], "run": "R", "fn": "app-batch"})
    );
}

#[tokio::test]
async fn in_band_sync_without_a_body_is_an_error() {
    let h = handler(InngestSettings::dev());
    let out = request(
        &h,
        Method::PUT,
        "/api/inngest",
        &[("x-inngest-sync-kind", "in_band")],
        "",
    )
    .await;
    assert_eq!(out.status, 500);
    assert!(
        out.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("Missing request body"))
    );
}

/// An in-process call (the embedded executor's) is trusted as it comes: a cloud-mode handler
/// answers it unsigned, and signs nothing back. The same request from the network is refused,
/// and so is anything but a POST handed to the in-process entry.
#[tokio::test]
async fn in_process_calls_skip_signatures_and_network_calls_do_not() {
    let h = handler(cloud_settings());
    let body = CallBody::new("app/hello", json!({ "name": "Ann" })).render();
    let path = "/api/inngest?fnId=my-app-hello&stepId=step";
    let network = request(&h, Method::POST, path, &[], &body).await;
    assert_eq!(network.status, 401, "{}", network.body);

    let uri: Uri = path.parse().expect("uri");
    let local = h
        .handle_in_process(Method::POST, uri, HeaderMap::new(), Bytes::from(body))
        .await;
    assert_eq!(local.status().as_u16(), 200);
    assert!(local.headers().get("x-inngest-signature").is_none());
    assert!(local.headers().get("x-inngest-sdk").is_some());
    let out = to_bytes(local.into_body(), usize::MAX).await.expect("body");
    assert_eq!(
        serde_json::from_slice::<Value>(&out).expect("json"),
        json!({ "hello": "Ann" })
    );

    // An unsigned GET gets the unauthenticated introspection either way.
    let network = request(&h, Method::GET, "/api/inngest", &[], "").await;
    let uri: Uri = "/api/inngest".parse().expect("uri");
    let local = h
        .handle_in_process(Method::GET, uri, HeaderMap::new(), Bytes::new())
        .await;
    let out = to_bytes(local.into_body(), usize::MAX).await.expect("body");
    let local = serde_json::from_slice::<Value>(&out).expect("json");
    assert_eq!(local["authentication_succeeded"], Value::Null);
    assert!(local.get("app_id").is_none(), "{local}");
    assert_eq!(local, network.json());
}

/// A discovery that finds one new step runs it in the same pass of the handler, its closure
/// borrowing the handler's locals; the handler is not replayed a second time to reach it. Two
/// new steps, or immediate execution turned off, are reported as planned after one pass too.
#[tokio::test]
async fn one_new_step_runs_in_the_pass_that_found_it() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let passes = Arc::new(AtomicUsize::new(0));
    let counted = passes.clone();
    let f = Function::new("count", "count")
        .trigger(Trigger::event("app/count"))
        .handler(move |ctx: Ctx, step: Step| {
            let passes = counted.clone();
            async move {
                passes.fetch_add(1, Ordering::SeqCst);
                let greeting = format!("hi {}", ctx.event.data["name"].as_str().unwrap_or("?"));
                let first: String = step.run("first", || async { Ok(greeting.clone()) }).await?;
                if ctx.event.data["pair"] == json!(true) {
                    let (a, b) = futures::join!(
                        step.run("a", || async { Ok(1) }),
                        step.run("b", || async { Ok(2) })
                    );
                    return Ok(json!([first, a?, b?]));
                }
                Ok(json!(first))
            }
        });
    let handler = ServeHandler::new("app", InngestSettings::dev(), vec![f]);
    let path = "/api/inngest?fnId=app-count&stepId=step";

    let body = CallBody::new("app/count", json!({ "name": "Ann" })).render();
    let out = request(&handler, Method::POST, path, &[], &body).await;
    assert_eq!(out.status, 206, "{}", out.body);
    let ops = out.json();
    assert_eq!(
        (
            ops[0]["op"].as_str(),
            ops[0]["id"].as_str(),
            &ops[0]["data"]
        ),
        (Some("StepRun"), Some(h("first").as_str()), &json!("hi Ann"))
    );
    assert_eq!(passes.swap(0, Ordering::SeqCst), 1);

    let body = CallBody::new("app/count", json!({ "name": "Ann", "pair": true }))
        .memo(&h("first"), json!({ "data": "hi Ann" }))
        .render();
    let out = request(&handler, Method::POST, path, &[], &body).await;
    assert_eq!(out.status, 206, "{}", out.body);
    let ops = out.json();
    let planned: Vec<_> = ops
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| (o["op"].as_str(), o["id"].as_str().map(str::to_owned)))
        .collect();
    assert_eq!(
        planned,
        [
            (Some("StepPlanned"), Some(h("a"))),
            (Some("StepPlanned"), Some(h("b")))
        ]
    );
    assert_eq!(passes.swap(0, Ordering::SeqCst), 1);

    let body = CallBody::new("app/count", json!({ "name": "Ann" }))
        .die()
        .render();
    let out = request(&handler, Method::POST, path, &[], &body).await;
    assert_eq!(out.status, 206, "{}", out.body);
    assert_eq!(out.json()[0]["op"], "StepPlanned");
    assert_eq!(passes.swap(0, Ordering::SeqCst), 1);
}
