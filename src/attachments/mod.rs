//! Files on tickets: the bytes where the data lives (files beside SQLite, GridFS beside MongoDB,
//! or an S3 bucket), keyed by their SHA-256, and the records in the store.
//!
//! The two are kept consistent by ordering and by a sweep:
//! - an upload is spooled to a private temporary file first; its bytes are stored under their
//!   hash, and only then is the record written. A failure on the way removes the bytes again
//!   unless another record uses them, so a failed upload leaves no file and no record;
//! - a delete removes the record and, in the same store step, learns whether other records
//!   use the same bytes; if none does, the bytes go too;
//! - a crash between the two steps leaves bytes that no record refers to. The sweep at start
//!   removes those, plus spooled uploads of processes that are gone.
//!
//! Writes and removals of one content take turns on a lock per hash, so an upload of some bytes
//! cannot store them just as a delete of the last record using them removes them. The lock is
//! per process: instances sharing GridFS or a bucket could still interleave an upload of some
//! bytes with the removal of their last record (both within milliseconds, same content); the
//! record would then point at nothing, which the sweep reports.

pub mod blob;
pub mod fs;
pub mod gridfs;
pub mod s3;
pub mod spool;

use crate::config::Config;
use crate::domain::attachment::{MAX_PER_TICKET, is_sha256_hex, sanitize_filename};
use crate::domain::new_id;
use crate::store::{AttachOutcome, Attachment, NewAttachment, Store, StoreError};
use blob::{BlobError, BlobStore, ByteStream};
use chrono::{DateTime, Utc};
use futures::Stream;
use spool::Spooled;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Bytes in shared storage (GridFS, S3) younger than this are left by the sweep: another
/// instance may be between storing them and writing their record.
pub const SHARED_SWEEP_GRACE: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the ticket already has the most attachments allowed ({MAX_PER_TICKET})")]
    TicketFull,
    /// The multipart body could not be read.
    #[error("{0}")]
    BadBody(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
}

impl AttachmentError {
    pub fn io(e: std::io::Error) -> Self {
        AttachmentError::Blob(BlobError::Other(e.into()))
    }
}

/// Who uploads what, as the handler parsed it.
pub struct Upload {
    pub ticket_id: String,
    pub uploaded_by: String,
    /// As the client sent it; sanitised here.
    pub filename: String,
    pub internal: bool,
}

/// What a sweep found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Stored bytes no record referred to, removed.
    pub orphans_removed: usize,
    /// Pieces of writes that never finished, removed.
    pub partials_removed: usize,
    /// Spooled uploads of earlier processes, removed.
    pub spooled_removed: usize,
    /// Records whose bytes are missing (never expected; reported, not changed).
    pub records_missing_bytes: usize,
}

#[derive(Clone)]
pub struct Attachments(Arc<Inner>);

/// The storage the configuration selects: the S3 bucket of `ATTACHMENTS_URL` when set, else
/// GridFS on MongoDB, else files in `DATA_DIR/attachments/`.
pub fn from_config(
    config: &Config,
    store: Arc<dyn Store>,
    mongo: Option<mongodb::Database>,
) -> Result<Attachments, BlobError> {
    let root = config.data_dir.join("attachments");
    let spool_dir = root.join(".incoming");
    let (blobs, grace): (Arc<dyn BlobStore>, Duration) = match (&config.attachments_s3, mongo) {
        (Some(settings), _) => (Arc::new(s3::S3Blobs::new(settings)?), SHARED_SWEEP_GRACE),
        (None, Some(db)) => (Arc::new(gridfs::GridFsBlobs::new(db)), SHARED_SWEEP_GRACE),
        // One process owns DATA_DIR, and its own writes take the per-hash lock the sweep takes.
        (None, None) => (Arc::new(fs::FsBlobs::new(root)), Duration::ZERO),
    };
    Ok(Attachments::new(
        blobs,
        store,
        spool_dir,
        config.attachment_max_bytes,
        grace,
    ))
}

struct Inner {
    blobs: Arc<dyn BlobStore>,
    store: Arc<dyn Store>,
    spool_dir: PathBuf,
    max_bytes: u64,
    sweep_grace: Duration,
    /// Spooled files older than this belong to processes that are gone.
    started_at: DateTime<Utc>,
    locks: KeyLocks,
}

