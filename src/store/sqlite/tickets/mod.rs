mod stats;

use super::{
    SqliteStore, bad_value, exec, insert_event, like_pattern, parse_opt_ts, parse_ts, query_one,
    sql, ts,
};
use crate::domain::activity::ActivityEntry;
use crate::domain::events::NewEvent;
use crate::domain::ticket::{Category, Priority, TicketStatus, TriageStatus};
use crate::store::{
    Activity, AssigneeFilter, Comment, NewActivity, NewComment, NewRating, NewTicket, Page,
    RateOutcome, Stats, StoreError, StoreResult, Ticket, TicketChange, TicketQuery, TicketRating,
    TicketSort, TicketStore, Visibility,
};
use async_trait::async_trait;
use chrono::Utc;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

/// Triage is stored as one JSON column: it is read and written whole.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredTriage {
    pub summary: String,
    pub sentiment: String,
    pub required_skills: Vec<String>,
    pub helpful_notes: String,
    pub confidence: f64,
    pub source: String,
    pub triaged_at: chrono::DateTime<Utc>,
}

impl StoredTriage {
    fn into_model(self) -> crate::store::TicketTriage {
        crate::store::TicketTriage {
            summary: self.summary,
            sentiment: self.sentiment,
            required_skills: self.required_skills,
            helpful_notes: Some(self.helpful_notes),
            confidence: self.confidence,
            source: self.source,
            triaged_at: self.triaged_at,
        }
    }
}

const COLUMNS: &str = "id, title, description, status, priority, category, created_by, assigned_to, \
     triage_status, priority_locked, version, created_at, updated_at, first_response_at, resolved_at, \
     triage, routing_reason, assigned_at, sla_due_at, escalated_at, rating_score, rating_comment, rated_at";

fn parse_enum<T>(what: &str, raw: &str, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    parse(raw).ok_or_else(|| bad_value(what, raw))
}

fn ticket_from_row(row: &Row<'_>) -> rusqlite::Result<Ticket> {
    let category: Option<String> = row.get(5)?;
    Ok(Ticket {
        id: row.get(0)?,
        title: row.get(1)?,
        description: row.get(2)?,
        status: parse_enum("status", &row.get::<_, String>(3)?, TicketStatus::parse)?,
        priority: parse_enum("priority", &row.get::<_, String>(4)?, Priority::parse)?,
        category: category
            .as_deref()
            .map(|c| parse_enum("category", c, Category::parse))
            .transpose()?,
        created_by: row.get(6)?,
        assigned_to: row.get(7)?,
        triage_status: parse_enum(
            "triage status",
            &row.get::<_, String>(8)?,
            TriageStatus::parse,
        )?,
        priority_locked: row.get(9)?,
        version: row.get(10)?,
        created_at: parse_ts(&row.get::<_, String>(11)?)?,
        updated_at: parse_ts(&row.get::<_, String>(12)?)?,
        first_response_at: parse_opt_ts(row.get(13)?)?,
        resolved_at: parse_opt_ts(row.get(14)?)?,
        triage: row
            .get::<_, Option<String>>(15)?
            .map(|raw| {
                serde_json::from_str::<StoredTriage>(&raw).map_err(|_| bad_value("triage", &raw))
            })
            .transpose()?
            .map(StoredTriage::into_model),
        routing_reason: row.get(16)?,
        assigned_at: parse_opt_ts(row.get(17)?)?,
        sla_due_at: parse_opt_ts(row.get(18)?)?,
        escalated_at: parse_opt_ts(row.get(19)?)?,
        rating: match (row.get::<_, Option<u8>>(20)?, parse_opt_ts(row.get(22)?)?) {
            (Some(score), Some(created_at)) => Some(TicketRating {
                score,
                comment: row.get(21)?,
                created_at,
            }),
            _ => None,
        },
    })
}

pub(super) fn get_ticket(conn: &Connection, id: &str) -> StoreResult<Option<Ticket>> {
    query_one(
        conn,
        &format!("SELECT {COLUMNS} FROM tickets WHERE id = ?1"),
        [id],
        ticket_from_row,
    )
    .optional()
    .map_err(sql)
}

fn comment_from_row(row: &Row<'_>) -> rusqlite::Result<Comment> {
    Ok(Comment {
        id: row.get(0)?,
        ticket_id: row.get(1)?,
        author_id: row.get(2)?,
        body: row.get(3)?,
        internal: row.get(4)?,
        created_at: parse_ts(&row.get::<_, String>(5)?)?,
    })
}

