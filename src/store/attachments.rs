//! The records of files on tickets. The bytes live elsewhere (`crate::attachments`), keyed by
//! their SHA-256: several records may share one stored file.

use super::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

#[derive(Clone, Debug, PartialEq)]
pub struct Attachment {
    pub id: String,
    pub ticket_id: String,
    /// For display only, never a path.
    pub filename: String,
    /// Detected from the bytes; `application/octet-stream` when unknown.
    pub content_type: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
    /// Staff-only, hidden from the ticket's creator like internal notes.
    pub internal: bool,
    pub uploaded_by: String,
    pub created_at: DateTime<Utc>,
}

pub struct NewAttachment {
    pub id: String,
    pub ticket_id: String,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    pub internal: bool,
    pub uploaded_by: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AttachOutcome {
    Added(Attachment),
    /// The ticket already holds the most files it may; nothing was written.
    TicketFull,
}

/// What a delete left behind.
#[derive(Clone, Debug, PartialEq)]
pub struct Detached {
    pub attachment: Attachment,
    /// Whether another record still refers to the same bytes; if not, they may go.
    pub blob_still_used: bool,
}

#[async_trait]
pub trait AttachmentStore: Send + Sync {
    /// Records the file unless the ticket already holds `max_per_ticket`; the count and the
    /// insert are one atomic step. An unknown ticket is `NotFound`.
    async fn add_attachment(
        &self,
        attachment: NewAttachment,
        max_per_ticket: usize,
    ) -> StoreResult<AttachOutcome>;
    async fn get_attachment(&self, id: &str) -> StoreResult<Option<Attachment>>;
    /// Oldest first.
    async fn list_attachments(
        &self,
        ticket_id: &str,
        include_internal: bool,
    ) -> StoreResult<Vec<Attachment>>;
    /// Removes the record and says, in the same step, whether its bytes are still referred to.
    /// `None` when there was no such record.
    async fn delete_attachment(&self, id: &str) -> StoreResult<Option<Detached>>;
    /// Whether any record refers to these bytes.
    async fn blob_in_use(&self, sha256: &str) -> StoreResult<bool>;
    /// Every SHA-256 some record refers to, for the start-up sweep of stored files.
    async fn blobs_in_use(&self) -> StoreResult<Vec<String>>;
}
