//! Liveness and readiness.

use super::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "the process is alive")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the store answers and, under Inngest (dev or cloud), once the functions are
/// registered with it: before that, events would be accepted but nothing would run them.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "ready to serve"),
              (status = 503, description = "a dependency is down, or the functions are not synced with Inngest yet")))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let store = state.store.backend();
    let mode = state.execution_mode.as_str();
    let synced = state.synced.load(Ordering::SeqCst);
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "readiness check failed");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({ "status": "unavailable", "store": store, "mode": mode, "synced": synced }),
            ),
        );
    }
    if !synced {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "syncing", "store": store, "mode": mode, "synced": false })),
        );
    }
    (
        StatusCode::OK,
        Json(json!({ "status": "ready", "store": store, "mode": mode, "synced": true })),
    )
}
