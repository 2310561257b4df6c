//! What the durable functions write: triage results, routing, SLA and the record of sent mail.
//!
//! Every change runs in a transaction with its activity entry; one that needs a value only the
//! stored document knows (the priority to raise) reads it in the same snapshot.

use super::loads::staff_filter;
use super::tickets::{TicketDoc, triage_document};
use super::transaction::TxResult;
use super::{ID_INDEX, Inner, MongoStore, driver, duplicate_key_index, now, to_bson_date};
use crate::domain::ticket::{TicketStatus, TriageStatus};
use crate::store::{
    Activity, AutomationStore, NewActivity, StaffLoad, StoreError, StoreResult, Ticket,
    TriageUpdate,
};
use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use futures::FutureExt;
use mongodb::ClientSession;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::options::ReturnDocument;

fn ticket_from(found: Option<Document>) -> StoreResult<Ticket> {
    found.map(TicketDoc::decode).ok_or(StoreError::NotFound)?
}

impl Inner {
    /// Remembers when the assignee last got a ticket (routing breaks ties by it).
    pub(super) async fn note_assignee(
        &self,
        session: &mut ClientSession,
        assignee: &str,
        at: bson::DateTime,
    ) -> TxResult<()> {
        self.users
            .update_one(
                doc! { "_id": assignee },
                doc! { "$set": { "last_assigned_at": at } },
            )
            .session(session)
            .await?;
        Ok(())
    }
}

/// The two updates `save_triage` tries in turn: with the priority for an unlocked ticket, then
/// without it. Nothing ever unlocks a priority, so the second cannot race an unlock.
fn triage_updates(triage: &TriageUpdate, at: bson::DateTime) -> (Document, Document) {
    let set = doc! {
        "triage": triage_document(triage, at),
        "triage_source": triage.source.as_str(),
        "triage_status": triage.status.as_str(),
        "category": triage.category.as_str(),
        "updated_at": at,
    };
    let mut with_priority = set.clone();
    with_priority.insert("priority", triage.priority.as_str());
    let inc = doc! { "version": 1_i64 };
    (
        doc! { "$set": with_priority, "$inc": inc.clone() },
        doc! { "$set": set, "$inc": inc },
    )
}

#[async_trait]
impl AutomationStore for MongoStore {
    async fn save_triage(&self, ticket_id: &str, triage: TriageUpdate) -> StoreResult<Ticket> {
        let id = ticket_id.to_owned();
        self.run(move |inner| async move {
            let now = now();
            let (unlocked, locked) = triage_updates(&triage, to_bson_date(now));
            let saved = inner
                .transact(|db, s| {
                    let (id, triage) = (id.clone(), triage.clone());
                    let (unlocked, locked) = (unlocked.clone(), locked.clone());
                    async move {
                        let found = db
                            .tickets
                            .find_one_and_update(
                                doc! { "_id": &id, "priority_locked": false },
                                unlocked,
                            )
                            .return_document(ReturnDocument::After)
                            .session(&mut *s)
                            .await?;
                        let found = match found {
                            Some(found) => Some(found),
                            None => {
                                db.tickets
                                    .find_one_and_update(doc! { "_id": &id }, locked)
                                    .return_document(ReturnDocument::After)
                                    .session(&mut *s)
                                    .await?
                            }
                        };
                        let saved = ticket_from(found)?;
                        let entry = [crate::store::triage_activity(&triage, &saved)];
                        db.append_activity(s, &id, &entry, now).await?;
                        Ok(saved)
                    }
                    .boxed()
                })
                .await?;
            Ok(saved)
        })
        .await
    }

    async fn mark_triage_failed(&self, ticket_id: &str, reason: &str) -> StoreResult<()> {
        let (id, reason) = (ticket_id.to_owned(), reason.to_owned());
        self.run(move |inner| async move {
            let now = now();
            let pending = doc! { "_id": &id, "triage_status": TriageStatus::Pending.as_str() };
            let set = doc! {
                "triage_status": TriageStatus::Failed.as_str(),
                "updated_at": to_bson_date(now),
            };
            let inc = doc! { "version": 1_i64 };
            // A reason already given (routing may have written one) is kept.
            let mut without_reason = pending.clone();
            without_reason.insert("routing_reason", Bson::Null);
            let mut with_reason = set.clone();
            with_reason.insert("routing_reason", &reason);
            let first = doc! { "$set": with_reason, "$inc": inc.clone() };
            let second = doc! { "$set": set, "$inc": inc };
            let entry = [crate::store::triage_failed_activity()];
            inner
                .transact(|db, s| {
                    let (id, entry) = (id.clone(), entry.clone());
                    let (without_reason, first) = (without_reason.clone(), first.clone());
                    let (pending, second) = (pending.clone(), second.clone());
                    async move {
                        let mut matched = db
                            .tickets
                            .update_one(without_reason, first)
                            .session(&mut *s)
                            .await?
                            .matched_count;
                        if matched == 0 {
                            matched = db
                                .tickets
                                .update_one(pending, second)
                                .session(&mut *s)
                                .await?
                                .matched_count;
                        }
                        if matched > 0 {
                            db.append_activity(s, &id, &entry, now).await?;
                        }
                        Ok(())
                    }
                    .boxed()
                })
                .await
        })
        .await
    }