#[async_trait]
impl TicketStore for SqliteStore {
    async fn create_ticket(&self, ticket: NewTicket, event: NewEvent) -> StoreResult<Ticket> {
        self.write(move |tx| {
            let now = Utc::now();
            exec(
                tx,
                "INSERT INTO tickets (id, title, description, status, priority, created_by,
                                      triage_status, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                params![
                    ticket.id,
                    ticket.title.as_str(),
                    ticket.description.as_str(),
                    TicketStatus::Open.as_str(),
                    Priority::Medium.as_str(),
                    ticket.created_by,
                    TriageStatus::Pending.as_str(),
                    ts(now)
                ],
            )
            .map_err(sql)?;
            insert_event(tx, &event, now)?;
            let created = NewActivity::new(Some(&ticket.created_by), Activity::Created {});
            super::activity::append(tx, &ticket.id, [created], now)?;
            get_ticket(tx, &ticket.id)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn get_ticket(&self, id: &str) -> StoreResult<Option<Ticket>> {
        let id = id.to_owned();
        self.lookup(move |c| get_ticket(c, &id)).await
    }

    async fn list_tickets(&self, query: &TicketQuery) -> StoreResult<Page<Ticket>> {
        let query = query.clone();
        self.read(move |c| {
            let mut text = format!("SELECT {COLUMNS} FROM tickets WHERE 1=1");
            let mut args: Vec<SqlValue> = Vec::new();
            match &query.visibility {
                Visibility::All => {}
                Visibility::CreatedBy(user) => {
                    text.push_str(" AND created_by = ?");
                    args.push(user.clone().into());
                }
                Visibility::Staff(user) => {
                    text.push_str(" AND (assigned_to = ? OR created_by = ?)");
                    args.push(user.clone().into());
                    args.push(user.clone().into());
                }
            }
            if let Some(s) = query.status {
                text.push_str(" AND status = ?");
                args.push(s.as_str().to_owned().into());
            }
            if let Some(p) = query.priority {
                text.push_str(" AND priority = ?");
                args.push(p.as_str().to_owned().into());
            }
            if let Some(cat) = query.category {
                text.push_str(" AND category = ?");
                args.push(cat.as_str().to_owned().into());
            }
            match &query.assignee {
                Some(AssigneeFilter::User(u)) => {
                    text.push_str(" AND assigned_to = ?");
                    args.push(u.clone().into());
                }
                Some(AssigneeFilter::Unassigned) => text.push_str(" AND assigned_to IS NULL"),
                None => {}
            }
            if let Some(q) = &query.text {
                text.push_str(" AND (title LIKE ? ESCAPE '\\' OR description LIKE ? ESCAPE '\\')");
                let pattern = like_pattern(q);
                args.push(pattern.clone().into());
                args.push(pattern.into());
            }
            match (&query.sort, &query.after) {
                (TicketSort::Newest, after) => {
                    if let Some(after) = after {
                        text.push_str(" AND id < ?");
                        args.push(after.clone().into());
                    }
                    text.push_str(" ORDER BY id DESC");
                }
                (TicketSort::SlaDue { after_due }, after) => {
                    match (after, after_due) {
                        (None, _) => {}
                        (Some(after), Some(due)) => {
                            text.push_str(
                                " AND (sla_due_at > ? OR (sla_due_at = ? AND id > ?) OR sla_due_at IS NULL)",
                            );
                            args.push(ts(*due).into());
                            args.push(ts(*due).into());
                            args.push(after.clone().into());
                        }
                        (Some(after), None) => {
                            text.push_str(" AND sla_due_at IS NULL AND id > ?");
                            args.push(after.clone().into());
                        }
                    }
                    text.push_str(" ORDER BY sla_due_at IS NULL, sla_due_at, id");
                }
            }
            text.push_str(" LIMIT ?");
            args.push(((query.limit + 1) as i64).into());
            let mut stmt = c.prepare_cached(&text).map_err(sql)?;
            let items = stmt
                .query_map(rusqlite::params_from_iter(args), ticket_from_row)
                .map_err(sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql)?;
            Ok(crate::store::model::page(items, query.limit, |t| {
                t.id.clone()
            }))
        })
        .await
    }

    async fn update_ticket(
        &self,
        id: &str,
        expected_version: i64,
        change: TicketChange,
        events: Vec<NewEvent>,
    ) -> StoreResult<Ticket> {
        let id = id.to_owned();
        self.write(move |tx| {
            let current = get_ticket(tx, &id)?.ok_or(StoreError::NotFound)?;
            if current.version != expected_version {
                return Err(StoreError::Stale);
            }
            let now = Utc::now();
            let status = change.status.unwrap_or(current.status);
            let resolved_at = match change.status {
                Some(TicketStatus::Resolved) => Some(now),
                Some(TicketStatus::Open | TicketStatus::InProgress) => None,
                _ => current.resolved_at,
            };
            let priority = change.priority.unwrap_or(current.priority);
            let locked = current.priority_locked || change.lock_priority;
            let assigned_to = change.assigned_to.clone().unwrap_or(current.assigned_to.clone());
            exec(
                tx,
                "UPDATE tickets SET status = ?1, priority = ?2, priority_locked = ?3, assigned_to = ?4,
                        resolved_at = ?5, updated_at = ?6, version = version + 1,
                        routing_reason = COALESCE(?8, routing_reason)
                 WHERE id = ?7",
                params![
                    status.as_str(),
                    priority.as_str(),
                    locked,
                    assigned_to,
                    resolved_at.map(ts),
                    ts(now),
                    id,
                    change.routing_reason
                ],
            )
            .map_err(sql)?;
            if let Some(Some(assignee)) = &change.assigned_to
                && current.assigned_to.as_ref() != Some(assignee)
            {
                super::automation::note_assignment(tx, &id, assignee, now)?;
            }
            let entries = crate::store::activity_of_change(&current, &change);
            super::activity::append(tx, &id, entries, now)?;
            for event in &events {
                insert_event(tx, event, now)?;
            }
            get_ticket(tx, &id)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn add_comment(&self, comment: NewComment, event: NewEvent) -> StoreResult<Comment> {
        self.write(move |tx| {
            let now = Utc::now();
            exec(
                tx,
                "INSERT INTO comments (id, ticket_id, author_id, body, internal, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![comment.id, comment.ticket_id, comment.author_id, comment.body, comment.internal, ts(now)],
            )
            .map_err(sql)?;
            if comment.by_staff && !comment.internal {
                exec(
                    tx,
                    "UPDATE tickets SET first_response_at = ?1 WHERE id = ?2 AND first_response_at IS NULL",
                    params![ts(now), comment.ticket_id],
                )
                .map_err(sql)?;
            }
            insert_event(tx, &event, now)?;
            let entry = NewActivity::new(
                Some(&comment.author_id),
                Activity::Commented {
                    comment_id: comment.id.clone(),
                    internal: comment.internal,
                },
            );
            super::activity::append(tx, &comment.ticket_id, [entry], now)?;
            query_one(
                tx,
                "SELECT id, ticket_id, author_id, body, internal, created_at FROM comments WHERE id = ?1",
                [&comment.id],
                comment_from_row,
            )
            .map_err(sql)
        })
        .await
    }

    async fn list_comments(
        &self,
        ticket_id: &str,
        include_internal: bool,
    ) -> StoreResult<Vec<Comment>> {
        let ticket_id = ticket_id.to_owned();
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, ticket_id, author_id, body, internal, created_at FROM comments
                     WHERE ticket_id = ?1 AND (internal = 0 OR ?2) ORDER BY id",
                )
                .map_err(sql)?;
            stmt.query_map(params![ticket_id, include_internal], comment_from_row)
                .map_err(sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql)
        })
        .await
    }

    async fn stats(&self) -> StoreResult<Stats> {
        self.read(stats::read).await
    }

    async fn rate_ticket(&self, rating: NewRating) -> StoreResult<RateOutcome> {
        self.write(move |tx| {
            let current = get_ticket(tx, &rating.ticket_id)?.ok_or(StoreError::NotFound)?;
            if current.rating.is_some() {
                return Ok(RateOutcome::AlreadyRated);
            }
            if !matches!(
                current.status,
                TicketStatus::Resolved | TicketStatus::Closed
            ) {
                return Ok(RateOutcome::NotResolved);
            }
            let now = Utc::now();
            exec(
                tx,
                "UPDATE tickets SET rating_score = ?1, rating_comment = ?2, rated_at = ?3
                 WHERE id = ?4",
                params![rating.score, rating.comment, ts(now), rating.ticket_id],
            )
            .map_err(sql)?;
            let entry = NewActivity::new(
                Some(&rating.by),
                Activity::Rated {
                    score: rating.score,
                },
            );
            super::activity::append(tx, &rating.ticket_id, [entry], now)?;
            get_ticket(tx, &rating.ticket_id)?
                .map(|t| RateOutcome::Rated(Box::new(t)))
                .ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn list_activity(&self, ticket_id: &str) -> StoreResult<Vec<ActivityEntry>> {
        let ticket_id = ticket_id.to_owned();
        self.read(move |c| super::activity::list(c, &ticket_id))
            .await
    }
}
