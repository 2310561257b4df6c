//! The serve endpoint: `GET` introspection, `PUT` sync, `POST` calls, `405` otherwise.
//!
//! The body is read as raw bytes and the signature is verified before anything parses it.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{CONTENT_TYPE, USER_AGENT};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::any;
use futures::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};

use super::client::{ApiClient, EventClient, LazyHttp};
use super::execution::{Call, CallOutcome, Retriability};
use super::function::{FAILURE_SUFFIX, Function, HandlerFn};
use super::headers;
use super::protocol::{CallRequest, Event, INTROSPECTION_SCHEMA_VERSION, RegisterReply};
use super::settings::{DEFAULT_SERVE_PATH, InngestSettings, Mode};
use super::signature::{self, Clock, KeyUsed, VerifyError, hash_event_key};
use super::{FRAMEWORK, SDK_IDENT, SDK_LANGUAGE, SDK_VERSION};

/// Largest request body accepted; bigger runs arrive trimmed with `ctx.use_api`.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Default keep-alive interval of streamed responses (JS uses 3 s).
const STREAM_HEARTBEAT: Duration = Duration::from_secs(3);
/// Out-of-band syncs per minute in cloud mode: anyone may ask for one (as in every SDK), and
/// each one is a call to Inngest with the signing key.
pub const CLOUD_SYNCS_PER_MINUTE: u32 = 5;
/// In dev mode the dev server itself asks every 5 seconds (its default `--poll-interval`).
pub const DEV_SYNCS_PER_MINUTE: u32 = 30;

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

#[derive(Clone)]
struct Inner {
    app_id: String,
    settings: InngestSettings,
    functions: Vec<Function>,
    handlers: HashMap<String, HandlerFn>,
    route_path: String,
    /// Where Inngest reaches the app, reported by out-of-band syncs. Never taken from a request:
    /// an unsigned `PUT` with `Host: attacker.example` would register the app there.
    serve_url: Option<url::Url>,
    /// The functions run on an executor in this process: a `PUT` has nothing to register.
    local_executor: bool,
    sync_limit: Arc<SyncLimit>,
    clock: Clock,
    heartbeat: Duration,
    events: EventClient,
    api: ApiClient,
}

/// At most `per_minute` out-of-band syncs in any minute.
#[derive(Debug)]
struct SyncLimit {
    per_minute: u32,
    recent: Mutex<VecDeque<Instant>>,
}

impl SyncLimit {
    fn new(per_minute: u32) -> Self {
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

/// Serves a set of functions over the Inngest protocol.
#[derive(Clone)]
pub struct ServeHandler {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ServeHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeHandler")
            .field("app_id", &self.inner.app_id)
            .field("mode", &self.inner.settings.mode())
            .field("functions", &self.inner.functions.len())
            .finish_non_exhaustive()
    }
}

/// A response before the identity headers and the signature are added.
struct Reply {
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: StatusCode, body: &Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn unauthorized() -> Self {
        Self::json(
            StatusCode::UNAUTHORIZED,
            &json!({ "message": "Unauthorized" }),
        )
    }

    fn internal(message: impl Into<String>) -> Self {
        Self::json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({ "type": "internal", "name": "Error", "message": message.into() }),
        )
    }
}

/// The parts of a request the handler looks at.
struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn query(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.uri.query().unwrap_or_default().as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty())
    }
}

/// Signature check of one request: `Ok(None)` when not required (dev mode).
type Validation = Result<Option<KeyUsed>, VerifyError>;

impl ServeHandler {
    /// Serves `functions` for the app `app_id` with the given settings.
    pub fn new(
        app_id: impl Into<String>,
        settings: InngestSettings,
        functions: Vec<Function>,
    ) -> Self {
        let app_id = app_id.into();
        let mut handlers = HashMap::new();
        for f in &functions {
            let id = f.composite_id(&app_id);
            if let Some(h) = f.failure_handler() {
                handlers.insert(format!("{id}{FAILURE_SUFFIX}"), h.clone());
            }
            handlers.insert(id, f.handler_fn().clone());
        }
        let http = LazyHttp::default();
        let serve_url = configured_serve_url(&settings);
        let syncs_per_minute = match settings.mode() {
            Mode::Cloud => CLOUD_SYNCS_PER_MINUTE,
            Mode::Dev => DEV_SYNCS_PER_MINUTE,
        };
        Self {
            inner: Arc::new(Inner {
                // One client for both, built when first needed.
                events: EventClient::with_http(&settings, http.clone()),
                api: ApiClient::new(&settings, http),
                app_id,
                settings,
                functions,
                handlers,
                route_path: DEFAULT_SERVE_PATH.to_owned(),
                serve_url,
                local_executor: false,
                sync_limit: Arc::new(SyncLimit::new(syncs_per_minute)),
                clock: Clock::system(),
                heartbeat: STREAM_HEARTBEAT,
            }),
        }
    }

