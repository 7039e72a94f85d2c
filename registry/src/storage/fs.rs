//! The local filesystem backend (the default; what `oberon dev` uses).
//!
//! Every write goes to a unique temporary file under `<root>/tmp/`, is fsynced, and is
//! then published in one step: `create` hard-links it to its final name (`link(2)`
//! fails if the name exists, so exactly one of several concurrent writers, threads or
//! processes, wins), `overwrite` renames it over the old file. The directory is fsynced
//! after either, so a published file survives a crash. A reader therefore sees a key
//! whole or not at all; a writer killed halfway leaves at most a stray file in `tmp/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use super::{Created, Storage, StorageError};

#[derive(Debug, Clone)]
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    /// Use (and create if needed) the registry directory `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, StorageError> {
        let root = root.as_ref().to_path_buf();
        let storage = Self { root };
        std::fs::create_dir_all(storage.root.join("tmp"))
            .map_err(|e| storage.io_error("tmp/", e))?;
        Ok(storage)
    }

    fn io_error(&self, key: &str, source: std::io::Error) -> StorageError {
        StorageError::Io {
            location: self.root.display().to_string(),
            key: key.to_string(),
            source,
        }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        // Keys come from the registry, but refuse anything that could leave the root.
        let ok = !key.is_empty()
            && !key.starts_with('/')
            && key
                .split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
        if !ok {
            return Err(self.io_error(
                key,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid key"),
            ));
        }
        Ok(self.root.join(key))
    }

    /// Write `bytes` to a fresh temporary file, fsynced.
    fn write_temp(&self, bytes: &[u8]) -> std::io::Result<PathBuf> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "{}-{}-{nanos}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = self.root.join("tmp").join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        Ok(path)
    }

    fn create_blocking(&self, key: &str, bytes: &[u8]) -> Result<Created, StorageError> {
        let dest = self.path(key)?;
        let err = |e| self.io_error(key, e);
        if dest.exists() {
            return Ok(Created::Existed);
        }
        let parent = dest.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(parent).map_err(err)?;
        let tmp = self.write_temp(bytes).map_err(err)?;
        let linked = std::fs::hard_link(&tmp, &dest);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(parent).map_err(err)?;
                Ok(Created::New)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Created::Existed),
            Err(e) => Err(err(e)),
        }
    }

    fn overwrite_blocking(&self, key: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let dest = self.path(key)?;
        let err = |e| self.io_error(key, e);
        let parent = dest.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(parent).map_err(err)?;
        let tmp = self.write_temp(bytes).map_err(err)?;
        if let Err(e) = std::fs::rename(&tmp, &dest) {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(e));
        }
        sync_dir(parent).map_err(err)
    }

    /// A key that is not there is `None`, but only while the registry itself is: a
    /// root gone (unmounted, moved, deleted) is an error, or a reader looking for the
    /// next index generation would take it for "nothing new" and call the registry
    /// reachable. `tmp/`, which `open` creates, marks the root.
    fn get_blocking(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        match std::fs::read(self.path(key)?) {
            Ok(bytes) => Ok(Some(bytes.into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.root.join("tmp").is_dir() {
                    Ok(None)
                } else {
                    Err(self.io_error(
                        key,
                        std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "the registry directory is gone",
                        ),
                    ))
                }
            }
            Err(e) => Err(self.io_error(key, e)),
        }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Run blocking file I/O off the async runtime's worker threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(StorageError::ObjectStore {
            location: "local filesystem".into(),
            key: String::new(),
            message: format!("file I/O task failed: {e}"),
        })
    })
}

#[async_trait]
impl Storage for FsStorage {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || this.get_blocking(&key)).await
    }

    async fn create(&self, key: &str, bytes: Bytes) -> Result<Created, StorageError> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || this.create_blocking(&key, &bytes)).await
    }

    async fn overwrite(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || this.overwrite_blocking(&key, &bytes)).await
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_registry_directory_gone_is_an_error_not_a_missing_key() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("registry");
        let s = FsStorage::open(&root).unwrap();
        assert_eq!(
            s.get("index/00000000000000000001.json").await.unwrap(),
            None
        );
        std::fs::rename(&root, dir.path().join("elsewhere")).unwrap();
        let err = s
            .get("index/00000000000000000001.json")
            .await
            .expect_err("a vanished registry must not read as an empty one");
        assert!(
            err.to_string().contains("the registry directory is gone"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn create_is_once_and_keys_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        assert_eq!(
            s.create("a/b", Bytes::from_static(b"1")).await.unwrap(),
            Created::New
        );
        assert_eq!(
            s.create("a/b", Bytes::from_static(b"2")).await.unwrap(),
            Created::Existed
        );
        assert_eq!(s.get("a/b").await.unwrap().unwrap(), &b"1"[..]);
        assert!(s.get("a/c").await.unwrap().is_none());
        s.overwrite("a/b", Bytes::from_static(b"3")).await.unwrap();
        assert_eq!(s.get("a/b").await.unwrap().unwrap(), &b"3"[..]);
        for bad in ["../x", "/etc/passwd", "a//b", ""] {
            assert!(s.get(bad).await.is_err(), "{bad}");
        }
        // Nothing left behind in tmp/.
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
}
