//! The HTTP face: one route table, one state, one error type.

mod account;
mod activity;
mod attachments;
pub mod auth;
mod comments;
pub mod error;
pub mod extract;
mod health;
mod metrics;
mod pagination;
pub mod rate_limit;
mod ratings;
mod request_id;
mod runs;
mod stats;
mod stream;
mod tickets;
mod users;
mod views;
pub mod web;

use crate::auth::Tokens;
use crate::config::Config;
use crate::store::Store;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, Request, header};
use axum::response::{IntoResponse, Response};
use error::AppError;
use rate_limit::{AuthLimit, RateLimiter};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

/// The largest JSON body the API accepts; tickets are text, not attachments.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Everything a handler needs, cloned cheaply into each request.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

pub struct AppInner {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub tokens: Tokens,
    /// Woken after every write that adds to the outbox, so delivery starts at once.
    pub outbox_signal: Arc<Notify>,
    pub execution_mode: crate::durable::ExecutionMode,
    /// The embedded executor, for run operations; `None` under Inngest.
    pub executor: Option<crate::inngest::executor::Executor>,
    /// Whether the functions are registered with Inngest (always true when embedded).
    pub synced: Arc<std::sync::atomic::AtomicBool>,
    /// Files on tickets: their bytes and records.
    pub attachments: crate::attachments::Attachments,
    /// Committed ticket changes of this process, for `GET /api/stream`.
    pub live: Arc<crate::live::ChangeBus>,
}

impl AppState {
    pub fn new(inner: AppInner) -> Self {
        Self(Arc::new(inner))
    }

    pub fn notify_outbox(&self) {
        self.outbox_signal.notify_one();
    }
}

impl Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "ticketing", description = "AI-powered support tickets. Errors are `{\"error\":{\"code\",\"message\",\"details\"}}`."),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "accounts and tokens"),
        (name = "tickets"), (name = "comments"),
        (name = "attachments", description = "files on tickets, with the visibility of comments"), (name = "users", description = "admin only"),
        (name = "stream", description = "live updates (Server-Sent Events)"),
        (name = "stats", description = "admin only"),
        (name = "runs", description = "admin only: durable-function runs of the embedded executor"),
        (name = "health"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The routes before state and layers: the REST routes, and apart from them the event
/// stream, which stays open for as long as its client wants.
pub struct Routes {
    api: Router<AppState>,
    streaming: Router<AppState>,
}

/// Whether [`table`] assembles the OpenAPI document along with the routes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Document {
    Yes,
    No,
}

/// The handlers of one path as `utoipa_axum::routes!` gives them. Without the document only
/// each handler's path and methods are read; its operation and schemas, which take most of the
/// milliseconds a start spends on the routes, are not built.
macro_rules! path_routes {
    ($document:expr; $($($segment:ident)::+),+ $(,)?) => {
        if $document == Document::Yes {
            routes!($($($segment)::+),+)
        } else {
            use utoipa_axum::PathItemExt;
            let mut paths = utoipa::openapi::path::Paths::new();
            let mut router = axum::routing::MethodRouter::new();
            $(
                let path: String = routes!(@path [path()] of $($segment)::+);
                let methods = routes!(@path [methods()] of $($segment)::+);
                for method in &methods {
                    router = router.on(method.to_method_filter(), $($segment)::+);
                }
                paths.add_path_operation(path, methods, utoipa::openapi::path::Operation::default());
            )+
            (Vec::new(), paths, router)
        }
    };
}

/// The route table for serving: what [`crate::app::Service::build`] mounts.
pub fn routes(auth_limit: AuthLimit, attachment_max_bytes: u64) -> Routes {
    let (api, streaming, _) = table(Document::No, auth_limit, attachment_max_bytes);
    Routes { api, streaming }
}

