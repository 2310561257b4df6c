//! Shared servers for the Inngest conformance suite: the Rust test app, the official JS SDK
//! serving the same functions, and a mock Inngest API that both talk to.
//!
//! Servers start once per test process and live on a background runtime, so every test can
//! use them. The JS oracle's dependencies are installed with `npm ci` when missing.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use inngest_axum::signature::{self, SigningKey, canonical_json};
use inngest_axum::{InngestSettings, ServeHandler};
use serde_json::{Value, json};

use super::app;

pub const KEY: &str =
    "signkey-test-8ee2262a15e8d3c42d6a840db7af3de2aab08ef632b32a37a687f24b34dba3ff";
pub const FALLBACK: &str =
    "signkey-test-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
pub const WRONG_KEY: &str = "signkey-test-ffff";
pub const EVENT_KEY: &str = "test-event-key";
pub const RUN_ID: &str = "01HRUN00000000000000000000";
pub const EVENT_ID: &str = "01HEVT0000000000000000000";
pub const SENT_EVENT_ID: &str = "01HXEVENTID0";
/// `deployId` for which the mock API rejects the primary key, to exercise the fallback.
pub const REJECT_PRIMARY: &str = "reject-primary";

/// One request seen by the mock Inngest API.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    pub uri: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Clone, Default)]
struct MockState {
    captured: Arc<Mutex<Vec<Captured>>>,
}

async fn mock_api(
    State(state): State<MockState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let captured = Captured {
        method: method.to_string(),
        uri: uri.to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let auth = captured
        .header("authorization")
        .unwrap_or_default()
        .to_owned();
    state.captured.lock().expect("capture lock").push(captured);
    let path = uri.path();
    if path == "/fn/register" {
        let primary = format!("Bearer {}", SigningKey::new(KEY).hashed());
        if uri.query().unwrap_or_default().contains(REJECT_PRIMARY) && auth == primary {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({ "error": "bad key" })),
            )
                .into_response();
        }
        return axum::Json(json!({ "ok": true, "modified": true, "app_id": "a", "sync_id": "s" }))
            .into_response();
    }
    if path.starts_with("/e/") {
        let count = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.as_array().map(Vec::len))
            .unwrap_or(1);
        let ids: Vec<&str> = std::iter::repeat_n(SENT_EVENT_ID, count).collect();
        return axum::Json(json!({ "ids": ids, "status": 200 })).into_response();
    }
    (StatusCode::NOT_FOUND, "not found").into_response()
}

/// The Rust app and the JS oracle, configured identically, plus the mock API.
pub struct Pair {
    pub rust: String,
    pub js: String,
    pub api: String,
    captured: Arc<Mutex<Vec<Captured>>>,
    _node: Mutex<Child>,
}

impl Pair {
    pub fn captured(&self) -> Vec<Captured> {
        self.captured.lock().expect("capture lock").clone()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Cloud,
    Dev,
}

pub fn pair(mode: Mode) -> &'static Pair {
    static CLOUD: OnceLock<Pair> = OnceLock::new();
    static DEV: OnceLock<Pair> = OnceLock::new();
    match mode {
        Mode::Cloud => CLOUD.get_or_init(|| start_pair(Mode::Cloud)),
        Mode::Dev => DEV.get_or_init(|| start_pair(Mode::Dev)),
    }
}

fn env_for(mode: Mode, api: &str) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("INNGEST_BASE_URL", api.to_owned()),
        ("INNGEST_EVENT_KEY", EVENT_KEY.to_owned()),
    ];
    match mode {
        Mode::Cloud => {
            env.push(("INNGEST_SIGNING_KEY", KEY.to_owned()));
            env.push(("INNGEST_SIGNING_KEY_FALLBACK", FALLBACK.to_owned()));
        }
        Mode::Dev => env.push(("INNGEST_DEV", "1".to_owned())),
    }
    env
}

