//! The S3-compatible backend, through `object_store`.
//!
//! A PUT is atomic on S3 (an object is visible whole or not at all). `create` is a
//! conditional PUT with `If-None-Match: *` (`PutMode::Create`): the store answers 412
//! to every writer but the first, which is the compare-and-swap the index needs. This
//! needs `object_store`'s `S3ConditionalPut::ETagMatch`, which this backend always
//! enables; AWS S3 has had it since 2024 and moto (the test server) implements it.
//!
//! Waiting is bounded: `object_store`'s defaults (30 s per request, 10 retries within
//! 3 minutes) would keep a renderer's registry watcher, or a deploy, waiting minutes
//! on a store that accepts connections but does not answer. Here a request times out
//! after 10 s (3 s to connect) and no retry starts after 10 s ([`retry_config`]), so a
//! call gives up within about 20 s.

use async_trait::async_trait;
use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, PutMode, PutPayload, RetryConfig};

use super::{Created, Storage, StorageError};

/// Three retries (after 100 ms, 200 ms, 400 ms, ...), none started after 10 s.
pub fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(10),
    }
}

#[derive(Debug)]
pub struct S3Storage {
    store: AmazonS3,
    bucket: String,
    prefix: String,
}

impl S3Storage {
    /// `bucket` and `prefix` with the endpoint, region and credentials from the
    /// environment (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP` for a plain-HTTP endpoint, …).
    pub fn from_env(bucket: &str, prefix: &str) -> Result<Self, StorageError> {
        Self::from_builder(AmazonS3Builder::from_env(), bucket, prefix)
    }

    /// `bucket` and `prefix` with everything else from `builder`.
    pub fn from_builder(
        builder: AmazonS3Builder,
        bucket: &str,
        prefix: &str,
    ) -> Result<Self, StorageError> {
        let location = format!("s3://{bucket}/{prefix}");
        if bucket.is_empty() {
            return Err(StorageError::Location {
                location,
                reason: "no bucket: use s3://BUCKET/PREFIX".into(),
            });
        }
        let store = builder
            .with_bucket_name(bucket)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_retry(retry_config())
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "10s")
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                "3s",
            )
            .build()
            .map_err(|e| StorageError::Location {
                location,
                reason: e.to_string(),
            })?;
        Ok(Self {
            store,
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    }

    fn path(&self, key: &str) -> Result<Path, StorageError> {
        let full = if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        };
        Path::parse(&full).map_err(|e| self.error(key, e))
    }

    fn error(&self, key: &str, e: impl std::fmt::Display) -> StorageError {
        StorageError::ObjectStore {
            location: self.location(),
            key: key.to_string(),
            message: e.to_string(),
        }
    }
}

fn is_conflict(e: &object_store::Error) -> bool {
    let text = e.to_string();
    text.contains("ConditionalRequestConflict") || text.contains("409 Conflict")
}

#[async_trait]
impl Storage for S3Storage {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        let path = self.path(key)?;
        match self.store.get(&path).await {
            Ok(result) => result
                .bytes()
                .await
                .map(Some)
                .map_err(|e| self.error(key, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(key, e)),
        }
    }

    async fn create(&self, key: &str, bytes: Bytes) -> Result<Created, StorageError> {
        let path = self.path(key)?;
        match self
            .store
            .put_opts(&path, PutPayload::from_bytes(bytes), PutMode::Create.into())
            .await
        {
            Ok(_) => Ok(Created::New),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(Created::Existed),
            // AWS answers 409 when conditional writes to one key overlap and asks the
            // client to retry; object_store passes it on as a generic error.
            Err(e) if is_conflict(&e) => Ok(Created::Conflict),
            Err(e) => Err(self.error(key, e)),
        }
    }

    async fn overwrite(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        let path = self.path(key)?;
        self.store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.error(key, e))
    }

    fn location(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}
