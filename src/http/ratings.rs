//! Satisfaction: the ticket's creator rates it once it is resolved or closed, once.

use super::AppState;
use super::error::{ApiResult, AppError, ErrorBody};
use super::extract::{ApiJson, ApiPath, CurrentUser};
use super::tickets::visible_ticket;
use super::views::RatingView;
use crate::domain::access::{TicketOwnership, can_rate};
use crate::domain::rating::{Score, parse_comment};
use crate::store::{NewRating, RateOutcome};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingBody {
    /// 1 (poor) to 5 (excellent).
    #[schema(minimum = 1, maximum = 5)]
    score: i64,
    /// Up to 2000 characters.
    comment: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RatingResponse {
    rating: RatingView,
}

#[utoipa::path(post, path = "/api/tickets/{id}/rating", tag = "tickets", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = RatingBody,
    responses((status = 201, body = RatingResponse), (status = 403, body = ErrorBody, description = "not the ticket's creator"),
              (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "`not_resolved` (not resolved or closed) or `already_rated`"),
              (status = 422, body = ErrorBody)))]
pub async fn rate_ticket(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RatingBody>,
) -> ApiResult<(StatusCode, Json<RatingResponse>)> {
    let ticket = visible_ticket(&state, &user, &id).await?;
    let ownership = TicketOwnership {
        created_by: &ticket.created_by,
        assigned_to: ticket.assigned_to.as_deref(),
    };
    if !can_rate(user.id(), &ownership) {
        return Err(AppError::forbidden("only the ticket's creator rates it"));
    }
    let score = Score::parse(body.score)?;
    let comment = parse_comment(body.comment.as_deref())?;
    let outcome = state
        .store
        .rate_ticket(NewRating {
            ticket_id: ticket.id,
            by: user.id().to_owned(),
            score: score.get(),
            comment,
        })
        .await?;
    match outcome {
        RateOutcome::Rated(ticket) => {
            let rating = ticket.rating.ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!("BUG: a rated ticket without its rating"))
            })?;
            Ok((
                StatusCode::CREATED,
                Json(RatingResponse {
                    rating: rating.into(),
                }),
            ))
        }
        RateOutcome::AlreadyRated => Err(AppError::Conflict {
            code: "already_rated",
            message: "this ticket has been rated already".into(),
        }),
        RateOutcome::NotResolved => Err(AppError::Conflict {
            code: "not_resolved",
            message: "a ticket can be rated once it is resolved or closed".into(),
        }),
    }
}
