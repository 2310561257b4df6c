//! Where the bytes of attachments live: one key per distinct content, its SHA-256 in lowercase
//! hex. Records refer to keys; a key no record refers to is garbage.

use async_trait::async_trait;
use axum::body::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use std::path::Path;

/// The bytes of one stored file, read a piece at a time.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// How much of a file is read at once when streaming it in or out.
pub const CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The storage service could not be reached or refused for now.
    #[error("attachment storage unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// A stored file as a listing sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBlob {
    pub key: String,
    pub written_at: DateTime<Utc>,
}

#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores the file at `file` under `key`, unless something already is stored under it
    /// (the same bytes, by construction).
    async fn put(&self, key: &str, file: &Path) -> Result<(), BlobError>;
    /// The bytes under `key`, or `None` when there are none.
    async fn get(&self, key: &str) -> Result<Option<ByteStream>, BlobError>;
    async fn exists(&self, key: &str) -> Result<bool, BlobError>;
    /// Removes the bytes under `key`; removing what is not there is not an error.
    async fn delete(&self, key: &str) -> Result<(), BlobError>;
    /// Every stored key, for the sweep.
    async fn list(&self) -> Result<Vec<StoredBlob>, BlobError>;
    /// Leftovers of writes that never finished (partial uploads), older than `before`; removed.
    async fn remove_partial(&self, before: DateTime<Utc>) -> Result<usize, BlobError>;
    /// For the start-up log line.
    fn describe(&self) -> String;
}

/// Reads a file as a stream of chunks.
pub fn file_stream(file: tokio::fs::File) -> ByteStream {
    use tokio::io::AsyncReadExt;
    Box::pin(futures::stream::try_unfold(file, |mut file| async move {
        let mut buf = vec![0u8; CHUNK_BYTES];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), file)))
    }))
}
