//! Durable-function runs for admins: list, inspect, re-run, cancel. Only the embedded executor
//! keeps runs here; under Inngest (dev server or cloud) its dashboard does this.

use super::AppState;
use super::error::{ApiResult, AppError, ErrorBody};
use super::extract::{ApiPath, ApiQuery, CurrentUser, path_id};
use super::pagination;
use crate::domain::user::Role;
use crate::inngest::executor::{Executor, RunFilter};
use crate::runs::{RunStatusName, RunSummaryView, RunView, resolve_function};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListRunsParams {
    /// A function name, e.g. `on-ticket-created`.
    function: Option<String>,
    status: Option<RunStatusName>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RunList {
    runs: Vec<RunSummaryView>,
    /// Pass as `cursor` to get older runs; absent on the last page.
    next_cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RunResponse {
    run: RunView,
}

/// The caller is an admin and the executor is embedded.
fn executor<'a>(state: &'a AppState, user: &CurrentUser) -> ApiResult<&'a Executor> {
    user.require(Role::Admin)?;
    state.executor.as_ref().ok_or_else(|| AppError::Conflict {
        code: "not_embedded",
        message: format!(
            "runs are managed by Inngest in {} mode; use its dashboard",
            state.execution_mode.as_str()
        ),
    })
}

async fn load(executor: &Executor, id: &str) -> ApiResult<RunView> {
    let run = executor.get_run(id).await?.ok_or(AppError::NotFound)?;
    Ok(RunView::from(&run))
}

#[utoipa::path(get, path = "/api/runs", tag = "runs", security(("bearer" = [])), params(ListRunsParams),
    responses((status = 200, body = RunList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, description = "runs are managed by Inngest (dev or cloud mode)", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn list_runs(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiQuery(params): ApiQuery<ListRunsParams>,
) -> ApiResult<Json<RunList>> {
    let executor = executor(&state, &user)?;
    let function_id = match params.function.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(name) => Some(
            resolve_function(executor, name)
                .map_err(|e| AppError::field("function", e.to_string()))?,
        ),
        None => None,
    };
    let limit = pagination::limit(params.limit)?;
    let runs = executor
        .list_runs(RunFilter {
            function_id,
            status: params.status.map(Into::into),
            before: pagination::decode(params.cursor.as_deref())?,
            limit,
        })
        .await?;
    let next_cursor = (runs.len() == limit)
        .then(|| runs.last().map(|r| pagination::encode(&r.id)))
        .flatten();
    Ok(Json(RunList {
        runs: runs.iter().map(RunSummaryView::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = RunResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn get_run(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<RunResponse>> {
    let executor = executor(&state, &user)?;
    let run = load(executor, &path_id(&id)?).await?;
    Ok(Json(RunResponse { run }))
}

#[utoipa::path(post, path = "/api/runs/{id}/rerun", tag = "runs", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 201, description = "the new run, with the same event", body = RunResponse),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rerun_run(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<RunResponse>)> {
    let executor = executor(&state, &user)?;
    let new_id = executor.rerun(&path_id(&id)?).await?;
    tracing::info!(run_id = %id, new_run_id = %new_id, "run re-run by admin");
    let run = load(executor, &new_id).await?;
    Ok((StatusCode::CREATED, Json(RunResponse { run })))
}

#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "runs", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "the run, cancelled", body = RunResponse),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "the run has finished, or runs are managed by Inngest", body = ErrorBody)))]
pub async fn cancel_run(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<RunResponse>> {
    let executor = executor(&state, &user)?;
    let run = executor.cancel(&path_id(&id)?).await?;
    tracing::info!(run_id = %id, "run cancelled by admin");
    Ok(Json(RunResponse {
        run: RunView::from(&run),
    }))
}
