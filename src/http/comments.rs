//! Replies on a ticket. Internal notes are written and read by staff only.

use super::AppState;
use super::error::{ApiResult, AppError, ErrorBody};
use super::extract::{ApiJson, ApiPath, CurrentUser};
use super::tickets::visible_ticket;
use super::views::CommentView;
use crate::domain::access::can_see_internal;
use crate::domain::events::NewEvent;
use crate::domain::new_id;
use crate::domain::ticket::parse_comment_body;
use crate::store::NewComment;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    body: String,
    /// Staff-only note, hidden from the ticket's creator.
    #[serde(default)]
    internal: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CommentResponse {
    comment: CommentView,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CommentList {
    comments: Vec<CommentView>,
}

#[utoipa::path(get, path = "/api/tickets/{id}/comments", tag = "comments", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = CommentList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_comments(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<CommentList>> {
    let ticket = visible_ticket(&state, &user, &id).await?;
    let comments = state
        .store
        .list_comments(&ticket.id, can_see_internal(user.role()))
        .await?;
    Ok(Json(CommentList {
        comments: comments.into_iter().map(CommentView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/tickets/{id}/comments", tag = "comments", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = CommentBody,
    responses((status = 201, body = CommentResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_comment(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CommentBody>,
) -> ApiResult<(StatusCode, Json<CommentResponse>)> {
    let ticket = visible_ticket(&state, &user, &id).await?;
    if body.internal && !can_see_internal(user.role()) {
        return Err(AppError::forbidden("only staff write internal notes"));
    }
    let text = parse_comment_body(&body.body)?;
    let comment_id = new_id();
    let event = NewEvent::ticket_commented(&ticket.id, &comment_id, user.id(), body.internal);
    let new = NewComment {
        id: comment_id,
        ticket_id: ticket.id,
        author_id: user.id().to_owned(),
        body: text,
        internal: body.internal,
        by_staff: user.role().is_staff(),
    };
    let comment = state.store.add_comment(new, event).await?;
    state.notify_outbox();
    Ok((
        StatusCode::CREATED,
        Json(CommentResponse {
            comment: comment.into(),
        }),
    ))
}
