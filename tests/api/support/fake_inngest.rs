//! A fake Inngest API on 127.0.0.1 (random port): `POST /fn/register` and `POST /e/{key}`, the
//! two endpoints an app in dev or cloud mode calls. It records every request and can be put into
//! an outage (503 on both) and back.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Clone, Debug)]
pub struct Registration {
    pub authorization: Option<String>,
    pub sync_kind: Option<String>,
    pub body: Value,
    /// Whether the fake accepted it.
    pub accepted: bool,
}

#[derive(Clone, Debug)]
pub struct EventPost {
    pub at: Instant,
    pub key: String,
    pub events: Vec<Value>,
    pub accepted: bool,
}

#[derive(Default)]
struct Inner {
    down: AtomicBool,
    /// Register calls to refuse (503) before accepting.
    refuse_registrations: AtomicUsize,
    registrations: Mutex<Vec<Registration>>,
    posts: Mutex<Vec<EventPost>>,
}

pub struct FakeInngest {
    pub base_url: String,
    inner: Arc<Inner>,
    _server: super::Served,
}

impl FakeInngest {
    pub async fn start() -> FakeInngest {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/fn/register", post(register))
            .route("/e/{key}", post(event))
            .with_state(inner.clone());
        let server = super::Served::start(app).await;
        FakeInngest {
            base_url: server.url(),
            inner,
            _server: server,
        }
    }

    /// Answer 503 to everything until [`FakeInngest::recover`].
    pub fn go_down(&self) {
        self.inner.down.store(true, Ordering::SeqCst);
    }

    pub fn recover(&self) {
        self.inner.down.store(false, Ordering::SeqCst);
    }

    pub fn refuse_registrations(&self, n: usize) {
        self.inner.refuse_registrations.store(n, Ordering::SeqCst);
    }

    pub fn registrations(&self) -> Vec<Registration> {
        self.inner
            .registrations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn posts(&self) -> Vec<EventPost> {
        self.inner
            .posts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Events the fake accepted, in arrival order.
    pub fn accepted_events(&self) -> Vec<Value> {
        self.posts()
            .into_iter()
            .filter(|p| p.accepted)
            .flat_map(|p| p.events)
            .collect()
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"status": 503, "error": "fake outage"})),
    )
        .into_response()
}

async fn register(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let refused = inner.down.load(Ordering::SeqCst)
        || inner
            .refuse_registrations
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    inner
        .registrations
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Registration {
            authorization: header(&headers, "authorization"),
            sync_kind: header(&headers, "x-inngest-sync-kind"),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            accepted: !refused,
        });
    if refused {
        return unavailable();
    }
    axum::Json(json!({"ok": true, "modified": true, "app_id": uuid::Uuid::new_v4(), "sync_id": uuid::Uuid::new_v4()}))
        .into_response()
}

async fn event(State(inner): State<Arc<Inner>>, Path(key): Path<String>, body: Bytes) -> Response {
    let events = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(events)) => events,
        Ok(single @ Value::Object(_)) => vec![single],
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(
                    json!({"status": 400, "error": "body is not an event or an array of events"}),
                ),
            )
                .into_response();
        }
    };
    let accepted = !inner.down.load(Ordering::SeqCst);
    let ids: Vec<Value> = events
        .iter()
        .map(|e| e.get("id").cloned().unwrap_or(Value::Null))
        .collect();
    inner
        .posts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(EventPost {
            at: Instant::now(),
            key,
            events,
            accepted,
        });
    if !accepted {
        return unavailable();
    }
    axum::Json(json!({"ids": ids, "status": 200})).into_response()
}
