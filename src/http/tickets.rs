//! Opening, listing, reading and changing tickets.

use super::AppState;
use super::error::{ApiResult, AppError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser, path_id};
use super::pagination;
use super::views::TicketBody;
use crate::domain::access::{TicketOwnership, can_view, listable, ticket_view};
use crate::domain::events::NewEvent;
use crate::domain::new_id;
use crate::domain::ticket::{Actor, Category, Description, Priority, TicketStatus, Title};
use crate::domain::user::{Role, display_name};
use crate::store::{
    AssigneeFilter, NewTicket, StoreError, Ticket, TicketChange, TicketQuery, TicketSort,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTicketBody {
    title: String,
    description: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TicketResponse {
    ticket: TicketBody,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TicketList {
    tickets: Vec<TicketBody>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// Display names of the assignees of `tickets`, each looked up once.
async fn assignee_names(
    state: &AppState,
    tickets: &[Ticket],
) -> ApiResult<HashMap<String, String>> {
    let mut names = HashMap::new();
    for id in tickets.iter().filter_map(|t| t.assigned_to.as_deref()) {
        if names.contains_key(id) {
            continue;
        }
        if let Some(user) = state.store.get_user(id).await? {
            names.insert(id.to_owned(), display_name(&user.name, &user.email));
        }
    }
    Ok(names)
}

fn view_of(ticket: Ticket, role: Role, names: &HashMap<String, String>) -> TicketBody {
    let assignee_name = ticket
        .assigned_to
        .as_ref()
        .and_then(|id| names.get(id).cloned());
    TicketBody::new(ticket, ticket_view(role), assignee_name)
}

/// A ticket as a viewer of this role may see it (the rule is `domain::access::ticket_view`),
/// with its assignee's display name: the one place a ticket becomes JSON for a person.
pub async fn render_ticket(state: &AppState, role: Role, ticket: Ticket) -> ApiResult<TicketBody> {
    let names = assignee_names(state, std::slice::from_ref(&ticket)).await?;
    Ok(view_of(ticket, role, &names))
}

/// [`render_ticket`] for a page of tickets.
pub async fn render_tickets(
    state: &AppState,
    role: Role,
    tickets: Vec<Ticket>,
) -> ApiResult<Vec<TicketBody>> {
    let names = assignee_names(state, &tickets).await?;
    Ok(tickets
        .into_iter()
        .map(|t| view_of(t, role, &names))
        .collect())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    status: Option<TicketStatus>,
    priority: Option<Priority>,
    category: Option<Category>,
    /// A user id, or `none` for unassigned tickets.
    assignee: Option<String>,
    /// Text to find in the title or description.
    q: Option<String>,
    /// `newest` (the default) or `sla_due`: soonest SLA deadline first, tickets without one
    /// last. A cursor only continues the order it came from.
    sort: Option<SortParam>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortParam {
    Newest,
    SlaDue,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTicketBody {
    status: Option<TicketStatus>,
    /// Admins only; a priority set by a person is never overwritten by triage.
    priority: Option<Priority>,
    /// Admins only; `null` unassigns.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    assignee_id: Option<Option<String>>,
}

/// Tells an explicit `null` apart from a missing field.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Loads a ticket the caller may see; anything else is a 404, so existence never leaks.
pub async fn visible_ticket(
    state: &AppState,
    user: &CurrentUser,
    raw_id: &str,
) -> ApiResult<Ticket> {
    let id = path_id(raw_id)?;
    let ticket = state
        .store
        .get_ticket(&id)
        .await?
        .ok_or(AppError::NotFound)?;
    let ownership = TicketOwnership {
        created_by: &ticket.created_by,
        assigned_to: ticket.assigned_to.as_deref(),
    };
    if can_view(user.id(), user.role(), &ownership) {
        Ok(ticket)
    } else {
        Err(AppError::NotFound)
    }
}

#[utoipa::path(post, path = "/api/tickets", tag = "tickets", security(("bearer" = [])), request_body = CreateTicketBody,
    responses((status = 201, body = TicketResponse), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`email_unverified`: the address is not confirmed yet (`REQUIRE_EMAIL_VERIFICATION`)"),
        (status = 422, body = ErrorBody)))]
pub async fn create_ticket(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(body): ApiJson<CreateTicketBody>,
) -> ApiResult<(StatusCode, Json<TicketResponse>)> {
    if state.config.accounts.require_email_verification && !user.0.email_verified {
        return Err(AppError::EmailUnverified);
    }
    let title = Title::parse(&body.title)?;
    let description = Description::parse(&body.description)?;
    let id = new_id();
    let event = NewEvent::ticket_created(&id, user.id());
    let new = NewTicket {
        id,
        title,
        description,
        created_by: user.id().to_owned(),
    };
    let ticket = state.store.create_ticket(new, event).await?;
    tracing::info!(ticket_id = %ticket.id, "ticket opened");
    state.notify_outbox();
    Ok((
        StatusCode::CREATED,
        Json(TicketResponse {
            ticket: render_ticket(&state, user.role(), ticket).await?,
        }),
    ))
}

#[utoipa::path(get, path = "/api/tickets", tag = "tickets", security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = TicketList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_tickets(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<TicketList>> {
    let visibility = listable(user.id(), user.role());
    let assignee = match params.assignee.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("none" | "unassigned") => Some(AssigneeFilter::Unassigned),
        Some(raw) => Some(AssigneeFilter::User(
            crate::domain::parse_id(raw).ok_or_else(|| {
                AppError::bad_request("invalid_query", "assignee must be a user id or `none`")
            })?,
        )),
    };
    let text = params
        .q
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty());
    if text.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(AppError::bad_request(
            "invalid_query",
            "q must be at most 200 characters",
        ));
    }
    let sort = params.sort.unwrap_or(SortParam::Newest);
    let (sort, after) = match sort {
        SortParam::Newest => (
            TicketSort::Newest,
            pagination::decode(params.cursor.as_deref())?,
        ),
        SortParam::SlaDue => match pagination::decode_sla_due(params.cursor.as_deref())? {
            Some(cursor) => (
                TicketSort::SlaDue {
                    after_due: cursor.due,
                },
                Some(cursor.id),
            ),
            None => (TicketSort::SlaDue { after_due: None }, None),
        },
    };
    let query = TicketQuery {
        visibility,
        status: params.status,
        priority: params.priority,
        category: params.category,
        assignee,
        text,
        sort,
        limit: pagination::limit(params.limit)?,
        after,
    };
    let page = state.store.list_tickets(&query).await?;
    let next_cursor = match (&query.sort, page.next_after.is_some(), page.items.last()) {
        (TicketSort::Newest, true, Some(last)) => Some(pagination::encode(&last.id)),
        (TicketSort::SlaDue { .. }, true, Some(last)) => {
            Some(pagination::encode_sla_due(last.sla_due_at, &last.id))
        }
        _ => None,
    };
    Ok(Json(TicketList {
        tickets: render_tickets(&state, user.role(), page.items).await?,
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/tickets/{id}", tag = "tickets", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = TicketResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_ticket(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TicketResponse>> {
    let ticket = visible_ticket(&state, &user, &id).await?;
    Ok(Json(TicketResponse {
        ticket: render_ticket(&state, user.role(), ticket).await?,
    }))
}

#[utoipa::path(patch, path = "/api/tickets/{id}", tag = "tickets", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = UpdateTicketBody,
    responses((status = 200, body = TicketResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_ticket(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateTicketBody>,
) -> ApiResult<Json<TicketResponse>> {
    if body.status.is_none() && body.priority.is_none() && body.assignee_id.is_none() {
        return Err(AppError::field(
            "body",
            "provide at least one of status, priority, assignee_id",
        ));
    }
    if (body.priority.is_some() || body.assignee_id.is_some()) && user.role() != Role::Admin {
        // Only visible tickets reveal that the caller lacks the right.
        visible_ticket(&state, &user, &id).await?;
        return Err(AppError::forbidden(
            "only admins change priority or assignee",
        ));
    }
    let new_assignee = match &body.assignee_id {
        Some(Some(raw)) => {
            let assignee_id = crate::domain::parse_id(raw)
                .ok_or_else(|| AppError::field("assignee_id", "not a user id"))?;
            let assignee = state
                .store
                .get_user(&assignee_id)
                .await?
                .ok_or_else(|| AppError::field("assignee_id", "no such user"))?;
            if !assignee.role.is_staff() {
                return Err(AppError::field(
                    "assignee_id",
                    "tickets can only be assigned to moderators or admins",
                ));
            }
            Some(Some(assignee.id))
        }
        Some(None) => Some(None),
        None => None,
    };
    // Optimistic concurrency: decide on a fresh read, retry if someone else wrote in between.
    for _ in 0..5 {
        let ticket = visible_ticket(&state, &user, &id).await?;
        let Some((change, events)) = decide_update(&ticket, &user, &body, &new_assignee)? else {
            return Ok(Json(TicketResponse {
                ticket: render_ticket(&state, user.role(), ticket).await?,
            }));
        };
        match state
            .store
            .update_ticket(&ticket.id, ticket.version, change, events)
            .await
        {
            Ok(ticket) => {
                state.notify_outbox();
                return Ok(Json(TicketResponse {
                    ticket: render_ticket(&state, user.role(), ticket).await?,
                }));
            }
            Err(StoreError::Stale) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Stale.into())
}

#[utoipa::path(put, path = "/api/tickets/{id}", tag = "tickets", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = UpdateTicketBody,
    responses((status = 200, body = TicketResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_ticket(
    state: State<AppState>,
    user: CurrentUser,
    id: ApiPath<String>,
    body: ApiJson<UpdateTicketBody>,
) -> ApiResult<Json<TicketResponse>> {
    update_ticket(state, user, id, body).await
}

/// Turns a request into a change and its events, or `None` when nothing would change.
fn decide_update(
    ticket: &Ticket,
    user: &CurrentUser,
    body: &UpdateTicketBody,
    new_assignee: &Option<Option<String>>,
) -> ApiResult<Option<(TicketChange, Vec<NewEvent>)>> {
    let actor = Actor {
        role: user.role(),
        is_creator: ticket.created_by == user.id(),
        is_assignee: ticket.assigned_to.as_deref() == Some(user.id()),
    };
    let mut change = TicketChange {
        actor: Some(user.id().to_owned()),
        ..TicketChange::default()
    };
    let mut changes = Map::new();
    if let Some(to) = body.status.filter(|s| *s != ticket.status) {
        change.status = Some(ticket.status.transition(to, actor)?);
        changes.insert("status".into(), json!({ "from": ticket.status, "to": to }));
    }
    if let Some(p) = body.priority {
        change.lock_priority = true;
        if p != ticket.priority {
            change.priority = Some(p);
            changes.insert(
                "priority".into(),
                json!({ "from": ticket.priority, "to": p }),
            );
        }
    }
    if let Some(a) = new_assignee.as_ref().filter(|a| **a != ticket.assigned_to) {
        change.assigned_to = Some(a.clone());
        // A person's decision: automatic routing will not undo it.
        change.routing_reason = Some(match a {
            Some(_) => "Assigned by an admin.".to_owned(),
            None => {
                "Unassigned by an admin; waits in the queue for a person to assign it.".to_owned()
            }
        });
        changes.insert(
            "assigned_to".into(),
            json!({ "from": ticket.assigned_to, "to": a }),
        );
    }
    let newly_locked = change.lock_priority && !ticket.priority_locked;
    if changes.is_empty() && !newly_locked {
        return Ok(None);
    }
    let mut events = Vec::new();
    if !changes.is_empty() {
        events.push(NewEvent::ticket_updated(
            &ticket.id,
            user.id(),
            Value::Object(changes),
        ));
    }
    if change.status == Some(TicketStatus::Resolved) {
        events.push(NewEvent::ticket_resolved(&ticket.id, user.id()));
    }
    Ok(Some((change, events)))
}

#[utoipa::path(post, path = "/api/tickets/{id}/retriage", tag = "tickets", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 202, body = TicketResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn retriage_ticket(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<TicketResponse>)> {
    user.require(Role::Admin)?;
    for _ in 0..5 {
        let ticket = visible_ticket(&state, &user, &id).await?;
        let event = NewEvent::ticket_retriage(&ticket.id, user.id());
        match state
            .store
            .update_ticket(
                &ticket.id,
                ticket.version,
                TicketChange::default(),
                vec![event],
            )
            .await
        {
            Ok(ticket) => {
                state.notify_outbox();
                let ticket = render_ticket(&state, user.role(), ticket).await?;
                return Ok((StatusCode::ACCEPTED, Json(TicketResponse { ticket })));
            }
            Err(StoreError::Stale) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Stale.into())
}
