//! Where the registry keeps its files: a small key/value interface that every backend
//! can implement atomically.
//!
//! Keys are relative, `/`-separated paths made by the registry itself (`blobs/…`,
//! `index/…`). Only two kinds of write exist, and both are all-or-nothing for readers:
//! - [`Storage::create`]: write a key only if it does not exist yet. Content-addressed
//!   blobs and index generations are written this way; the index's compare-and-swap
//!   is "create generation n+1", which exactly one concurrent writer wins.
//! - [`Storage::overwrite`]: replace a key's content; used only for the `index/HEAD`
//!   hint, which readers never trust beyond "generation n exists".

use async_trait::async_trait;
use bytes::Bytes;

pub use crate::error::StorageError;

mod fs;
mod s3;

pub use fs::FsStorage;
pub use s3::S3Storage;

/// The outcome of [`Storage::create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// This call wrote the key.
    New,
    /// The key existed already; nothing was written.
    Existed,
    /// Another conditional write to the same key was in flight (S3's 409
    /// `ConditionalRequestConflict`): nothing is known about the key; try again.
    Conflict,
}

#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// The whole content of `key`, or `None` if there is no such key.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError>;
    /// Write `key` if it does not exist, atomically: a reader sees nothing or all of it.
    async fn create(&self, key: &str, bytes: Bytes) -> Result<Created, StorageError>;
    /// Replace `key`'s content atomically.
    async fn overwrite(&self, key: &str, bytes: Bytes) -> Result<(), StorageError>;
    /// Where this storage is, for messages (`/srv/registry`, `s3://bucket/prefix`).
    fn location(&self) -> String;
}

/// Open the storage a `--registry` argument names: `s3://bucket[/prefix]` (endpoint,
/// region and credentials from the usual `AWS_*` environment variables), or a local
/// directory (created if missing).
pub fn open(location: &str) -> Result<std::sync::Arc<dyn Storage>, StorageError> {
    if let Some(rest) = location.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        Ok(std::sync::Arc::new(S3Storage::from_env(bucket, prefix)?))
    } else if location.contains("://") {
        Err(StorageError::Location {
            location: location.to_string(),
            reason: "only local paths and s3://bucket/prefix are supported".into(),
        })
    } else {
        Ok(std::sync::Arc::new(FsStorage::open(location)?))
    }
}
