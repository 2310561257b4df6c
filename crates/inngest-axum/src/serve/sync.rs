//! `PUT` and [`ServeHandler::sync`]: registering the app with Inngest, out of band (this SDK
//! calls Inngest) or in band (the answer carries the registration).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::ServeHandler;
use super::request::{Request, Validation};
use super::response::Reply;
use crate::function::without_params;
use crate::headers;
use crate::protocol::RegisterReply;
use crate::settings::{DEFAULT_SERVE_PATH, InngestSettings};
use crate::{FRAMEWORK, SDK_IDENT, SDK_LANGUAGE, SDK_VERSION};

/// Why an out-of-band sync failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error("invalid URL {0:?}")]
    /// The serve URL or the Inngest API URL is not valid.
    InvalidUrl(String),
    #[error("could not reach Inngest: {0}")]
    /// Inngest could not be reached; the error.
    Transport(String),
    #[error("Inngest refused the sync ({status}): {message}")]
    /// Inngest answered the sync with an error.
    Rejected {
        /// The HTTP status Inngest answered.
        status: u16,
        /// The error Inngest gave, or its body.
        message: String,
    },
}

/// What a successful sync reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// Whether Inngest's copy of the app changed.
    pub modified: bool,
}

/// At most `per_minute` out-of-band syncs in any minute.
#[derive(Debug)]
pub(super) struct SyncLimit {
    per_minute: u32,
    recent: Mutex<VecDeque<Instant>>,
}

impl SyncLimit {
    pub(super) fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            recent: Mutex::new(VecDeque::new()),
        }
    }

    /// Takes a slot, or says how long until one frees up.
    fn admit(&self, now: Instant) -> Result<(), Duration> {
        const WINDOW: Duration = Duration::from_secs(60);
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        while recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            recent.pop_front();
        }
        if recent.len() < self.per_minute as usize {
            recent.push_back(now);
            return Ok(());
        }
        let oldest = recent.front().copied().unwrap_or(now);
        Err(WINDOW.saturating_sub(now.saturating_duration_since(oldest)))
    }
}

impl ServeHandler {
    /// Exactly the `functions` array of the register body, for an app served at `serve_url`.
    pub fn function_configs(&self, serve_url: &str) -> Result<Vec<Value>, SyncError> {
        let url =
            url::Url::parse(serve_url).map_err(|_| SyncError::InvalidUrl(serve_url.into()))?;
        Ok(self.configs(&self.app_url(&url)))
    }

    fn configs(&self, app_url: &url::Url) -> Vec<Value> {
        self.inner
            .functions
            .iter()
            .flat_map(|f| f.configs(&self.inner.app_id, app_url))
            .collect()
    }

    /// The URL reported to Inngest: overrides applied, `deployId` and stale ids removed.
    fn app_url(&self, reached: &url::Url) -> url::Url {
        without_params(
            self.inner.settings.reported_url(reached),
            &["deployId", "fnId", "stepId", "probe"],
        )
    }

    /// Registers the app out of band (`POST {api}/fn/register`), as a dev-server ping would.
    pub async fn sync(&self, serve_url: &str) -> Result<SyncReport, SyncError> {
        let url =
            url::Url::parse(serve_url).map_err(|_| SyncError::InvalidUrl(serve_url.into()))?;
        self.register(&url, None, None).await
    }

    async fn register(
        &self,
        reached: &url::Url,
        deploy_id: Option<&str>,
        server_kind: Option<&str>,
    ) -> Result<SyncReport, SyncError> {
        let app_url = self.app_url(reached);
        let mut body = Map::new();
        body.insert("url".into(), json!(app_url.as_str()));
        body.insert("deployType".into(), json!("ping"));
        body.insert("framework".into(), json!(FRAMEWORK));
        body.insert("appName".into(), json!(self.inner.app_id));
        body.insert("functions".into(), Value::Array(self.configs(&app_url)));
        body.insert("sdk".into(), json!(SDK_IDENT));
        body.insert("v".into(), json!("0.1"));
        if let Some(id) = deploy_id {
            body.insert("deployId".into(), json!(id));
        }
        body.insert("capabilities".into(), capabilities());
        if let Some(v) = self.inner.settings.app_version() {
            body.insert("appVersion".into(), json!(v));
        }
        let body = serde_json::to_vec(&Value::Object(body)).unwrap_or_default();

        let mut register_url = self
            .inner
            .api
            .url("/fn/register")
            .map_err(|e| SyncError::InvalidUrl(e.to_string()))?;
        if let Some(id) = deploy_id {
            register_url.query_pairs_mut().append_pair("deployId", id);
        }
        let response = self
            .inner
            .api
            .send(|http| {
                let mut req = http
                    .post(register_url.as_str())
                    .header(headers::SYNC_KIND, headers::SYNC_KIND_OUT_OF_BAND)
                    .body(body.clone());
                if let Some(kind) = server_kind {
                    req = req.header(headers::EXPECTED_SERVER_KIND, kind);
                }
                req
            })
            .await
            .map_err(|e| SyncError::Transport(e.to_string()))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let reply: RegisterReply = serde_json::from_str(&text).unwrap_or_default();
        if status.is_success() && reply.error.is_none() {
            return Ok(SyncReport {
                modified: reply.modified,
            });
        }
        Err(SyncError::Rejected {
            status: status.as_u16(),
            message: reply
                .error
                .unwrap_or_else(|| format!("Failed to register; status code: {}", status.as_u16())),
        })
    }