/// One lock per hash in use: uploads of different files never wait for each other.
#[derive(Default)]
struct KeyLocks(std::sync::Mutex<HashMap<String, Weak<Mutex<()>>>>);

impl KeyLocks {
    async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
            held.retain(|_, lock| lock.strong_count() > 0);
            match held.get(key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(Mutex::new(()));
                    held.insert(key.to_owned(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

impl Attachments {
    /// `spool_dir` holds uploads on their way in; `sweep_grace` is how old unreferenced bytes
    /// must be before the sweep removes them (zero when this process is their only writer).
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        store: Arc<dyn Store>,
        spool_dir: PathBuf,
        max_bytes: u64,
        sweep_grace: Duration,
    ) -> Self {
        Self(Arc::new(Inner {
            blobs,
            store,
            spool_dir,
            max_bytes,
            sweep_grace,
            started_at: Utc::now(),
            locks: KeyLocks::default(),
        }))
    }

    pub fn max_bytes(&self) -> u64 {
        self.0.max_bytes
    }

    pub fn describe(&self) -> String {
        self.0.blobs.describe()
    }

    async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        self.0.locks.lock(key).await
    }

    /// Receives an upload into a temporary file (see [`spool::spool`]).
    pub async fn spool<S>(&self, body: S) -> Result<Spooled, AttachmentError>
    where
        S: Stream<Item = Result<axum::body::Bytes, AttachmentError>> + Unpin,
    {
        spool::spool(&self.0.spool_dir, body, self.0.max_bytes).await
    }

    /// Stores a spooled upload and records it. Runs to the end even if the request that asked
    /// for it goes away, so it never stops between the bytes and the record.
    pub async fn attach(
        &self,
        spooled: Spooled,
        upload: Upload,
    ) -> Result<Attachment, AttachmentError> {
        let this = self.clone();
        tokio::spawn(async move { this.attach_now(spooled, upload).await })
            .await
            .map_err(|e| AttachmentError::Store(StoreError::Other(e.into())))?
    }

    async fn attach_now(
        &self,
        spooled: Spooled,
        upload: Upload,
    ) -> Result<Attachment, AttachmentError> {
        let key = spooled.sha256.clone();
        let _turn = self.lock(&key).await;
        self.0.blobs.put(&key, spooled.path()).await?;
        let record = NewAttachment {
            id: new_id(),
            ticket_id: upload.ticket_id,
            filename: sanitize_filename(&upload.filename),
            content_type: spooled.content_type.clone(),
            size: spooled.size,
            sha256: key.clone(),
            internal: upload.internal,
            uploaded_by: upload.uploaded_by,
        };
        let outcome = self.0.store.add_attachment(record, MAX_PER_TICKET).await;
        match outcome {
            Ok(AttachOutcome::Added(attachment)) => Ok(attachment),
            Ok(AttachOutcome::TicketFull) => {
                self.release_unused(&key).await;
                Err(AttachmentError::TicketFull)
            }
            Err(e) => {
                self.release_unused(&key).await;
                Err(e.into())
            }
        }
    }

    /// Removes the bytes under `key` unless a record uses them. Called with the key's lock
    /// held. A failure here leaves an orphan for the sweep, so it is logged, not returned.
    async fn release_unused(&self, key: &str) {
        let outcome = match self.0.store.blob_in_use(key).await {
            Ok(true) => return,
            Ok(false) => self
                .0
                .blobs
                .delete(key)
                .await
                .map_err(AttachmentError::from),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = outcome {
            tracing::warn!(sha256 = key, error = %e, "unused attachment bytes left for the sweep at next start");
        }
    }

    /// The bytes of a recorded attachment; `None` if they are missing (logged: it means the
    /// storage was changed behind the service's back).
    pub async fn content(
        &self,
        attachment: &Attachment,
    ) -> Result<Option<ByteStream>, AttachmentError> {
        let found = self.0.blobs.get(&attachment.sha256).await?;
        if found.is_none() {
            tracing::error!(attachment_id = %attachment.id, sha256 = %attachment.sha256, "attachment bytes are missing from storage");
        }
        Ok(found)
    }

    /// Removes the record and, if no other record uses them, its bytes. `None` if there was
    /// no such record.
    pub async fn detach(&self, id: &str) -> Result<Option<Attachment>, AttachmentError> {
        let this = self.clone();
        let id = id.to_owned();
        tokio::spawn(async move { this.detach_now(&id).await })
            .await
            .map_err(|e| AttachmentError::Store(StoreError::Other(e.into())))?
    }

    async fn detach_now(&self, id: &str) -> Result<Option<Attachment>, AttachmentError> {
        let Some(found) = self.0.store.get_attachment(id).await? else {
            return Ok(None);
        };
        let _turn = self.lock(&found.sha256).await;
        let Some(detached) = self.0.store.delete_attachment(id).await? else {
            return Ok(None);
        };
        if !detached.blob_still_used
            && let Err(e) = self.0.blobs.delete(&detached.attachment.sha256).await
        {
            // The record is gone, which is what the caller asked; the bytes wait for the sweep.
            tracing::warn!(sha256 = %detached.attachment.sha256, error = %e, "attachment bytes left for the sweep at next start");
        }
        Ok(Some(detached.attachment))
    }

    /// Repairs what a crash can leave: bytes no record refers to (older than the grace),
    /// unfinished writes, and spooled uploads of earlier processes.
    pub async fn sweep(&self) -> Result<SweepReport, AttachmentError> {
        let cutoff = Utc::now()
            - chrono::Duration::from_std(self.0.sweep_grace).unwrap_or(chrono::Duration::zero());
        let mut report = SweepReport {
            spooled_removed: self.sweep_spool().await,
            partials_removed: self.0.blobs.remove_partial(cutoff).await?,
            ..SweepReport::default()
        };
        let used: HashSet<String> = self.0.store.blobs_in_use().await?.into_iter().collect();
        let stored = self.0.blobs.list().await?;
        let stored_keys: HashSet<&str> = stored.iter().map(|b| b.key.as_str()).collect();
        report.records_missing_bytes = used
            .iter()
            .filter(|k| !stored_keys.contains(k.as_str()))
            .count();
        for blob in &stored {
            if used.contains(&blob.key) || blob.written_at > cutoff || !is_sha256_hex(&blob.key) {
                continue;
            }
            let _turn = self.lock(&blob.key).await;
            // Looked up again under the lock: an upload may have recorded it meanwhile.
            if !self.0.store.blob_in_use(&blob.key).await? {
                self.0.blobs.delete(&blob.key).await?;
                report.orphans_removed += 1;
            }
        }
        Ok(report)
    }

    async fn sweep_spool(&self) -> usize {
        let dir = self.0.spool_dir.clone();
        let started = std::time::SystemTime::from(self.0.started_at);
        tokio::task::spawn_blocking(move || {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                return 0;
            };
            entries
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .ends_with(spool::SPOOL_SUFFIX)
                })
                .filter(|e| {
                    e.metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t < started)
                })
                .filter(|e| std::fs::remove_file(e.path()).is_ok())
                .count()
        })
        .await
        .unwrap_or(0)
    }

    /// Runs the sweep in the background and logs what it did.
    pub fn spawn_sweep(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            match this.sweep().await {
                Ok(report) if report == SweepReport::default() => {
                    tracing::debug!("attachment sweep: nothing to repair")
                }
                Ok(report) => {
                    if report.records_missing_bytes > 0 {
                        tracing::error!(
                            records = report.records_missing_bytes,
                            "attachment records whose bytes are missing from storage"
                        );
                    }
                    tracing::info!(
                        orphans = report.orphans_removed,
                        partial = report.partials_removed,
                        spooled = report.spooled_removed,
                        "attachment sweep repaired leftovers"
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "attachment sweep failed; it runs again at next start")
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::KeyLocks;
    use std::sync::Arc;

    #[tokio::test]
    async fn one_key_waits_for_itself_and_no_other() {
        let locks = Arc::new(KeyLocks::default());
        let held = locks.lock("a").await;
        // Another key is free at once.
        let other = locks.lock("b").await;
        drop(other);
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _turn = locks.lock("a").await;
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "the same key waits");
        drop(held);
        waiter.await.unwrap();
        // Released locks are forgotten.
        drop(locks.lock("c").await);
        assert!(
            locks
                .0
                .lock()
                .unwrap()
                .values()
                .all(|l| l.strong_count() == 0)
        );
    }
}
