//! The events the API writes to the outbox. They carry ids, never documents.

use serde::Serialize;
use serde_json::{Value, json};

pub const USER_SIGNUP: &str = "user/signup";
/// Someone asked for a password-reset link for this account.
pub const USER_PASSWORD_RESET_REQUESTED: &str = "user/password-reset-requested";
/// Someone asked for a new verification link for this (unverified) account.
pub const USER_VERIFICATION_REQUESTED: &str = "user/verification-requested";
/// Someone tried to sign up with the address of this existing account.
pub const USER_SIGNUP_ATTEMPTED: &str = "user/signup-attempted";
pub const TICKET_CREATED: &str = "ticket/created";
pub const TICKET_UPDATED: &str = "ticket/updated";
pub const TICKET_RESOLVED: &str = "ticket/resolved";
pub const TICKET_COMMENTED: &str = "ticket/commented";
/// An admin asked for the ticket to be triaged again.
pub const TICKET_RETRIAGE: &str = "ticket/retriage.requested";
/// The ticket lost its assignee (no longer staff) and goes back to routing.
pub const TICKET_REROUTE: &str = "ticket/reroute.requested";

/// An event on its way into the outbox. `id` becomes the Inngest event id, so a resend after a
/// crash is deduplicated downstream.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NewEvent {
    pub id: String,
    pub name: String,
    pub data: Value,
}

impl NewEvent {
    fn new(name: &str, data: Value) -> Self {
        Self {
            id: super::new_id(),
            name: name.to_owned(),
            data,
        }
    }

    pub fn user_signup(user_id: &str) -> Self {
        Self::new(USER_SIGNUP, json!({ "user_id": user_id }))
    }

    pub fn password_reset_requested(user_id: &str) -> Self {
        Self::new(USER_PASSWORD_RESET_REQUESTED, json!({ "user_id": user_id }))
    }

    pub fn verification_requested(user_id: &str) -> Self {
        Self::new(USER_VERIFICATION_REQUESTED, json!({ "user_id": user_id }))
    }

    pub fn signup_attempted(user_id: &str) -> Self {
        Self::new(USER_SIGNUP_ATTEMPTED, json!({ "user_id": user_id }))
    }

    pub fn ticket_created(ticket_id: &str, created_by: &str) -> Self {
        Self::new(
            TICKET_CREATED,
            json!({ "ticket_id": ticket_id, "created_by": created_by }),
        )
    }

    /// `changes` maps a field name to `{"from": …, "to": …}`.
    pub fn ticket_updated(ticket_id: &str, actor_id: &str, changes: Value) -> Self {
        Self::new(
            TICKET_UPDATED,
            json!({ "ticket_id": ticket_id, "actor_id": actor_id, "changes": changes }),
        )
    }

    pub fn ticket_resolved(ticket_id: &str, actor_id: &str) -> Self {
        Self::new(
            TICKET_RESOLVED,
            json!({ "ticket_id": ticket_id, "actor_id": actor_id }),
        )
    }

    pub fn ticket_retriage(ticket_id: &str, actor_id: &str) -> Self {
        Self::new(
            TICKET_RETRIAGE,
            json!({ "ticket_id": ticket_id, "actor_id": actor_id }),
        )
    }

    pub fn ticket_reroute(ticket_id: &str, actor_id: &str) -> Self {
        Self::new(
            TICKET_REROUTE,
            json!({ "ticket_id": ticket_id, "actor_id": actor_id }),
        )
    }

    /// What a ticket taken from its former assignee (`actor_id` revoked their staff role)
    /// emits: the change itself, and the request to route the ticket again.
    pub fn assignee_released(ticket_id: &str, actor_id: &str, former: &str) -> Vec<Self> {
        vec![
            Self::ticket_updated(
                ticket_id,
                actor_id,
                json!({ "assigned_to": { "from": former, "to": null } }),
            ),
            Self::ticket_reroute(ticket_id, actor_id),
        ]
    }

    pub fn ticket_commented(
        ticket_id: &str,
        comment_id: &str,
        author_id: &str,
        internal: bool,
    ) -> Self {
        Self::new(
            TICKET_COMMENTED,
            json!({
                "ticket_id": ticket_id,
                "comment_id": comment_id,
                "author_id": author_id,
                "internal": internal,
            }),
        )
    }
}
