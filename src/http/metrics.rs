//! `/metrics` in Prometheus text, and the middleware that counts every request by route.

use super::AppState;
use super::error::AppError;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;

pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    // The route template, not the path: ids must not explode the label set.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
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
