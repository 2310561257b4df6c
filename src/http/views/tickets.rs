//! A ticket for one viewer: two types, the customer's and the staff's, chosen by
//! `domain::access::ticket_view`. Neither is a copy of the record with parts blanked out: what a
//! view has no field for cannot leak.

use crate::domain::access::TicketView;
use crate::domain::ticket::{Category, Priority, TicketStatus, TriageStatus};
use crate::store::{Ticket, TicketRating, TicketTriage};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A ticket as its creator sees it: what a help desk shows a customer. No triage internals
/// (summary, sentiment, confidence, skills, notes) and no routing reason.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CustomerTicket {
    id: String,
    title: String,
    description: String,
    status: TicketStatus,
    priority: Priority,
    category: Option<Category>,
    created_by: String,
    assigned_to: Option<String>,
    /// Who works on the ticket: their name, or the part of their e-mail before the `@`.
    assignee_name: Option<String>,
    triage_status: TriageStatus,
    /// Set when a person chose the priority, so later triage leaves it alone.
    priority_locked: bool,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// The first reply by staff.
    first_response_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    assigned_at: Option<DateTime<Utc>>,
    /// When the SLA for the ticket's priority runs out.
    sla_due_at: Option<DateTime<Utc>>,
    /// Set when the SLA passed unresolved and the ticket was escalated.
    escalated_at: Option<DateTime<Utc>>,
    /// The creator's satisfaction rating, given once after resolution.
    rating: Option<RatingView>,
}

impl CustomerTicket {
    /// `assignee_name` is the display name of `ticket.assigned_to`, looked up by the caller.
    pub fn new(ticket: Ticket, assignee_name: Option<String>) -> Self {
        Self {
            id: ticket.id,
            title: ticket.title,
            description: ticket.description,
            status: ticket.status,
            priority: ticket.priority,
            category: ticket.category,
            created_by: ticket.created_by,
            assigned_to: ticket.assigned_to,
            assignee_name,
            triage_status: ticket.triage_status,
            priority_locked: ticket.priority_locked,
            version: ticket.version,
            created_at: ticket.created_at,
            updated_at: ticket.updated_at,
            first_response_at: ticket.first_response_at,
            resolved_at: ticket.resolved_at,
            assigned_at: ticket.assigned_at,
            sla_due_at: ticket.sla_due_at,
            escalated_at: ticket.escalated_at,
            rating: ticket.rating.map(RatingView::from),
        }
    }
}

/// A ticket as staff (moderators and admins) see it, on tickets they opened too: the customer
/// view plus what triage found and why routing chose the assignee.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StaffTicket {
    #[serde(flatten)]
    base: CustomerTicket,
    /// What triage found; `null` until it ran.
    triage: Option<TriageView>,
    /// Why the ticket went to its assignee, or why it waits in the queue.
    routing_reason: Option<String>,
}

impl StaffTicket {
    pub fn new(mut ticket: Ticket, assignee_name: Option<String>) -> Self {
        Self {
            triage: ticket.triage.take().map(TriageView::from),
            routing_reason: ticket.routing_reason.take(),
            base: CustomerTicket::new(ticket, assignee_name),
        }
    }
}

/// One ticket for one viewer; `view` says which.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "view", rename_all = "snake_case")]
pub enum TicketBody {
    Staff(StaffTicket),
    Customer(CustomerTicket),
}

impl TicketBody {
    /// The view `view` of `ticket`; only the staff view reads triage and routing.
    pub fn new(ticket: Ticket, view: TicketView, assignee_name: Option<String>) -> Self {
        match view {
            TicketView::Customer => Self::Customer(CustomerTicket::new(ticket, assignee_name)),
            TicketView::Staff => Self::Staff(StaffTicket::new(ticket, assignee_name)),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = TicketRating)]
pub struct RatingView {
    /// 1 (poor) to 5 (excellent).
    pub score: u8,
    pub comment: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<TicketRating> for RatingView {
    fn from(rating: TicketRating) -> Self {
        Self {
            score: rating.score,
            comment: rating.comment,
            created_at: rating.created_at,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = TicketTriage)]
pub struct TriageView {
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

impl From<TicketTriage> for TriageView {
    fn from(triage: TicketTriage) -> Self {
        Self {
            summary: triage.summary,
            sentiment: triage.sentiment,
            required_skills: triage.required_skills,
            helpful_notes: triage.helpful_notes,
            confidence: triage.confidence,
            source: triage.source,
            triaged_at: triage.triaged_at,
        }
    }
}
