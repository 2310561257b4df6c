//! Persistence behind one `Store` trait, split into narrow parts. SQLite is the embedded
//! default; MongoDB is chosen by a `mongodb://` URL. Both pass the same contract tests.
//!
//! Every write that emits an event takes the event along and commits both together: the
//! outbox is what makes "saved but never processed" impossible.

pub mod attachments;
pub mod model;
pub mod mongo;
pub mod sqlite;

use async_trait::async_trait;
pub use attachments::*;
pub use model::*;

use crate::domain::account_token::{TokenHash, TokenPurpose};
pub use crate::domain::activity::{Activity, ActivityEntry, NewActivity};
use crate::domain::events::NewEvent;
use chrono::{DateTime, Utc};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique index refused the write; `field` names it for the client.
    #[error("{field} already exists")]
    Conflict { field: &'static str },
    /// Someone else changed the row first (optimistic concurrency).
    #[error("the record was changed concurrently")]
    Stale,
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates the user and, when given, its event, atomically. A taken e-mail is `Conflict`.
    async fn create_user(&self, user: NewUser, event: Option<NewEvent>) -> StoreResult<User>;
    async fn get_user(&self, id: &str) -> StoreResult<Option<User>>;
    /// The only read that returns the password hash: login needs it, nothing else does.
    async fn find_credentials(&self, email: &str) -> StoreResult<Option<Credentials>>;
    async fn list_users(&self, query: &UserQuery) -> StoreResult<Page<User>>;
    async fn update_user(&self, id: &str, patch: UserPatch) -> StoreResult<User>;
}

/// Recovering and ending access: password changes, one-time links, token generations.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Replaces the password and raises the token generation (ending every access token issued
    /// before); outstanding reset links die with the old password.
    async fn set_password(&self, user_id: &str, password_hash: &str) -> StoreResult<User>;
    /// Raises the token generation: every access token issued before stops working.
    async fn end_sessions(&self, user_id: &str) -> StoreResult<User>;
    /// Looks up the account with this e-mail and writes `event(user_id)` to the outbox, in one
    /// transaction, so the caller does the same store work whether the account exists or not.
    /// With `unverified_only`, a verified account gets no event. Returns whether one was written.
    async fn queue_user_event(
        &self,
        email: &str,
        unverified_only: bool,
        event: for<'a> fn(&'a str) -> NewEvent,
    ) -> StoreResult<bool>;
    /// Keeps a link's hash until it expires or is used; expired links are cleared meanwhile.
    async fn create_account_token(&self, token: NewAccountToken) -> StoreResult<()>;
    /// The account a live (unused, unexpired) link of this purpose belongs to.
    async fn find_account_token(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>>;
    /// Uses a live reset link, atomically: sets the password, raises the token generation,
    /// removes every reset link of the account and counts the address as verified (the link
    /// reached it). `None` when the link is unknown, used or expired.
    async fn reset_password(
        &self,
        hash: &TokenHash,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>>;
    /// Uses a live verification link, atomically: marks the address verified and removes every
    /// verification link of the account. `None` when the link is unknown, used or expired.
    async fn verify_email(&self, hash: &TokenHash, now: DateTime<Utc>)
    -> StoreResult<Option<User>>;
}

#[async_trait]
pub trait TicketStore: Send + Sync {
    async fn create_ticket(&self, ticket: NewTicket, event: NewEvent) -> StoreResult<Ticket>;
    async fn get_ticket(&self, id: &str) -> StoreResult<Option<Ticket>>;
    async fn list_tickets(&self, query: &TicketQuery) -> StoreResult<Page<Ticket>>;
    /// Applies `change` only if the ticket is still at `expected_version`, with its events.
    /// Returns `Stale` otherwise, so a caller can re-read and decide again.
    async fn update_ticket(
        &self,
        id: &str,
        expected_version: i64,
        change: TicketChange,
        events: Vec<NewEvent>,
    ) -> StoreResult<Ticket>;
    async fn add_comment(&self, comment: NewComment, event: NewEvent) -> StoreResult<Comment>;
    async fn list_comments(
        &self,
        ticket_id: &str,
        include_internal: bool,
    ) -> StoreResult<Vec<Comment>>;
    async fn stats(&self) -> StoreResult<Stats>;
    /// Records the creator's rating if the ticket is resolved or closed and not rated yet, with
    /// its activity entry, in one atomic decision. A missing ticket is `NotFound`.
    async fn rate_ticket(&self, rating: NewRating) -> StoreResult<RateOutcome>;
    /// Everything the log holds for the ticket, oldest first; hiding entries is the caller's call.
    async fn list_activity(&self, ticket_id: &str) -> StoreResult<Vec<ActivityEntry>>;
}

/// The activity entries of a person's change to a ticket, given the ticket before it.
pub(crate) fn activity_of_change(before: &Ticket, change: &TicketChange) -> Vec<NewActivity> {
    let actor = change.actor.as_deref();
    let mut entries = Vec::new();
    if let Some(to) = change.status.filter(|s| *s != before.status) {
        entries.push(NewActivity::new(
            actor,
            Activity::StatusChanged {
                from: before.status,
                to,
            },
        ));
    }
    if let Some(to) = change.priority.filter(|p| *p != before.priority) {
        entries.push(NewActivity::new(
            actor,
            Activity::PriorityChanged {
                from: before.priority,
                to,
            },
        ));
    }
    if let Some(assignee) = change
        .assigned_to
        .as_ref()
        .filter(|a| **a != before.assigned_to)
    {
        entries.push(NewActivity::new(
            actor,
            Activity::Assigned {
                assignee_id: assignee.clone(),
                reason: change.routing_reason.clone(),
            },
        ));
    }
    entries
}

/// The entry for saved triage; `priority` is the one the ticket has after it (a priority a
/// person locked stays).
pub(crate) fn triage_activity(triage: &TriageUpdate, after: &Ticket) -> NewActivity {
    NewActivity::new(
        None,
        Activity::Triaged {
            source: Some(triage.source.as_str().to_owned()),
            status: triage.status,
            category: Some(triage.category),
            priority: Some(after.priority),
        },
    )
}

/// The entry for triage that failed for good.
pub(crate) fn triage_failed_activity() -> NewActivity {
    NewActivity::new(
        None,
        Activity::Triaged {
            source: None,
            status: crate::domain::ticket::TriageStatus::Failed,
            category: None,
            priority: None,
        },
    )
}

#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Unsent events, oldest first.
    async fn pending_events(&self, limit: usize) -> StoreResult<Vec<OutboxEvent>>;
    /// All events (sent or not), oldest first; for operators and tests.
    async fn list_events(&self, after_seq: i64, limit: usize) -> StoreResult<Vec<OutboxEvent>>;
    async fn mark_sent(&self, ids: &[String]) -> StoreResult<()>;
    async fn outbox_backlog(&self) -> StoreResult<u64>;
}