    async fn staff_loads(&self) -> StoreResult<Vec<StaffLoad>> {
        self.run(|inner| async move { inner.staff_loads().await })
            .await
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
        self.run(move |inner| async move {
            let now = now();
            let at = to_bson_date(now);
            let entry = [NewActivity::new(
                None,
                Activity::Assigned {
                    assignee_id: Some(assignee.clone()),
                    reason: Some(reason.clone()),
                },
            )];
            let assigned = inner
                .transact(|db, s| {
                    let (id, assignee, reason) = (id.clone(), assignee.clone(), reason.clone());
                    let entry = entry.clone();
                    async move {
                        // Read in the transaction's snapshot; `note_assignee` below writes the
                        // same document, so a role change meanwhile is a conflict and a rerun.
                        let mut still_staff = staff_filter();
                        still_staff.insert("_id", &assignee);
                        let is_staff = db
                            .users
                            .find_one(still_staff)
                            .projection(doc! { "_id": 1 })
                            .session(&mut *s)
                            .await?
                            .is_some();
                        if !is_staff {
                            return Ok(None);
                        }
                        let updated = db
                            .tickets
                            .find_one_and_update(
                                doc! { "_id": &id, "assigned_to": Bson::Null },
                                doc! {
                                    "$set": {
                                        "assigned_to": &assignee,
                                        "routing_reason": &reason,
                                        "assigned_at": at,
                                        "updated_at": at,
                                    },
                                    "$inc": { "version": 1_i64 },
                                },
                            )
                            .return_document(ReturnDocument::After)
                            .session(&mut *s)
                            .await?;
                        let Some(updated) = updated else {
                            return Ok(None);
                        };
                        db.note_assignee(s, &assignee, at).await?;
                        db.append_activity(s, &id, &entry, now).await?;
                        Ok(Some(updated))
                    }
                    .boxed()
                })
                .await?;
            assigned.map(TicketDoc::decode).transpose()
        })
        .await
    }

    async fn set_routing_reason(&self, ticket_id: &str, reason: &str) -> StoreResult<()> {
        let activity = |ticket: &Ticket| Activity::Assigned {
            assignee_id: ticket.assigned_to.clone(),
            reason: ticket.routing_reason.clone(),
        };
        self.set_field(ticket_id, "routing_reason", Bson::from(reason), activity)
            .await
    }

    async fn set_sla_due(&self, ticket_id: &str, due: DateTime<Utc>) -> StoreResult<()> {
        // As precise as the stored deadline, so the two read the same.
        let due_at = due.trunc_subsecs(3);
        let activity = move |_: &Ticket| Activity::SlaSet { due_at };
        self.set_field(
            ticket_id,
            "sla_due_at",
            Bson::from(to_bson_date(due)),
            activity,
        )
        .await
    }

    async fn escalate(&self, ticket_id: &str) -> StoreResult<Option<Ticket>> {
        let id = ticket_id.to_owned();
        self.run(move |inner| async move {
            let now = now();
            let at = to_bson_date(now);
            let escalated = inner
                .transact(|db, s| {
                    let id = id.clone();
                    async move {
                        let current = db.ticket_in(s, &id).await?;
                        if current.escalated_at.is_some()
                            || matches!(
                                current.status,
                                TicketStatus::Resolved | TicketStatus::Closed
                            )
                        {
                            return Ok(None);
                        }
                        // The snapshot read above makes a concurrent change a write conflict,
                        // which reruns the transaction: the priority raised is the current one.
                        let raised = current.priority.raised();
                        let updated = db
                            .tickets
                            .find_one_and_update(
                                doc! { "_id": &id },
                                doc! {
                                    "$set": {
                                        "priority": raised.as_str(),
                                        "escalated_at": at,
                                        "updated_at": at,
                                    },
                                    "$inc": { "version": 1_i64 },
                                },
                            )
                            .return_document(ReturnDocument::After)
                            .session(&mut *s)
                            .await?;
                        if updated.is_some() {
                            let entry = [NewActivity::new(
                                None,
                                Activity::Escalated { priority: raised },
                            )];
                            db.append_activity(s, &id, &entry, now).await?;
                        }
                        Ok(updated)
                    }
                    .boxed()
                })
                .await?;
            escalated.map(TicketDoc::decode).transpose()
        })
        .await
    }

