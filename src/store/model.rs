//! Records as the stores read and write them, plus queries and pages.

use crate::domain::account_token::{TokenHash, TokenPurpose};
use crate::domain::ticket::{Category, Description, Priority, TicketStatus, Title, TriageStatus};
use crate::domain::triage::{Sentiment, TriageSource};
use crate::domain::user::Role;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
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

#[derive(Clone, Debug, PartialEq)]
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
    /// The creator's satisfaction rating, given once after resolution.
    pub rating: Option<TicketRating>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TicketRating {
    /// 1 (poor) to 5 (excellent).
    pub score: u8,
    pub comment: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A rating on its way into the store; the values are parsed already.
#[derive(Clone, Debug)]
pub struct NewRating {
    pub ticket_id: String,
    /// The creator, who gives it (recorded as the actor of the activity entry).
    pub by: String,
    pub score: u8,
    pub comment: Option<String>,
}

/// How a rating went: one atomic decision in the store, so two at once cannot both land.
#[derive(Clone, Debug, PartialEq)]
pub enum RateOutcome {
    Rated(Box<Ticket>),
    AlreadyRated,
    /// The ticket is neither resolved nor closed.
    NotResolved,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TicketTriage {
    pub summary: String,
    pub sentiment: String,
    pub required_skills: Vec<String>,
    /// Markdown notes for the moderator; hidden from the ticket's creator.
    pub helpful_notes: Option<String>,
    pub confidence: f64,
    /// Which engine produced it: `gemini`, `openai` or `rules`.
    pub source: String,
    pub triaged_at: DateTime<Utc>,
}

/// A ticket on its way into the store; title and description are parsed already.
pub struct NewTicket {
    pub id: String,
    pub title: Title,
    pub description: Description,
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
    /// Who decides the change, for the ticket's activity log.
    pub actor: Option<String>,
}

pub use crate::domain::access::Visibility;

#[derive(Clone, Debug)]
pub struct TicketQuery {
    pub visibility: Visibility,
    pub status: Option<TicketStatus>,
    pub priority: Option<Priority>,
    pub category: Option<Category>,
    pub assignee: Option<AssigneeFilter>,
    /// Case-insensitive substring of title or description.
    pub text: Option<String>,
    pub sort: TicketSort,
    pub limit: usize,
    /// The id of the last ticket of the previous page.
    pub after: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub enum TicketSort {
    /// By id, descending.
    #[default]
    Newest,
    /// Soonest `sla_due_at` first, tickets without a deadline last, ties by id ascending.
    /// `after_due` is the deadline of the ticket named by `after` (`None`: it had none), so a
    /// page starts where the previous one ended even if deadlines changed meanwhile.
    SlaDue { after_due: Option<DateTime<Utc>> },
}

#[derive(Clone, Debug, PartialEq)]
pub enum AssigneeFilter {
    User(String),
    Unassigned,
}

#[derive(Clone, Debug, PartialEq)]
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

#[derive(Clone, Debug, Default, PartialEq)]
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
    pub satisfaction: Satisfaction,
    /// The last 30 days (UTC), oldest first, days without tickets included.
    pub per_day: Vec<DayCount>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Satisfaction {
    /// Rated tickets.
    pub count: u64,
    /// Mean score; `null` when nothing was rated.
    pub average: Option<f64>,
    /// Every score from "1" to "5", each with its count.
    pub by_score: Vec<Count>,
}

impl Satisfaction {
    /// From the stored (score, count) pairs; scores that never occurred count 0.
    pub(crate) fn from_scores(scores: &[(u8, u64)]) -> Self {
        let by_score: Vec<Count> = (1..=5_u8)
            .map(|score| Count {
                key: score.to_string(),
                count: scores
                    .iter()
                    .filter(|(s, _)| *s == score)
                    .map(|(_, n)| n)
                    .sum(),
            })
            .collect();
        let count: u64 = by_score.iter().map(|c| c.count).sum();
        let total: u64 = scores.iter().map(|(s, n)| u64::from(*s) * n).sum();
        Self {
            count,
            average: (count > 0).then(|| total as f64 / count as f64),
            by_score,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayCount {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    /// Tickets opened that day.
    pub created: u64,
    /// Tickets resolved that day (and not reopened since).
    pub resolved: u64,
}

/// How many days `per_day` covers, today included.
pub const PER_DAY_DAYS: u32 = 30;

/// The first moment `per_day` covers: midnight UTC, `PER_DAY_DAYS - 1` days before `now`.
pub(crate) fn per_day_since(now: DateTime<Utc>) -> DateTime<Utc> {
    let first = now.date_naive() - chrono::Days::new(u64::from(PER_DAY_DAYS - 1));
    first.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// Every day of the window ending today, oldest first, with the counts found for it (keyed by
/// `YYYY-MM-DD`); days without any count 0.
pub(crate) fn per_day(
    now: DateTime<Utc>,
    created: &[(String, u64)],
    resolved: &[(String, u64)],
) -> Vec<DayCount> {
    let first = per_day_since(now).date_naive();
    let count = |rows: &[(String, u64)], day: &str| {
        rows.iter().filter(|(d, _)| d == day).map(|(_, n)| n).sum()
    };
    first
        .iter_days()
        .take(PER_DAY_DAYS as usize)
        .map(|day| {
            let date = day.format("%Y-%m-%d").to_string();
            DayCount {
                created: count(created, &date),
                resolved: count(resolved, &date),
                date,
            }
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq)]
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
    pub sentiment: Sentiment,
    pub required_skills: Vec<String>,
    pub helpful_notes: String,
    pub confidence: f64,
    pub source: TriageSource,
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

#[derive(Clone, Debug, PartialEq, Eq)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satisfaction_names_every_score() {
        let s = Satisfaction::from_scores(&[(5, 2), (2, 1)]);
        assert_eq!(s.count, 3);
        assert_eq!(s.average, Some(4.0));
        let keys: Vec<_> = s
            .by_score
            .iter()
            .map(|c| (c.key.as_str(), c.count))
            .collect();
        assert_eq!(keys, [("1", 0), ("2", 1), ("3", 0), ("4", 0), ("5", 2)]);
        let none = Satisfaction::from_scores(&[]);
        assert_eq!(
            (none.count, none.average, none.by_score.len()),
            (0, None, 5)
        );
    }

    #[test]
    fn per_day_covers_thirty_days_ending_today() {
        let now = DateTime::parse_from_rfc3339("2024-03-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            per_day_since(now),
            DateTime::parse_from_rfc3339("2024-02-01T00:00:00Z").unwrap()
        );
        let days = per_day(
            now,
            &[("2024-02-01".into(), 2), ("2024-03-01".into(), 1)],
            &[("2024-02-29".into(), 4)],
        );
        assert_eq!(days.len(), 30);
        assert_eq!(days[0].date, "2024-02-01");
        assert_eq!((days[0].created, days[0].resolved), (2, 0));
        assert_eq!(days[28].date, "2024-02-29");
        assert_eq!(days[28].resolved, 4);
        assert_eq!(days[29].date, "2024-03-01");
        assert_eq!((days[29].created, days[29].resolved), (1, 0));
        assert_eq!(days[10].created + days[10].resolved, 0);
    }
}
