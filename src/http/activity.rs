//! A ticket's timeline: what happened to it, oldest first, as its viewer may see it.

use super::AppState;
use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiPath, CurrentUser};
use super::tickets::visible_ticket;
use crate::domain::access::visible_activity;
use crate::domain::user::display_name;
use crate::store::Activity;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;

#[derive(Serialize, utoipa::ToSchema)]
pub struct ActivityList {
    activity: Vec<ActivityView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ActivityView {
    id: String,
    /// `created`, `triaged`, `assigned`, `status_changed`, `priority_changed`, `sla_set`,
    /// `escalated`, `commented` or `rated`.
    kind: String,
    at: DateTime<Utc>,
    /// Who made the change; `null` for the service itself (triage, routing, SLA).
    actor: Option<Person>,
    /// Depends on `kind`; see the README.
    #[schema(value_type = Object)]
    data: Value,
}

#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct Person {
    id: String,
    name: String,
}

/// Names of the people a timeline mentions, each looked up once.
struct People<'a> {
    state: &'a AppState,
    known: HashMap<String, Person>,
}

impl People<'_> {
    async fn get(&mut self, id: &str) -> ApiResult<Person> {
        if let Some(person) = self.known.get(id) {
            return Ok(person.clone());
        }
        let name = self
            .state
            .store
            .get_user(id)
            .await?
            .map(|u| display_name(&u.name, &u.email))
            .unwrap_or_default();
        let person = Person {
            id: id.to_owned(),
            name,
        };
        self.known.insert(id.to_owned(), person.clone());
        Ok(person)
    }
}

#[utoipa::path(get, path = "/api/tickets/{id}/activity", tag = "tickets", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = ActivityList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_activity(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ActivityList>> {
    let ticket = visible_ticket(&state, &user, &id).await?;
    let entries = state.store.list_activity(&ticket.id).await?;
    let mut people = People {
        state: &state,
        known: HashMap::new(),
    };
    let mut activity = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(shown) = visible_activity(user.role(), entry.activity) else {
            continue;
        };
        let actor = match &entry.actor_id {
            Some(id) => Some(people.get(id).await?),
            None => None,
        };
        let (kind, data) = match shown {
            // People are shown by name; the reason is there only for staff.
            Activity::Assigned {
                assignee_id,
                reason,
            } => {
                let assignee = match assignee_id {
                    Some(id) => Some(people.get(&id).await?),
                    None => None,
                };
                let mut data = json!({ "assignee": assignee });
                if let Some(reason) = reason {
                    data["reason"] = Value::String(reason);
                }
                ("assigned".to_owned(), data)
            }
            other => other.into_parts(),
        };
        activity.push(ActivityView {
            id: entry.id,
            kind,
            at: entry.at,
            actor,
            data,
        });
    }
    Ok(Json(ActivityList { activity }))
}
