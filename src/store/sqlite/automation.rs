use super::tickets::{StoredTriage, get_ticket};
use super::{SqliteStore, bad_value, exec, parse_opt_ts, query_one, sql, ts};
use crate::domain::ticket::{TicketStatus, TriageStatus};
use crate::domain::user::Role;
use crate::store::{
    Activity, AutomationStore, NewActivity, StaffLoad, StoreError, StoreResult, Ticket,
    TriageUpdate,
};
use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

pub(super) fn staff_loads(conn: &Connection) -> StoreResult<Vec<StaffLoad>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT u.id, u.email, u.name, u.role, u.skills, u.capacity, u.last_assigned_at,
                    u.open_tickets
             FROM users u WHERE u.role IN ('moderator', 'admin') ORDER BY u.id",
        )
        .map_err(sql)?;
    stmt.query_map([], |r| {
        let role: String = r.get(3)?;
        let skills: String = r.get(4)?;
        Ok(StaffLoad {
            id: r.get(0)?,
            email: r.get(1)?,
            name: r.get(2)?,
            role: Role::parse(&role).map_err(|_| bad_value("role", &role))?,
            skills: serde_json::from_str(&skills).map_err(|_| bad_value("skills", &skills))?,
            capacity: r.get(5)?,
            last_assigned_at: parse_opt_ts(r.get(6)?)?,
            open_tickets: r.get(7)?,
        })
    })
    .map_err(sql)?
    .collect::<rusqlite::Result<Vec<_>>>()
    .map_err(sql)
}

/// Remembers when a ticket was assigned and when its assignee last got one (routing ties).
pub(super) fn note_assignment(
    tx: &Transaction<'_>,
    ticket_id: &str,
    assignee: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    exec(
        tx,
        "UPDATE tickets SET assigned_at = ?1 WHERE id = ?2",
        params![ts(now), ticket_id],
    )
    .map_err(sql)?;
    exec(
        tx,
        "UPDATE users SET last_assigned_at = ?1 WHERE id = ?2",
        params![ts(now), assignee],
    )
    .map_err(sql)?;
    Ok(())
}

#[async_trait]
impl AutomationStore for SqliteStore {
    async fn save_triage(&self, ticket_id: &str, triage: TriageUpdate) -> StoreResult<Ticket> {
        let id = ticket_id.to_owned();
        self.write(move |tx| {
            let now = Utc::now();
            let stored = StoredTriage {
                summary: triage.summary.clone(),
                sentiment: triage.sentiment.as_str().to_owned(),
                required_skills: triage.required_skills.clone(),
                helpful_notes: triage.helpful_notes.clone(),
                confidence: triage.confidence,
                source: triage.source.as_str().to_owned(),
                triaged_at: now,
            };
            let json = serde_json::to_string(&stored).map_err(|e| StoreError::Other(e.into()))?;
            let changed = exec(
                tx,
                "UPDATE tickets SET triage = ?1, triage_source = ?2, triage_status = ?3, category = ?4,
                        priority = CASE WHEN priority_locked THEN priority ELSE ?5 END,
                        updated_at = ?6, version = version + 1
                 WHERE id = ?7",
                params![
                    json,
                    triage.source.as_str(),
                    triage.status.as_str(),
                    triage.category.as_str(),
                    triage.priority.as_str(),
                    ts(now),
                    id
                ],
            )
            .map_err(sql)?;
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            let saved = get_ticket(tx, &id)?.ok_or(StoreError::NotFound)?;
            let entry = crate::store::triage_activity(&triage, &saved);
            super::activity::append(tx, &id, [entry], now)?;
            Ok(saved)
        })
        .await
    }

    async fn mark_triage_failed(&self, ticket_id: &str, reason: &str) -> StoreResult<()> {
        let (id, reason) = (ticket_id.to_owned(), reason.to_owned());
        self.write(move |tx| {
            let now = Utc::now();
            let changed = exec(
                tx,
                "UPDATE tickets SET triage_status = ?1, updated_at = ?2, version = version + 1,
                        routing_reason = COALESCE(routing_reason, ?3)
                 WHERE id = ?4 AND triage_status = ?5",
                params![
                    TriageStatus::Failed.as_str(),
                    ts(now),
                    reason,
                    id,
                    TriageStatus::Pending.as_str()
                ],
            )
            .map_err(sql)?;
            if changed > 0 {
                let entry = crate::store::triage_failed_activity();
                super::activity::append(tx, &id, [entry], now)?;
            }
            Ok(())
        })
        .await
    }

    async fn staff_loads(&self) -> StoreResult<Vec<StaffLoad>> {
        self.lookup(staff_loads).await
    }

