//! Files on tickets. Whoever may see a ticket may add files to it and read them; internal
//! files, like internal notes, are for staff only. A file is served as itself only when it is a
//! raster image; anything else is a download, and every response forbids sniffing and scripts.

use super::AppState;
use super::error::{ApiResult, AppError, ErrorBody};
use super::extract::{ApiPath, CurrentUser, path_id};
use super::tickets::visible_ticket;
use super::views::AttachmentView;
use crate::attachments::{AttachmentError, Upload};
use crate::domain::access::{TicketOwnership, can_see_internal, can_view};
use crate::domain::attachment::{MAX_PER_TICKET, can_delete, content_disposition, serve_as};
use crate::store::Attachment;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Serialize;

/// Room in an upload's body for what surrounds the file: boundaries, part headers and the
/// `internal` part.
pub const MULTIPART_ENVELOPE: u64 = 64 * 1024;

/// The form of an upload, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file, at most `ATTACHMENT_MAX_BYTES`. Its name is kept for display only.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Staff only: hide the file from the ticket's creator, like an internal note.
    internal: Option<bool>,
}

/// The bytes of a file, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct FileBytes(Vec<u8>);

#[derive(Serialize, utoipa::ToSchema)]
pub struct AttachmentResponse {
    attachment: AttachmentView,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AttachmentList {
    attachments: Vec<AttachmentView>,
}

fn multipart_error(e: MultipartError, limit: u64) -> AttachmentError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AttachmentError::TooLarge { limit }
    } else {
        AttachmentError::BadBody(format!("malformed multipart body: {}", e.body_text()))
    }
}

/// `true` or `false` (the documented boolean, nothing looser), read without taking more than a
/// few bytes from the client.
async fn parse_flag(field: axum::extract::multipart::Field<'_>, limit: u64) -> ApiResult<bool> {
    let mut field = field;
    let mut text = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
        text.extend_from_slice(&chunk);
        if text.len() > 16 {
            break;
        }
    }
    match text.as_slice() {
        b"true" => Ok(true),
        b"false" => Ok(false),
        _ => Err(AppError::field("internal", "must be true or false")),
    }
}

#[utoipa::path(post, path = "/api/tickets/{id}/attachments", tag = "attachments", security(("bearer" = [])), params(("id" = String, Path)),
    request_body(content = UploadForm, content_type = "multipart/form-data",
        description = "one part `file` and, for staff, an optional part `internal` (`true`)"),
    responses((status = 201, body = AttachmentResponse), (status = 403, body = ErrorBody, description = "`internal` from someone not staff"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "the ticket already has 20 files (`too_many_attachments`)"),
        (status = 413, body = ErrorBody, description = "the file is larger than `ATTACHMENT_MAX_BYTES`; `details.limit` says by how much"),
        (status = 415, body = ErrorBody, description = "not multipart/form-data")))]
pub async fn upload_attachment(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<AttachmentResponse>)> {
    let ticket = visible_ticket(&state, &user, &id).await?;
    let limit = state.attachments.max_bytes();
    // Refused before a byte is read when the client says up front that it is too much.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(MULTIPART_ENVELOPE)) {
        return Err(AppError::FileTooLarge { limit });
    }
    if state.store.list_attachments(&ticket.id, true).await?.len() >= MAX_PER_TICKET {
        return Err(AttachmentError::TicketFull.into());
    }
    let mut multipart = multipart.map_err(|_| AppError::NotMultipart)?;
    let staff = can_see_internal(user.role());
    let mut file = None;
    let mut internal = false;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        match field.name() {
            Some("file") if file.is_none() => {
                let name = field.file_name().unwrap_or_default().to_owned();
                let body =
                    Box::pin(field.map(|chunk| chunk.map_err(|e| multipart_error(e, limit))));
                file = Some((state.attachments.spool(body).await?, name));
            }
            Some("file") => return Err(AppError::field("file", "send one file per request")),
            Some("internal") => {
                internal = parse_flag(field, limit).await?;
                if internal && !staff {
                    return Err(AppError::forbidden("only staff add internal files"));
                }
            }
            other => {
                return Err(AppError::field(
                    other.unwrap_or("(unnamed)"),
                    "unexpected part; send `file` and optionally `internal`",
                ));
            }
        }
    }
    let Some((spooled, filename)) = file else {
        return Err(AppError::field("file", "a part named `file` is required"));
    };
    let upload = Upload {
        ticket_id: ticket.id,
        uploaded_by: user.id().to_owned(),
        filename,
        internal,
    };
    let attachment = state.attachments.attach(spooled, upload).await?;
    Ok((
        StatusCode::CREATED,
        Json(AttachmentResponse {
            attachment: attachment.into(),
        }),
    ))
}

