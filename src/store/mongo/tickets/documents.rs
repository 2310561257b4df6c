//! Tickets and comments as MongoDB documents: decoding them into records, and the documents
//! and updates the writes send.

use crate::domain::ticket::{Category, Priority, TicketStatus, TriageStatus};
use crate::store::mongo::{bad_document, from_bson_date, from_opt_bson_date};
use crate::store::{
    Comment, NewComment, NewTicket, StoreResult, Ticket, TicketChange, TicketRating, TicketTriage,
    TriageUpdate,
};
use mongodb::bson::{self, Bson, Document, doc};
use serde::Deserialize;

/// Triage is an embedded document: it is read and written whole.
#[derive(Deserialize)]
struct TriageDoc {
    summary: String,
    sentiment: String,
    required_skills: Vec<String>,
    helpful_notes: String,
    confidence: f64,
    source: String,
    triaged_at: bson::DateTime,
}

impl TriageDoc {
    fn into_model(self) -> StoreResult<TicketTriage> {
        Ok(TicketTriage {
            summary: self.summary,
            sentiment: self.sentiment,
            required_skills: self.required_skills,
            helpful_notes: Some(self.helpful_notes),
            confidence: self.confidence,
            source: self.source,
            triaged_at: from_bson_date(self.triaged_at)?,
        })
    }
}

pub(in crate::store::mongo) fn triage_document(
    triage: &TriageUpdate,
    now: bson::DateTime,
) -> Document {
    doc! {
        "summary": &triage.summary,
        "sentiment": triage.sentiment.as_str(),
        "required_skills": &triage.required_skills,
        "helpful_notes": &triage.helpful_notes,
        "confidence": triage.confidence,
        "source": triage.source.as_str(),
        "triaged_at": now,
    }
}

/// Fields added after the first release are `Option`s, so older documents without them read
/// as "not set".
#[derive(Deserialize)]
pub(in crate::store::mongo) struct TicketDoc {
    #[serde(rename = "_id")]
    id: String,
    title: String,
    description: String,
    status: TicketStatus,
    priority: Priority,
    category: Option<Category>,
    created_by: String,
    assigned_to: Option<String>,
    triage_status: TriageStatus,
    priority_locked: bool,
    version: i64,
    created_at: bson::DateTime,
    updated_at: bson::DateTime,
    first_response_at: Option<bson::DateTime>,
    resolved_at: Option<bson::DateTime>,
    triage: Option<TriageDoc>,
    routing_reason: Option<String>,
    assigned_at: Option<bson::DateTime>,
    sla_due_at: Option<bson::DateTime>,
    escalated_at: Option<bson::DateTime>,
    rating: Option<RatingDoc>,
}

#[derive(Deserialize)]
struct RatingDoc {
    score: u8,
    comment: Option<String>,
    created_at: bson::DateTime,
}

impl TicketDoc {
    pub(in crate::store::mongo) fn decode(document: Document) -> StoreResult<Ticket> {
        let d: TicketDoc = bson::from_document(document).map_err(|e| bad_document("ticket", e))?;
        Ok(Ticket {
            id: d.id,
            title: d.title,
            description: d.description,
            status: d.status,
            priority: d.priority,
            category: d.category,
            created_by: d.created_by,
            assigned_to: d.assigned_to,
            triage_status: d.triage_status,
            priority_locked: d.priority_locked,
            version: d.version,
            created_at: from_bson_date(d.created_at)?,
            updated_at: from_bson_date(d.updated_at)?,
            first_response_at: from_opt_bson_date(d.first_response_at)?,
            resolved_at: from_opt_bson_date(d.resolved_at)?,
            triage: d.triage.map(TriageDoc::into_model).transpose()?,
            routing_reason: d.routing_reason,
            assigned_at: from_opt_bson_date(d.assigned_at)?,
            sla_due_at: from_opt_bson_date(d.sla_due_at)?,
            escalated_at: from_opt_bson_date(d.escalated_at)?,
            rating: d
                .rating
                .map(|r| -> StoreResult<TicketRating> {
                    Ok(TicketRating {
                        score: r.score,
                        comment: r.comment,
                        created_at: from_bson_date(r.created_at)?,
                    })
                })
                .transpose()?,
        })
    }
}

#[derive(Deserialize)]
pub(super) struct CommentDoc {
    #[serde(rename = "_id")]
    id: String,
    ticket_id: String,
    author_id: String,
    body: String,
    internal: bool,
    created_at: bson::DateTime,
}

impl CommentDoc {
    pub(super) fn decode(document: Document) -> StoreResult<Comment> {
        let d: CommentDoc =
            bson::from_document(document).map_err(|e| bad_document("comment", e))?;
        Ok(Comment {
            id: d.id,
            ticket_id: d.ticket_id,
            author_id: d.author_id,
            body: d.body,
            internal: d.internal,
            created_at: from_bson_date(d.created_at)?,
        })
    }
}

pub(super) fn ticket_document(ticket: &NewTicket, now: bson::DateTime) -> Document {
    doc! {
        "_id": &ticket.id,
        "title": ticket.title.as_str(),
        "description": ticket.description.as_str(),
        "status": TicketStatus::Open.as_str(),
        "priority": Priority::Medium.as_str(),
        "category": Bson::Null,
        "created_by": &ticket.created_by,
        "assigned_to": Bson::Null,
        "triage_status": TriageStatus::Pending.as_str(),
        "priority_locked": false,
        "version": 1_i64,
        "created_at": now,
        "updated_at": now,
        "first_response_at": Bson::Null,
        "resolved_at": Bson::Null,
        "triage": Bson::Null,
        // Beside `triage.source` so that stats can group by it.
        "triage_source": Bson::Null,
        "routing_reason": Bson::Null,
        "assigned_at": Bson::Null,
        "sla_due_at": Bson::Null,
        "escalated_at": Bson::Null,
        "rating": Bson::Null,
    }
}

pub(super) fn comment_document(comment: &NewComment, now: bson::DateTime) -> Document {
    doc! {
        "_id": &comment.id,
        "ticket_id": &comment.ticket_id,
        "author_id": &comment.author_id,
        "body": &comment.body,
        "internal": comment.internal,
        "created_at": now,
    }
}

/// The update applying `change`; the caller's filter pins the version it was decided on.
pub(super) fn ticket_update(change: &TicketChange, now: bson::DateTime) -> Document {
    let mut set = doc! { "updated_at": now };
    if let Some(status) = change.status {
        set.insert("status", status.as_str());
        match status {
            TicketStatus::Resolved => {
                set.insert("resolved_at", now);
            }
            TicketStatus::Open | TicketStatus::InProgress => {
                set.insert("resolved_at", Bson::Null);
            }
            // Closing keeps the time it was resolved, if it was.
            TicketStatus::Closed => {}
        }
    }
    if let Some(priority) = change.priority {
        set.insert("priority", priority.as_str());
    }
    if change.lock_priority {
        set.insert("priority_locked", true);
    }
    if let Some(assignee) = &change.assigned_to {
        set.insert("assigned_to", assignee.clone());
    }
    if let Some(reason) = &change.routing_reason {
        set.insert("routing_reason", reason.clone());
    }
    doc! { "$set": set, "$inc": { "version": 1_i64 } }
}
