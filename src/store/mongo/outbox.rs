//! The outbox: `_id` is the event id, `seq` the delivery order.
//!
//! `seq` comes from one counter document incremented inside the writing transaction. Writers
//! therefore conflict on it and commit one after another, which gives a useful guarantee: once
//! a reader sees `seq` n, every smaller `seq` is committed too, so the relay never skips over a
//! row that shows up late.

use super::transaction::{TxError, TxResult};
use super::{
    ID_INDEX, Inner, MongoStore, all_documents, bad_document, bson_i64, driver,
    duplicate_key_index, from_bson_date, from_opt_bson_date, now, to_bson_date,
};
use crate::domain::events::NewEvent;
use crate::store::{OutboxEvent, OutboxStore, StoreError, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::ClientSession;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::options::ReturnDocument;
use serde::Deserialize;

pub(super) const SEQ_COUNTER: &str = "outbox_seq";

#[derive(Deserialize)]
struct OutboxDoc {
    #[serde(rename = "_id")]
    id: String,
    seq: i64,
    name: String,
    data: serde_json::Value,
    created_at: bson::DateTime,
    sent_at: Option<bson::DateTime>,
}

impl OutboxDoc {
    fn decode(document: Document) -> StoreResult<OutboxEvent> {
        let d: OutboxDoc =
            bson::from_document(document).map_err(|e| bad_document("outbox event", e))?;
        Ok(OutboxEvent {
            seq: d.seq,
            id: d.id,
            name: d.name,
            data: d.data,
            created_at: from_bson_date(d.created_at)?,
            sent_at: from_opt_bson_date(d.sent_at)?,
        })
    }
}

fn event_document(event: &NewEvent, seq: i64, now: DateTime<Utc>) -> StoreResult<Document> {
    let data = bson::to_bson(&event.data).map_err(|e| StoreError::Other(e.into()))?;
    Ok(doc! {
        "_id": &event.id,
        "seq": seq,
        "name": &event.name,
        "data": data,
        "created_at": to_bson_date(now),
        "sent_at": Bson::Null,
    })
}

fn pending() -> Document {
    doc! { "sent_at": Bson::Null }
}

impl Inner {
    /// Writes `events` in the caller's transaction, numbered in the order given.
    pub(super) async fn append_events(
        &self,
        session: &mut ClientSession,
        events: &[NewEvent],
        now: DateTime<Utc>,
    ) -> TxResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let count = i64::try_from(events.len()).map_err(|e| StoreError::Other(e.into()))?;
        let counter = self
            .counters
            .find_one_and_update(
                doc! { "_id": SEQ_COUNTER },
                doc! { "$inc": { "value": count } },
            )
            .upsert(true)
            .return_document(ReturnDocument::After)
            .session(&mut *session)
            .await?
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("outbox counter vanished")))?;
        let last = counter
            .get("value")
            .and_then(bson_i64)
            .ok_or_else(|| bad_document("outbox counter", "value is not an integer"))?;
        for (seq, event) in (last - count + 1..).zip(events) {
            self.outbox
                .insert_one(event_document(event, seq, now)?)
                .session(&mut *session)
                .await
                .map_err(|e| match duplicate_key_index(&e) {
                    Some(index) if index == ID_INDEX => {
                        StoreError::Conflict { field: "event id" }.into()
                    }
                    // A taken `seq` is a counter fault, not the caller's conflict.
                    _ => TxError::Driver(e),
                })?;
        }
        Ok(())
    }

    async fn find_events(&self, filter: Document, limit: usize) -> StoreResult<Vec<OutboxEvent>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let query = self
            .outbox
            .find(filter)
            .sort(doc! { "seq": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX));
        let documents = all_documents(query).await?;
        documents.into_iter().map(OutboxDoc::decode).collect()
    }
}

#[async_trait]
impl OutboxStore for MongoStore {
    async fn pending_events(&self, limit: usize) -> StoreResult<Vec<OutboxEvent>> {
        self.run(move |inner| async move { inner.find_events(pending(), limit).await })
            .await
    }

    async fn list_events(&self, after_seq: i64, limit: usize) -> StoreResult<Vec<OutboxEvent>> {
        self.run(move |inner| async move {
            inner
                .find_events(doc! { "seq": { "$gt": after_seq } }, limit)
                .await
        })
        .await
    }

    async fn mark_sent(&self, ids: &[String]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = ids.to_vec();
        self.run(move |inner| async move {
            // Only unsent rows: a repeated call keeps the first delivery time.
            let mut filter = pending();
            filter.insert("_id", doc! { "$in": ids });
            inner
                .outbox
                .update_many(filter, doc! { "$set": { "sent_at": to_bson_date(now()) } })
                .await
                .map_err(driver)?;
            Ok(())
        })
        .await
    }

    async fn outbox_backlog(&self) -> StoreResult<u64> {
        self.run(|inner| async move {
            inner
                .outbox
                .count_documents(pending())
                .await
                .map_err(driver)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_round_trip_with_their_data() {
        let event = NewEvent {
            id: crate::domain::new_id(),
            name: "ticket/updated".into(),
            data: json!({
                "ticket_id": "t1",
                "changes": { "status": { "from": "open", "to": "resolved" } },
                "n": 3, "big": 5_000_000_000_i64, "ratio": 0.5, "flag": true, "none": null,
                "list": [1, "two"], "$odd.key": "kept as is",
            }),
        };
        let now = super::super::now();
        let read = OutboxDoc::decode(event_document(&event, 7, now).unwrap()).unwrap();
        assert_eq!(
            read,
            OutboxEvent {
                seq: 7,
                id: event.id,
                name: event.name,
                data: event.data,
                created_at: now,
                sent_at: None,
            }
        );
    }

    #[test]
    fn integers_beyond_bson_range_are_refused_not_mangled() {
        let event = NewEvent {
            id: "e".into(),
            name: "x".into(),
            data: json!({ "n": u64::MAX }),
        };
        assert!(event_document(&event, 1, super::super::now()).is_err());
    }
}
