//! People management for admins: list accounts, change role, skills and capacity.

use super::AppState;
use super::error::{ApiResult, AppError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser, path_id};
use super::pagination;
use super::views::UserView;
use crate::domain::user::{Role, parse_name, parse_skills};
use crate::store::{UserPatch, UserQuery};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Deserializer, Serialize};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsersParams {
    role: Option<Role>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserList {
    users: Vec<UserView>,
    next_cursor: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserBody {
    role: Option<Role>,
    skills: Option<Vec<String>>,
    name: Option<String>,
    /// Most open tickets routed to this person at once; `null` removes the limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 10000)]
    capacity: Option<Option<u32>>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserResponse {
    user: UserView,
}

#[utoipa::path(get, path = "/api/users", tag = "users", security(("bearer" = [])), params(ListUsersParams),
    responses((status = 200, body = UserList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiQuery(params): ApiQuery<ListUsersParams>,
) -> ApiResult<Json<UserList>> {
    user.require(Role::Admin)?;
    let query = UserQuery {
        role: params.role,
        limit: pagination::limit(params.limit)?,
        after: pagination::decode(params.cursor.as_deref())?,
    };
    let page = state.store.list_users(&query).await?;
    Ok(Json(UserList {
        users: page.items.into_iter().map(UserView::from).collect(),
        next_cursor: page.next_after.as_deref().map(pagination::encode),
    }))
}

#[utoipa::path(patch, path = "/api/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = UpdateUserBody,
    responses((status = 200, body = UserResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_user(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateUserBody>,
) -> ApiResult<Json<UserResponse>> {
    user.require(Role::Admin)?;
    let id = path_id(&id)?;
    if body.role.is_some_and(|r| r != Role::Admin) && id == user.id() {
        return Err(AppError::Conflict {
            code: "self_demotion",
            message: "admins cannot remove their own admin role".into(),
        });
    }
    if body.capacity.flatten().is_some_and(|c| c > 10_000) {
        return Err(AppError::field("capacity", "must be at most 10000"));
    }
    let mut patch = UserPatch {
        role: body.role,
        skills: body.skills.as_deref().map(parse_skills).transpose()?,
        name: body
            .name
            .as_deref()
            .map(|n| parse_name(Some(n)))
            .transpose()?,
        capacity: body.capacity,
    };
    let target = state.store.get_user(&id).await?.ok_or(AppError::NotFound)?;
    if patch.role == Some(Role::User) && target.role.is_staff() {
        // The person can no longer see the tickets they work on: those still open go back to
        // routing, whoever assigned them, in the same transaction as the role change.
        let (_, released) = state.store.revoke_staff(&id, user.id()).await?;
        if !released.is_empty() {
            state.notify_outbox();
        }
        tracing::info!(target_user = %id, released = released.len(), "staff role revoked; their open tickets go back to routing");
        patch.role = None;
    }
    let updated = state.store.update_user(&id, patch).await?;
    tracing::info!(target_user = %updated.id, role = %updated.role, "user updated by admin");
    Ok(Json(UserResponse {
        user: updated.into(),
    }))
}
