//! Attachments as files under `DATA_DIR/attachments/`: `ab/abcdef…` for the content whose
//! SHA-256 starts with `ab`. Files are 0600 and folders 0700: only the service reads them.

use super::blob::{BlobError, BlobStore, ByteStream, StoredBlob, file_stream};
use crate::domain::attachment::is_sha256_hex;
use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

pub struct FsBlobs {
    root: PathBuf,
}

impl FsBlobs {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// `key` is checked by the caller to be a SHA-256 in hex, so it cannot leave `root`.
    fn path(&self, key: &str) -> PathBuf {
        self.root.join(&key[..2]).join(key)
    }
}

fn other(e: std::io::Error, what: String) -> BlobError {
    BlobError::Other(anyhow::Error::new(e).context(what))
}

pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[async_trait]
impl BlobStore for FsBlobs {
    async fn put(&self, key: &str, file: &Path) -> Result<(), BlobError> {
        let target = self.path(key);
        let file = file.to_owned();
        tokio::task::spawn_blocking(move || -> Result<(), BlobError> {
            let dir = target.parent().context("BUG: blob path has a folder")?;
            create_private_dir(dir).map_err(|e| other(e, format!("creating {}", dir.display())))?;
            // Durable before it is visible: a crash never leaves a short file under a hash.
            std::fs::File::open(&file)
                .and_then(|f| f.sync_all())
                .map_err(|e| other(e, format!("syncing {}", file.display())))?;
            // A hard link appears whole or not at all, and fails if the name exists: the same
            // bytes arriving twice at once are stored once.
            match std::fs::hard_link(&file, &target) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
                Err(e) => return Err(other(e, format!("storing {}", target.display()))),
            }
            if let Ok(d) = std::fs::File::open(dir) {
                // Makes the new name durable; not every platform can sync a folder.
                let _ = d.sync_all();
            }
            Ok(())
        })
        .await
        .map_err(|e| BlobError::Other(e.into()))?
    }

    async fn get(&self, key: &str) -> Result<Option<ByteStream>, BlobError> {
        let path = self.path(key);
        match tokio::fs::File::open(&path).await {
            Ok(file) => Ok(Some(file_stream(file))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(other(e, format!("opening {}", path.display()))),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        let path = self.path(key);
        tokio::fs::try_exists(&path)
            .await
            .map_err(|e| other(e, format!("checking {}", path.display())))
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = self.path(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(other(e, format!("removing {}", path.display()))),
        }
    }

    async fn list(&self) -> Result<Vec<StoredBlob>, BlobError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<StoredBlob>, BlobError> {
            let mut out = Vec::new();
            let shards = match std::fs::read_dir(&root) {
                Ok(shards) => shards,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(other(e, format!("listing {}", root.display()))),
            };
            for shard in shards.flatten() {
                let name = shard.file_name().to_string_lossy().into_owned();
                if name.len() != 2 || !shard.path().is_dir() {
                    continue;
                }
                let entries = std::fs::read_dir(shard.path())
                    .map_err(|e| other(e, format!("listing {}", shard.path().display())))?;
                for entry in entries.flatten() {
                    let key = entry.file_name().to_string_lossy().into_owned();
                    if !is_sha256_hex(&key) || !key.starts_with(&name) {
                        continue;
                    }
                    let written_at = entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .map(DateTime::<Utc>::from)
                        .unwrap_or_else(|_| Utc::now());
                    out.push(StoredBlob { key, written_at });
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| BlobError::Other(e.into()))?
    }

    async fn remove_partial(&self, _before: DateTime<Utc>) -> Result<usize, BlobError> {
        // A file appears under its name whole (see `put`): nothing here is ever partial. Spooled
        // uploads that never finished are the spool's to clear.
        Ok(0)
    }

    fn describe(&self) -> String {
        format!("files under {}", self.root.display())
    }
}
