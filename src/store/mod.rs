//! Persistence behind one `Store` trait, split into narrow parts. SQLite is the embedded
//! default; MongoDB is chosen by a `mongodb://` URL. Both pass the same contract tests.
//!
//! Every write that emits an event takes the event along and commits both together: the
//! outbox is what makes "saved but never processed" impossible.

pub mod model;
pub mod mongo;
pub mod sqlite;

use async_trait::async_trait;
pub use model::*;

use crate::domain::events::NewEvent;

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
pub trait Store: UserStore + TicketStore + OutboxStore + AutomationStore + StaffStore {
    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;
    fn backend(&self) -> &'static str;
}
