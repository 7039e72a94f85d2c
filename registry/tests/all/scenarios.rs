//! Scenarios every backend must pass. `open` gives a fresh handle on one registry, as
//! another process would have.

use std::sync::Arc;

use bytes::Bytes;
use oberon_registry::model::Action;
use oberon_registry::storage::Storage;
use oberon_registry::{Channel, Registry, RegistryError, Target, VersionReq};

use crate::support::{upload, v};

pub type Open = Arc<dyn Fn() -> (Registry, Arc<dyn Storage>) + Send + Sync>;

pub async fn lifecycle(open: Open) {
    let (reg, _) = open();
    assert_eq!(reg.index().await.unwrap().generation, 0);
    reg.deploy(&upload("hello", "1.0.0"), Target::Stable, "alice")
        .await
        .unwrap();
    reg.deploy(
        &upload("hello", "1.1.0"),
        Target::Canary { percent: 10 },
        "bob",
    )
    .await
    .unwrap();
    let index = reg.index().await.unwrap();
    assert_eq!(index.generation, 2);
    // What a renderer polls: nothing newer than what it has, or the latest.
    assert!(reg.index_if_newer(2).await.unwrap().is_none());
    assert_eq!(reg.index_if_newer(1).await.unwrap().unwrap().generation, 2);
    assert_eq!(reg.index_if_newer(0).await.unwrap().unwrap().generation, 2);
    let canary = index.resolve("hello", Channel::Canary, None).unwrap();
    assert_eq!((canary.version, canary.percent), (&v("1.1.0"), Some(10)));
    let stable = index.resolve("hello", Channel::Stable, None).unwrap();
    assert_eq!(stable.version, &v("1.0.0"));
    assert_eq!(stable.entry.deployed_by, "alice");

    // A page's requirement, checked against the channel.
    let req = VersionReq::parse("^1.1").unwrap();
    let err = index
        .resolve("hello", Channel::Stable, Some(&req))
        .unwrap_err();
    assert!(matches!(err, RegistryError::RequirementNotMet { .. }));
    assert_eq!(
        err.to_string(),
        "component hello: channel stable is at 1.0.0, which does not satisfy the requirement ^1.1; deploy a matching version to stable or change the requirement"
    );
    assert!(index.resolve("hello", Channel::Canary, Some(&req)).is_ok());

    let moves = reg.promote("hello", "carol").await.unwrap();
    assert_eq!(moves[0].from, Some(v("1.0.0")));
    assert_eq!(moves[0].to, Some(v("1.1.0")));
    let err = reg.promote("hello", "carol").await.unwrap_err();
    assert!(err.to_string().contains("no canary to promote"), "{err}");

    reg.deploy(&upload("hello", "1.2.0"), Target::Stable, "alice")
        .await
        .unwrap();
    let back = reg
        .rollback("hello", Channel::Stable, None, "dave")
        .await
        .unwrap();
    assert_eq!((back.from, back.to), (Some(v("1.2.0")), Some(v("1.1.0"))));
    let back = reg
        .rollback("hello", Channel::Stable, None, "dave")
        .await
        .unwrap();
    assert_eq!(back.to, Some(v("1.0.0")));
    let err = reg
        .rollback("hello", Channel::Stable, None, "dave")
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::NoPreviousStable { .. }),
        "{err}"
    );
    // An explicit target is allowed, and must exist.
    reg.rollback("hello", Channel::Stable, Some(&v("1.2.0")), "dave")
        .await
        .unwrap();
    let err = reg
        .rollback("hello", Channel::Stable, Some(&v("9.0.0")), "dave")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "component hello has no version 9.0.0");

    // Canary deployed then rolled back: cleared, stable untouched.
    reg.deploy(
        &upload("hello", "2.0.0"),
        Target::Canary { percent: 5 },
        "erin",
    )
    .await
    .unwrap();
    reg.rollback("hello", Channel::Canary, None, "erin")
        .await
        .unwrap();

    let index = reg.index().await.unwrap();
    let entry = index.component("hello").unwrap();
    assert_eq!(entry.channels.stable, Some(v("1.2.0")));
    assert_eq!(entry.channels.canary, None);
    let summary: Vec<String> = entry
        .history
        .iter()
        .map(|m| {
            let show =
                |x: &Option<semver::Version>| x.as_ref().map_or("-".into(), |v| v.to_string());
            format!(
                "{} {} {} {}->{}",
                m.by,
                m.action,
                m.channel,
                show(&m.from),
                show(&m.to)
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "alice deploy stable -->1.0.0",
            "bob deploy canary -->1.1.0",
            "carol promote stable 1.0.0->1.1.0",
            "carol promote canary 1.1.0->-",
            "alice deploy stable 1.1.0->1.2.0",
            "dave rollback stable 1.2.0->1.1.0",
            "dave rollback stable 1.1.0->1.0.0",
            "dave rollback stable 1.0.0->1.2.0",
            "erin deploy canary -->2.0.0",
            "erin rollback canary 2.0.0->-",
        ]
    );
    assert!(entry.history.iter().all(|m| m.at_ms > 0));
    assert_eq!(entry.history[0].action, Action::Deploy);

    // Versions are immutable.
    let err = reg
        .deploy(&upload("hello", "1.1.0"), Target::Stable, "alice")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "component hello version 1.1.0 already exists: versions are immutable, deploy a new version"
    );

    // Files come back whole and checked.
    let artifact = reg.fetch("hello", &v("1.1.0")).await.unwrap();
    assert_eq!(artifact.wasm, upload("hello", "1.1.0").wasm);
    assert_eq!(
        artifact.assets["app.js"],
        Bytes::from_static(b"console.log(\"1.1.0\")")
    );
    let err = reg.fetch("nobody", &v("1.0.0")).await.unwrap_err();
    assert!(err.to_string().contains("no component \"nobody\""), "{err}");
}

