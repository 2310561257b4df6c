//! Attachments in GridFS, in the store's own MongoDB database: a deployment on MongoDB needs
//! nothing more. The bucket `attachment_blobs` keeps one GridFS file per content, named by its
//! SHA-256; each write gets a fresh ObjectId, so two writers of the same bytes never touch each
//! other's chunks (at worst two copies exist, and a delete removes every copy).

use super::blob::{BlobError, BlobStore, ByteStream, CHUNK_BYTES, StoredBlob};
use async_trait::async_trait;
use axum::body::Bytes;
use chrono::{DateTime, Utc};
use futures::{AsyncReadExt, AsyncWriteExt, TryStreamExt};
use mongodb::Database;
use mongodb::bson::{Bson, Document, doc, oid::ObjectId};
use mongodb::error::ErrorKind;
use mongodb::gridfs::GridFsBucket;
use mongodb::options::GridFsBucketOptions;
use std::collections::HashSet;
use std::path::Path;
use tokio::io::AsyncReadExt as _;

pub const BUCKET: &str = "attachment_blobs";

pub struct GridFsBlobs {
    db: Database,
    bucket: GridFsBucket,
}

impl GridFsBlobs {
    pub fn new(db: Database) -> Self {
        let options = GridFsBucketOptions::builder()
            .bucket_name(BUCKET.to_owned())
            .build();
        Self {
            bucket: db.gridfs_bucket(options),
            db,
        }
    }

    async fn ids(&self, key: &str) -> Result<Vec<Bson>, BlobError> {
        let files: Vec<_> = self
            .bucket
            .find(doc! { "filename": key })
            .await
            .map_err(driver)?
            .try_collect()
            .await
            .map_err(driver)?;
        Ok(files.into_iter().map(|f| f.id).collect())
    }
}

fn driver(e: mongodb::error::Error) -> BlobError {
    match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::Shutdown => BlobError::Unavailable(e.to_string()),
        _ => BlobError::Other(e.into()),
    }
}

fn io(e: std::io::Error) -> BlobError {
    BlobError::Other(e.into())
}

#[async_trait]
impl BlobStore for GridFsBlobs {
    async fn put(&self, key: &str, file: &Path) -> Result<(), BlobError> {
        if self.exists(key).await? {
            return Ok(());
        }
        let mut source = tokio::fs::File::open(file).await.map_err(io)?;
        let mut upload = self
            .bucket
            .open_upload_stream(key)
            .id(Bson::ObjectId(ObjectId::new()))
            .await
            .map_err(driver)?;
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            let n = source.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            if let Err(e) = upload.write_all(&buf[..n]).await {
                // Dropping the stream would abort it too, but in the background; this removes
                // the chunks written so far before the error is reported.
                let _ = upload.abort().await;
                return Err(BlobError::Other(e.into()));
            }
        }
        // The files document is written last, by `close`: until then readers see nothing.
        upload.close().await.map_err(|e| BlobError::Other(e.into()))
    }

    async fn get(&self, key: &str) -> Result<Option<ByteStream>, BlobError> {
        let Some(file) = self
            .bucket
            .find_one(doc! { "filename": key })
            .sort(doc! { "uploadDate": -1 })
            .await
            .map_err(driver)?
        else {
            return Ok(None);
        };
        let download = match self.bucket.open_download_stream(file.id).await {
            Ok(download) => download,
            // Deleted between the lookup and the open.
            Err(e) if matches!(e.kind.as_ref(), ErrorKind::GridFs(_)) => return Ok(None),
            Err(e) => return Err(driver(e)),
        };
        Ok(Some(Box::pin(futures::stream::try_unfold(
            download,
            |mut download| async move {
                let mut buf = vec![0u8; CHUNK_BYTES];
                let n = download.read(&mut buf).await?;
                if n == 0 {
                    return Ok(None);
                }
                buf.truncate(n);
                Ok(Some((Bytes::from(buf), download)))
            },
        ))))
    }

    async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        let found = self
            .bucket
            .find_one(doc! { "filename": key })
            .await
            .map_err(driver)?;
        Ok(found.is_some())
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        for id in self.ids(key).await? {
            match self.bucket.delete(id).await {
                Ok(()) => {}
                // Already gone: another delete got there first.
                Err(e) if matches!(e.kind.as_ref(), ErrorKind::GridFs(_)) => {}
                Err(e) => return Err(driver(e)),
            }
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<StoredBlob>, BlobError> {
        let files: Vec<_> = self
            .bucket
            .find(doc! {})
            .await
            .map_err(driver)?
            .try_collect()
            .await
            .map_err(driver)?;
        Ok(files
            .into_iter()
            .filter_map(|f| {
                Some(StoredBlob {
                    key: f.filename?,
                    written_at: DateTime::from_timestamp_millis(f.upload_date.timestamp_millis())
                        .unwrap_or_else(Utc::now),
                })
            })
            .collect())
    }

    /// Chunks whose files document never came: an upload that died before `close`. Their
    /// ObjectId says when the upload began.
    async fn remove_partial(&self, before: DateTime<Utc>) -> Result<usize, BlobError> {
        let files = self.db.collection::<Document>(&format!("{BUCKET}.files"));
        let chunks = self.db.collection::<Document>(&format!("{BUCKET}.chunks"));
        let complete: HashSet<ObjectId> = files
            .distinct("_id", doc! {})
            .await
            .map_err(driver)?
            .into_iter()
            .filter_map(|id| id.as_object_id())
            .collect();
        let mut removed = 0;
        for id in chunks.distinct("files_id", doc! {}).await.map_err(driver)? {
            // Every write here gets an ObjectId; anything else is not this service's.
            let Some(oid) = id.as_object_id() else {
                continue;
            };
            let started = DateTime::<Utc>::from(oid.timestamp().to_system_time());
            if complete.contains(&oid) || started >= before {
                continue;
            }
            chunks
                .delete_many(doc! { "files_id": id })
                .await
                .map_err(driver)?;
            removed += 1;
        }
        Ok(removed)
    }

    fn describe(&self) -> String {
        format!("GridFS bucket {BUCKET} in database {}", self.db.name())
    }
}
