//! Recovering and ending access: forgotten and changed passwords, signing out everywhere, and
//! confirming the address.
//!
//! Links are mailed by a durable function (`on-account-request`, and `on-user-signup` for the
//! first verification link): the request only writes an event naming the account, and the
//! function makes the token, keeps its hash and mails the link, so the raw token never reaches
//! the outbox, the event, or any step's saved state. The answers that take an e-mail address do
//! the same store work, one transaction, whether it has an account or not, and say the same.

use super::AppState;
use super::auth::{AuthResponse, MessageResponse, UserResponse};
use super::error::{ApiResult, AppError, ErrorBody};
use super::extract::{ApiJson, CurrentUser};
use crate::auth::{hash_password, verify_password};
use crate::domain::account_token::{TokenHash, TokenPurpose};
use crate::domain::events::NewEvent;
use crate::domain::user::{Email, Password};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailBody {
    email: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordBody {
    /// The `token` parameter of the mailed link.
    token: String,
    password: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordBody {
    current_password: String,
    new_password: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// The `token` parameter of the mailed link.
    token: String,
}

const RESET_MAIL_SENT: &str = "If an account uses this address, we sent it a link to choose a \
    new password. The link works once, for a limited time.";
const VERIFICATION_MAIL_SENT: &str = "If this address has an account waiting for confirmation, \
    we sent it a new link.";
const PASSWORD_RESET: &str = "Your password was changed and every session was signed out. \
    Sign in with the new password.";

/// Queues the event that has a link mailed to the account at `body`'s address, if there is one
/// (and, with `unverified_only`, only if it still needs confirming); the caller answers the
/// same either way.
async fn request_link(
    state: &AppState,
    body: &EmailBody,
    unverified_only: bool,
    event: fn(&str) -> NewEvent,
) -> ApiResult<()> {
    let email = Email::parse(&body.email)?;
    state
        .store
        .queue_user_event(email.as_str(), unverified_only, event)
        .await?;
    state.notify_outbox();
    Ok(())
}

/// Unknown, used and expired links all get this one answer.
fn invalid_link() -> AppError {
    AppError::bad_request(
        "invalid_token",
        "this link is not valid: it was used already, has expired, or was mistyped; ask for a new one",
    )
}

#[utoipa::path(post, path = "/api/auth/password/forgot", tag = "auth", request_body = EmailBody,
    responses((status = 202, body = MessageResponse, description = "the same answer whether the address has an account or not"),
        (status = 422, body = ErrorBody, description = "not an e-mail address"), (status = 429, body = ErrorBody)))]
pub async fn forgot_password(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EmailBody>,
) -> ApiResult<(StatusCode, Json<MessageResponse>)> {
    request_link(&state, &body, false, NewEvent::password_reset_requested).await?;
    Ok(MessageResponse::accepted(RESET_MAIL_SENT))
}

#[utoipa::path(post, path = "/api/auth/password/reset", tag = "auth", request_body = ResetPasswordBody,
    responses((status = 200, body = MessageResponse, description = "password set; every token issued before is ended"),
        (status = 400, body = ErrorBody, description = "`invalid_token`: unknown, used or expired link"),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn reset_password(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ResetPasswordBody>,
) -> ApiResult<Json<MessageResponse>> {
    let password = Password::parse(&body.password)?;
    let hash = TokenHash::of(&body.token).ok_or_else(invalid_link)?;
    // A cheap look first: a dead link costs no password hashing.
    state
        .store
        .find_account_token(&hash, TokenPurpose::PasswordReset, chrono::Utc::now())
        .await?
        .ok_or_else(invalid_link)?;
    let password_hash = hash_password(password.expose().to_owned()).await?;
    // Using the link is the atomic step: of two requests with one link, one wins.
    let user = state
        .store
        .reset_password(&hash, &password_hash, chrono::Utc::now())
        .await?
        .ok_or_else(invalid_link)?;
    tracing::info!(user_id = %user.id, "password reset through a mailed link");
    Ok(Json(MessageResponse {
        message: PASSWORD_RESET.to_owned(),
    }))
}

#[utoipa::path(post, path = "/api/auth/password/change", tag = "auth", request_body = ChangePasswordBody,
    security(("bearer" = [])),
    responses((status = 200, body = AuthResponse, description = "a fresh token for this session; every token issued before is ended"),
        (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`current_password` is wrong, or `new_password` is too short or long"),
        (status = 429, body = ErrorBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(body): ApiJson<ChangePasswordBody>,
) -> ApiResult<Json<AuthResponse>> {
    let new_password = Password::parse(&body.new_password)
        .map_err(|e| AppError::field("new_password", e.to_string()))?;
    let current_hash = state
        .store
        .find_credentials(&user.0.email)
        .await?
        .filter(|c| c.user_id == user.0.id)
        .map(|c| c.password_hash);
    if !verify_password(body.current_password, current_hash).await? {
        return Err(AppError::field(
            "current_password",
            "is not the account's current password",
        ));
    }
    let new_hash = hash_password(new_password.expose().to_owned()).await?;
    let user = state.store.set_password(user.id(), &new_hash).await?;
    tracing::info!(user_id = %user.id, "password changed; other sessions ended");
    Ok(Json(AuthResponse::issue(&state, user)?))
}

#[utoipa::path(post, path = "/api/auth/sign-out-everywhere", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "every token issued so far, this one included, is ended"),
        (status = 401, body = ErrorBody)))]
pub async fn sign_out_everywhere(
    State(state): State<AppState>,
    user: CurrentUser,
) -> ApiResult<StatusCode> {
    state.store.end_sessions(user.id()).await?;
    tracing::info!(user_id = %user.id(), "signed out everywhere");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/auth/verify", tag = "auth", request_body = VerifyBody,
    responses((status = 200, body = UserResponse, description = "the address is confirmed"),
        (status = 400, body = ErrorBody, description = "`invalid_token`: unknown, used or expired link"),
        (status = 429, body = ErrorBody)))]
pub async fn verify_email(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<VerifyBody>,
) -> ApiResult<Json<UserResponse>> {
    let hash = TokenHash::of(&body.token).ok_or_else(invalid_link)?;
    let user = state
        .store
        .verify_email(&hash, chrono::Utc::now())
        .await?
        .ok_or_else(invalid_link)?;
    tracing::info!(user_id = %user.id, "address confirmed");
    Ok(Json(UserResponse { user: user.into() }))
}

#[utoipa::path(post, path = "/api/auth/verify/resend", tag = "auth", request_body = EmailBody,
    responses((status = 202, body = MessageResponse, description = "the same answer whatever the address"),
        (status = 422, body = ErrorBody, description = "not an e-mail address"), (status = 429, body = ErrorBody)))]
pub async fn resend_verification(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EmailBody>,
) -> ApiResult<(StatusCode, Json<MessageResponse>)> {
    request_link(&state, &body, true, NewEvent::verification_requested).await?;
    Ok(MessageResponse::accepted(VERIFICATION_MAIL_SENT))
}
