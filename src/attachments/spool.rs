//! An upload on its way in: written to a private temporary file while it is hashed, counted
//! and its first bytes kept for content detection, so memory holds one chunk at a time however
//! large the upload. The limit is enforced as the bytes arrive, not after.

use super::AttachmentError;
use crate::domain::attachment::{SNIFF_BYTES, detect_content_type};
use axum::body::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncWriteExt, BufWriter};

/// A complete upload in its temporary file, which is removed when this is dropped.
pub struct Spooled {
    file: TempFile,
    pub sha256: String,
    pub size: u64,
    /// Detected from the bytes.
    pub content_type: String,
}

impl Spooled {
    pub fn path(&self) -> &Path {
        &self.file.0
    }
}

/// Removes its file when dropped: an upload cut off at any point leaves nothing behind.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.0.display(), error = %e, "could not remove a spooled upload");
        }
    }
}

/// The suffix of spooled files, so the sweep touches nothing else.
pub const SPOOL_SUFFIX: &str = ".upload";

/// Writes `body` into a new file in `dir`. More than `max_bytes` is `TooLarge`, reported as
/// soon as the first byte past the limit arrives.
pub async fn spool<S>(dir: &Path, mut body: S, max_bytes: u64) -> Result<Spooled, AttachmentError>
where
    S: Stream<Item = Result<Bytes, AttachmentError>> + Unpin,
{
    super::fs::create_private_dir(dir).map_err(AttachmentError::io)?;
    let path = dir.join(format!("{}{SPOOL_SUFFIX}", uuid::Uuid::new_v4().simple()));
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let file = options.open(&path).await.map_err(AttachmentError::io)?;
    let guard = TempFile(path);
    let mut out = BufWriter::with_capacity(super::blob::CHUNK_BYTES, file);
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    let mut size: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        size = size.saturating_add(chunk.len() as u64);
        if size > max_bytes {
            return Err(AttachmentError::TooLarge { limit: max_bytes });
        }
        if head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(AttachmentError::io)?;
    }
    out.flush().await.map_err(AttachmentError::io)?;
    Ok(Spooled {
        file: guard,
        sha256: hex::encode(hasher.finalize()),
        size,
        content_type: detect_content_type(&head),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(
        chunks: &[&'static [u8]],
    ) -> impl Stream<Item = Result<Bytes, AttachmentError>> + Unpin {
        futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok(Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn spooled_files_are_hashed_sized_typed_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let png: &'static [u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let s = spool(dir.path(), body(&[png, b"more bytes"]), 1024)
            .await
            .unwrap();
        assert_eq!(s.size, png.len() as u64 + 10);
        assert_eq!(s.content_type, "image/png");
        let mut all = png.to_vec();
        all.extend_from_slice(b"more bytes");
        assert_eq!(s.sha256, hex::encode(Sha256::digest(&all)));
        assert_eq!(std::fs::read(s.path()).unwrap(), all);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(s.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let path = s.path().to_owned();
        drop(s);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn one_byte_over_the_limit_fails_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let exact = spool(dir.path(), body(&[b"12345", b"678"]), 8).await;
        assert_eq!(exact.unwrap().size, 8);
        let over = spool(dir.path(), body(&[b"12345", b"6789"]), 8).await;
        assert!(matches!(over, Err(AttachmentError::TooLarge { limit: 8 })));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
