//! Records as the stores read and write them, plus queries and pages.

use crate::domain::account_token::{TokenHash, TokenPurpose};
use crate::domain::ticket::{Category, Priority, TicketStatus, TriageStatus};
use crate::domain::user::Role;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub skills: Vec<String>,
    /// Most open tickets this person should hold at once; `None` means no limit.
    pub capacity: Option<u32>,
    /// Whether the address is confirmed, or needs no confirming: accounts made while
    /// `REQUIRE_EMAIL_VERIFICATION` was off, and those made by an operator, count as verified.
    pub email_verified: bool,
    /// Access tokens carry the generation they were issued under; raising it ends them all.
    #[serde(skip)]
    pub token_generation: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Login material. Deliberately not `Debug`, so the hash cannot reach a log line.
pub struct Credentials {
    pub user_id: String,
    pub password_hash: String,
}

/// Ids are chosen by the caller, so the event written with the record can name it.
pub struct NewUser {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub role: Role,
    pub skills: Vec<String>,
    /// `false` only for self-service sign-ups while verification is required.
    pub email_verified: bool,
}

/// A one-time account link as the stores keep it: its hash, never the token.
#[derive(Clone, Debug)]
pub struct NewAccountToken {
    pub hash: TokenHash,
    pub user_id: String,
    pub purpose: TokenPurpose,
    pub expires_at: DateTime<Utc>,
}

#[derive(Default, Clone, Debug)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub skills: Option<Vec<String>>,
    pub name: Option<String>,
    /// `Some(None)` clears the limit.
    pub capacity: Option<Option<u32>>,
}

#[derive(Default, Clone, Debug)]
pub struct UserQuery {
    pub role: Option<Role>,
    pub limit: usize,
    /// The last id of the previous page.
    pub after: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Ticket {
    pub id: String,
    pub title: String,
    pub description: String,
    pub status: TicketStatus,
    pub priority: Priority,
    pub category: Option<Category>,
    pub created_by: String,
    pub assigned_to: Option<String>,
    pub triage_status: TriageStatus,
    /// Set when a person chose the priority, so later triage leaves it alone.
    pub priority_locked: bool,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The first reply by staff.
    pub first_response_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// What triage found; `None` until it ran.
    pub triage: Option<TicketTriage>,
    /// Why the ticket went to its assignee, or why it waits in the queue.
    pub routing_reason: Option<String>,
    pub assigned_at: Option<DateTime<Utc>>,
    /// When the SLA for the ticket's priority runs out.
    pub sla_due_at: Option<DateTime<Utc>>,
    /// Set when the SLA passed unresolved and the ticket was escalated.
    pub escalated_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TicketTriage {
    pub summary: String,
    pub sentiment: String,
    pub required_skills: Vec<String>,
    /// Markdown notes for the moderator; hidden from the ticket's creator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helpful_notes: Option<String>,
    pub confidence: f64,
    /// Which engine produced it: `gemini`, `openai` or `rules`.
    pub source: String,
    pub triaged_at: DateTime<Utc>,
}

pub struct NewTicket {
    pub id: String,
    pub title: String,
    pub description: String,
    pub created_by: String,
}

/// A partial update decided by the domain; `None` leaves a field unchanged.
#[derive(Default, Clone, Debug)]
pub struct TicketChange {
    pub status: Option<TicketStatus>,
    pub priority: Option<Priority>,
    pub lock_priority: bool,
    /// `Some(None)` unassigns.
    pub assigned_to: Option<Option<String>>,
    /// Replaces the routing reason; set when a person decides the assignment, which automatic
    /// routing then leaves alone.
    pub routing_reason: Option<String>,
}

/// Which tickets a caller may list; computed from the role, never from the request.
#[derive(Clone, Debug, PartialEq)]
pub enum Visibility {
    All,
    CreatedBy(String),
    /// Moderators: assigned to them, plus any they opened themselves.
    Staff(String),
}

#[derive(Clone, Debug)]
pub struct TicketQuery {
    pub visibility: Visibility,
    pub status: Option<TicketStatus>,
    pub priority: Option<Priority>,
    pub category: Option<Category>,
    pub assignee: Option<AssigneeFilter>,
    /// Case-insensitive substring of title or description.
    pub text: Option<String>,
    pub limit: usize,
    pub after: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AssigneeFilter {
    User(String),
    Unassigned,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Comment {
    pub id: String,
    pub ticket_id: String,
    pub author_id: String,
    pub body: String,
    pub internal: bool,
    pub created_at: DateTime<Utc>,
}

pub struct NewComment {
    pub id: String,
    pub ticket_id: String,
    pub author_id: String,
    pub body: String,
    pub internal: bool,
    /// Staff replies count as the ticket's first response.
    pub by_staff: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutboxEvent {
    /// Position in the outbox: delivery order.
    pub seq: i64,
    pub id: String,
    pub name: String,
    pub data: Value,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present when more items follow; pass it back as `after`.
    pub next_after: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub total: u64,
    pub by_status: Vec<Count>,
    pub by_priority: Vec<Count>,
    pub by_category: Vec<Count>,
    /// All tickets per assignee; `key` is the user id or "unassigned".
    pub by_assignee: Vec<Count>,
    pub by_triage_status: Vec<Count>,
    /// Which engine triaged: `gemini`, `openai`, `rules`; `none` while pending.
    pub by_triage_source: Vec<Count>,
    /// Mean seconds from opening to the first public staff reply, over tickets that have one.
    pub avg_first_response_secs: Option<f64>,
    /// Mean seconds from opening to resolution, over resolved tickets.
    pub avg_resolution_secs: Option<f64>,
    /// Tickets escalated because their SLA passed unresolved.
    pub sla_breaches: u64,
    /// Open work per staff member, with their capacity.
    pub moderator_load: Vec<Load>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Load {
    pub user_id: String,
    pub email: String,
    pub role: Role,
    pub open_tickets: u64,
    pub capacity: Option<u32>,
}

/// The result of triage as the store saves it (already validated).
#[derive(Clone, Debug)]
pub struct TriageUpdate {
    pub status: TriageStatus,
    pub summary: String,
    pub category: Category,
    pub priority: Priority,
    pub sentiment: String,
    pub required_skills: Vec<String>,
    pub helpful_notes: String,
    pub confidence: f64,
    pub source: String,
}

/// A staff member as routing sees them.
#[derive(Clone, Debug, PartialEq)]
pub struct StaffLoad {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub skills: Vec<String>,
    pub capacity: Option<u32>,
    /// Tickets assigned and not yet resolved or closed.
    pub open_tickets: u32,
    pub last_assigned_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Count {
    pub key: String,
    pub count: u64,
}

/// Builds a page from `limit + 1` fetched rows: the extra row only says that more follow.
pub(crate) fn page<T>(mut items: Vec<T>, limit: usize, key: impl Fn(&T) -> String) -> Page<T> {
    let next_after = if items.len() > limit {
        items.truncate(limit);
        items.last().map(key)
    } else {
        None
    };
    Page { items, next_after }
}
