//! Differential suite: the same signed requests go to the Rust serve endpoint and to the
//! official JS SDK serving the same functions; status, the headers that matter and the
//! opcodes must agree.

use inngest_axum::protocol::hash_step_id as h;
use inngest_axum::signature::SigningKey;
use serde_json::{Value, json};

use super::harness::{
    CallBody, EVENT_KEY, FALLBACK, KEY, Mode, REJECT_PRIMARY, SENT_EVENT_ID, WRONG_KEY,
    assert_same_envelope, assert_same_json, assert_same_ops, both, call_both, now, pair, sign,
};

const DISCOVER: &str = "?fnId=my-app-{}&stepId=step";

fn q(function: &str) -> String {
    DISCOVER.replace("{}", function)
}

fn targeted(function: &str, step: &str) -> String {
    format!("?fnId=my-app-{function}&stepId={}", h(step))
}

#[tokio::test]
async fn plain_return() {
    let p = pair(Mode::Cloud);
    let (r, j) = call_both(
        p,
        &q("hello"),
        &CallBody::new("app/hello", json!({"name": "Ada"})),
        KEY,
    )
    .await;
    assert_same_envelope("hello", &r, &j, Some(KEY));
    assert_eq!(r.status, 200);
    assert_same_json("hello", &r, &j);
    assert_eq!(r.json(), json!({"hello": "Ada"}));
}

#[tokio::test]
async fn step_sequence_with_sleep() {
    let p = pair(Mode::Cloud);
    let base = CallBody::new("app/steps", json!({}));
    let first = base.clone();
    let second = base.clone().memo(&h("first step"), json!({"data": "A"}));
    let third = second.clone().memo(&h("sleep"), Value::Null);
    let fourth = third.clone().memo(&h("second step"), json!({"data": "AB"}));
    for (label, body, status) in [
        ("steps #1", &first, 206),
        ("steps #2", &second, 206),
        ("steps #3", &third, 206),
    ] {
        let (r, j) = call_both(p, &q("steps"), body, KEY).await;
        assert_same_envelope(label, &r, &j, Some(KEY));
        assert_eq!(r.status, status, "{label}");
        assert_same_ops(label, &r, &j);
    }
    let (r, j) = call_both(p, &q("steps"), &fourth, KEY).await;
    assert_same_envelope("steps #4", &r, &j, Some(KEY));
    assert_eq!(r.json(), json!({"b": "AB"}));
    assert_same_json("steps #4", &r, &j);
}

#[tokio::test]
async fn repeated_step_ids_in_a_loop() {
    let p = pair(Mode::Cloud);
    let mut body = CallBody::new("app/loop", json!({}));
    for (i, id) in ["send-email", "send-email:1", "send-email:2"]
        .into_iter()
        .enumerate()
    {
        let (r, j) = call_both(p, &q("loop"), &body, KEY).await;
        let label = format!("loop #{}", i + 1);
        assert_same_envelope(&label, &r, &j, Some(KEY));
        assert_same_ops(&label, &r, &j);
        assert_eq!(r.json()[0]["id"], json!(h(id)), "{label}");
        body = body.memo(&h(id), json!({ "data": i }));
    }
    let (r, j) = call_both(p, &q("loop"), &body, KEY).await;
    assert_same_envelope("loop done", &r, &j, Some(KEY));
    assert_eq!(r.json(), json!([0, 1, 2]));
    assert_same_json("loop done", &r, &j);
}

#[tokio::test]
async fn parallel_steps() {
    let p = pair(Mode::Cloud);
    let body = CallBody::new("app/parallel", json!({}));
    let (r, j) = call_both(p, &q("parallel"), &body, KEY).await;
    assert_same_envelope("parallel #1", &r, &j, Some(KEY));
    assert_same_ops("parallel #1", &r, &j);
    assert_eq!(r.json().as_array().map(Vec::len), Some(3));

    let die = body.clone().die();
    let (r, j) = call_both(p, &targeted("parallel", "send-email:1"), &die, KEY).await;
    assert_same_envelope("parallel targeted", &r, &j, Some(KEY));
    assert_same_ops("parallel targeted", &r, &j);
    assert_eq!(r.json()[0]["data"], json!(2));

    let done = die
        .memo(&h("send-email"), json!({"data": 1}))
        .memo(&h("send-email:2"), json!({"data": 3}))
        .memo(&h("send-email:1"), json!({"data": 2}));
    let (r, j) = call_both(p, &q("parallel"), &done, KEY).await;
    assert_same_envelope("parallel done", &r, &j, Some(KEY));
    assert_eq!(r.json(), json!([1, 2, 3]));
    assert_same_json("parallel done", &r, &j);
}

