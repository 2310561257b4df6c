//! Attachments in an S3-compatible bucket (`ATTACHMENTS_URL=s3://bucket/prefix`): objects
//! `prefix/<sha256>`. Large files go up in parts, so no upload is ever held whole in memory.

use super::blob::{BlobError, BlobStore, ByteStream, CHUNK_BYTES, StoredBlob};
use crate::config::S3Settings;
use crate::domain::attachment::is_sha256_hex;
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// S3 takes parts of at least 5 MiB; a file smaller than this goes up in one request.
const PART_BYTES: usize = 5 * 1024 * 1024;

pub struct S3Blobs {
    store: Arc<AmazonS3>,
    bucket: String,
    prefix: String,
}

impl S3Blobs {
    pub fn new(settings: &S3Settings) -> Result<Self, BlobError> {
        // The HTTP client underneath needs the process's TLS provider chosen first.
        crate::tls::install_crypto_provider();
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(120)),
            );
        if let Some(endpoint) = &settings.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let (Some(key), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
            builder = builder
                .with_access_key_id(key)
                .with_secret_access_key(secret.expose());
        }
        if let Some(token) = &settings.session_token {
            builder = builder.with_token(token.expose());
        }
        let store = builder
            .build()
            .map_err(|e| BlobError::Other(anyhow::Error::new(e).context("configuring S3")))?;
        Ok(Self {
            store: Arc::new(store),
            bucket: settings.bucket.clone(),
            prefix: settings.prefix.clone(),
        })
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }
}

fn s3(e: object_store::Error) -> BlobError {
    match &e {
        // Connection failures and throttling surface as generic errors after the client's
        // own retries: the service is unavailable for now.
        object_store::Error::Generic { .. } => BlobError::Unavailable(e.to_string()),
        _ => BlobError::Other(e.into()),
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn put(&self, key: &str, file: &Path) -> Result<(), BlobError> {
        if self.exists(key).await? {
            return Ok(());
        }
        let mut source = tokio::fs::File::open(file)
            .await
            .map_err(|e| BlobError::Other(e.into()))?;
        let store: Arc<dyn ObjectStore> = self.store.clone();
        let mut writer = BufWriter::with_capacity(store, self.path(key), PART_BYTES);
        let mut buf = vec![0u8; CHUNK_BYTES];
        let written: std::io::Result<()> = async {
            loop {
                let n = source.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                writer.write_all(&buf[..n]).await?;
            }
            writer.shutdown().await
        }
        .await;
        if let Err(e) = written {
            // Drops the parts uploaded so far; the object itself never appeared.
            let _ = writer.abort().await;
            return Err(BlobError::Unavailable(format!("uploading to S3: {e}")));
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<ByteStream>, BlobError> {
        match self.store.get(&self.path(key)).await {
            Ok(result) => Ok(Some(
                result.into_stream().map_err(std::io::Error::other).boxed(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(s3(e)),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        match self.store.head(&self.path(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(s3(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(s3(e)),
        }
    }

    async fn list(&self) -> Result<Vec<StoredBlob>, BlobError> {
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let objects: Vec<_> = self
            .store
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(s3)?;
        Ok(objects
            .into_iter()
            .filter_map(|meta| {
                let key = meta.location.filename()?.to_owned();
                // Only what this service wrote: `prefix/<sha256>`, nothing deeper.
                (is_sha256_hex(&key) && meta.location == self.path(&key)).then_some(StoredBlob {
                    key,
                    written_at: meta.last_modified,
                })
            })
            .collect())
    }

    async fn remove_partial(
        &self,
        _before: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize, BlobError> {
        // An object appears only when its upload completes. Parts of an abandoned multipart
        // upload are not objects; a bucket lifecycle rule
        // (AbortIncompleteMultipartUpload) is the tool for those.
        Ok(0)
    }

    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("S3 bucket {}", self.bucket)
        } else {
            format!("S3 bucket {} under {}/", self.bucket, self.prefix)
        }
    }
}
