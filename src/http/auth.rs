//! Register, log in, and who am I. Recovering and ending access is in `account`.

use super::AppState;
use super::error::{ApiResult, AppError, ErrorBody};
use super::extract::{ApiJson, CurrentUser};
use super::views::UserView;
use crate::auth::{hash_password, verify_password};
use crate::domain::events::NewEvent;
use crate::domain::new_id;
use crate::domain::user::{Email, Password, Role, parse_name, parse_skills};
use crate::store::{NewUser, StoreError, User};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
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
    user: UserView,
    /// Bearer token for the `Authorization` header.
    token: String,
    /// Seconds until the token expires.
    expires_in: u64,
}

impl AuthResponse {
    /// A fresh token for `user`, under the account's current token generation.
    pub(super) fn issue(state: &AppState, user: User) -> ApiResult<Self> {
        let token = state.tokens.issue(&user.id, user.token_generation)?;
        Ok(Self {
            user: user.into(),
            token,
            expires_in: state.tokens.ttl().as_secs(),
        })
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserResponse {
    pub(super) user: UserView,
}

/// An answer that says what happens next and, on purpose, nothing about whether an account
/// exists.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageResponse {
    pub(super) message: String,
}

impl MessageResponse {
    pub(super) fn accepted(message: &str) -> (StatusCode, Json<Self>) {
        (
            StatusCode::ACCEPTED,
            Json(Self {
                message: message.to_owned(),
            }),
        )
    }
}

/// The answer to every sign-up while verification is required, whether the address was free
/// or taken: the mail tells its owner which it was.
const SIGNUP_CHECK_INBOX: &str = "Check your inbox: we sent a message to this address. \
    Follow its link to confirm the address, then sign in.";

/// A parsed sign-up.
struct Registration {
    email: Email,
    password: Password,
    name: String,
    skills: Vec<String>,
}

impl Registration {
    fn parse(body: RegisterBody) -> ApiResult<Self> {
        Ok(Self {
            email: Email::parse(&body.email)?,
            password: Password::parse(&body.password)?,
            name: parse_name(body.name.as_deref())?,
            skills: parse_skills(body.skills.as_deref().unwrap_or_default())?,
        })
    }

    /// Creates the account (always `Role::User`) with its signup event.
    async fn create(self, state: &AppState, email_verified: bool) -> Result<User, StoreError> {
        let password_hash = hash_password(self.password.expose().to_owned())
            .await
            .map_err(|e| StoreError::Other(e.into()))?;
        let id = new_id();
        let user = NewUser {
            id: id.clone(),
            email: self.email.as_str().to_owned(),
            name: self.name,
            password_hash,
            role: Role::User,
            skills: self.skills,
            email_verified,
        };
        state
            .store
            .create_user(user, Some(NewEvent::user_signup(&id)))
            .await
    }
}

/// With verification off, a taken address is a 409 `email_taken`: the person must learn why
/// sign-up failed, and nothing else would tell them. That answer tells anyone which addresses
/// have accounts, so with `REQUIRE_EMAIL_VERIFICATION` on, every sign-up answers the same 202
/// without a token and the mail to the address says what happened.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterBody,
    responses((status = 201, body = AuthResponse, description = "signed up and signed in (verification off)"),
        (status = 202, body = MessageResponse, description = "verification on: a mail is on its way, for a new and a taken address alike"),
        (status = 409, body = ErrorBody, description = "`email_taken` (verification off only)"),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterBody>,
) -> ApiResult<Response> {
    let registration = Registration::parse(body)?;
    if state.config.accounts.require_email_verification {
        return register_unverified(&state, registration).await;
    }
    let user = registration.create(&state, true).await?;
    state.notify_outbox();
    tracing::info!(user_id = %user.id, "account registered");
    Ok((
        StatusCode::CREATED,
        Json(AuthResponse::issue(&state, user)?),
    )
        .into_response())
}

/// Both paths hash a password and write one transaction, so they take about as long.
async fn register_unverified(state: &AppState, registration: Registration) -> ApiResult<Response> {
    let email = registration.email.clone();
    match registration.create(state, false).await {
        Ok(user) => tracing::info!(user_id = %user.id, "account registered, address unconfirmed"),
        Err(StoreError::Conflict { field: "email" }) => {
            state
                .store
                .queue_user_event(email.as_str(), false, NewEvent::signup_attempted)
                .await?;
            tracing::info!("sign-up with an address that has an account; its owner is told");
        }
        Err(e) => return Err(e.into()),
    }
    state.notify_outbox();
    Ok(MessageResponse::accepted(SIGNUP_CHECK_INBOX).into_response())
}

#[utoipa::path(post, path = "/api/auth/signup", tag = "auth", request_body = RegisterBody,
    responses((status = 201, body = AuthResponse), (status = 202, body = MessageResponse),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn signup(state: State<AppState>, body: ApiJson<RegisterBody>) -> ApiResult<Response> {
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
    // An unconfirmed address may sign in: the app shows `email_verified` and how to confirm.
    Ok(Json(AuthResponse::issue(&state, user)?))
}

#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserResponse), (status = 401, body = ErrorBody)))]
pub async fn me(user: CurrentUser) -> Json<UserResponse> {
    Json(UserResponse {
        user: user.0.into(),
    })
}
