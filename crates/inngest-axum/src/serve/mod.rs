//! The serve endpoint: `GET` introspection, `PUT` sync, `POST` calls, `405` otherwise.
//!
//! The body is read as raw bytes and the signature is verified before anything parses it.

mod call;
mod introspection;
mod request;
mod response;
mod sync;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::any;
use serde_json::json;

use super::client::{ApiClient, EventClient, LazyHttp};
use super::function::{FAILURE_SUFFIX, Function, HandlerFn};
use super::settings::{DEFAULT_SERVE_PATH, InngestSettings, Mode};
use super::signature::Clock;
use request::{Request, Validation};
use response::Reply;
use sync::{SyncLimit, configured_serve_url};

pub use sync::{SyncError, SyncReport};

/// Largest request body accepted; bigger runs arrive trimmed with `ctx.use_api`.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Default keep-alive interval of streamed responses (JS uses 3 s).
const STREAM_HEARTBEAT: Duration = Duration::from_secs(3);
/// Out-of-band syncs per minute in cloud mode: anyone may ask for one (as in every SDK), and
/// each one is a call to Inngest with the signing key.
pub const CLOUD_SYNCS_PER_MINUTE: u32 = 5;
/// In dev mode the dev server itself asks every 5 seconds (its default `--poll-interval`).
pub const DEV_SYNCS_PER_MINUTE: u32 = 30;

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
        self.respond(req, validation).await
    }

    /// Handles a call from code in this process, an embedded executor: its POSTs are trusted
    /// as they come, so no signature is checked or added (an HMAC of each body both ways,
    /// and the executor's canonical body, are most of a step's protocol cost). Other methods
    /// are checked as in [`ServeHandler::handle`]. Never hand a network request to this.
    pub async fn handle_in_process(
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
        let validation = if req.method == Method::POST {
            Ok(None)
        } else {
            self.validate(&req)
        };
        self.respond(req, validation).await
    }

    async fn respond(&self, req: Request, validation: Validation) -> Response {
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