    pub(super) async fn put(&self, req: &Request, validation: &Validation) -> Reply {
        if self.inner.local_executor {
            return Reply::json(
                StatusCode::OK,
                &json!({
                    "message": "Nothing to sync: the functions run on the executor in this process",
                    "modified": false,
                }),
            );
        }
        let settings = &self.inner.settings;
        let deploy_id = req.query("deployId").filter(|d| d != "undefined");
        let in_band = settings.allow_in_band_sync()
            && req.header(headers::SYNC_KIND) == Some(headers::SYNC_KIND_IN_BAND);
        if in_band {
            return self.in_band_sync(req, validation);
        }
        let reply = self.out_of_band_sync(req, deploy_id.as_deref()).await;
        reply.header(headers::SYNC_KIND, headers::SYNC_KIND_OUT_OF_BAND)
    }

    /// Registers the configured URL with Inngest, at most a few times a minute. Failures name
    /// no upstream URL: the caller may be anyone, the details go to the log.
    async fn out_of_band_sync(&self, req: &Request, deploy_id: Option<&str>) -> Reply {
        let Some(serve_url) = self.inner.serve_url.clone() else {
            tracing::error!(
                "out-of-band sync asked for, but no serve URL is configured (INNGEST_SERVE_ORIGIN)"
            );
            return Reply::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({
                    "message": "Cannot sync: this app does not know its public URL; set INNGEST_SERVE_ORIGIN",
                    "modified": false,
                }),
            );
        };
        if let Err(wait) = self.inner.sync_limit.admit(Instant::now()) {
            let secs = wait.as_secs().max(1);
            tracing::warn!(
                retry_in_secs = secs,
                "out-of-band sync refused: too many this minute"
            );
            return Reply::json(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({
                    "message": format!("Too many sync requests; retry in {secs} s"),
                    "modified": false,
                }),
            )
            .header(headers::RETRY_AFTER, secs.to_string());
        }
        let server_kind = req.header(headers::SERVER_KIND);
        match self.register(&serve_url, deploy_id, server_kind).await {
            Ok(report) => Reply::json(
                StatusCode::OK,
                &json!({ "message": "Successfully registered", "modified": report.modified }),
            ),
            Err(e) => {
                tracing::error!(error = %e, "out-of-band sync failed");
                let message = match e {
                    SyncError::Rejected { status, message } => {
                        format!("Inngest refused the sync ({status}): {message}")
                    }
                    SyncError::Transport(_) | SyncError::InvalidUrl(_) => {
                        "Could not reach Inngest to sync; the reason is in the app's log".to_owned()
                    }
                };
                Reply::json(
                    StatusCode::BAD_GATEWAY,
                    &json!({ "message": message, "modified": false }),
                )
            }
        }
    }

    fn in_band_sync(&self, req: &Request, validation: &Validation) -> Reply {
        if req.body.is_empty() {
            return Reply::json(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({ "name": "Error", "message": "Missing request body when syncing" }),
            );
        }
        if let Err(e) = validation {
            tracing::warn!(error = %e, "rejected in-band sync");
            return Reply::unauthorized();
        }
        let url = match parse_in_band_body(&req.body) {
            Ok(url) => url,
            Err(message) => {
                return Reply::json(
                    StatusCode::BAD_REQUEST,
                    &json!({ "code": "invalid_request", "message": message }),
                );
            }
        };
        let app_url = self.app_url(&url);
        let inspection = self.introspection(req, validation);
        let authenticated = inspection["authentication_succeeded"] == json!(true);
        let mut body = Map::new();
        body.insert("app_id".into(), json!(self.inner.app_id));
        if let Some(v) = self.inner.settings.app_version() {
            body.insert("appVersion".into(), json!(v));
        }
        body.insert("capabilities".into(), capabilities());
        body.insert("env".into(), json!(self.inner.settings.env()));
        body.insert("framework".into(), json!(FRAMEWORK));
        body.insert("functions".into(), Value::Array(self.configs(&app_url)));
        body.insert("inspection".into(), inspection);
        if let Some(p) = self.inner.settings.platform() {
            body.insert("platform".into(), json!(p));
        }
        body.insert("sdk_author".into(), json!("community"));
        let (language, version) = if authenticated {
            (SDK_LANGUAGE, SDK_VERSION)
        } else {
            ("", "")
        };
        body.insert("sdk_language".into(), json!(language));
        body.insert("sdk_version".into(), json!(version));
        body.insert("sdk".into(), json!(SDK_IDENT));
        body.insert("url".into(), json!(app_url.as_str()));
        Reply::json(StatusCode::OK, &Value::Object(body))
            .header(headers::SYNC_KIND, headers::SYNC_KIND_IN_BAND)
    }
}

/// `INNGEST_SERVE_ORIGIN` + (`INNGEST_SERVE_PATH` or the default path), when the origin is set.
pub(super) fn configured_serve_url(settings: &InngestSettings) -> Option<url::Url> {
    let origin = settings.serve_origin()?;
    let base = if origin.contains("://") {
        origin.to_owned()
    } else {
        format!("http://{origin}")
    };
    let path = settings.serve_path().unwrap_or(DEFAULT_SERVE_PATH);
    url::Url::parse(&base).ok()?.join(path).ok()
}

pub(super) fn capabilities() -> Value {
    json!({ "trust_probe": "v1" })
}

fn parse_in_band_body(body: &[u8]) -> Result<url::Url, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = value.as_object().ok_or("expected an object")?;
    if let Some(extra) = obj.keys().find(|k| k.as_str() != "url") {
        return Err(format!("unrecognized key {extra:?}"));
    }
    let url = obj
        .get("url")
        .and_then(Value::as_str)
        .ok_or("\"url\" must be a string")?;
    url::Url::parse(url).map_err(|e| format!("invalid url: {e}"))
}
