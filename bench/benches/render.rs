//! The render hot path, on one core (a current-thread runtime):
//!
//! - `instance_render/<component>`: a fresh instance of a compiled component plus one
//!   render, the unit of work the renderer repeats for every slot of every request.
//!   Target: under 20 µs.
//! - `instance_render/<component>/wasip2`: the same component built for `wasm32-wasip2`
//!   (std's WASI imports, std's allocator) instead of `wasm32-unknown-unknown` with the
//!   SDK's allocator, side by side (ARCHITECTURE.md, "Why guests are built for
//!   wasm32-unknown-unknown").
//! - `demo_page/event`: the whole demo event page in process — eight components in
//!   Rust, Python and JavaScript over the bus, layout, head and assets — with its data
//!   source's value given (as a cache hit would give it), with the render cache off:
//!   every component runs. Until the Python and JavaScript components joined the page
//!   (stop 35; they take ~2.7 ms of it, see `languages`), its six Rust components had a
//!   target of under 150 µs.
//! - `demo_page/event_render_cache_warm`: the same page with the render cache on and
//!   warm (the demo's `site.toml`): every slot's outcome reused, no component runs.
//!
//! - `data_path/fresh_hit`: a data source answered from the data client's cache.
//! - `data_path/page_bff_cached` and `page_bff_hanging`: the demo page fetched through
//!   the data client with its BFF up (cache hit) and hanging (bounded by the source's
//!   300 ms deadline, not the BFF's timeout).
//!
//! `cargo bench -p oberon-bench` (add `-- --quick` for a shorter run).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use oberon_renderer::bus::BusSnapshot;
use oberon_renderer::component::RequestContext;
use oberon_renderer::data_client::{DataClient, DataClientOptions, Served};
use oberon_renderer::engine::{ComponentEngine, EngineLimits};
use oberon_renderer::{Renderer, RendererOptions};

/// The same allocator as the `oberon-renderer` and `oberon` binaries.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENT: &str = include_str!("../../demo/fixtures/event-42.json");

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn instance_render(c: &mut Criterion) {
    let rt = runtime();
    let engine = ComponentEngine::new(EngineLimits::default()).expect("engine");
    let mut event = BusSnapshot::default();
    let compact: serde_json::Value = serde_json::from_str(EVENT).expect("fixture");
    event.insert(Arc::from("event"), Arc::from(compact.to_string()));
    let bus = Arc::new(event);
    let ctx = RequestContext {
        path: "/events/42".into(),
        params: vec![("id".into(), "42".into())],
        query: vec![],
        locale: "en-GB".into(),
        user: None,
        request_id: Arc::from("bench"),
    };
    let mut group = c.benchmark_group("instance_render");
    for name in [
        "site-header",
        "site-footer",
        "event-details",
        "ticket-picker",
        "cart-summary",
        "recommendations",
    ] {
        let wasm = std::fs::read(oberon_test_artifacts::artifact(name).wasm()).expect("wasm");
        let component = rt.block_on(engine.load(&wasm)).expect("load");
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let deadline = Instant::now() + Duration::from_millis(100);
                let result = engine
                    .render(&component, &ctx, "{}", &bus, engine.budget(deadline))
                    .await;
                assert!(result.outcome.is_ok());
                result
            })
        });
    }
    for name in ["site-footer", "ticket-picker"] {
        let wasm = std::fs::read(oberon_test_artifacts::wasip2_build(name)).expect("wasm");
        let component = rt.block_on(engine.load(&wasm)).expect("load");
        group.bench_function(format!("{name}/wasip2"), |b| {
            b.to_async(&rt).iter(|| async {
                let deadline = Instant::now() + Duration::from_millis(100);
                let result = engine
                    .render(&component, &ctx, "{}", &bus, engine.budget(deadline))
                    .await;
                assert!(result.outcome.is_ok());
                result
            })
        });
    }
    group.finish();
}

fn demo_page(c: &mut Criterion) {
    let rt = runtime();
    let components = tempfile::tempdir().expect("tempdir");
    install_examples(components.path());
    let cache_off = demo_site_without_render_cache();
    let headers = http::HeaderMap::new();
    let compact = serde_json::from_str::<serde_json::Value>(EVENT)
        .expect("fixture")
        .to_string();
    let data = [("event", compact.as_str())];
    let mut group = c.benchmark_group("demo_page");
    for (name, site_dir, reused) in [
        ("event", cache_off.path().to_path_buf(), "reused;desc=0"),
        ("event_render_cache_warm", demo_dir(), "reused;desc=8"),
    ] {
        let renderer = rt
            .block_on(Renderer::start(RendererOptions {
                site_dir,
                components_dir: Some(components.path().to_path_buf()),
                bffs: BTreeMap::new(),
                data_client: None,
                identity: None,
                admin_token: None,
                code_cache: Some(code_cache()),
            }))
            .expect("demo site starts");
        let render = || renderer.render_with_data("/events/42", None, &headers, &data);
        // Warms the render cache when it is on; checks what is measured.
        rt.block_on(render());
        let page = rt.block_on(render());
        let timing = page.headers["server-timing"].to_str().expect("ascii");
        assert!(timing.split(", ").any(|m| m == reused), "{name}: {timing}");
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let page = render().await;
                assert_eq!(page.status, 200);
                page
            })
        });
    }
    group.finish();
}