/// What the durable functions need beyond plain CRUD: triage results, routing, SLA, and the
/// record of sent mail that makes notifications idempotent under replay.
#[async_trait]
pub trait AutomationStore: Send + Sync {
    /// Saves triage without overwriting what a person decided meanwhile: a locked priority stays.
    async fn save_triage(&self, ticket_id: &str, triage: TriageUpdate) -> StoreResult<Ticket>;
    /// Marks a ticket whose triage could not finish, unless triage already completed.
    async fn mark_triage_failed(&self, ticket_id: &str, reason: &str) -> StoreResult<()>;
    async fn staff_loads(&self) -> StoreResult<Vec<StaffLoad>>;
    /// Assigns only if nobody was assigned meanwhile and the assignee is still staff; `None`
    /// means one of them changed.
    async fn assign_if_unassigned(
        &self,
        ticket_id: &str,
        assignee_id: &str,
        reason: &str,
    ) -> StoreResult<Option<Ticket>>;
    async fn set_routing_reason(&self, ticket_id: &str, reason: &str) -> StoreResult<()>;
    async fn set_sla_due(
        &self,
        ticket_id: &str,
        due: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()>;
    /// Raises the priority one step and records the breach, once, if still unresolved.
    async fn escalate(&self, ticket_id: &str) -> StoreResult<Option<Ticket>>;
    async fn mail_sent(&self, key: &str) -> StoreResult<bool>;
    async fn record_mail(&self, key: &str, recipient: &str, subject: &str) -> StoreResult<()>;
}

/// Why a released ticket waits for routing again, until routing records its own reason.
pub const RELEASED_REASON: &str =
    "Its assignee is no longer staff; the ticket went back to routing.";

/// Changes to who is staff, with what follows from them.
#[async_trait]
pub trait StaffStore: Send + Sync {
    /// Makes the person a plain user and, in the same transaction, takes each open or
    /// in-progress ticket assigned to them back to routing: unassigned, its routing reason
    /// [`RELEASED_REASON`], with the events `NewEvent::assignee_released` gives (`actor_id`
    /// made the change). This overrides an admin's earlier assignment: the person can no
    /// longer see the ticket. Returns the user and the ids of the released tickets.
    async fn revoke_staff(&self, user_id: &str, actor_id: &str)
    -> StoreResult<(User, Vec<String>)>;
}

#[async_trait]
pub trait Store:
    UserStore
    + AccountStore
    + TicketStore
    + OutboxStore
    + AutomationStore
    + StaffStore
    + AttachmentStore
{
    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;
    fn backend(&self) -> &'static str;
}