    fn update(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        f(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Where [`ServeHandler::router`] listens (default `/api/inngest`).
    pub fn with_route_path(self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.update(|i| i.route_path = path)
    }

    /// The URL out-of-band syncs register (e.g. `APP_URL` + `/api/inngest`). Without it, and
    /// without `INNGEST_SERVE_ORIGIN`, an out-of-band `PUT` cannot sync: unlike the official
    /// SDKs, the URL is never rebuilt from the request's `Host`, which anyone can forge.
    pub fn with_serve_url(self, url: url::Url) -> Self {
        self.update(|i| i.serve_url = Some(url))
    }

    /// Out-of-band syncs allowed per minute; beyond that a `PUT` answers 429.
    pub fn with_sync_limit(self, per_minute: u32) -> Self {
        self.update(|i| i.sync_limit = Arc::new(SyncLimit::new(per_minute)))
    }

    /// The functions run on an executor in this process, which registered them directly: a
    /// `PUT` answers at once and calls nobody.
    pub fn with_local_executor(self) -> Self {
        self.update(|i| i.local_executor = true)
    }

    /// The clock used for signature windows and response signatures.
    pub fn with_clock(self, clock: Clock) -> Self {
        self.update(|i| i.clock = clock)
    }

    /// How often a streamed response (`INNGEST_STREAMING`) sends a keep-alive space.
    pub fn with_stream_heartbeat(self, every: Duration) -> Self {
        self.update(|i| i.heartbeat = every)
    }

    /// The event client used by `step.send_event` (e.g. one with a short test backoff).
    pub fn with_event_client(self, client: EventClient) -> Self {
        self.update(|i| i.events = client)
    }

    /// The app id functions are registered under.
    pub fn app_id(&self) -> &str {
        &self.inner.app_id
    }

    /// The settings this handler was built with.
    pub fn settings(&self) -> &InngestSettings {
        &self.inner.settings
    }

    /// The functions this handler serves.
    pub fn functions(&self) -> &[Function] {
        &self.inner.functions
    }

    /// A router (state `()`) answering every method at the route path.
    pub fn router(&self) -> Router {
        Router::new()
            .route(&self.inner.route_path, any(serve))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self.clone())
    }

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
        let mut url = self.inner.settings.reported_url(reached);
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !matches!(k.as_ref(), "deployId" | "fnId" | "stepId" | "probe"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.set_query(None);
        if !kept.is_empty() {
            url.query_pairs_mut().extend_pairs(kept);
        }
        url
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

    /// Handles one request to the serve endpoint. Exposed so that an in-process executor or a
    /// benchmark can drive it without a socket.
    pub async fn handle(
        &self,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let req = Request {
            method,
            uri,
            headers,
            body,
        };
        let validation = self.validate(&req);
        // Unverified callers get their 401 directly rather than a 201 carrying SDK headers.
        let streaming = self.inner.settings.streaming()
            && req.method == Method::POST
            && req.query("probe").is_none()
            && validation.is_ok();
        if streaming {
            return self.stream(req, validation);
        }
        let reply = self.action(&req, &validation).await;
        self.finish(&req, &validation, reply)
    }

    fn validate(&self, req: &Request) -> Validation {
        let settings = &self.inner.settings;
        if settings.mode() != Mode::Cloud {
            return Ok(None);
        }
        signature::verify(
            req.header(headers::SIGNATURE),
            &req.body,
            settings.signing_key(),
            settings.signing_key_fallback(),
            self.inner.clock.now(),
        )
        .map(Some)
    }

    async fn action(&self, req: &Request, validation: &Validation) -> Reply {
        let settings = &self.inner.settings;
        if settings.mode() == Mode::Cloud && settings.signing_key().is_none() {
            tracing::error!(
                "in cloud mode without INNGEST_SIGNING_KEY; set INNGEST_DEV=1 for local development"
            );
            return Reply::json(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({ "code": "internal_server_error" }),
            );
        }
        if settings.mode() == Mode::Cloud && !settings.enable_unauthed_sync() && validation.is_err()
        {
            return Reply::unauthorized();
        }
        match req.method {
            Method::POST => self.post(req, validation).await,
            Method::GET => {
                if settings.mode() == Mode::Cloud && validation.is_err() {
                    return Reply::unauthorized();
                }
                Reply::json(StatusCode::OK, &self.introspection(req, validation))
            }
            Method::PUT => self.put(req, validation).await,
            _ => {
                tracing::warn!(method = %req.method, "unexpected method on the serve endpoint");
                Reply::json(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &json!({ "message": "Method not allowed" }),
                )
            }
        }
    }

    async fn post(&self, req: &Request, validation: &Validation) -> Reply {
        if req.body.is_empty() {
            tracing::error!("call request without a body");
            return Reply::unauthorized();
        }
        if let Err(e) = validation {
            tracing::warn!(error = %e, "rejected call request");
            return Reply::unauthorized();
        }
        if let Some(probe) = req.query("probe") {
            if probe == "trust" {
                return Reply {
                    status: StatusCode::OK,
                    headers: Vec::new(),
                    body: Vec::new(),
                };
            }
            return Reply::json(
                StatusCode::BAD_REQUEST,
                &json!({ "name": "Error", "message": format!("Unknown probe \"{probe}\"") }),
            );
        }
        let Some(fn_id) = req.query("fnId") else {
            return Reply::internal("No function ID found in async request");
        };
        let Some((function_id, handler)) = self.lookup(&fn_id) else {
            return Reply::internal(format!(
                "Function \"{fn_id}\" was not found in this app; is the app synced correctly?"
            ));
        };
        let step_id = req
            .query("stepId")
            .or_else(|| req.header(headers::STEP_ID).map(str::to_owned));
        let mut request: CallRequest = match serde_json::from_slice(&req.body) {
            Ok(r) => r,
            Err(e) => return Reply::internal(format!("Failed to parse the call request: {e}")),
        };
        if (request.ctx.use_api || request.use_api)
            && let Err(message) = self.load_trimmed_payload(&mut request).await
        {
            return Reply::internal(message);
        }
        let call = Call {
            app_id: &self.inner.app_id,
            function_id: &function_id,
            handler: &handler,
            request: &request,
            step_id: step_id.as_deref(),
            events: Some(self.inner.events.clone()),
        };
        outcome_reply(call.run().await)
    }

    /// Finds a handler by composite id, or by bare id (older servers).
    fn lookup(&self, fn_id: &str) -> Option<(String, HandlerFn)> {
        if let Some(h) = self.inner.handlers.get(fn_id) {
            return Some((fn_id.to_owned(), h.clone()));
        }
        let composite = format!("{}-{fn_id}", self.inner.app_id);
        self.inner
            .handlers
            .get(&composite)
            .map(|h| (composite, h.clone()))
    }

    async fn load_trimmed_payload(&self, request: &mut CallRequest) -> Result<(), String> {
        let (batch, actions) = self.inner.api.run_payload(&request.ctx.run_id).await?;
        let events: Vec<Event> =
            serde_json::from_value(batch).map_err(|e| format!("invalid run events: {e}"))?;
        if let Some(first) = events.first() {
            request.event = first.clone();
        }
        request.events = events;
        request.steps = match actions {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => return Err(format!("invalid run steps: {other}")),
        };
        Ok(())
    }

    async fn put(&self, req: &Request, validation: &Validation) -> Reply {
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

    fn introspection(&self, req: &Request, validation: &Validation) -> Value {
        let settings = &self.inner.settings;
        let function_count: usize = self
            .inner
            .functions
            .iter()
            .map(|f| 1 + usize::from(f.failure_handler().is_some()))
            .sum();
        let mut body = Map::new();
        body.insert("function_count".into(), json!(function_count));
        body.insert(
            "has_event_key".into(),
            json!(settings.event_key().is_some()),
        );
        body.insert(
            "has_signing_key".into(),
            json!(settings.signing_key().is_some()),
        );
        body.insert(
            "has_signing_key_fallback".into(),
            json!(settings.signing_key_fallback().is_some()),
        );
        body.insert("mode".into(), json!(settings.mode()));
        body.insert("schema_version".into(), json!(INTROSPECTION_SCHEMA_VERSION));
        let authenticated = settings.mode() == Mode::Cloud && matches!(validation, Ok(Some(_)));
        if !authenticated {
            let attempted =
                settings.mode() == Mode::Cloud && req.header(headers::SIGNATURE).is_some();
            body.insert(
                "authentication_succeeded".into(),
                if attempted { json!(false) } else { Value::Null },
            );
            return Value::Object(body);
        }
        let short_hash = |key: Option<&signature::SigningKey>| {
            key.map(|k| {
                let hashed = k.hashed();
                hashed[k.prefix().len()..]
                    .chars()
                    .take(12)
                    .collect::<String>()
            })
        };
        body.insert("authentication_succeeded".into(), json!(true));
        body.insert("api_origin".into(), json!(settings.api_base_url()));
        body.insert("app_id".into(), json!(self.inner.app_id));
        body.insert("capabilities".into(), capabilities());
        body.insert("env".into(), json!(settings.env()));
        body.insert(
            "event_api_origin".into(),
            json!(settings.event_api_base_url()),
        );
        body.insert(
            "event_key_hash".into(),
            json!(settings.event_key().map(|k| hash_event_key(k.expose()))),
        );
        body.insert(
            "extra".into(),
            json!({ "is_streaming": settings.streaming() }),
        );
        body.insert("framework".into(), json!(FRAMEWORK));
        body.insert("sdk_language".into(), json!(SDK_LANGUAGE));
        body.insert("sdk_version".into(), json!(SDK_VERSION));
        body.insert("serve_origin".into(), json!(settings.serve_origin()));
        body.insert("serve_path".into(), json!(settings.serve_path()));
        body.insert(
            "signing_key_fallback_hash".into(),
            json!(short_hash(settings.signing_key_fallback())),
        );
        body.insert(
            "signing_key_hash".into(),
            json!(short_hash(settings.signing_key())),
        );
        Value::Object(body)
    }

    /// Adds identity headers, forwards trace headers and signs the body with the key that
    /// verified the request. Unverified requests get only the bare headers (no SDK identity).
    fn finish_headers(&self, req: &Request, validation: &Validation, reply: &Reply) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(
            HeaderName::from_static(headers::SDK_HANDLED),
            HeaderValue::from_static("true"),
        );
        for (name, value) in &reply.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(HeaderName::from_static(name), v);
            }
        }
        if validation.is_err() {
            h.retain_inngest_safe();
            return h;
        }
        h.insert(USER_AGENT, HeaderValue::from_static(SDK_IDENT));
        h.insert(
            HeaderName::from_static(headers::SDK),
            HeaderValue::from_static(SDK_IDENT),
        );
        h.insert(
            HeaderName::from_static(headers::FRAMEWORK),
            HeaderValue::from_static(FRAMEWORK),
        );
        h.insert(
            HeaderName::from_static(headers::REQ_VERSION),
            HeaderValue::from_static(headers::EXECUTION_VERSION),
        );
        let settings = &self.inner.settings;
        if let Some(v) = settings.env().and_then(|e| HeaderValue::from_str(e).ok()) {
            h.insert(HeaderName::from_static(headers::ENV), v);
        }
        if let Some(v) = settings
            .platform()
            .and_then(|p| HeaderValue::from_str(p).ok())
        {
            h.insert(HeaderName::from_static(headers::PLATFORM), v);
        }
        if let Some(kind) = req.headers.get(headers::SERVER_KIND) {
            h.insert(
                HeaderName::from_static(headers::EXPECTED_SERVER_KIND),
                kind.clone(),
            );
        }
        for name in [headers::TRACEPARENT, headers::TRACESTATE] {
            if let Some(v) = req.headers.get(name) {
                h.insert(HeaderName::from_static(name), v.clone());
            }
        }
        if let Ok(Some(used)) = validation {
            let key = match used {
                KeyUsed::Primary => settings.signing_key(),
                KeyUsed::Fallback => settings.signing_key_fallback(),
            };
            if let Some(key) = key {
                let signed = key.sign(&reply.body, self.inner.clock.now().timestamp());
                if let Ok(v) = HeaderValue::from_str(&signed) {
                    h.insert(HeaderName::from_static(headers::SIGNATURE), v);
                }
            }
        }
        h
    }