/// Several writers, each with its own handle, deploy at once: every deploy is in the
/// index and its history, and the generations count them exactly.
pub async fn concurrent_deploys(open: Open, writers: usize) {
    let mut handles = Vec::new();
    for i in 0..writers {
        let open = open.clone();
        // Own thread and runtime per writer: as independent as separate processes.
        handles.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (reg, _) = open();
                let version = format!("1.{i}.0");
                reg.deploy(&upload("busy", &version), Target::Stable, &format!("w{i}"))
                    .await
                    .map(|_| version)
            })
        }));
    }
    let mut deployed: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().expect("writer thread").expect("deploy"))
        .collect();
    deployed.sort();
    let (reg, _) = open();
    let index = reg.index().await.unwrap();
    assert_eq!(index.generation, writers as u64);
    let entry = index.component("busy").unwrap();
    let mut in_index: Vec<String> = entry.versions.keys().map(|v| v.to_string()).collect();
    in_index.sort();
    assert_eq!(in_index, deployed);
    let mut in_history: Vec<String> = entry
        .history
        .iter()
        .map(|m| m.to.as_ref().unwrap().to_string())
        .collect();
    in_history.sort();
    assert_eq!(in_history, deployed);
    // Each move starts where the previous one ended: no update was lost.
    for pair in entry.history.windows(2) {
        assert_eq!(pair[1].from, pair[0].to);
    }

    // The same version from several writers at once: exactly one wins.
    let mut handles = Vec::new();
    for i in 0..writers {
        let open = open.clone();
        handles.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (reg, _) = open();
                let mut up = upload("busy", "9.0.0");
                up.wasm = Bytes::from(format!("\0asm writer {i}").into_bytes());
                reg.deploy(&up, Target::Stable, &format!("w{i}")).await
            })
        }));
    }
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("writer thread"))
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(matches!(r, RegistryError::DuplicateVersion { .. }), "{r}");
    }
}

/// A deploy that stores its files but dies before the index update changes nothing a
/// reader sees; the same deploy, run again, succeeds.
pub async fn killed_halfway(open: Open) {
    let (reg, _) = open();
    reg.deploy(&upload("half", "1.0.0"), Target::Stable, "a")
        .await
        .unwrap();
    let before = reg.index().await.unwrap();
    let up = upload("half", "1.1.0");
    let stored = reg.store_artifacts(&up).await.unwrap();
    drop(stored); // the process dies here, before commit_deploy
    let (reg, _) = open();
    assert_eq!(reg.index().await.unwrap(), before);
    reg.deploy(&up, Target::Stable, "a").await.unwrap();
    let index = reg.index().await.unwrap();
    assert_eq!(
        index
            .resolve("half", Channel::Stable, None)
            .unwrap()
            .version,
        &v("1.1.0")
    );
}

/// Damage in storage is reported on read, never served.
pub async fn corruption_detected(open: Open) {
    let (reg, storage) = open();
    reg.deploy(&upload("fragile", "1.0.0"), Target::Stable, "a")
        .await
        .unwrap();
    let index = reg.index().await.unwrap();
    let entry = index
        .resolve("fragile", Channel::Stable, None)
        .unwrap()
        .entry
        .clone();
    let key = format!("blobs/sha256/{}", entry.wasm.sha256);
    storage
        .overwrite(&key, Bytes::from_static(b"bit rot"))
        .await
        .unwrap();
    let err = reg.fetch("fragile", &v("1.0.0")).await.unwrap_err();
    assert!(matches!(err, RegistryError::HashMismatch { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "fragile 1.0.0: .wasm ({key}): content hash mismatch: expected sha256 {}",
            entry.wasm.sha256
        )),
        "{err}"
    );
    // A corrupt upload (not what the builder recorded) is refused before storing.
    let mut up = upload("fragile", "1.1.0");
    up.expected_wasm_sha256 = Some("00".repeat(32));
    let err = reg.deploy(&up, Target::Stable, "a").await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("upload of fragile 1.1.0: content hash mismatch: expected sha256 0000"),
        "{err}"
    );
    // A generation that is not an index is a clear error, not a panic.
    storage
        .create(
            &format!("index/{:020}.json", index.generation + 1),
            Bytes::from_static(b"{\"format\":1,\"generation\":"),
        )
        .await
        .unwrap();
    let err = reg.index().await.unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "corrupt registry index (index/{:020}.json): EOF while parsing",
            index.generation + 1
        )),
        "{err}"
    );
}