fn start_pair(mode: Mode) -> Pair {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let captured = Arc::new(Mutex::new(Vec::new()));
    let state = MockState {
        captured: captured.clone(),
    };
    let (tx, rx) = std::sync::mpsc::channel::<(SocketAddr, SocketAddr)>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let api_addr = api_listener.local_addr().expect("addr");
            let api_app = Router::new().fallback(mock_api).with_state(state);
            tokio::spawn(async move { axum::serve(api_listener, api_app).await });

            let api = format!("http://{api_addr}/");
            let env: HashMap<&str, String> = env_for(mode, &api).into_iter().collect();
            let settings = InngestSettings::from_lookup(|k| env.get(k).cloned());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            // The JS SDK syncs the URL the request reached; this SDK only a configured one
            // (see `out_of_band_sync_registers_the_configured_url_whatever_the_host`).
            let serve_url = format!("http://{addr}/api/inngest").parse().expect("url");
            let handler = ServeHandler::new(app::APP_ID, settings, app::functions())
                .with_serve_url(serve_url);
            tokio::spawn(async move { axum::serve(listener, handler.router()).await });
            tx.send((api_addr, addr)).expect("report addresses");
            std::future::pending::<()>().await;
        });
    });
    let (api_addr, rust_addr) = rx.recv().expect("servers started");
    let api = format!("http://{api_addr}/");
    let (node, js_port) = start_node(&env_for(mode, &api));
    Pair {
        rust: format!("http://{rust_addr}/api/inngest"),
        js: format!("http://127.0.0.1:{js_port}/api/inngest"),
        api,
        captured,
        _node: Mutex::new(node),
    }
}

/// The oracle folder, with its dependencies installed (`npm ci`) once per test process.
pub fn oracle_dir() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| {
            // This file is compiled into the SDK crate's tests and, through `#[path]`, into the
            // service's at the workspace root.
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            let dir = ["tests/js-oracle", "crates/inngest-axum/tests/js-oracle"]
                .into_iter()
                .map(|d| manifest.join(d))
                .find(|d| d.join("server.mjs").exists())
                .expect("the JS oracle lives in the SDK crate's tests/js-oracle");
            if !dir.join("node_modules/inngest").exists() {
                let status = Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(&dir)
                    .stdout(Stdio::null())
                    .status()
                    .expect("npm must be installed to run the JS oracle");
                assert!(status.success(), "npm ci failed in {}", dir.display());
            }
            dir
        })
        .clone()
}

/// Starts the JS oracle with exactly `env` (plus PATH/HOME) and returns it with its port.
pub fn start_node(env: &[(&str, String)]) -> (Child, u16) {
    let dir = oracle_dir();
    let mut cmd = Command::new("node");
    cmd.arg("server.mjs")
        .current_dir(&dir)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
    for var in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .expect("node must be installed to run the JS oracle");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("oracle output");
    let port = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected oracle output {line:?}"));
    (child, port)
}

/// A response, read fully.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

pub fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            // Tests run on separate runtimes; pooled connections must not outlive theirs.
            .pool_max_idle_per_host(0)
            .build()
            .expect("client")
    })
}