#[tokio::test]
async fn targeted_execution_and_disable_immediate_execution() {
    let p = pair(Mode::Cloud);
    let die = CallBody::new("app/steps", json!({})).die();
    let (r, j) = call_both(p, &q("steps"), &die, KEY).await;
    assert_same_envelope("die", &r, &j, Some(KEY));
    assert_same_ops("die", &r, &j);
    assert_eq!(r.json()[0]["op"], "StepPlanned");

    let (r, j) = call_both(p, &targeted("steps", "first step"), &die, KEY).await;
    assert_same_envelope("targeted", &r, &j, Some(KEY));
    assert_same_ops("targeted", &r, &j);
    assert_eq!(r.json()[0]["op"], "StepRun");
    assert_eq!(r.json()[0]["data"], "A");
}

#[tokio::test]
async fn targeted_step_not_found() {
    let p = pair(Mode::Cloud);
    let body = CallBody::new("app/steps", json!({})).die();
    let query = format!("?fnId=my-app-steps&stepId={}", h("no such step"));
    let (r, j) = call_both(p, &query, &body, KEY).await;
    assert_same_envelope("not found", &r, &j, Some(KEY));
    assert_eq!(r.status, 500);
    for field in ["requestedStep", "totalFoundSteps", "foundSteps"] {
        assert_eq!(r.json()[field], j.json()[field], "{field}");
    }
    let message = r.json()["error"].as_str().unwrap_or_default().to_owned();
    assert!(message.starts_with("Could not find step"), "{message}");
}

#[tokio::test]
async fn wait_for_event_matched_and_timed_out() {
    let p = pair(Mode::Cloud);
    let base = CallBody::new("app/wait", json!({"id": "123"}));
    let (r, j) = call_both(p, &q("wait"), &base, KEY).await;
    assert_same_envelope("wait #1", &r, &j, Some(KEY));
    assert_same_ops("wait #1", &r, &j);

    let event = json!({"data": {"id": "123"}, "id": "01HRESUME", "name": "test/resume", "ts": 1_700_000_001_000u64});
    let matched = base.clone().memo(&h("wait"), event.clone());
    let (r, j) = call_both(p, &q("wait"), &matched, KEY).await;
    assert_same_envelope("wait matched", &r, &j, Some(KEY));
    assert_eq!(r.json(), json!({ "got": event }));
    assert_same_json("wait matched", &r, &j);

    let timed_out = base.memo(&h("wait"), Value::Null);
    let (r, j) = call_both(p, &q("wait"), &timed_out, KEY).await;
    assert_same_envelope("wait timed out", &r, &j, Some(KEY));
    assert_eq!(r.json(), json!({ "got": null }));
}

#[tokio::test]
async fn step_errors_retry_then_fail_then_raise() {
    let p = pair(Mode::Cloud);
    let base = CallBody::new("app/fails", json!({}));
    let (r, j) = call_both(p, &q("fails"), &base.clone().attempt(0, 3), KEY).await;
    assert_same_envelope("retries left", &r, &j, Some(KEY));
    assert_same_ops("retries left", &r, &j);
    assert_eq!(
        (r.json()[0]["op"].as_str(), r.header("x-inngest-no-retry")),
        (Some("StepError"), Some("false"))
    );

    let (r, j) = call_both(p, &q("fails"), &base.clone().attempt(2, 3), KEY).await;
    assert_same_envelope("final attempt", &r, &j, Some(KEY));
    assert_same_ops("final attempt", &r, &j);
    assert_eq!(
        (r.json()[0]["op"].as_str(), r.header("x-inngest-no-retry")),
        (Some("StepFailed"), Some("true"))
    );

    let memoized = base.memo(
        &h("flaky"),
        json!({"error": {"message": "broken", "name": "Error"}}),
    );
    let (r, j) = call_both(p, &q("fails"), &memoized, KEY).await;
    assert_same_envelope("memoized error", &r, &j, Some(KEY));
    assert_eq!(
        (r.status, r.header("x-inngest-no-retry")),
        (400, Some("true"))
    );
    assert_same_json("memoized error", &r, &j);
}

