//! `/metrics` in Prometheus text, and the middleware that counts every request by route.

use super::AppState;
use super::error::AppError;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;

/// The label for an unmatched route: one series, whatever path was asked for.
const UNMATCHED: &str = "unmatched";

/// Labels come from a closed set, so no request can add series: the route template (ids must
/// not explode the label set either), the standard methods, and `other` for any method name a
/// client makes up.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The route a request matched, carried from inside the router (where it is known) out to
/// [`track`] on the response.
#[derive(Clone)]
struct Route(MatchedPath);

/// Inside the router, on matched routes only: remembers the route template on the response.
pub async fn remember_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(req).await;
    if let Some(route) = route {
        response.extensions_mut().insert(Route(route));
    }
    response
}

/// Around the whole router: counts every request, the unmatched ones under one label.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let response = next.run(req).await;
    let route = response
        .extensions()
        .get::<Route>()
        .map_or_else(|| UNMATCHED.to_owned(), |r| r.0.as_str().to_owned());
    let status = response.status().as_u16().to_string();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

pub async fn render(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if let Some(expected) = &state.config.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(expected.expose()) {
            return Err(AppError::Unauthorized);
        }
    }
    if let Ok(backlog) = state.store.outbox_backlog().await {
        metrics::gauge!("outbox_backlog").set(backlog as f64);
    }
    // Refreshes the queue-depth gauges, so a scrape sees the queue as it is now.
    if let Some(executor) = &state.executor
        && let Err(e) = executor.stats().await
    {
        tracing::warn!(error = %e, "cannot read the executor's queue depth");
    }
    let body = crate::telemetry::prometheus().render();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}