    fn finish(&self, req: &Request, validation: &Validation, reply: Reply) -> Response {
        let headers = self.finish_headers(req, validation, &reply);
        let mut response = Response::new(Body::from(reply.body));
        *response.status_mut() = reply.status;
        *response.headers_mut() = headers;
        response
    }

    /// `INNGEST_STREAMING`: answer `201` at once, send a space every few seconds, then the real
    /// response as `{"status","headers","body"}`.
    fn stream(&self, req: Request, validation: Validation) -> Response {
        let (mut tx, rx) = futures::channel::mpsc::channel::<Bytes>(4);
        let mut outer = HeaderMap::new();
        let this = self.clone();
        let ok_validation: Validation = Ok(None);
        let outer_reply = Reply {
            status: StatusCode::CREATED,
            headers: Vec::new(),
            body: Vec::new(),
        };
        for (k, v) in &this.finish_headers(&req, &ok_validation, &outer_reply) {
            outer.insert(k.clone(), v.clone());
        }
        tokio::spawn(async move {
            let work = async {
                let reply = this.action(&req, &validation).await;
                let headers = this.finish_headers(&req, &validation, &reply);
                let header_map: Map<String, Value> = headers
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str().to_owned(), json!(v.to_str().ok()?))))
                    .collect();
                json!({
                    "status": reply.status.as_u16(),
                    "headers": header_map,
                    "body": String::from_utf8_lossy(&reply.body),
                    "version": 2,
                })
            };
            tokio::pin!(work);
            let mut beat = tokio::time::interval(this.inner.heartbeat);
            beat.tick().await;
            let final_value = loop {
                tokio::select! {
                    value = &mut work => break value,
                    _ = beat.tick() => {
                        if tx.send(Bytes::from_static(b" ")).await.is_err() {
                            return;
                        }
                    }
                }
            };
            let _ = tx
                .send(Bytes::from(
                    serde_json::to_vec(&final_value).unwrap_or_default(),
                ))
                .await;
        });
        let mut response = Response::new(Body::from_stream(rx.map(Ok::<_, Infallible>)));
        *response.status_mut() = StatusCode::CREATED;
        *response.headers_mut() = outer;
        response
    }
}