#[tokio::test]
async fn function_errors() {
    let p = pair(Mode::Cloud);
    let cases = [
        (
            "fn-throws",
            "app/throws",
            CallBody::new("app/throws", json!({})).attempt(0, 5),
            500,
        ),
        (
            "fn-throws last",
            "app/throws",
            CallBody::new("app/throws", json!({})).attempt(4, 5),
            400,
        ),
        (
            "non-retriable",
            "app/nr",
            CallBody::new("app/nr", json!({})),
            400,
        ),
        (
            "retry-after",
            "app/ra",
            CallBody::new("app/ra", json!({})),
            500,
        ),
    ];
    for (label, _, body, status) in cases {
        let function = label.trim_end_matches(" last");
        let (r, j) = call_both(p, &q(function), &body, KEY).await;
        assert_same_envelope(label, &r, &j, Some(KEY));
        assert_eq!(r.status, status, "{label}");
        assert_same_json(label, &r, &j);
    }
    let (r, _) = call_both(
        p,
        &q("retry-after"),
        &CallBody::new("app/ra", json!({})),
        KEY,
    )
    .await;
    assert_eq!(r.header("retry-after"), Some("30"));
}

#[tokio::test]
async fn invoke() {
    let p = pair(Mode::Cloud);
    let base = CallBody::new("app/invoke", json!({}));
    let (r, j) = call_both(p, &q("invoker"), &base, KEY).await;
    assert_same_envelope("invoke #1", &r, &j, Some(KEY));
    assert_same_ops("invoke #1", &r, &j);

    let resolved = base
        .clone()
        .memo(&h("call-hello"), json!({"data": {"hello": "x"}}));
    let (r, j) = call_both(p, &q("invoker"), &resolved, KEY).await;
    assert_same_envelope("invoke resolved", &r, &j, Some(KEY));
    assert_same_json("invoke resolved", &r, &j);

    let errored = base.memo(
        &h("call-hello"),
        json!({"error": {"message": "child failed", "name": "Error"}}),
    );
    let (r, j) = call_both(p, &q("invoker"), &errored, KEY).await;
    assert_same_envelope("invoke errored", &r, &j, Some(KEY));
    assert_eq!(r.status, 400);
    assert_same_json("invoke errored", &r, &j);
}

#[tokio::test]
async fn send_event() {
    let p = pair(Mode::Cloud);
    let base = CallBody::new("app/send", json!({}));
    let (r, j) = call_both(p, &q("sender"), &base, KEY).await;
    assert_same_envelope("send #1", &r, &j, Some(KEY));
    assert_same_ops("send #1", &r, &j);
    assert_eq!(r.json()[0]["data"], json!({ "ids": [SENT_EVENT_ID] }));

    let sends: Vec<_> = p
        .captured()
        .into_iter()
        .filter(|c| c.uri == format!("/e/{EVENT_KEY}"))
        .collect();
    let ours = sends
        .iter()
        .find(|c| c.header("x-inngest-sdk") == Some(inngest_axum::SDK_IDENT))
        .expect("rust sent the event");
    let theirs = sends
        .iter()
        .find(|c| {
            c.header("x-inngest-sdk")
                .is_some_and(|s| s.starts_with("inngest-js"))
        })
        .expect("js sent the event");
    let strip_ts = |v: Value| -> Value {
        let mut v = v;
        for e in v.as_array_mut().into_iter().flatten() {
            assert!(e["ts"].as_i64().is_some_and(|ts| ts > 1_700_000_000_000));
            e.as_object_mut().map(|o| o.remove("ts"));
        }
        v
    };
    assert_eq!(strip_ts(ours.json()), strip_ts(theirs.json()));
    let seed = ours.header("x-inngest-event-id-seed").expect("seed header");
    let (millis, entropy) = seed.split_once(',').expect("seed format");
    assert!(millis.parse::<i64>().is_ok());
    assert_eq!(
        entropy.len(),
        theirs
            .header("x-inngest-event-id-seed")
            .and_then(|s| s.split_once(','))
            .map(|(_, e)| e.len())
            .unwrap_or(0)
    );

    let done = base.memo(&h("send-it"), json!({"data": {"ids": [SENT_EVENT_ID]}}));
    let (r, j) = call_both(p, &q("sender"), &done, KEY).await;
    assert_same_envelope("send done", &r, &j, Some(KEY));
    assert_same_json("send done", &r, &j);
}