    async fn assign_if_unassigned(
        &self,
        ticket_id: &str,
        assignee_id: &str,
        reason: &str,
    ) -> StoreResult<Option<Ticket>> {
        let (id, assignee, reason) = (
            ticket_id.to_owned(),
            assignee_id.to_owned(),
            reason.to_owned(),
        );
        self.write(move |tx| {
            let now = Utc::now();
            let changed = exec(
                tx,
                "UPDATE tickets SET assigned_to = ?1, routing_reason = ?2, updated_at = ?3, version = version + 1
                 WHERE id = ?4 AND assigned_to IS NULL
                   AND EXISTS (SELECT 1 FROM users WHERE id = ?1 AND role IN ('moderator', 'admin'))",
                params![assignee, reason, ts(now), id],
            )
            .map_err(sql)?;
            if changed == 0 {
                return Ok(None);
            }
            note_assignment(tx, &id, &assignee, now)?;
            let entry = NewActivity::new(
                None,
                Activity::Assigned {
                    assignee_id: Some(assignee.clone()),
                    reason: Some(reason.clone()),
                },
            );
            super::activity::append(tx, &id, [entry], now)?;
            get_ticket(tx, &id)
        })
        .await
    }

    async fn set_routing_reason(&self, ticket_id: &str, reason: &str) -> StoreResult<()> {
        let (id, reason) = (ticket_id.to_owned(), reason.to_owned());
        self.write(move |tx| {
            // Only a new reason is news: a replayed step writes the same one again.
            let changed = exec(
                tx,
                "UPDATE tickets SET routing_reason = ?1 WHERE id = ?2 AND routing_reason IS NOT ?1",
                params![reason, id],
            )
            .map_err(sql)?;
            if changed > 0 {
                let assignee_id: Option<String> = query_one(
                    tx,
                    "SELECT assigned_to FROM tickets WHERE id = ?1",
                    [&id],
                    |r| r.get(0),
                )
                .map_err(sql)?;
                let entry = NewActivity::new(
                    None,
                    Activity::Assigned {
                        assignee_id,
                        reason: Some(reason),
                    },
                );
                super::activity::append(tx, &id, [entry], Utc::now())?;
            }
            Ok(())
        })
        .await
    }

    async fn set_sla_due(&self, ticket_id: &str, due: DateTime<Utc>) -> StoreResult<()> {
        let id = ticket_id.to_owned();
        self.write(move |tx| {
            let changed = exec(
                tx,
                "UPDATE tickets SET sla_due_at = ?1 WHERE id = ?2 AND sla_due_at IS NOT ?1",
                params![ts(due), id],
            )
            .map_err(sql)?;
            if changed > 0 {
                // As precise as the stored deadline, so the two read the same.
                let due_at = due.trunc_subsecs(6);
                let entry = NewActivity::new(None, Activity::SlaSet { due_at });
                super::activity::append(tx, &id, [entry], Utc::now())?;
            }
            Ok(())
        })
        .await
    }

    async fn escalate(&self, ticket_id: &str) -> StoreResult<Option<Ticket>> {
        let id = ticket_id.to_owned();
        self.write(move |tx| {
            let Some(ticket) = get_ticket(tx, &id)? else {
                return Err(StoreError::NotFound);
            };
            if ticket.escalated_at.is_some() || matches!(ticket.status, TicketStatus::Resolved | TicketStatus::Closed) {
                return Ok(None);
            }
            let now = Utc::now();
            let raised = ticket.priority.raised();
            exec(
                tx,
                "UPDATE tickets SET priority = ?1, escalated_at = ?2, updated_at = ?2, version = version + 1 WHERE id = ?3",
                params![raised.as_str(), ts(now), id],
            )
            .map_err(sql)?;
            let entry = NewActivity::new(None, Activity::Escalated { priority: raised });
            super::activity::append(tx, &id, [entry], now)?;
            get_ticket(tx, &id)
        })
        .await
    }

    async fn mail_sent(&self, key: &str) -> StoreResult<bool> {
        let key = key.to_owned();
        self.lookup(move |c| {
            query_one(c, "SELECT 1 FROM sent_mail WHERE key = ?1", [key], |_| {
                Ok(())
            })
            .optional()
            .map(|r| r.is_some())
            .map_err(sql)
        })
        .await
    }

    async fn record_mail(&self, key: &str, recipient: &str, subject: &str) -> StoreResult<()> {
        let (key, recipient, subject) = (key.to_owned(), recipient.to_owned(), subject.to_owned());
        self.write(move |tx| {
            exec(
                tx,
                "INSERT INTO sent_mail (key, recipient, subject, sent_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO NOTHING",
                params![key, recipient, subject, ts(Utc::now())],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }
}