trait RetainSafe {
    fn retain_inngest_safe(&mut self);
}

impl RetainSafe for HeaderMap {
    /// Drops `x-inngest-*` (except `x-inngest-sdk-handled`) and `user-agent` so that an
    /// unverified caller learns nothing about the SDK.
    fn retain_inngest_safe(&mut self) {
        let drop: Vec<HeaderName> = self
            .keys()
            .filter(|k| {
                let name = k.as_str();
                name == USER_AGENT.as_str()
                    || (name.starts_with("x-inngest-") && name != headers::SDK_HANDLED)
            })
            .cloned()
            .collect();
        for name in drop {
            self.remove(name);
        }
    }
}

/// `INNGEST_SERVE_ORIGIN` + (`INNGEST_SERVE_PATH` or the default path), when the origin is set.
fn configured_serve_url(settings: &InngestSettings) -> Option<url::Url> {
    let origin = settings.serve_origin()?;
    let base = if origin.contains("://") {
        origin.to_owned()
    } else {
        format!("http://{origin}")
    };
    let path = settings.serve_path().unwrap_or(DEFAULT_SERVE_PATH);
    url::Url::parse(&base).ok()?.join(path).ok()
}

fn capabilities() -> Value {
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

fn no_retry(r: &Retriability) -> &'static str {
    match r {
        Retriability::NoRetry => "true",
        Retriability::Retry | Retriability::RetryAfter(_) => "false",
    }
}