fn demo_dir() -> std::path::PathBuf {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../demo").into()
}

/// The demo site with `[render_cache] max_mib = 0`: every component runs for every
/// page, as the figures before the render cache measured.
fn demo_site_without_render_cache() -> tempfile::TempDir {
    let site = tempfile::tempdir().expect("tempdir");
    let demo = demo_dir();
    let demo_toml = std::fs::read_to_string(demo.join("site.toml")).expect("site.toml");
    // The demo's own `[render_cache] max_mib`, set to 0.
    let mut section = "";
    let toml: Vec<&str> = demo_toml
        .lines()
        .map(|line| {
            if line.starts_with('[') {
                section = line.trim();
            }
            if section == "[render_cache]" && line.trim_start().starts_with("max_mib") {
                "max_mib = 0"
            } else {
                line
            }
        })
        .collect();
    assert!(
        toml.contains(&"max_mib = 0"),
        "demo/site.toml sets [render_cache] max_mib"
    );
    std::fs::write(site.path().join("site.toml"), toml.join("\n")).expect("site.toml");
    for dir in ["pages", "layouts"] {
        std::fs::create_dir_all(site.path().join(dir)).expect("mkdir");
        for entry in std::fs::read_dir(demo.join(dir)).expect("demo dir") {
            let path = entry.expect("entry").path();
            std::fs::copy(
                &path,
                site.path().join(dir).join(path.file_name().expect("name")),
            )
            .expect("copy");
        }
    }
    site
}

/// A BFF on port 0 serving the demo event with `Cache-Control: public, max-age=60`.
async fn event_bff() -> String {
    let app = axum::Router::new().route(
        "/v1/events/{id}",
        axum::routing::get(|| async {
            (
                [
                    ("content-type", "application/json"),
                    ("cache-control", "public, max-age=60"),
                ],
                EVENT,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A BFF that is down the bad way: it accepts connections and never answers.
async fn hanging_bff() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

/// The data path: a fresh cache hit, and the demo page fetched through it, with its
/// BFF up (cached) and hanging (bounded by the source's 300 ms deadline).
fn data_path(c: &mut Criterion) {
    let rt = runtime();
    let bff = rt.block_on(event_bff());
    let client = DataClient::new(DataClientOptions::default()).expect("client");
    let url = format!("{bff}/v1/events/42");
    rt.block_on(client.fetch(&url, Duration::from_secs(1), "warm"))
        .expect("warm");
    let mut group = c.benchmark_group("data_path");
    group.bench_function("fresh_hit", |b| {
        b.to_async(&rt).iter(|| async {
            let got = client
                .fetch(&url, Duration::from_millis(300), "bench")
                .await
                .expect("hit");
            assert_eq!(got.served, Served::Fresh);
            got
        })
    });

    let components = tempfile::tempdir().expect("tempdir");
    install_examples(components.path());
    // The data path alone: no render reused.
    let cache_off = demo_site_without_render_cache();
    let hanging = rt.block_on(hanging_bff());
    for (name, bff) in [
        ("page_bff_cached", bff.clone()),
        ("page_bff_hanging", hanging),
    ] {
        let renderer = rt
            .block_on(Renderer::start(RendererOptions {
                site_dir: cache_off.path().to_path_buf(),
                components_dir: Some(components.path().to_path_buf()),
                bffs: BTreeMap::from([("events".to_string(), bff)]),
                data_client: None,
                identity: None,
                admin_token: None,
                code_cache: Some(code_cache()),
            }))
            .expect("demo site starts");
        let headers = http::HeaderMap::new();
        if name == "page_bff_hanging" {
            group.sample_size(10);
        }
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let page = renderer.render("/events/42", None, &headers).await;
                // The event details are critical: without the event they fall back to
                // their "unavailable" text, which is still a page.
                assert_eq!(page.status, 200);
                page
            })
        });
    }
    group.finish();
}

/// Every demo component: the Rust ones, and the Python and JavaScript ones built as
/// `oberon dev` builds them.
fn install_examples(dir: &std::path::Path) {
    let other_languages = oberon_e2e_tests::demo::other_languages()
        .iter()
        .map(|built| built.artifact());
    for artifact in oberon_test_artifacts::examples().chain(other_languages) {
        oberon_renderer::component_set::install(
            dir,
            artifact.name,
            artifact.wasm(),
            Some(&artifact.assets_dir()),
        )
        .expect("install");
    }
}

/// One compiled-code cache for every renderer these benches start, kept between runs:
/// the Python and JavaScript components compile once (~25 s), not per renderer.
fn code_cache() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("render-bench-code-cache")
}

criterion_group!(benches, instance_render, demo_page, data_path);
criterion_main!(benches);
