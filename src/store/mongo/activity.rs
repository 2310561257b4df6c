//! The activity log: documents appended inside the transaction of the change they record.

use super::transaction::TxResult;
use super::{Inner, MongoStore, bad_document, from_bson_date, ticket_records, to_bson_date};
use crate::store::{Activity, ActivityEntry, NewActivity, StoreError, StoreResult};
use chrono::{DateTime, Utc};
use mongodb::ClientSession;
use mongodb::bson::{self, Document, doc};
use serde::Deserialize;

#[derive(Deserialize)]
struct ActivityDoc {
    #[serde(rename = "_id")]
    id: String,
    ticket_id: String,
    kind: String,
    actor_id: Option<String>,
    data: serde_json::Value,
    at: bson::DateTime,
}

pub(super) fn activity_document(
    ticket_id: &str,
    entry: &NewActivity,
    at: DateTime<Utc>,
) -> StoreResult<Document> {
    let (kind, data) = entry.activity.clone().into_parts();
    let data = bson::to_bson(&data).map_err(|e| StoreError::Other(e.into()))?;
    Ok(doc! {
        "_id": &entry.id,
        "ticket_id": ticket_id,
        "kind": kind,
        "actor_id": entry.actor_id.clone(),
        "data": data,
        "at": to_bson_date(at),
    })
}

fn decode(document: Document) -> StoreResult<ActivityEntry> {
    let d: ActivityDoc = bson::from_document(document).map_err(|e| bad_document("activity", e))?;
    Ok(ActivityEntry {
        activity: Activity::from_parts(&d.kind, d.data).map_err(|e| bad_document("activity", e))?,
        id: d.id,
        ticket_id: d.ticket_id,
        actor_id: d.actor_id,
        at: from_bson_date(d.at)?,
    })
}

impl Inner {
    /// Writes `entries` in the caller's transaction.
    pub(super) async fn append_activity(
        &self,
        session: &mut ClientSession,
        ticket_id: &str,
        entries: &[NewActivity],
        at: DateTime<Utc>,
    ) -> TxResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let documents = entries
            .iter()
            .map(|e| activity_document(ticket_id, e, at))
            .collect::<StoreResult<Vec<_>>>()?;
        self.activity
            .insert_many(documents)
            .session(session)
            .await?;
        Ok(())
    }
}

impl MongoStore {
    pub(super) async fn activity_of(&self, ticket_id: &str) -> StoreResult<Vec<ActivityEntry>> {
        let ticket_id = ticket_id.to_owned();
        self.run(move |inner| async move {
            ticket_records(&inner.activity, doc! { "ticket_id": ticket_id }, decode).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ticket::{Priority, TriageStatus};

    #[test]
    fn entries_read_back_as_written() {
        let at = super::super::now();
        for activity in [
            Activity::Created {},
            Activity::Rated { score: 5 },
            Activity::SlaSet { due_at: at },
            Activity::Triaged {
                source: None,
                status: TriageStatus::Failed,
                category: None,
                priority: Some(Priority::Low),
            },
        ] {
            let entry = NewActivity::new(Some("u1"), activity.clone());
            let read = decode(activity_document("t1", &entry, at).unwrap()).unwrap();
            assert_eq!(
                read,
                ActivityEntry {
                    id: entry.id,
                    ticket_id: "t1".into(),
                    actor_id: Some("u1".into()),
                    activity,
                    at,
                }
            );
        }
    }
}