/// The OpenAPI document, built from the same table on its first request and kept. Built at
/// start it was most of a start's CPU time (about 6 ms), for a page few requests ask for.
async fn openapi_json() -> Result<Response, AppError> {
    static JSON: std::sync::OnceLock<axum::body::Bytes> = std::sync::OnceLock::new();
    let json = match JSON.get() {
        Some(json) => json.clone(),
        None => tokio::task::spawn_blocking(|| {
            let auth_limit = AuthLimit {
                limiter: Arc::new(RateLimiter::new(1)),
                trust_proxy: false,
            };
            let (_, _, openapi) = table(Document::Yes, auth_limit, 0);
            let json = serde_json::to_vec(&openapi).map_err(|e| anyhow::anyhow!(e))?;
            Ok::<_, anyhow::Error>(JSON.get_or_init(|| json.into()).clone())
        })
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("building the OpenAPI document: {e}")))?
        .map_err(AppError::Internal)?,
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// Every route, in one place, and with [`Document::Yes`] their OpenAPI document.
fn table(
    document: Document,
    auth_limit: AuthLimit,
    attachment_max_bytes: u64,
) -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let limited = OpenApiRouter::new()
        .routes(path_routes!(document; auth::register))
        .routes(path_routes!(document; auth::signup))
        .routes(path_routes!(document; auth::login))
        .routes(path_routes!(document; account::forgot_password))
        .routes(path_routes!(document; account::reset_password))
        // Signed in, but a stolen token must not buy unlimited guesses at the password.
        .routes(path_routes!(document; account::change_password))
        .routes(path_routes!(document; account::verify_email))
        .routes(path_routes!(document; account::resend_verification))
        .route_layer(axum::middleware::from_fn_with_state(
            auth_limit,
            rate_limit::limit_auth,
        ));
    // Uploads have a limit of their own (ATTACHMENT_MAX_BYTES), enforced while the file
    // streams in; the JSON limit below would refuse any file past 256 KiB.
    let upload_limit = attachment_max_bytes.saturating_add(attachments::MULTIPART_ENVELOPE);
    let uploads = OpenApiRouter::new()
        .routes(path_routes!(document;
            attachments::upload_attachment,
            attachments::list_attachments
        ))
        .layer(DefaultBodyLimit::max(
            usize::try_from(upload_limit).unwrap_or(usize::MAX),
        ));
    let doc = match document {
        Document::Yes => ApiDoc::openapi(),
        Document::No => utoipa::openapi::OpenApi::default(),
    };
    let (router, openapi) = OpenApiRouter::with_openapi(doc)
        .merge(limited)
        .merge(uploads)
        .routes(path_routes!(document;
            attachments::download_attachment,
            attachments::delete_attachment
        ))
        .routes(path_routes!(document; auth::me))
        .routes(path_routes!(document; account::sign_out_everywhere))
        .routes(path_routes!(document; tickets::create_ticket, tickets::list_tickets))
        .routes(path_routes!(document;
            tickets::get_ticket,
            tickets::update_ticket,
            tickets::put_ticket
        ))
        .routes(path_routes!(document; tickets::retriage_ticket))
        .routes(path_routes!(document; activity::list_activity))
        .routes(path_routes!(document; ratings::rate_ticket))
        .routes(path_routes!(document; comments::list_comments, comments::add_comment))
        .routes(path_routes!(document; users::list_users))
        .routes(path_routes!(document; users::update_user))
        .routes(path_routes!(document; stats::stats))
        .routes(path_routes!(document; runs::list_runs))
        .routes(path_routes!(document; runs::get_run))
        .routes(path_routes!(document; runs::rerun_run))
        .routes(path_routes!(document; runs::cancel_run))
        .routes(path_routes!(document; health::healthz))
        .routes(path_routes!(document; health::readyz))
        .split_for_parts();
    let (streaming, stream_doc) = OpenApiRouter::new()
        .routes(path_routes!(document; stream::stream))
        .split_for_parts();
    let mut openapi = openapi;
    if document == Document::Yes {
        openapi.merge(stream_doc);
        document_common_errors(&mut openapi);
    }
    (router, streaming, openapi)
}

/// The whole route table: `routes` with the state and the layers, and `extra` mounted beside
/// the API (the Inngest serve endpoint), with its own body limits.
pub fn router(state: AppState, extra: Router, routes: Routes) -> Router {
    let Routes { api, streaming } = routes;
    // A request timeout belongs on `api`: the stream is merged after it, open by design.
    let api = api
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(streaming.with_state(state.clone()))
        .route("/openapi.json", axum::routing::get(openapi_json))
        .merge(SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::from("/openapi.json")));
    let id_header = HeaderName::from_static(request_id::HEADER);
    // On Vercel each request may meet another instance, whose stream misses the others' changes.
    let poll = state.config.on_vercel;
    let mut app = api
        .merge(extra)
        .route("/metrics", axum::routing::get(metrics::render).with_state(state.clone()))
        .route("/assets/{version}/{*path}", axum::routing::get(web::asset))
        .route_layer(axum::middleware::from_fn(metrics::remember_route))
        // Page paths get the browser app; unknown API paths keep the JSON 404.
        .fallback(move |method: Method, uri: axum::http::Uri| async move {
            web::fallback(&method, &uri, poll)
        })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .layer(CatchPanicLayer::custom(|_| -> Response {
            AppError::Internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(axum::middleware::from_fn(web::security_headers))
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION]))
        .layer(PropagateRequestIdLayer::new(id_header.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req.headers().get(request_id::HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path(), user_id = tracing::field::Empty)
        }).on_response(DefaultOnResponse::new().level(tracing::Level::INFO)))
        .layer(SetRequestIdLayer::new(id_header, MakeRequestUuid))
        .layer(axum::middleware::from_fn(request_id::drop_unsafe));
    if let Some(cors) = cors(&state.config) {
        app = app.layer(cors);
    }
    app
}

fn cors(config: &Config) -> Option<CorsLayer> {
    if config.cors_origins.is_empty() {
        return None;
    }
    let origin = if config.cors_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            config
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PATCH,
                Method::PUT,
                Method::DELETE,
            ])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(Duration::from_secs(3600)),
    )
}

/// Every operation can answer these (bad query, bad body, rate limits, outages); listing them
/// once here keeps each handler's annotation about what is specific to it.
fn document_common_errors(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let common = [
        ("400", "malformed request"),
        ("401", "missing or invalid token"),
        ("403", "not allowed for this role"),
        ("404", "not found"),
        ("405", "method not allowed"),
        ("409", "conflict"),
        ("413", "body too large"),
        ("415", "body is not JSON"),
        ("422", "invalid field"),
        ("429", "rate limited"),
        ("503", "a dependency is unavailable"),
    ];
    for item in openapi.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for op in ops.into_iter().flatten() {
            for (code, description) in common {
                if !op.responses.responses.contains_key(code) {
                    let content = ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build();
                    let response = ResponseBuilder::new()
                        .description(description)
                        .content("application/json", content)
                        .build();
                    op.responses
                        .responses
                        .insert(code.to_owned(), response.into());
                }
            }
        }
    }
}
