//! Analytics for admins.

use super::AppState;
use super::error::{ApiResult, ErrorBody};
use super::extract::CurrentUser;
use super::views::StatsView;
use crate::domain::user::Role;
use axum::Json;
use axum::extract::State;

#[utoipa::path(get, path = "/api/stats", tag = "stats", security(("bearer" = [])),
    responses((status = 200, body = StatsView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn stats(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<StatsView>> {
    user.require(Role::Admin)?;
    Ok(Json(state.store.stats().await?.into()))
}