#[tokio::test]
async fn failure_handler() {
    let p = pair(Mode::Cloud);
    let failed = CallBody::new(
        "inngest/function.failed",
        json!({"error": {"message": "boom", "name": "Error"}, "function_id": "my-app-configured", "run_id": "01HRUN"}),
    );
    let (r, j) = call_both(
        p,
        "?fnId=my-app-configured-failure&stepId=step",
        &failed,
        KEY,
    )
    .await;
    assert_same_envelope("onFailure", &r, &j, Some(KEY));
    assert_eq!(r.json(), json!({"handled": "my-app-configured"}));
    assert_same_json("onFailure", &r, &j);
}

#[tokio::test]
async fn unknown_function() {
    let p = pair(Mode::Cloud);
    let (r, j) = call_both(p, &q("nope"), &CallBody::new("app/x", json!({})), KEY).await;
    assert_same_envelope("unknown fn", &r, &j, Some(KEY));
    assert_eq!(r.status, 500);
    assert_same_json("unknown fn", &r, &j);
}

#[tokio::test]
async fn signature_gate() {
    let p = pair(Mode::Cloud);
    let body = CallBody::new("app/hello", json!({"name": "Ada"})).render();
    let ct = ("content-type", "application/json".to_owned());
    type Headers = Vec<(&'static str, String)>;
    let cases: Vec<(&str, Headers, u16)> = vec![
        ("unsigned", vec![ct.clone()], 401),
        (
            "expired",
            vec![
                ct.clone(),
                ("x-inngest-signature", sign(&body, KEY, now() - 400)),
            ],
            401,
        ),
        (
            "future",
            vec![
                ct.clone(),
                ("x-inngest-signature", sign(&body, KEY, now() + 400)),
            ],
            401,
        ),
        (
            "wrong key",
            vec![
                ct.clone(),
                ("x-inngest-signature", sign(&body, WRONG_KEY, now())),
            ],
            401,
        ),
        (
            "fallback key",
            vec![
                ct.clone(),
                ("x-inngest-signature", sign(&body, FALLBACK, now())),
            ],
            200,
        ),
    ];
    for (label, headers, status) in cases {
        let (r, j) = both(p, "POST", &q("hello"), &headers, &body).await;
        let key = (status == 200).then_some(FALLBACK);
        assert_same_envelope(label, &r, &j, key);
        assert_eq!(r.status, status, "{label}");
        assert_same_json(label, &r, &j);
    }
    // Signed over non-canonical raw bytes: JS only accepts the canonical form.
    let raw = r#"{"steps":{},"event":{"name":"app/hello","data":{"name":"Ada"}},"events":[],"ctx":{"run_id":"r","attempt":0}}"#;
    let headers = vec![ct, ("x-inngest-signature", sign(raw, KEY, now()))];
    let (r, j) = both(p, "POST", &q("hello"), &headers, raw).await;
    assert_eq!(
        j.status, 401,
        "js rejects raw-byte signatures over non-canonical bodies"
    );
    assert_eq!(
        r.status, 200,
        "rust verifies raw bytes first, as the reference recommends"
    );
}

#[tokio::test]
async fn trust_probe_and_other_methods() {
    let p = pair(Mode::Cloud);
    let headers = [("x-inngest-signature", sign("{}", KEY, now()))];
    let (r, j) = both(p, "POST", "?probe=trust", &headers, "{}").await;
    assert_same_envelope("probe", &r, &j, Some(KEY));
    assert_eq!((r.status, r.body.as_str()), (200, ""));

    let headers = [("x-inngest-signature", sign("", KEY, now()))];
    let (r, j) = both(p, "DELETE", "", &headers, "").await;
    assert_same_envelope("delete", &r, &j, Some(KEY));
    assert_eq!(r.status, 405);
    assert_same_json("delete", &r, &j);
}

fn assert_same_introspection(label: &str, ours: &Value, theirs: &Value) {
    for field in [
        "function_count",
        "has_event_key",
        "has_signing_key",
        "mode",
        "schema_version",
    ] {
        assert_eq!(ours[field], theirs[field], "{label}: {field}");
    }
    let authenticated = theirs["authentication_succeeded"] == json!(true);
    if authenticated {
        for field in [
            "authentication_succeeded",
            "api_origin",
            "app_id",
            "env",
            "event_api_origin",
            "event_key_hash",
            "serve_origin",
            "serve_path",
            "signing_key_hash",
            "signing_key_fallback_hash",
        ] {
            assert_eq!(ours[field], theirs[field], "{label}: {field}");
        }
        assert_eq!(
            ours["capabilities"]["trust_probe"],
            theirs["capabilities"]["trust_probe"]
        );
        assert_eq!(
            ours["extra"]["is_streaming"],
            theirs["extra"]["is_streaming"]
        );
        assert_eq!(ours["framework"], "axum");
        assert_eq!(ours["sdk_language"], "rust");
        assert_eq!(ours["has_signing_key_fallback"], true);
    } else {
        assert_eq!(ours["authentication_succeeded"], Value::Null, "{label}");
        assert!(
            ours.get("signing_key_hash").is_none(),
            "{label}: leaks key hash"
        );
        assert!(ours.get("app_id").is_none(), "{label}: leaks app id");
    }
}

#[tokio::test]
async fn introspection_unsigned_and_signed() {
    let p = pair(Mode::Cloud);
    let (r, j) = both(p, "GET", "", &[], "").await;
    assert_same_envelope("GET unsigned", &r, &j, None);
    assert_eq!(r.status, 401);
    assert_same_json("GET unsigned", &r, &j);

    let headers = [("x-inngest-signature", sign("", KEY, now()))];
    let (r, j) = both(p, "GET", "", &headers, "").await;
    assert_same_envelope("GET signed", &r, &j, Some(KEY));
    assert_same_introspection("GET signed", &r.json(), &j.json());

    let headers = [("x-inngest-signature", sign("", WRONG_KEY, now()))];
    let (r, j) = both(p, "GET", "", &headers, "").await;
    assert_same_envelope("GET wrong key", &r, &j, None);
    assert_eq!(r.status, 401);

    let d = pair(Mode::Dev);
    let (r, j) = both(d, "GET", "", &[], "").await;
    assert_same_envelope("dev GET", &r, &j, None);
    assert_eq!(r.status, 200);
    assert_same_introspection("dev GET", &r.json(), &j.json());
}

#[tokio::test]
async fn dev_mode_calls_need_no_signature() {
    let d = pair(Mode::Dev);
    let body = CallBody::new("app/hello", json!({"name": "dev"})).render();
    let headers = [("content-type", "application/json".to_owned())];
    let (r, j) = both(d, "POST", &q("hello"), &headers, &body).await;
    assert_same_envelope("dev POST", &r, &j, None);
    assert_eq!(r.json(), json!({"hello": "dev"}));
    assert!(r.header("x-inngest-signature").is_none());
}

/// JS 4.24 leaves `deployId` in the URLs it syncs; the reference (and Go) strip it.
fn strip_deploy_id(text: &str) -> String {
    text.replace("?deployId=dep-123&", "?")
        .replace("?deployId=dep-123", "")
        .replace(&format!("?deployId={REJECT_PRIMARY}&"), "?")
        .replace(&format!("?deployId={REJECT_PRIMARY}"), "")
}

#[tokio::test]
async fn out_of_band_sync() {
    let p = pair(Mode::Cloud);
    for deploy in ["dep-123", REJECT_PRIMARY] {
        let headers = [("x-inngest-server-kind", "cloud".to_owned())];
        let (r, j) = both(p, "PUT", &format!("?deployId={deploy}"), &headers, "").await;
        assert_same_envelope("PUT out-of-band", &r, &j, None);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_same_json("PUT out-of-band", &r, &j);

        let registers: Vec<_> = p
            .captured()
            .into_iter()
            .filter(|c| c.uri == format!("/fn/register?deployId={deploy}"))
            .collect();
        let pick = |rust: bool| {
            let found: Vec<_> = registers
                .iter()
                .filter(|c| {
                    c.header("x-inngest-sdk")
                        .is_some_and(|s| s.starts_with("rust:") == rust)
                })
                .collect();
            found
        };
        let (ours, theirs) = (pick(true), pick(false));
        assert_eq!(ours.len(), theirs.len(), "{deploy}: attempts");
        let (o, t) = (ours[ours.len() - 1], theirs[theirs.len() - 1]);
        for name in [
            "authorization",
            "x-inngest-sync-kind",
            "x-inngest-expected-server-kind",
            "content-type",
        ] {
            assert_eq!(
                o.header(name),
                t.header(name),
                "{deploy}: register header {name}"
            );
        }
        if deploy == REJECT_PRIMARY {
            let fallback = format!("Bearer {}", SigningKey::new(FALLBACK).hashed());
            assert_eq!(o.header("authorization"), Some(fallback.as_str()));
        }
        // Each server reports its own address; compare everything else.
        let host = |base: &str| {
            base.trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        let ob: Value =
            serde_json::from_str(&o.body.replace(&host(&p.rust), &host(&p.js))).expect("json");
        let tb: Value = serde_json::from_str(&strip_deploy_id(&t.body)).expect("json");
        for field in ["url", "functions", "appName", "deployType", "v", "deployId"] {
            assert_eq!(ob[field], tb[field], "{deploy}: register body {field}");
        }
        assert_eq!(ob["sdk"], inngest_axum::SDK_IDENT);
    }
}

#[tokio::test]
async fn in_band_sync() {
    let p = pair(Mode::Cloud);
    let body = r#"{"url":"http://127.0.0.1:3939/api/inngest"}"#;
    let headers = [
        ("x-inngest-sync-kind", "in_band".to_owned()),
        ("content-type", "application/json".to_owned()),
        ("x-inngest-signature", sign(body, KEY, now())),
    ];
    let (r, j) = both(p, "PUT", "", &headers, body).await;
    assert_same_envelope("PUT in-band", &r, &j, Some(KEY));
    let (ours, theirs) = (r.json(), j.json());
    for field in ["app_id", "env", "functions", "url"] {
        assert_eq!(ours[field], theirs[field], "in-band {field}");
    }
    assert_eq!(
        ours["capabilities"]["trust_probe"],
        theirs["capabilities"]["trust_probe"]
    );
    assert_eq!(ours["sdk_language"], "rust");
    assert_same_introspection(
        "in-band inspection",
        &ours["inspection"],
        &theirs["inspection"],
    );

    let unsigned = [("x-inngest-sync-kind", "in_band".to_owned())];
    let (r, j) = both(p, "PUT", "", &unsigned, body).await;
    assert_same_envelope("PUT in-band unsigned", &r, &j, None);
    assert_eq!(r.status, 401);

    let extra = r#"{"extra":1,"url":"http://x/api/inngest"}"#;
    let headers = [
        ("x-inngest-sync-kind", "in_band".to_owned()),
        ("x-inngest-signature", sign(extra, KEY, now())),
    ];
    let (r, j) = both(p, "PUT", "", &headers, extra).await;
    assert_same_envelope("PUT in-band strict body", &r, &j, Some(KEY));
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (400, Some("invalid_request"))
    );
}

/// Deliberate departures from the JS SDK on out-of-band sync: a `PUT` without the in-band
/// header, which anyone may send, unsigned, and which makes the SDK call Inngest's register API
/// with the real signing key.
///
/// - The URL registered is the configured one (`APP_URL`, or `INNGEST_SERVE_ORIGIN` +
///   `INNGEST_SERVE_PATH`), never one rebuilt from the request. The JS SDK builds it from the
///   `Host` header, so a single request with `Host: attacker.example` points Inngest at the
///   attacker's server, which then receives every run of every function, event payloads
///   included. Checked here: JS registers the forged host, this SDK its own address.
/// - A few syncs a minute, then 429 (the JS SDK has no limit): each one is a call to Inngest.
/// - A sync Inngest refuses, or cannot be reached for, answers 502 with a message naming no
///   upstream URL (JS: 500, and the upstream URL in the transport error).
///
/// The last two are covered in `serve` (and the service's `hardening` tests), where each
/// handler has a budget of its own.
#[tokio::test]
async fn out_of_band_sync_registers_the_configured_url_whatever_the_host() {
    let p = pair(Mode::Cloud);
    let deploy = "forged-host";
    let headers = [("host", "attacker.example".to_owned())];
    let (r, j) = both(p, "PUT", &format!("?deployId={deploy}"), &headers, "").await;
    assert_eq!((r.status, j.status), (200, 200), "{} / {}", r.body, j.body);
    let registered = |rust: bool| -> Vec<Value> {
        p.captured()
            .into_iter()
            .filter(|c| c.uri == format!("/fn/register?deployId={deploy}"))
            .filter(|c| {
                c.header("x-inngest-sdk")
                    .is_some_and(|s| s.starts_with("rust:") == rust)
            })
            .map(|c| c.json()["url"].clone())
            .collect()
    };
    let theirs = registered(false);
    assert!(
        theirs
            .iter()
            .all(|u| u.as_str().is_some_and(|u| u.contains("attacker.example"))),
        "the JS SDK registers the forged host: {theirs:?}"
    );
    assert_eq!(registered(true), vec![Value::from(p.rust.as_str())]);
}
