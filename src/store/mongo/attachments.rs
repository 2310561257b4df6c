//! Attachment records on MongoDB, in a collection of their own beside the tickets. The bytes
//! are in GridFS (`crate::attachments::gridfs`), in the same database.

use super::transaction::TxError;
use super::{
    Inner, MongoStore, bad_document, driver, duplicate_key_index, from_bson_date, index, now,
    ticket_records, to_bson_date, visible_on_ticket,
};
use crate::store::{
    AttachOutcome, Attachment, AttachmentStore, Detached, NewAttachment, StoreError, StoreResult,
};
use async_trait::async_trait;
use futures::FutureExt;
use mongodb::Collection;
use mongodb::bson::{self, Bson, Document, doc};
use serde::Deserialize;

pub(super) const ATTACHMENTS: &str = "attachments";

#[derive(Deserialize)]
struct AttachmentDoc {
    #[serde(rename = "_id")]
    id: String,
    ticket_id: String,
    filename: String,
    content_type: String,
    size: i64,
    sha256: String,
    internal: bool,
    uploaded_by: String,
    created_at: bson::DateTime,
}

impl AttachmentDoc {
    fn decode(document: Document) -> StoreResult<Attachment> {
        let d: AttachmentDoc =
            bson::from_document(document).map_err(|e| bad_document("attachment", e))?;
        Ok(Attachment {
            id: d.id,
            ticket_id: d.ticket_id,
            filename: d.filename,
            content_type: d.content_type,
            size: d.size.max(0) as u64,
            sha256: d.sha256,
            internal: d.internal,
            uploaded_by: d.uploaded_by,
            created_at: from_bson_date(d.created_at)?,
        })
    }
}

impl Inner {
    fn attachments(&self) -> Collection<Document> {
        self.db.collection(ATTACHMENTS)
    }

    pub(super) async fn create_attachment_indexes(&self) -> StoreResult<()> {
        self.attachments()
            .create_indexes([
                index(
                    "attachments_by_ticket",
                    doc! { "ticket_id": 1, "_id": 1 },
                    false,
                ),
                index("attachments_by_sha256", doc! { "sha256": 1 }, false),
            ])
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("creating indexes on {ATTACHMENTS}: {e}"))
            })?;
        Ok(())
    }
}

fn attachment_document(new: &NewAttachment, at: bson::DateTime) -> StoreResult<Document> {
    let size = i64::try_from(new.size)
        .map_err(|_| StoreError::Other(anyhow::anyhow!("file size out of range")))?;
    Ok(doc! {
        "_id": &new.id,
        "ticket_id": &new.ticket_id,
        "filename": &new.filename,
        "content_type": &new.content_type,
        "size": size,
        "sha256": &new.sha256,
        "internal": new.internal,
        "uploaded_by": &new.uploaded_by,
        "created_at": at,
    })
}

#[async_trait]
impl AttachmentStore for MongoStore {
    async fn add_attachment(
        &self,
        new: NewAttachment,
        max_per_ticket: usize,
    ) -> StoreResult<AttachOutcome> {
        self.run(move |inner| async move {
            let at = to_bson_date(now());
            let document = attachment_document(&new, at)?;
            let ticket_id = new.ticket_id.clone();
            let limit = i64::try_from(max_per_ticket).unwrap_or(i64::MAX);
            let added = inner
                .transact(|db, s| {
                    let document = document.clone();
                    let ticket_id = ticket_id.clone();
                    async move {
                        // Snapshot reads do not see a concurrent insert, so two uploads could
                        // both count 19. Both also write the ticket, though, and MongoDB lets
                        // only one of two transactions writing one document commit: the other
                        // retries and counts again.
                        let touched = db
                            .tickets
                            .update_one(
                                doc! { "_id": &ticket_id },
                                doc! { "$set": { "attachments_changed_at": at } },
                            )
                            .session(&mut *s)
                            .await?;
                        if touched.matched_count == 0 {
                            return Err(StoreError::NotFound.into());
                        }
                        let held = db
                            .attachments()
                            .count_documents(doc! { "ticket_id": &ticket_id })
                            .session(&mut *s)
                            .await?;
                        if i64::try_from(held).unwrap_or(i64::MAX) >= limit {
                            return Ok(false);
                        }
                        db.attachments()
                            .insert_one(document)
                            .session(&mut *s)
                            .await
                            .map_err(|e| match duplicate_key_index(&e) {
                                Some(_) => StoreError::Conflict { field: "id" }.into(),
                                None => TxError::Driver(e),
                            })?;
                        Ok(true)
                    }
                    .boxed()
                })
                .await?;
            if added {
                AttachmentDoc::decode(document).map(AttachOutcome::Added)
            } else {
                Ok(AttachOutcome::TicketFull)
            }
        })
        .await
    }

    async fn get_attachment(&self, id: &str) -> StoreResult<Option<Attachment>> {
        let id = id.to_owned();
        self.run(move |inner| async move {
            inner
                .attachments()
                .find_one(doc! { "_id": id })
                .await
                .map_err(driver)?
                .map(AttachmentDoc::decode)
                .transpose()
        })
        .await
    }

    async fn list_attachments(
        &self,
        ticket_id: &str,
        include_internal: bool,
    ) -> StoreResult<Vec<Attachment>> {
        let filter = visible_on_ticket(ticket_id, include_internal);
        self.run(move |inner| async move {
            ticket_records(&inner.attachments(), filter, AttachmentDoc::decode).await
        })
        .await
    }

    async fn delete_attachment(&self, id: &str) -> StoreResult<Option<Detached>> {
        let id = id.to_owned();
        self.run(move |inner| async move {
            let outcome = inner
                .transact(|db, s| {
                    let id = id.clone();
                    async move {
                        let Some(document) = db
                            .attachments()
                            .find_one_and_delete(doc! { "_id": &id })
                            .session(&mut *s)
                            .await?
                        else {
                            return Ok(None);
                        };
                        let sha256 = document.get_str("sha256").unwrap_or_default().to_owned();
                        let other = db
                            .attachments()
                            .find_one(doc! { "sha256": &sha256 })
                            .projection(doc! { "_id": 1 })
                            .session(&mut *s)
                            .await?;
                        Ok(Some((document, other.is_some())))
                    }
                    .boxed()
                })
                .await?;
            outcome
                .map(|(document, blob_still_used)| {
                    Ok(Detached {
                        attachment: AttachmentDoc::decode(document)?,
                        blob_still_used,
                    })
                })
                .transpose()
        })
        .await
    }

    async fn blob_in_use(&self, sha256: &str) -> StoreResult<bool> {
        let sha256 = sha256.to_owned();
        self.run(move |inner| async move {
            let found = inner
                .attachments()
                .find_one(doc! { "sha256": sha256 })
                .projection(doc! { "_id": 1 })
                .await
                .map_err(driver)?;
            Ok(found.is_some())
        })
        .await
    }

    async fn blobs_in_use(&self) -> StoreResult<Vec<String>> {
        self.run(|inner| async move {
            let values: Vec<Bson> = inner
                .attachments()
                .distinct("sha256", doc! {})
                .await
                .map_err(driver)?;
            Ok(values
                .into_iter()
                .filter_map(|v| match v {
                    Bson::String(s) => Some(s),
                    _ => None,
                })
                .collect())
        })
        .await
    }
}