    async fn mail_sent(&self, key: &str) -> StoreResult<bool> {
        let key = key.to_owned();
        self.run(move |inner| async move {
            let found = inner
                .sent_mail
                .find_one(doc! { "_id": key })
                .projection(doc! { "_id": 1 })
                .await
                .map_err(driver)?;
            Ok(found.is_some())
        })
        .await
    }

    async fn record_mail(&self, key: &str, recipient: &str, subject: &str) -> StoreResult<()> {
        let document = doc! {
            "_id": key,
            "recipient": recipient,
            "subject": subject,
            "sent_at": to_bson_date(now()),
        };
        self.run(move |inner| async move {
            match inner.sent_mail.insert_one(document).await {
                Ok(_) => Ok(()),
                // Recorded before, by an earlier run of the same step: the first record stays.
                Err(e) if duplicate_key_index(&e).as_deref() == Some(ID_INDEX) => Ok(()),
                Err(e) => Err(driver(e)),
            }
        })
        .await
    }
}

impl MongoStore {
    /// Sets one field of a ticket, leaving `version` and `updated_at` as the routing and SLA
    /// bookkeeping does on SQLite, and records `activity` of the updated ticket when the value
    /// is new (a replayed step writes the same one again). A missing ticket is not an error.
    async fn set_field(
        &self,
        ticket_id: &str,
        field: &'static str,
        value: Bson,
        activity: impl Fn(&Ticket) -> Activity + Send + Sync + 'static,
    ) -> StoreResult<()> {
        let id = ticket_id.to_owned();
        let activity = std::sync::Arc::new(activity);
        self.run(move |inner| async move {
            let now = now();
            inner
                .transact(|db, s| {
                    let (id, value, activity) = (id.clone(), value.clone(), activity.clone());
                    async move {
                        let updated = db
                            .tickets
                            .find_one_and_update(
                                doc! { "_id": &id, field: { "$ne": value.clone() } },
                                doc! { "$set": { field: value } },
                            )
                            .return_document(ReturnDocument::After)
                            .session(&mut *s)
                            .await?;
                        if let Some(updated) = updated {
                            let entry = [NewActivity::new(
                                None,
                                activity(&TicketDoc::decode(updated)?),
                            )];
                            db.append_activity(s, &id, &entry, now).await?;
                        }
                        Ok(())
                    }
                    .boxed()
                })
                .await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ticket::{Category, Priority};
    use crate::domain::triage::{Sentiment, TriageSource};

    fn triage() -> TriageUpdate {
        TriageUpdate {
            status: TriageStatus::Done,
            summary: "$where: printer".into(),
            category: Category::Bug,
            priority: Priority::High,
            sentiment: Sentiment::Frustrated,
            required_skills: vec!["printers".into()],
            helpful_notes: "Check the **fuser**.".into(),
            confidence: 0.75,
            source: TriageSource::Rules,
        }
    }

    #[test]
    fn triage_sets_the_priority_only_in_the_unlocked_update() {
        let at = bson::DateTime::from_millis(42);
        let (unlocked, locked) = triage_updates(&triage(), at);
        let set = unlocked.get_document("$set").unwrap();
        assert_eq!(set.get_str("priority"), Ok("high"));
        assert_eq!(set.get_str("category"), Ok("bug"));
        assert_eq!(set.get_str("triage_status"), Ok("done"));
        assert_eq!(set.get_str("triage_source"), Ok("rules"));
        assert_eq!(set.get_datetime("updated_at"), Ok(&at));
        // Text is stored as text, even when it looks like an operator.
        assert_eq!(
            set.get_document("triage").unwrap().get_str("summary"),
            Ok("$where: printer")
        );
        assert_eq!(
            unlocked.get_document("$inc").unwrap(),
            &doc! { "version": 1_i64 }
        );
        let kept = locked.get_document("$set").unwrap();
        assert!(!kept.contains_key("priority"));
        let mut expected = set.clone();
        expected.remove("priority");
        assert_eq!(kept, &expected);
        assert_eq!(
            locked.get_document("$inc").unwrap(),
            &doc! { "version": 1_i64 }
        );
    }
}