pub async fn send(method: &str, url: &str, headers: &[(&str, String)], body: &str) -> Resp {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = http().request(method, url).body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let body = res.text().await.expect("body");
    Resp {
        status,
        headers,
        body,
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn sign(body: &str, key: &str, t: i64) -> String {
    SigningKey::new(key).sign(body.as_bytes(), t)
}

/// A call request as the executor sends it (JCS-canonical, no `ctx.fn_id`).
#[derive(Clone)]
pub struct CallBody {
    pub event: Value,
    pub steps: Value,
    pub stack: Vec<String>,
    pub attempt: u32,
    pub max_attempts: Option<u32>,
    pub die: bool,
}

impl CallBody {
    pub fn new(name: &str, data: Value) -> Self {
        Self {
            event: json!({ "name": name, "data": data, "id": EVENT_ID, "ts": 1_700_000_000_000u64, "user": {} }),
            steps: json!({}),
            stack: Vec::new(),
            attempt: 0,
            max_attempts: None,
            die: false,
        }
    }

    /// Adds a memoized step (raw value as Inngest stores it) in completion order.
    pub fn memo(mut self, hashed: &str, value: Value) -> Self {
        self.steps[hashed] = value;
        self.stack.push(hashed.to_owned());
        self
    }

    pub fn attempt(mut self, attempt: u32, max_attempts: u32) -> Self {
        self.attempt = attempt;
        self.max_attempts = Some(max_attempts);
        self
    }

    pub fn die(mut self) -> Self {
        self.die = true;
        self
    }

    pub fn render(&self) -> String {
        let mut ctx = json!({
            "attempt": self.attempt,
            "disable_immediate_execution": self.die,
            "run_id": RUN_ID,
            "stack": { "current": self.stack.len(), "stack": self.stack },
            "use_api": false,
        });
        if let Some(max) = self.max_attempts {
            ctx["max_attempts"] = json!(max);
        }
        canonical_json(&json!({
            "ctx": ctx,
            "event": self.event,
            "events": [self.event],
            "steps": self.steps,
            "version": 2,
        }))
    }
}

/// Sends the same request to both servers.
pub async fn both(
    pair: &Pair,
    method: &str,
    query: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (Resp, Resp) {
    let rust = send(method, &format!("{}{query}", pair.rust), headers, body).await;
    let js = send(method, &format!("{}{query}", pair.js), headers, body).await;
    (rust, js)
}

/// A signed POST call to both servers.
pub async fn call_both(pair: &Pair, query: &str, body: &CallBody, key: &str) -> (Resp, Resp) {
    let body = body.render();
    let headers = [
        ("content-type", "application/json".to_owned()),
        ("x-inngest-signature", sign(&body, key, now())),
    ];
    both(pair, "POST", query, &headers, &body).await
}

/// Removes what legitimately differs between SDKs: stacks, serialization markers, timings.
pub fn normalize(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "stack" | "__serialized" | "timing"))
                .map(|(k, v)| (k.clone(), normalize(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

fn media_type(value: Option<&str>) -> Option<String> {
    value.map(|v| {
        v.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    })
}

/// Status and the headers that matter must agree; a response signature, when present, must be
/// valid for the given key on both sides.
pub fn assert_same_envelope(label: &str, rust: &Resp, js: &Resp, key: Option<&str>) {
    assert_eq!(
        rust.status, js.status,
        "{label}: status (rust body {})",
        rust.body
    );
    for name in [
        "x-inngest-req-version",
        "x-inngest-sdk-handled",
        "x-inngest-no-retry",
        "retry-after",
        "x-inngest-sync-kind",
    ] {
        assert_eq!(rust.header(name), js.header(name), "{label}: header {name}");
    }
    assert_eq!(
        media_type(rust.header("content-type")),
        media_type(js.header("content-type")),
        "{label}: content-type"
    );
    for name in [
        "x-inngest-sdk",
        "user-agent",
        "x-inngest-framework",
        "x-inngest-signature",
    ] {
        assert_eq!(
            rust.header(name).is_some(),
            js.header(name).is_some(),
            "{label}: presence of {name}"
        );
    }
    if let Some(sig) = rust.header("x-inngest-sdk") {
        assert_eq!(sig, inngest_axum::SDK_IDENT, "{label}: sdk ident");
    }
    if let (Some(key), Some(_)) = (key, js.header("x-inngest-signature")) {
        let key = SigningKey::new(key);
        for (side, resp) in [("rust", rust), ("js", js)] {
            let verified = signature::verify(
                resp.header("x-inngest-signature"),
                resp.body.as_bytes(),
                Some(&key),
                None,
                chrono::Utc::now(),
            );
            assert!(
                verified.is_ok(),
                "{label}: {side} response signature {verified:?}"
            );
        }
    }
}

/// Ops must agree field by field; Rust may add `opts.duration` to Sleep and `opts.event` to
/// WaitForEvent (the server reads them first), each equal to `name`.
pub fn assert_same_ops(label: &str, rust: &Resp, js: &Resp) {
    let ours = normalize(&rust.json());
    let theirs = normalize(&js.json());
    let (Some(ours), Some(theirs)) = (ours.as_array(), theirs.as_array()) else {
        panic!(
            "{label}: expected op arrays, got {} / {}",
            rust.body, js.body
        );
    };
    assert_eq!(
        ours.len(),
        theirs.len(),
        "{label}: op count\n{}\n{}",
        rust.body,
        js.body
    );
    for (o, t) in ours.iter().zip(theirs) {
        for field in [
            "id",
            "op",
            "name",
            "displayName",
            "userland",
            "data",
            "error",
        ] {
            assert_eq!(
                o.get(field),
                t.get(field),
                "{label}: op field {field}\n{o}\n{t}"
            );
        }
        let empty = serde_json::Map::new();
        let o_opts = o["opts"].as_object().unwrap_or(&empty);
        let t_opts = t["opts"].as_object().unwrap_or(&empty);
        for (k, v) in t_opts {
            assert_eq!(o_opts.get(k), Some(v), "{label}: opts.{k}");
        }
        for (k, v) in o_opts {
            if t_opts.contains_key(k) {
                continue;
            }
            let allowed = matches!(
                (o["op"].as_str(), k.as_str()),
                (Some("Sleep"), "duration") | (Some("WaitForEvent"), "event")
            );
            assert!(allowed, "{label}: unexpected opts.{k}");
            assert_eq!(Some(v), o.get("name"), "{label}: opts.{k} must equal name");
        }
    }
}

/// Bodies must be equal once stacks and markers are removed.
pub fn assert_same_json(label: &str, rust: &Resp, js: &Resp) {
    assert_eq!(
        normalize(&rust.json()),
        normalize(&js.json()),
        "{label}: body\n{}\n{}",
        rust.body,
        js.body
    );
}
