//! The S3 backend against a real moto server on loopback.

use std::sync::Arc;

use oberon_registry::Registry;
use oberon_registry::storage::{S3Storage, Storage};
use object_store::aws::AmazonS3Builder;

use crate::scenarios::{self, Open};
use crate::support::Moto;

/// A fresh prefix of one bucket per scenario, so the scenarios share one server.
async fn open_in(moto: &Moto, bucket: &str) -> Open {
    moto.bucket(bucket).await;
    let endpoint = moto.endpoint.clone();
    let bucket = bucket.to_string();
    Arc::new(move || {
        let builder = AmazonS3Builder::new()
            .with_endpoint(&endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test");
        let storage: Arc<dyn Storage> =
            Arc::new(S3Storage::from_builder(builder, &bucket, "team/registry").expect("s3"));
        (Registry::new(storage.clone()), storage)
    })
}

#[tokio::test]
async fn s3_backend_against_moto() {
    let moto = Moto::start();
    scenarios::lifecycle(open_in(&moto, "lifecycle").await).await;
    scenarios::killed_halfway(open_in(&moto, "halfway").await).await;
    scenarios::corruption_detected(open_in(&moto, "corruption").await).await;
    scenarios::concurrent_deploys(open_in(&moto, "concurrent").await, 8).await;
    let (reg, _) = (open_in(&moto, "location").await)();
    assert_eq!(reg.location(), "s3://location/team/registry");
}

#[tokio::test]
async fn a_store_that_never_answers_fails_within_seconds_not_minutes() {
    // A black hole: connections are accepted and never answered. With object_store's
    // defaults (30 s per request, retries for up to 3 minutes) this took minutes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let builder = AmazonS3Builder::new()
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test");
    let storage: Arc<dyn Storage> =
        Arc::new(S3Storage::from_builder(builder, "silent", "registry").expect("s3"));
    let reg = Registry::new(storage);
    let started = std::time::Instant::now();
    let err = reg.index().await.expect_err("nothing answers");
    let elapsed = started.elapsed();
    println!("S3 store that never answers: gave up after {elapsed:?}: {err}");
    assert!(
        elapsed < std::time::Duration::from_secs(25),
        "took {elapsed:?}: {err}"
    );
}
