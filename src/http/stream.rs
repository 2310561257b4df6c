//! `GET /api/stream`: Server-Sent Events of committed ticket changes. Each change is checked
//! when it is sent: the token and the account again (a signed-out or deleted viewer's stream
//! ends), then exactly the rule of `GET /api/tickets/{id}` against the ticket as it is now, and
//! internal notes for staff only; the ticket goes out in that viewer's view.

use super::AppState;
use super::error::{ApiResult, AppError, ErrorBody};
use super::extract::{CurrentUser, authenticate, bearer_token};
use super::tickets::{render_ticket, visible_ticket};
use super::views::{CommentView, TicketBody};
use crate::domain::access::can_see_internal;
use crate::live::{Change, Next, Subscription};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Serialize;
use std::convert::Infallible;
use std::time::Duration;
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// A comment line this often keeps proxies from closing an idle stream, and re-checks the
/// viewer's token between changes.
pub const PING_EVERY: Duration = Duration::from_secs(15);

/// The `data` of an `event: ticket`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StreamEvent {
    /// `ticket.created`, `ticket.updated` or `comment.added`.
    #[serde(rename = "type")]
    kind: &'static str,
    ticket_id: String,
    /// The ticket as `GET /api/tickets/{id}` shows it to this viewer now.
    ticket: TicketBody,
    /// The new comment, for `comment.added`.
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<CommentView>,
}

#[utoipa::path(get, path = "/api/stream", tag = "stream", security(("bearer" = [])),
    params(("Last-Event-ID" = Option<String>, Header,
        description = "The last `id` received: the events after it are replayed, or `event: resync` is sent when they are no longer kept")),
    responses(
        (status = 200, content_type = "text/event-stream", body = StreamEvent,
         description = "`id: <sequence>`, `event: ticket`, `data: StreamEvent` per change the viewer may see; `event: resync` (data `{}`) when changes were missed and what is shown should be read again; `: ping` every 15 s. Ends when the server shuts down or the token stops being valid."),
        (status = 401, body = ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
    _viewer: CurrentUser,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let token = bearer_token(&headers)
        .ok_or(AppError::Unauthorized)?
        .to_owned();
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let subscription = state.live.subscribe(last_event_id);
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let feed = Feed {
        state,
        token,
        subscription,
        ping,
    };
    // Sent at once, so the client knows the subscription is in place.
    let hello = futures::stream::once(async { Event::default().comment("connected") });
    let events = hello
        .chain(futures::stream::unfold(feed, |mut feed| async move {
            feed.next().await.map(|event| (event, feed))
        }))
        .map(Ok::<_, Infallible>);
    // Proxies that buffer responses would hold events back.
    Ok(([("x-accel-buffering", "no")], Sse::new(events)).into_response())
}

struct Feed {
    state: AppState,
    token: String,
    subscription: Subscription,
    ping: Interval,
}

enum Wake {
    Bus(Next),
    Ping,
}

fn resync() -> Event {
    Event::default().event("resync").data("{}")
}

impl Feed {
    /// The next event for this viewer, or `None` when the stream ends.
    async fn next(&mut self) -> Option<Event> {
        loop {
            let wake = tokio::select! {
                next = self.subscription.next() => Wake::Bus(next),
                _ = self.ping.tick() => Wake::Ping,
            };
            match wake {
                Wake::Bus(Next::Closed) => return None,
                Wake::Bus(Next::Resync) => return Some(resync()),
                Wake::Bus(Next::Change(change)) => match self.render(&change).await {
                    Ok(Some(event)) => return Some(event),
                    Ok(None) => continue,
                    Err(AppError::Unauthorized) => return None,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot send a change on the stream; the client re-reads");
                        return Some(resync());
                    }
                },
                Wake::Ping => match authenticate(&self.state, &self.token).await {
                    Err(AppError::Unauthorized) => return None,
                    // A store hiccup is no reason to drop the viewer: the next check decides.
                    _ => return Some(Event::default().comment("ping")),
                },
            }
        }
    }

    /// The event for `change` as this viewer may see it now; `None` when they may not.
    async fn render(&self, change: &Change) -> ApiResult<Option<Event>> {
        let viewer = CurrentUser(authenticate(&self.state, &self.token).await?);
        let ticket = match visible_ticket(&self.state, &viewer, &change.ticket_id).await {
            Ok(ticket) => ticket,
            Err(AppError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        if change
            .comment
            .as_ref()
            .is_some_and(|c| c.internal && !can_see_internal(viewer.role()))
        {
            return Ok(None);
        }
        let payload = StreamEvent {
            kind: change.kind.as_str(),
            ticket_id: ticket.id.clone(),
            ticket: render_ticket(&self.state, viewer.role(), ticket).await?,
            comment: change.comment.clone().map(CommentView::from),
        };
        let data = serde_json::to_string(&payload).map_err(|e| AppError::Internal(e.into()))?;
        Ok(Some(
            Event::default()
                .id(change.seq.to_string())
                .event("ticket")
                .data(data),
        ))
    }
}
