//! The filesystem backend.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use oberon_registry::storage::{Created, FsStorage, Storage, StorageError};
use oberon_registry::{Channel, Registry, Target};

use crate::scenarios::{self, Open};
use crate::support::{upload, v};

fn open_at(dir: &std::path::Path) -> Open {
    let dir = dir.to_path_buf();
    Arc::new(move || {
        let storage: Arc<dyn Storage> = Arc::new(FsStorage::open(&dir).expect("open registry"));
        (Registry::new(storage.clone()), storage)
    })
}

#[tokio::test]
async fn lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    scenarios::lifecycle(open_at(dir.path())).await;
}

#[tokio::test]
async fn concurrent_deploys() {
    let dir = tempfile::tempdir().unwrap();
    scenarios::concurrent_deploys(open_at(dir.path()), 8).await;
}

#[tokio::test]
async fn killed_halfway() {
    let dir = tempfile::tempdir().unwrap();
    scenarios::killed_halfway(open_at(dir.path())).await;
}

#[tokio::test]
async fn corruption_detected() {
    let dir = tempfile::tempdir().unwrap();
    scenarios::corruption_detected(open_at(dir.path())).await;
}

#[tokio::test]
async fn unsupported_format_and_bad_locations() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, storage) = open_at(dir.path())();
    storage
        .create(
            "index/00000000000000000001.json",
            bytes::Bytes::from_static(
                b"{\"format\":2,\"generation\":1,\"components\":{},\"new\":0}",
            ),
        )
        .await
        .unwrap();
    let err = reg.index().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "registry index format 2 is not supported (this build reads format 1): upgrade oberon"
    );
    let err = Registry::open("ftp://example/x").unwrap_err();
    assert!(
        err.to_string().contains("only local paths and s3://"),
        "{err}"
    );
}

/// The real filesystem backend, except that the index cannot be written: a deploy
/// that dies at the worst moment, after its files and before the index.
#[derive(Debug)]
struct IndexWriteFails(FsStorage);

#[async_trait]
impl Storage for IndexWriteFails {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        self.0.get(key).await
    }

    async fn create(&self, key: &str, bytes: Bytes) -> Result<Created, StorageError> {
        if key.starts_with("index/") {
            return Err(StorageError::Io {
                location: self.0.location(),
                key: key.into(),
                source: std::io::Error::other("disk full"),
            });
        }
        self.0.create(key, bytes).await
    }

    async fn overwrite(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        self.0.overwrite(key, bytes).await
    }

    fn location(&self) -> String {
        self.0.location()
    }
}

#[tokio::test]
async fn failed_index_write_leaves_the_previous_state() {
    let dir = tempfile::tempdir().unwrap();
    let healthy = Registry::new(Arc::new(FsStorage::open(dir.path()).unwrap()));
    healthy
        .deploy(&upload("hello", "1.0.0"), Target::Stable, "a")
        .await
        .unwrap();
    let before = healthy.index().await.unwrap();

    let failing = Registry::new(Arc::new(IndexWriteFails(
        FsStorage::open(dir.path()).unwrap(),
    )));
    let err = failing
        .deploy(&upload("hello", "2.0.0"), Target::Stable, "a")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("index/00000000000000000002.json: disk full"),
        "{err}"
    );
    let err = failing.promote("hello", "a").await.unwrap_err();
    assert!(err.to_string().contains("no canary"), "{err}");

    assert_eq!(healthy.index().await.unwrap(), before);
    let index = healthy.index().await.unwrap();
    assert_eq!(
        index
            .resolve("hello", Channel::Stable, None)
            .unwrap()
            .version,
        &v("1.0.0")
    );
    // No temporary file is left behind either.
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}

#[tokio::test]
async fn canary_share_changes_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, _) = open_at(dir.path())();
    reg.deploy(&upload("hello", "1.0.0"), Target::Stable, "a")
        .await
        .unwrap();
    let err = reg.set_canary_share("hello", 20, "a").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "component hello: channel canary points at no version"
    );
    reg.deploy(
        &upload("hello", "1.1.0"),
        Target::Canary { percent: 5 },
        "a",
    )
    .await
    .unwrap();
    let m = reg.set_canary_share("hello", 50, "b").await.unwrap();
    assert_eq!((m.to, m.percent), (Some(v("1.1.0")), Some(50)));
    let err = reg.set_canary_share("hello", 101, "b").await.unwrap_err();
    assert!(
        err.to_string().contains("canary share 101% is over 100%"),
        "{err}"
    );
    let index = reg.index().await.unwrap();
    let canary = index.resolve("hello", Channel::Canary, None).unwrap();
    assert_eq!((canary.version, canary.percent), (&v("1.1.0"), Some(50)));
    // Stable's lineage ignores canary moves: a rollback has nowhere to go.
    let err = reg
        .rollback("hello", Channel::Stable, None, "b")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no previous version"), "{err}");
}
