//! The filesystem backend.

use std::sync::Arc;

use oberon_registry::Registry;
use oberon_registry::storage::{FsStorage, Storage};

use crate::scenarios::{self, Open};

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
