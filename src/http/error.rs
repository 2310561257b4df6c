//! The one error type of the HTTP layer, and the one place errors become status codes.
//! Every error body has the shape `{"error":{"code","message","details"}}`.

use crate::domain::rating::RatingParseError;
use crate::domain::ticket::{TicketParseError, TransitionError};
use crate::domain::user::UserParseError;
use crate::store::StoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

pub type ApiResult<T, E = AppError> = Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// Well-formed JSON whose content is wrong; `details` says which field.
    #[error("{message}")]
    Unprocessable { message: String, details: Value },
    #[error("authentication required")]
    Unauthorized,
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(String),
    /// Sign-up needs the address confirmed (`REQUIRE_EMAIL_VERIFICATION`) before this.
    #[error(
        "confirm your e-mail address first: follow the link we mailed you, or ask for a new one"
    )]
    EmailUnverified,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("expected a JSON body with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("too many requests, retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// An uploaded file past `ATTACHMENT_MAX_BYTES`; `details` carries the limit.
    #[error("the file is larger than the limit of {limit} bytes")]
    FileTooLarge { limit: u64 },
    #[error("expected a multipart/form-data body")]
    NotMultipart,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The error body, for the OpenAPI document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    /// Which field was wrong, when one was; otherwise `null`.
    #[schema(value_type = Option<Object>)]
    pub details: Value,
}

impl AppError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::Unprocessable {
            details: json!({ "field": field, "reason": message }),
            message: format!("{field}: {message}"),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            AppError::Unprocessable { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
            }
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AppError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::EmailUnverified => (StatusCode::FORBIDDEN, "email_unverified"),
            AppError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            AppError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            AppError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            AppError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            AppError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            AppError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            AppError::FileTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            AppError::NotMultipart => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let (message, details) = match &self {
            AppError::Internal(e) => {
                // The cause chain goes to the log; the client gets nothing it could misuse.
                tracing::error!(error = ?e, "internal error");
                ("internal error".to_owned(), Value::Null)
            }
            AppError::Unavailable(e) => {
                tracing::warn!(error = %e, "dependency unavailable");
                ("service temporarily unavailable".to_owned(), Value::Null)
            }
            AppError::Unprocessable { details, .. } => (self.to_string(), details.clone()),
            AppError::FileTooLarge { limit } => (self.to_string(), json!({ "limit": limit })),
            other => (other.to_string(), Value::Null),
        };
        let body = json!({ "error": { "code": code, "message": message, "details": details } });
        let mut response = (status, axum::Json(body)).into_response();
        match self {
            AppError::TooManyRequests { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            AppError::Unauthorized | AppError::InvalidCredentials => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::NotFound,
            StoreError::Conflict { field: "email" } => AppError::Conflict {
                code: "email_taken",
                message: "an account with this email already exists".into(),
            },
            StoreError::Conflict { field } => AppError::Conflict {
                code: "conflict",
                message: format!("{field} already exists"),
            },
            StoreError::Stale => AppError::Conflict {
                code: "concurrent_update",
                message: "the record was changed by someone else; reload and retry".into(),
            },
            StoreError::Unavailable(msg) => AppError::Unavailable(msg),
            StoreError::Other(e) => AppError::Internal(e),
        }
    }
}

impl From<UserParseError> for AppError {
    fn from(e: UserParseError) -> Self {
        let field = match e {
            UserParseError::InvalidEmail => "email",
            UserParseError::PasswordLength { .. } => "password",
            UserParseError::NameTooLong { .. } => "name",
            UserParseError::InvalidSkill(_) => "skills",
            UserParseError::InvalidRole => "role",
        };
        AppError::field(field, e.to_string())
    }
}

impl From<TicketParseError> for AppError {
    fn from(e: TicketParseError) -> Self {
        let field = match e {
            TicketParseError::TitleLength { .. } => "title",
            TicketParseError::DescriptionLength { .. } => "description",
            TicketParseError::CommentLength { .. } => "body",
        };
        AppError::field(field, e.to_string())
    }
}

impl From<RatingParseError> for AppError {
    fn from(e: RatingParseError) -> Self {
        let field = match e {
            RatingParseError::Score { .. } => "score",
            RatingParseError::CommentTooLong { .. } => "comment",
        };
        AppError::field(field, e.to_string())
    }
}

impl From<TransitionError> for AppError {
    fn from(e: TransitionError) -> Self {
        match e {
            TransitionError::NotAllowed { .. } => AppError::Forbidden(e.to_string()),
            TransitionError::Invalid { .. } => AppError::Conflict {
                code: "invalid_transition",
                message: e.to_string(),
            },
        }
    }
}

impl From<crate::inngest::executor::ExecutorError> for AppError {
    fn from(e: crate::inngest::executor::ExecutorError) -> Self {
        use crate::inngest::executor::{ExecutorError, StoreError as RunStoreError};
        match e {
            ExecutorError::RunNotFound(_) => AppError::NotFound,
            ExecutorError::RunFinished { .. } => AppError::Conflict {
                code: "run_finished",
                message: e.to_string(),
            },
            ExecutorError::UnknownFunction(_) => AppError::Conflict {
                code: "function_not_registered",
                message: e.to_string(),
            },
            ExecutorError::Store(RunStoreError::Unavailable(msg)) => AppError::Unavailable(msg),
            ExecutorError::Store(other) => AppError::Internal(other.into()),
        }
    }
}

impl From<crate::auth::AuthError> for AppError {
    fn from(e: crate::auth::AuthError) -> Self {
        AppError::Internal(e.into())
    }
}

impl From<crate::attachments::AttachmentError> for AppError {
    fn from(e: crate::attachments::AttachmentError) -> Self {
        use crate::attachments::AttachmentError as E;
        use crate::attachments::blob::BlobError;
        match e {
            E::TooLarge { limit } => AppError::FileTooLarge { limit },
            E::TicketFull => AppError::Conflict {
                code: "too_many_attachments",
                message: e.to_string(),
            },
            E::BadBody(message) => AppError::bad_request("malformed_multipart", message),
            E::Store(e) => e.into(),
            E::Blob(BlobError::Unavailable(message)) => AppError::Unavailable(message),
            E::Blob(BlobError::Other(e)) => AppError::Internal(e),
        }
    }
}
