//! The executor seen as an Inngest server by an SDK: the event API (`POST /e/{key}`), the
//! out-of-band register endpoint (`POST /fn/register`), and [`Executor::sync`], which asks a
//! serve endpoint to sync the way the dev server (`PUT`) or Inngest Cloud (signed in-band `PUT`)
//! does. Mount [`router`] where the SDK's API and event base URLs point.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::routing::post;
use serde_json::{Value, json};
use thiserror::Error;

use super::events::seeded_id;
use super::function::RegisterError;
use super::service::{Executor, PublishError, ServerKind};
use super::transport::TransportError;
use inngest_axum::headers;
use inngest_axum::signature::canonical_json;

pub fn router(executor: Executor) -> Router {
    Router::new()
        .route("/e/{key}", post(send_events))
        .route("/fn/register", post(register))
        .with_state(executor)
}

fn event_reply(
    status: StatusCode,
    ids: Vec<String>,
    error: Option<String>,
) -> (StatusCode, Json<Value>) {
    let mut body = json!({"ids": ids, "status": status.as_u16()});
    if let Some(e) = error {
        body["error"] = Value::String(e);
    }
    (status, Json(body))
}

async fn send_events(
    State(executor): State<Executor>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return event_reply(
                StatusCode::BAD_REQUEST,
                vec![],
                Some(format!("invalid JSON: {e}")),
            );
        }
    };
    let mut events = match parsed {
        Value::Array(a) => a,
        obj @ Value::Object(_) => vec![obj],
        _ => {
            return event_reply(
                StatusCode::BAD_REQUEST,
                vec![],
                Some("expected an event or an array of events".into()),
            );
        }
    };
    if let Some(seed) = headers
        .get(headers::EVENT_ID_SEED)
        .and_then(|v| v.to_str().ok())
    {
        for (i, ev) in events.iter_mut().enumerate() {
            if let Value::Object(m) = ev {
                let has_id = m
                    .get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty());
                if !has_id {
                    m.insert("id".into(), Value::String(seeded_id(seed, i)));
                }
            }
        }
    }
    match executor.publish(events).await {
        Ok(ids) => event_reply(StatusCode::OK, ids, None),
        Err(e @ PublishError::InvalidEvent { .. }) => {
            event_reply(StatusCode::BAD_REQUEST, vec![], Some(e.to_string()))
        }
        Err(PublishError::Store(e)) => {
            tracing::error!(error = %e, "cannot store events");
            event_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                vec![],
                Some("cannot store events".into()),
            )
        }
    }
}

async fn register(
    State(executor): State<Executor>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let ours = executor.inner.options.server_kind.as_str();
    if let Some(expected) = headers
        .get(headers::EXPECTED_SERVER_KIND)
        .and_then(|v| v.to_str().ok())
        && !expected.is_empty()
        && expected != ours
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": format!("Expected server kind {expected}, got {ours}")})),
        );
    }
    if let Some(key) = executor.inner.options.signing_key.as_ref() {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // SDKs send the key hashed; an operator's tooling may send it as configured.
        let ok = !given.is_empty() && (given == key.expose() || given == key.hashed());
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "your signing key is invalid"})),
            );
        }
    }
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("invalid JSON: {e}")})),
            );
        }
    };
    let app = parsed
        .get("appName")
        .or_else(|| parsed.get("app_id"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if app.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "appName is required"})),
        );
    }
    let functions = parsed
        .get("functions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match executor.register(&app, functions).await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"ok": true, "modified": true, "app_id": app})),
        ),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": e.to_string()})),
        ),
    }
}

#[derive(Debug, Error)]
pub enum SyncError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("the serve endpoint answered {status}: {body}")]
    Rejected { status: u16, body: String },
    #[error(transparent)]
    Register(#[from] RegisterError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The SDK answered with its functions (in-band); they are registered.
    InBand { app_id: String, functions: usize },
    /// The SDK acknowledged and registered itself through `POST /fn/register`.
    OutOfBand,
}

impl Executor {
    /// Asks the serve endpoint at `url` to sync, as the dev server does with a `PUT`. With a
    /// signing key the request is a signed in-band sync and the functions in the answer are
    /// registered directly.
    pub async fn sync(&self, url: &str) -> Result<SyncOutcome, SyncError> {
        let kind: ServerKind = self.inner.options.server_kind;
        let mut req = Request::builder()
            .method(Method::PUT)
            .uri(url)
            .header(headers::SERVER_KIND, kind.as_str());
        let body = match &self.inner.options.signing_key {
            Some(key) => {
                let body = canonical_json(&json!({"url": url}));
                req = req
                    .header(headers::SYNC_KIND, headers::SYNC_KIND_IN_BAND)
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(
                        headers::SIGNATURE,
                        key.sign(body.as_bytes(), self.now().timestamp()),
                    );
                Bytes::from(body)
            }
            None => Bytes::new(),
        };
        let req = req
            .body(body)
            .map_err(|e| TransportError::InvalidRequest(e.to_string()))?;
        let resp = self.inner.transport.call(req).await?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(SyncError::Rejected {
                status,
                body: String::from_utf8_lossy(resp.body())
                    .chars()
                    .take(500)
                    .collect(),
            });
        }
        let parsed: Value = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
        match (
            parsed.get("functions").and_then(Value::as_array),
            parsed.get("app_id").and_then(Value::as_str),
        ) {
            (Some(functions), Some(app_id)) => {
                self.register(app_id, functions.clone()).await?;
                Ok(SyncOutcome::InBand {
                    app_id: app_id.to_string(),
                    functions: functions.len(),
                })
            }
            _ => Ok(SyncOutcome::OutOfBand),
        }
    }
}
