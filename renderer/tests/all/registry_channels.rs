//! The renderer serving from a registry: deploy, rollback and canary move what it
//! serves without a restart or a failed request; pins refuse a channel; an
//! unreachable registry changes nothing served.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use oberon_registry::model::{Cacheability, VersionMetadata};
use oberon_registry::storage::{S3Storage, Storage};
use oberon_registry::{Channel, Registry, Resources, Target, Upload, Version};
use oberon_renderer::{Renderer, RendererOptions, StartError, server};
use object_store::aws::AmazonS3Builder;

use crate::support::{Running, TestSite};

const HELLO_PAGE: &str = "route = \"/\"\nlayout = \"test.html\"\nteam = \"t\"\n[[slots]]\nname = \"hello\"\ncomponent = \"hello\"\n";

/// `hello` built from crate `crate_name` (hello-v1 or hello-v2) as `version`.
pub fn hello(crate_name: &str, version: &str) -> Upload {
    let artifact = oberon_test_artifacts::artifact(crate_name);
    let wasm = std::fs::read(artifact.wasm()).expect("wasm");
    let js = std::fs::read(artifact.assets_dir().join("hello.js")).expect("hello.js");
    Upload {
        component: "hello".into(),
        version: Version::parse(version).expect("version"),
        wasm: Bytes::from(wasm),
        expected_wasm_sha256: None,
        assets: BTreeMap::from([("hello.js".to_string(), Bytes::from(js))]),
        metadata: VersionMetadata {
            name: "hello".into(),
            subscribes: vec![],
            publishes: vec![],
            assets: vec!["hello.js".into()],
            cacheability: Cacheability::Public,
        },
        wit: "0.2.0".into(),
        resources: Resources::default(),
    }
}

pub async fn start(site: &TestSite, registry: Registry) -> Result<Running, StartError> {
    let renderer = Renderer::start_from_registry(
        RendererOptions {
            site_dir: site.path().to_path_buf(),
            ..RendererOptions::default()
        },
        registry,
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(server::serve(
        listener,
        server::app(renderer.clone()),
        std::future::pending(),
    ));
    Ok(Running {
        renderer,
        addr,
        client: reqwest::Client::new(),
    })
}

pub fn slot_version(body: &str) -> Option<&'static str> {
    if body.contains("<p>hello v1</p>") {
        Some("v1")
    } else if body.contains("<p>hello v2</p>") {
        Some("v2")
    } else {
        None
    }
}

