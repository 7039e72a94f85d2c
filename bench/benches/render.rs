//! The render hot path, on one core (a current-thread runtime):
//!
//! - `instance_render/<component>`: a fresh instance of a compiled component plus one
//!   render, the unit of work the renderer repeats for every slot of every request.
//!   Target: under 20 µs.
//! - `demo_page/event`: the whole demo event page in process — six components over the
//!   bus in three stages, layout, head and assets — with its data source's value given
//!   (as a cache hit would give it). Target: under 150 µs.
//!
//! `cargo bench -p oberon-bench` (add `-- --quick` for a shorter run).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use oberon_renderer::bus::BusSnapshot;
use oberon_renderer::component::RequestContext;
use oberon_renderer::engine::{ComponentEngine, EngineLimits};
use oberon_renderer::{Renderer, RendererOptions};

/// The same allocator as the `oberon-renderer` and `oberon` binaries.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENT: &str = include_str!("../../demo/bff/events/v1/events/42.json");

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
                let result = engine.render(&component, &ctx, "{}", &bus, deadline).await;
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
    for artifact in oberon_test_artifacts::examples() {
        oberon_renderer::registry::install(
            components.path(),
            artifact.name,
            artifact.wasm(),
            Some(&artifact.assets_dir()),
        )
        .expect("install");
    }
    let renderer = rt
        .block_on(Renderer::start(RendererOptions {
            site_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../demo").into(),
            components_dir: Some(components.path().to_path_buf()),
            bffs: BTreeMap::new(),
        }))
        .expect("demo site starts");
    let headers = http::HeaderMap::new();
    let compact = serde_json::from_str::<serde_json::Value>(EVENT)
        .expect("fixture")
        .to_string();
    let data = [("event", compact.as_str())];
    let mut group = c.benchmark_group("demo_page");
    group.bench_function("event", |b| {
        b.to_async(&rt).iter(|| async {
            let page = renderer
                .render_with_data("/events/42", None, &headers, &data)
                .await;
            assert_eq!(page.status, 200);
            page
        })
    });
    group.finish();
}

criterion_group!(benches, instance_render, demo_page);
criterion_main!(benches);
