//! The filters of ticket lists. Every value from the caller goes in as a plain BSON string,
//! never parsed as a document, so no input can become a query operator.

use crate::store::mongo::to_bson_date;
use crate::store::{AssigneeFilter, TicketQuery, Visibility};
use chrono::{DateTime, Utc};
use mongodb::bson::{Bson, Document, Regex, doc};

/// The filter for a ticket list, newest first. Every value from the caller goes in as a plain
/// BSON string (never parsed as a document), and the text search is an escaped literal, so no
/// input can become a query operator or a pattern.
pub(super) fn ticket_filter(query: &TicketQuery) -> Document {
    let mut clauses = query_clauses(query);
    if let Some(after) = &query.after {
        clauses.push(doc! { "_id": { "$lt": after } });
    }
    all_of(clauses)
}

/// The two filters of a list by SLA deadline: tickets with a deadline (soonest first), then
/// those without (by id). MongoDB sorts a missing deadline first, so the two are read in turn;
/// `None` when the cursor is past every ticket with a deadline.
pub(super) fn sla_due_filters(
    query: &TicketQuery,
    after_due: Option<DateTime<Utc>>,
) -> (Option<Document>, Document) {
    let mut due = query_clauses(query);
    due.push(doc! { "sla_due_at": { "$ne": Bson::Null } });
    let mut undue = query_clauses(query);
    undue.push(doc! { "sla_due_at": Bson::Null });
    match (&query.after, after_due) {
        (None, _) => (Some(all_of(due)), all_of(undue)),
        (Some(after), Some(at)) => {
            let at = to_bson_date(at);
            due.push(doc! { "$or": [
                { "sla_due_at": { "$gt": at } },
                { "sla_due_at": at, "_id": { "$gt": after } },
            ] });
            (Some(all_of(due)), all_of(undue))
        }
        (Some(after), None) => {
            undue.push(doc! { "_id": { "$gt": after } });
            (None, all_of(undue))
        }
    }
}

fn all_of(mut clauses: Vec<Document>) -> Document {
    match clauses.len() {
        0 => Document::new(),
        1 => clauses.swap_remove(0),
        _ => doc! { "$and": clauses },
    }
}

/// The clauses every order shares: visibility and the caller's filters.
fn query_clauses(query: &TicketQuery) -> Vec<Document> {
    let mut clauses: Vec<Document> = Vec::new();
    match &query.visibility {
        Visibility::All => {}
        Visibility::CreatedBy(user) => clauses.push(doc! { "created_by": user }),
        Visibility::Staff(user) => clauses.push(doc! {
            "$or": [ { "assigned_to": user }, { "created_by": user } ]
        }),
    }
    if let Some(status) = query.status {
        clauses.push(doc! { "status": status.as_str() });
    }
    if let Some(priority) = query.priority {
        clauses.push(doc! { "priority": priority.as_str() });
    }
    if let Some(category) = query.category {
        clauses.push(doc! { "category": category.as_str() });
    }
    match &query.assignee {
        Some(AssigneeFilter::User(user)) => clauses.push(doc! { "assigned_to": user }),
        Some(AssigneeFilter::Unassigned) => clauses.push(doc! { "assigned_to": Bson::Null }),
        None => {}
    }
    if let Some(text) = &query.text {
        clauses.push(text_clause(text));
    }
    clauses
}

fn text_clause(text: &str) -> Document {
    // A BSON pattern cannot hold NUL, and stored text never does: nothing can match.
    if text.contains('\0') {
        return doc! { "_id": { "$in": [] } };
    }
    let pattern = Bson::RegularExpression(Regex {
        pattern: regex::escape(text),
        options: "i".to_owned(),
    });
    doc! { "$or": [ { "title": pattern.clone() }, { "description": pattern } ] }
}