/// A bounded load generator: `workers` loops requesting `/` until stopped, counting
/// failures and recording when each version was last and first seen.
struct Load {
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    /// (when the response arrived, which version it was).
    seen: Arc<std::sync::Mutex<Vec<(Instant, &'static str)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(url: String, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let client = reqwest::Client::new();
        let tasks = (0..workers)
            .map(|_| {
                let (stop, requests, failures, seen, client, url) = (
                    stop.clone(),
                    requests.clone(),
                    failures.clone(),
                    seen.clone(),
                    client.clone(),
                    url.clone(),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        requests.fetch_add(1, Ordering::Relaxed);
                        let result = client.get(&url).send().await;
                        let version = match result {
                            Ok(r) if r.status() == 200 => {
                                r.text().await.ok().as_deref().and_then(slot_version)
                            }
                            _ => None,
                        };
                        match version {
                            Some(v) => seen.lock().expect("seen").push((Instant::now(), v)),
                            None => {
                                failures.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            requests,
            failures,
            seen,
            tasks,
        }
    }

    /// The first response of `version` after `since`, once no response after it was
    /// of another version: when the switch was complete.
    fn switched_at(&self, since: Instant, version: &str) -> Option<Instant> {
        let seen = self.seen.lock().expect("seen");
        let after: Vec<&(Instant, &str)> = seen.iter().filter(|(t, _)| *t >= since).collect();
        let last_other = after.iter().rposition(|(_, v)| *v != version);
        let first = match last_other {
            Some(i) => after.get(i + 1),
            None => after.first(),
        };
        first.map(|(t, _)| *t)
    }

    async fn wait_for(&self, since: Instant, version: &str, limit: Duration) -> Duration {
        loop {
            // Settled: this version for the last 200 ms of answers.
            if let Some(at) = self.switched_at(since, version)
                && at.elapsed() > Duration::from_millis(200)
            {
                return at - since;
            }
            assert!(
                since.elapsed() < limit,
                "{version} not served within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("load task");
        }
        (
            self.requests.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_and_rollback_switch_under_load_without_a_failed_request() {
    let site = TestSite::new(&[]);
    site.page("hello.toml", HELLO_PAGE);
    let store = tempfile::tempdir().expect("registry dir");
    let location = store.path().to_str().expect("utf-8").to_string();
    let registry = Registry::open(&location).expect("registry");
    registry
        .deploy(&hello("hello-v1", "1.0.0"), Target::Stable, "test")
        .await
        .expect("deploy v1");
    let running = start(&site, Registry::open(&location).expect("registry"))
        .await
        .expect("renderer starts from the registry");
    running.renderer.watch(Duration::from_millis(50));
    assert_eq!(running.get("/").await.slot("hello"), "<p>hello v1</p>");

    let load = Load::start(running.url("/"), 8);
    tokio::time::sleep(Duration::from_millis(500)).await;
    registry
        .deploy(&hello("hello-v2", "2.0.0"), Target::Stable, "test")
        .await
        .expect("deploy v2");
    let deployed = Instant::now();
    let deploy_switch = load.wait_for(deployed, "v2", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    registry
        .rollback("hello", Channel::Stable, None, "test")
        .await
        .expect("rollback");
    let rolled_back = Instant::now();
    let rollback_switch = load
        .wait_for(rolled_back, "v1", Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (requests, failures) = load.stop().await;
    println!(
        "registry hot swap under load: {requests} requests, {failures} failed; deploy switched in {deploy_switch:?}, rollback in {rollback_switch:?}"
    );
    assert_eq!(failures, 0, "every request during the swaps succeeds");
    assert!(
        requests > 100,
        "the load generator ran ({requests} requests)"
    );
    assert!(
        deploy_switch < Duration::from_secs(1),
        "deploy switched in {deploy_switch:?}"
    );
    assert!(
        rollback_switch < Duration::from_secs(1),
        "rollback switched in {rollback_switch:?}"
    );
    // v2's assets stay served after the rollback for pages rendered just before it.
    let status: serde_json::Value =
        serde_json::from_str(&running.get("/_oberon/status").await.body).expect("status is JSON");
    assert_eq!(status["registry"]["reachable"], true, "{status}");
    assert_eq!(status["registry"]["generation"], 3, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_gets_its_share_of_requests_and_is_never_shared_by_the_cdn() {
    let site = TestSite::new(&[]);
    // Cacheable, so that stable pages are shared by the CDN and canary pages are not.
    site.page(
        "hello.toml",
        &format!("{HELLO_PAGE}[cache]\nclass = \"public\"\nttl_s = 60\n"),
    );
    let store = tempfile::tempdir().expect("registry dir");
    let location = store.path().to_str().expect("utf-8").to_string();
    let registry = Registry::open(&location).expect("registry");
    registry
        .deploy(&hello("hello-v1", "1.0.0"), Target::Stable, "test")
        .await
        .expect("deploy v1");
    registry
        .deploy(
            &hello("hello-v2", "1.1.0"),
            Target::Canary { percent: 20 },
            "test",
        )
        .await
        .expect("deploy canary");
    let running = start(&site, Registry::open(&location).expect("registry"))
        .await
        .expect("renderer starts");

    let total = 2000;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let client = running.client.clone();
            let url = running.url("/");
            tokio::spawn(async move {
                let mut canary = 0u32;
                for _ in 0..total / 8 {
                    let response = client.get(&url).send().await.expect("request");
                    assert_eq!(response.status(), 200);
                    let headers = response.headers().clone();
                    let body = response.text().await.expect("body");
                    let channel = headers["oberon-channel"].to_str().expect("ascii");
                    match slot_version(&body) {
                        Some("v2") => {
                            canary += 1;
                            assert_eq!(channel, "canary");
                            assert_eq!(headers["cache-control"], "private, no-store");
                            assert!(headers.get("cdn-cache-control").is_none());
                        }
                        Some("v1") => {
                            assert_eq!(channel, "stable");
                            assert!(headers.get("cdn-cache-control").is_some());
                        }
                        _ => panic!("unexpected page: {body}"),
                    }
                }
                canary
            })
        })
        .collect();
    let mut canary = 0;
    for task in tasks {
        canary += task.await.expect("task");
    }
    let share = f64::from(canary) * 100.0 / f64::from(total);
    println!("canary at 20%: {canary} of {total} pages, measured share {share:.1}%");
    assert!((share - 20.0).abs() < 4.0, "canary share {share:.1}%");
    let status: serde_json::Value =
        serde_json::from_str(&running.get("/_oberon/status").await.body).expect("status is JSON");
    assert_eq!(status["canaries"]["hello"]["percent"], 20, "{status}");
    assert_eq!(
        status["pages_rendered"]["canary"],
        u64::from(canary),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_that_breaks_a_pin_is_refused_and_the_site_kept() {
    let site = TestSite::new(&[]);
    site.page("hello.toml", &format!("{HELLO_PAGE}version = \"^1\"\n"));
    let store = tempfile::tempdir().expect("registry dir");
    let location = store.path().to_str().expect("utf-8").to_string();
    let registry = Registry::open(&location).expect("registry");
    registry
        .deploy(&hello("hello-v1", "1.0.0"), Target::Stable, "test")
        .await
        .expect("deploy v1");
    let running = start(&site, Registry::open(&location).expect("registry"))
        .await
        .expect("renderer starts");
    registry
        .deploy(
            &hello("hello-v2", "2.0.0"),
            Target::Canary { percent: 50 },
            "test",
        )
        .await
        .expect("deploy canary");
    let err = running
        .renderer
        .reload_if_changed()
        .await
        .expect_err("a canary outside the pin is refused");
    let text = err.to_string();
    println!("{text}");
    assert!(text.contains("pages/hello.toml:7"), "{text}");
    assert!(
        text.contains("channel canary is at 2.0.0, which does not satisfy the requirement ^1"),
        "{text}"
    );
    for _ in 0..20 {
        let page = running.get("/").await;
        assert_eq!(page.slot("hello"), "<p>hello v1</p>");
        assert_eq!(page.header("oberon-channel"), "stable");
    }
    let status: serde_json::Value =
        serde_json::from_str(&running.get("/_oberon/status").await.body).expect("status is JSON");
    assert_eq!(status["registry"]["generation"], 1, "{status}");
    assert!(
        status["registry"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("generation 2 refused")),
        "{status}"
    );
    // Not retried at every look: the same generation is refused once.
    assert!(
        !running
            .renderer
            .reload_if_changed()
            .await
            .expect("no change")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registry_changes_nothing_served() {
    let moto = crate::support::Moto::start();
    moto.bucket("components").await;
    let open = || {
        let builder = AmazonS3Builder::new()
            .with_endpoint(&moto.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test");
        let storage: Arc<dyn Storage> =
            Arc::new(S3Storage::from_builder(builder, "components", "fleet").expect("s3 storage"));
        Registry::new(storage)
    };
    let site = TestSite::new(&[]);
    site.page("hello.toml", HELLO_PAGE);
    open()
        .deploy(&hello("hello-v1", "1.0.0"), Target::Stable, "test")
        .await
        .expect("deploy v1");
    let running = start(&site, open()).await.expect("renderer starts from S3");
    assert_eq!(running.get("/").await.slot("hello"), "<p>hello v1</p>");

    let endpoint = moto.endpoint.clone();
    drop(moto);
    assert!(
        !running
            .renderer
            .reload_if_changed()
            .await
            .expect("unreachable is not a refusal"),
        "nothing swapped"
    );
    assert_eq!(running.get("/").await.slot("hello"), "<p>hello v1</p>");
    assert_eq!(running.get("/_oberon/readyz").await.status, 200);
    let status: serde_json::Value =
        serde_json::from_str(&running.get("/_oberon/status").await.body).expect("status is JSON");
    assert_eq!(status["registry"]["reachable"], false, "{status}");
    assert!(
        status["registry"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot read the registry")),
        "{status}"
    );

    // A start with nothing reachable and nothing cached fails, saying why.
    let builder = AmazonS3Builder::new()
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test");
    let storage: Arc<dyn Storage> =
        Arc::new(S3Storage::from_builder(builder, "components", "fleet").expect("s3 storage"));
    let err = match start(&site, Registry::new(storage)).await {
        Ok(_) => panic!("started without a registry"),
        Err(e) => e.to_string(),
    };
    println!("{err}");
    assert!(err.contains("cannot read the registry"), "{err}");
    assert!(err.contains("nothing is cached to serve from"), "{err}");
}

/// `alloc-churn` as `version`, deployed asking for `memory_mib` per instance.
fn alloc_churn(version: &str, memory_mib: Option<u32>) -> Upload {
    let wasm = std::fs::read(oberon_test_artifacts::artifact("alloc-churn").wasm()).expect("wasm");
    Upload {
        component: "alloc-churn".into(),
        version: Version::parse(version).expect("version"),
        wasm: Bytes::from(wasm),
        expected_wasm_sha256: None,
        assets: BTreeMap::new(),
        metadata: VersionMetadata {
            name: "alloc-churn".into(),
            subscribes: vec![],
            publishes: vec![],
            assets: vec![],
            cacheability: Cacheability::Public,
        },
        wit: "0.2.0".into(),
        resources: Resources { memory_mib },
    }
}

/// A version deployed asking for more memory gets it, a slot's own `memory_mib`
/// overrides it, and a version asking for more than the site's ceiling is refused (the
/// site served is kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_gets_the_memory_its_deploy_asked_for_within_the_ceiling() {
    let site = TestSite::new(&[]);
    let hold = |slot: &str, extra: &str| {
        format!(
            "[[slots]]\nname = \"{slot}\"\ncomponent = \"alloc-churn\"\nprops = {{ mode = \"hold\", mib = 24 }}\nfallback = \"<p>{slot} fallback</p>\"\ndeadline_ms = 900\n{extra}"
        )
    };
    site.page(
        "hold.toml",
        &format!(
            "route = \"/\"\nlayout = \"test.html\"\nteam = \"t\"\n{}{}",
            hold("asked", ""),
            hold("pinned", "memory_mib = 16\n")
        ),
    );
    let store = tempfile::tempdir().expect("registry dir");
    let location = store.path().to_str().expect("utf-8").to_string();
    let registry = Registry::open(&location).expect("registry");
    registry
        .deploy(&alloc_churn("1.0.0", Some(48)), Target::Stable, "test")
        .await
        .expect("deploy asking for 48 MiB");
    let index = registry.index().await.expect("index");
    assert_eq!(
        index.components["alloc-churn"].versions[&Version::new(1, 0, 0)]
            .resources
            .memory_mib,
        Some(48)
    );
    let running = start(&site, Registry::open(&location).expect("registry"))
        .await
        .expect("renderer starts");
    let page = running.get("/").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.slot("asked").starts_with("<p>held 24 MiB"),
        "{}",
        page.body
    );
    assert_eq!(page.slot("pinned"), "<p>pinned fallback</p>");

    registry
        .deploy(&alloc_churn("2.0.0", Some(512)), Target::Stable, "test")
        .await
        .expect("the registry takes it: the ceiling is each site's");
    let err = running
        .renderer
        .reload_if_changed()
        .await
        .expect_err("a version above the ceiling is refused");
    let text = err.to_string();
    assert!(
        text.contains(
            "component \"alloc-churn\" 2.0.0 was deployed asking for 512 MiB per instance, above this site's ceiling of 256 MiB"
        ),
        "{text}"
    );
    assert!(text.contains("pages/hold.toml:"), "{text}");
    let page = running.get("/").await;
    assert!(
        page.slot("asked").starts_with("<p>held 24 MiB"),
        "{}",
        page.body
    );
}
