//! Register, log in, and who am I.

use super::AppState;
use super::error::{ApiResult, AppError, ErrorBody};
use super::extract::{ApiJson, CurrentUser};
use crate::auth::{hash_password, verify_password};
use crate::domain::events::NewEvent;
use crate::domain::new_id;
use crate::domain::user::{Email, Password, Role, parse_name, parse_skills};
use crate::store::{NewUser, User};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    email: String,
    password: String,
    name: Option<String>,
    skills: Option<Vec<String>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthResponse {
    user: User,
    /// Bearer token for the `Authorization` header.
    token: String,
    /// Seconds until the token expires.
    expires_in: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserResponse {
    user: User,
}

/// Creates an account with its signup event. Public registration always passes `Role::User`.
pub async fn create_account(
    state: &AppState,
    email: Email,
    password: Password,
    name: String,
    role: Role,
    skills: Vec<String>,
) -> ApiResult<User> {
    let password_hash = hash_password(password.expose().to_owned()).await?;
    let id = new_id();
    let user = NewUser {
        id: id.clone(),
        email: email.as_str().to_owned(),
        name,
        password_hash,
        role,
        skills,
    };
    Ok(state
        .store
        .create_user(user, Some(NewEvent::user_signup(&id)))
        .await?)
}

#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterBody,
    responses((status = 201, body = AuthResponse), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterBody>,
) -> ApiResult<(StatusCode, Json<AuthResponse>)> {
    let email = Email::parse(&body.email)?;
    let password = Password::parse(&body.password)?;
    let name = parse_name(body.name.as_deref())?;
    let skills = parse_skills(body.skills.as_deref().unwrap_or_default())?;
    let user = create_account(&state, email, password, name, Role::User, skills).await?;
    let token = state.tokens.issue(&user.id)?;
    tracing::info!(user_id = %user.id, "account registered");
    Ok((
        StatusCode::CREATED,
        Json(AuthResponse {
            user,
            token,
            expires_in: state.tokens.ttl().as_secs(),
        }),
    ))
}

#[utoipa::path(post, path = "/api/auth/signup", tag = "auth", request_body = RegisterBody,
    responses((status = 201, body = AuthResponse), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn signup(
    state: State<AppState>,
    body: ApiJson<RegisterBody>,
) -> ApiResult<(StatusCode, Json<AuthResponse>)> {
    register(state, body).await
}

#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = AuthResponse), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginBody>,
) -> ApiResult<Json<AuthResponse>> {
    // Any failure, including a malformed address, is the same 401.
    let credentials = match Email::parse(&body.email) {
        Ok(email) => state.store.find_credentials(email.as_str()).await?,
        Err(_) => None,
    };
    let (user_id, hash) = match credentials {
        Some(c) => (Some(c.user_id), Some(c.password_hash)),
        None => (None, None),
    };
    if !verify_password(body.password, hash).await? {
        return Err(AppError::InvalidCredentials);
    }
    let user_id = user_id.ok_or(AppError::InvalidCredentials)?;
    let user = state
        .store
        .get_user(&user_id)
        .await?
        .ok_or(AppError::InvalidCredentials)?;
    let token = state.tokens.issue(&user.id)?;
    Ok(Json(AuthResponse {
        user,
        token,
        expires_in: state.tokens.ttl().as_secs(),
    }))
}

#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserResponse), (status = 401, body = ErrorBody)))]
pub async fn me(user: CurrentUser) -> Json<UserResponse> {
    Json(UserResponse { user: user.0 })
}