fn outcome_reply(outcome: CallOutcome) -> Reply {
    match outcome {
        CallOutcome::Complete(value) => Reply::json(StatusCode::OK, &value),
        CallOutcome::StepsFound(ops) => Reply::json(StatusCode::PARTIAL_CONTENT, &json!(ops)),
        CallOutcome::StepRan { op, retry } => {
            let mut reply = Reply::json(StatusCode::PARTIAL_CONTENT, &json!([op]));
            if let Some(r) = retry {
                reply = reply.header(headers::NO_RETRY, no_retry(&r));
                if let Retriability::RetryAfter(after) = r {
                    reply = reply.header(headers::RETRY_AFTER, after);
                }
            }
            reply
        }
        CallOutcome::Failed {
            error,
            retriability,
        } => {
            let status = match retriability {
                Retriability::NoRetry => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let mut reply = Reply::json(status, &json!(error))
                .header(headers::NO_RETRY, no_retry(&retriability));
            if let Retriability::RetryAfter(after) = retriability {
                reply = reply.header(headers::RETRY_AFTER, after);
            }
            reply
        }
        CallOutcome::StepNotFound { body, .. } => {
            Reply::json(StatusCode::INTERNAL_SERVER_ERROR, &body).header(headers::NO_RETRY, "false")
        }
    }
}

async fn serve(
    State(handler): State<ServeHandler>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handler.handle(method, uri, headers, body).await
}
