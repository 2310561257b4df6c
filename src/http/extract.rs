//! Extractors that turn every malformed request into an `AppError`, and the signed-in user.

use super::AppState;
use super::error::AppError;
use crate::domain::user::Role;
use crate::store::User;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

/// `Json<T>` whose rejections use our error shape: syntax errors are 400, type and unknown-field
/// errors 422, a missing content type 415 and an oversized body 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    match rejection {
        JsonRejection::JsonDataError(e) => AppError::Unprocessable {
            message: format!(
                "invalid request body: {}",
                e.body_text().trim_start_matches(
                    "Failed to deserialize the JSON body into the target type: "
                )
            ),
            details: serde_json::Value::Null,
        },
        JsonRejection::JsonSyntaxError(e) => AppError::bad_request(
            "malformed_json",
            format!(
                "malformed JSON: {}",
                e.body_text()
                    .trim_start_matches("Failed to parse the request body as JSON: ")
            ),
        ),
        JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType,
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
        other => AppError::bad_request("bad_request", other.body_text()),
    }
}

/// `Query<T>` with our error shape.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(AppError::bad_request(
                "invalid_query",
                e.body_text()
                    .trim_start_matches("Failed to deserialize query string: ")
                    .to_owned(),
            )),
            Err(other) => Err(AppError::bad_request("invalid_query", other.body_text())),
        }
    }
}

/// `Path<T>` with our error shape: a segment that does not decode (`/api/tickets/%FF` is not
/// UTF-8) is a 400 like any other malformed request, never axum's plain-text rejection.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(AppError::bad_request(
                "invalid_path",
                e.body_text().trim_start_matches("Invalid URL: ").to_owned(),
            )),
            Err(other) => Err(AppError::bad_request("invalid_path", other.body_text())),
        }
    }
}

/// The signed-in user, reloaded from the store on every request so that a role change, a
/// deleted account or an ended session (password change, sign-out everywhere: the token's
/// generation is no longer the account's) takes effect immediately. Any failure is the same 401.
pub struct CurrentUser(pub User);

impl CurrentUser {
    pub fn id(&self) -> &str {
        &self.0.id
    }

    pub fn role(&self) -> Role {
        self.0.role
    }

    pub fn require(&self, role: Role) -> Result<(), AppError> {
        if self.0.role >= role {
            Ok(())
        } else {
            Err(AppError::forbidden(format!("requires the {role} role")))
        }
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or(AppError::Unauthorized)?;
        let user = authenticate(state, token).await?;
        tracing::Span::current().record("user_id", user.id.as_str());
        Ok(CurrentUser(user))
    }
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The user `token` stands for now: a valid token of an account that still exists, with its
/// current role. Requests ask here, and so does the event stream before every event it sends,
/// so a check added here holds for both.
pub async fn authenticate(state: &AppState, token: &str) -> Result<User, AppError> {
    let subject = state.tokens.verify(token).ok_or(AppError::Unauthorized)?;
    let user = state
        .store
        .get_user(&subject.user_id)
        .await?
        .ok_or(AppError::Unauthorized)?;
    if subject.generation != user.token_generation {
        tracing::debug!(user_id = %user.id, "token from before a password change or sign-out");
        return Err(AppError::Unauthorized);
    }
    Ok(user)
}

/// Parses a path id, answering 404 for anything that is not a canonical id: a malformed id
/// names nothing that exists.
pub fn path_id(raw: &str) -> Result<String, AppError> {
    crate::domain::parse_id(raw).ok_or(AppError::NotFound)
}