#[utoipa::path(get, path = "/api/tickets/{id}/attachments", tag = "attachments", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = AttachmentList, description = "oldest first; internal files only for staff"), (status = 404, body = ErrorBody)))]
pub async fn list_attachments(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<AttachmentList>> {
    let ticket = visible_ticket(&state, &user, &id).await?;
    let attachments = state
        .store
        .list_attachments(&ticket.id, can_see_internal(user.role()))
        .await?;
    Ok(Json(AttachmentList {
        attachments: attachments.into_iter().map(AttachmentView::from).collect(),
    }))
}

/// The attachment, if this user may see it: they may see its ticket, and it is not internal or
/// they are staff. Anything else is the same 404 as a file that does not exist.
async fn visible_attachment(
    state: &AppState,
    user: &CurrentUser,
    raw_id: &str,
) -> ApiResult<Attachment> {
    let id = path_id(raw_id)?;
    let attachment = state
        .store
        .get_attachment(&id)
        .await?
        .ok_or(AppError::NotFound)?;
    let ticket = state
        .store
        .get_ticket(&attachment.ticket_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let ownership = TicketOwnership {
        created_by: &ticket.created_by,
        assigned_to: ticket.assigned_to.as_deref(),
    };
    let visible = can_view(user.id(), user.role(), &ownership)
        && (!attachment.internal || can_see_internal(user.role()));
    if visible {
        Ok(attachment)
    } else {
        Err(AppError::NotFound)
    }
}

#[utoipa::path(get, path = "/api/attachments/{id}", tag = "attachments", security(("bearer" = [])), params(("id" = String, Path)),
    responses(
        (status = 200, content((FileBytes = "application/octet-stream"), (FileBytes = "image/png"), (FileBytes = "image/jpeg"), (FileBytes = "image/gif"), (FileBytes = "image/webp")),
            description = "The bytes. PNG, JPEG, GIF and WebP come as themselves, inline; everything else as `application/octet-stream` with `Content-Disposition: attachment`. Always `X-Content-Type-Options: nosniff` and `Content-Security-Policy: sandbox`; `ETag` is the SHA-256."),
        (status = 304, description = "`If-None-Match` named the current ETag"),
        (status = 404, body = ErrorBody, description = "no such file, or not for this user")))]
pub async fn download_attachment(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let attachment = visible_attachment(&state, &user, &id).await?;
    let etag = format!("\"{}\"", attachment.sha256);
    let (content_type, disposition) = serve_as(&attachment.content_type);
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let Some(bytes) = state.attachments.content(&attachment).await? else {
            return Err(AppError::NotFound);
        };
        let mut response = Body::from_stream(bytes).into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(attachment.size));
        let disposition = content_disposition(disposition, &attachment.filename);
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            h.insert(header::CONTENT_DISPOSITION, value);
        }
        response
    };
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    // Only for the person who asked, and checked again each time: access can be taken away.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    Ok(response)
}

#[utoipa::path(delete, path = "/api/attachments/{id}", tag = "attachments", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204, description = "removed, and its bytes too unless another file has the same"),
        (status = 403, body = ErrorBody, description = "neither the uploader nor an admin"),
        (status = 404, body = ErrorBody)))]
pub async fn delete_attachment(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let attachment = visible_attachment(&state, &user, &id).await?;
    if !can_delete(user.id(), user.role(), &attachment.uploaded_by) {
        return Err(AppError::forbidden(
            "only the uploader or an admin deletes a file",
        ));
    }
    state
        .attachments
        .detach(&attachment.id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(StatusCode::NO_CONTENT)
}
