//! The hot paths around the components, each alone:
//!
//! - `layout_render/demo_event`: composing the demo event page — six fragments (as
//!   the demo's components render them), their head entries and assets, the embedded
//!   bus state and the client bus runtime — into `demo/layouts/base.html`. Per request.
//! - `compress/demo_event_{br,gzip}`: that page compressed whole, as the renderer does
//!   for a client (or CDN) that accepts the coding. Per request that asks.
//! - `cache_policy/…`: the policy table and its header values (`decide_headers`), the
//!   surrogate keys of a six-component page, and the ETag of a 12 KB page. Per request.
//! - `bus_plan/…`: ordering a page's components into stages — the demo event page,
//!   and a 24-slot page of six chains. Once per page and component version, at load.
//!
//! `cargo bench -p oberon-bench --bench hot_paths` (add `-- --quick` for a shorter run).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use oberon_renderer::bus::BusSnapshot;
use oberon_renderer::cache::{self, Mode, PagePolicy};
use oberon_renderer::component::{Cacheability, ComponentMetadata, HeadEntry, RequestContext};
use oberon_renderer::compress::Coding;
use oberon_renderer::engine::{ComponentEngine, EngineLimits};
use oberon_renderer::layout::{Composition, Layouts, PageText};
use oberon_renderer::plan::{PlanSlot, plan};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENT: &str = include_str!("../../demo/fixtures/event-42.json");

/// The demo event page's slots: (slot, component, props).
const DEMO_SLOTS: [(&str, &str, &str); 6] = [
    ("header", "site-header", r#"{"site_name":"Oberon Tickets"}"#),
    ("main", "event-details", "{}"),
    ("tickets", "ticket-picker", r#"{"default_quantity":2}"#),
    ("cart", "cart-summary", "{}"),
    ("aside", "recommendations", "{}"),
    ("footer", "site-footer", "{}"),
];

fn event_bus() -> BusSnapshot {
    let mut bus = BusSnapshot::default();
    let compact: serde_json::Value = serde_json::from_str(EVENT).expect("fixture");
    bus.insert(Arc::from("event"), Arc::from(compact.to_string()));
    bus.insert(
        Arc::from("request"),
        Arc::from(r#"{"path":"/events/42","params":{"id":"42"},"query":{},"locale":"en-GB"}"#),
    );
    bus
}

/// The demo page's fragments, rendered once by the demo's own components.
fn demo_fragments() -> Vec<(String, Vec<HeadEntry>, Vec<String>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let engine = ComponentEngine::new(EngineLimits::default()).expect("engine");
    let bus = Arc::new(event_bus());
    let ctx = RequestContext {
        path: "/events/42".into(),
        params: vec![("id".into(), "42".into())],
        query: vec![],
        locale: "en-GB".into(),
        user: None,
        request_id: Arc::from("bench"),
    };
    DEMO_SLOTS
        .iter()
        .map(|(_, name, props)| {
            let wasm = std::fs::read(oberon_test_artifacts::artifact(name).wasm()).expect("wasm");
            let component = rt.block_on(engine.load(&wasm)).expect("load");
            let deadline = Instant::now() + Duration::from_secs(5);
            let result =
                rt.block_on(engine.render(&component, &ctx, props, &bus, engine.budget(deadline)));
            let fragment = result.outcome.expect("demo component renders");
            let assets = component
                .metadata()
                .assets
                .iter()
                .map(|a| format!("/assets/{name}/0123456789abcdef/{a}"))
                .collect();
            (fragment.html, fragment.head, assets)
        })
        .collect()
}

fn layout_render(c: &mut Criterion) {
    let layouts = Layouts::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../demo/layouts"
    )))
    .unwrap_or_else(|e| panic!("demo layouts: {e:?}"));
    let fragments = demo_fragments();
    let bus = event_bus();
    let private: HashSet<String> = HashSet::new();
    let names: Vec<&str> = DEMO_SLOTS.iter().map(|(slot, _, _)| *slot).collect();
    let page = PageText {
        route: "/events/{id}",
        team: "events",
        lang: "en-GB",
    };
    let skeleton = layouts
        .skeleton("base.html", page, &names)
        .unwrap_or_else(|e| panic!("demo layout: {e}"));
    let composition = || Composition {
        slots: DEMO_SLOTS
            .iter()
            .zip(&fragments)
            .map(|((slot, _, _), (html, _, _))| (*slot, html.clone()))
            .collect(),
        head: fragments.iter().flat_map(|(_, h, _)| h.clone()).collect(),
        assets: fragments.iter().flat_map(|(_, _, a)| a.clone()).collect(),
        preload: Vec::new(),
        bus: &bus,
        private_topics: &private,
        defaults: &[],
    };
    let mut group = c.benchmark_group("layout_render");
    group.bench_function("demo_event", |b| {
        // The composition is built outside the measurement: the request path moves the
        // fragments in, it does not copy them.
        b.iter_batched(
            composition,
            |composition| skeleton.fill(&composition),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // What a client that accepts a coding adds to that page: its compression (a CDN
    // asks once per coding it keeps).
    let html = skeleton.fill(&composition());
    let mut group = c.benchmark_group("compress");
    for coding in [Coding::Brotli, Coding::Gzip] {
        println!(
            "compress/demo_event_{}: {} bytes → {}",
            coding.token(),
            html.len(),
            coding.compress(html.as_bytes()).len()
        );
        group.bench_function(format!("demo_event_{}", coding.token()), |b| {
            b.iter(|| coding.compress(std::hint::black_box(html.as_bytes())))
        });
    }
    group.finish();
}

fn cache_policy(c: &mut Criterion) {
    let mut group = c.benchmark_group("cache_policy");
    group.bench_function("decide_headers", |b| {
        b.iter(|| {
            let policy = PagePolicy::decide(
                std::hint::black_box(Cacheability::Volatile),
                std::hint::black_box(60),
                std::hint::black_box(false),
                std::hint::black_box(Mode::Elevated),
            );
            policy.headers(std::hint::black_box(0.042))
        })
    });
    let components: Vec<(String, String)> = DEMO_SLOTS
        .iter()
        .map(|(_, name, _)| (name.to_string(), "0123456789abcdef0123".to_string()))
        .collect();
    group.bench_function("surrogate_keys_6", |b| {
        b.iter(|| {
            let keys = cache::surrogate_keys(
                "/events/{id}",
                "events",
                components.iter().map(|(n, h)| (n.as_str(), h.as_str())),
                Mode::Normal,
            );
            (keys.join(" "), keys.join(","))
        })
    });
    let body = "<p>Doors open at seven; tickets &amp; programmes at the box office.</p>\n"
        .repeat(12 * 1024 / 72);
    group.bench_function("etag_12k", |b| {
        b.iter(|| cache::etag(std::hint::black_box(body.as_bytes())))
    });
    group.finish();
}

fn meta(name: &str, subscribes: &[&str], publishes: &[&str]) -> ComponentMetadata {
    let topics = |list: &[&str]| list.iter().map(|t| Arc::from(*t)).collect::<BTreeSet<_>>();
    ComponentMetadata {
        name: Arc::from(name),
        subscribes: topics(subscribes),
        publishes: topics(publishes),
        assets: Vec::new(),
        cacheability: Cacheability::Public,
        reuse: None,
    }
}

fn bus_plan(c: &mut Criterion) {
    let seeded: BTreeSet<Arc<str>> = ["request", "event"].into_iter().map(Arc::from).collect();
    let demo = [
        meta("site-header", &[], &[]),
        meta("event-details", &["event"], &[]),
        meta("ticket-picker", &["event"], &["ticket-selection"]),
        meta("cart-summary", &["ticket-selection"], &[]),
        meta("recommendations", &["event"], &[]),
        meta("site-footer", &[], &[]),
    ];
    // Six chains of four: each link subscribes to the one before it.
    let names: Vec<(String, String, String)> = (0..24)
        .map(|i| {
            let (chain, link) = (i / 4, i % 4);
            (
                format!("c{chain}-l{link}"),
                format!("t{chain}.{link}"),
                if link == 0 {
                    "event".to_string()
                } else {
                    format!("t{chain}.{}", link - 1)
                },
            )
        })
        .collect();
    let chains: Vec<ComponentMetadata> = names
        .iter()
        .map(|(name, publishes, subscribes)| meta(name, &[subscribes], &[publishes]))
        .collect();
    let slot_names: Vec<String> = (0..24).map(|i| format!("s{i}")).collect();
    let mut group = c.benchmark_group("bus_plan");
    for (label, metas) in [("demo_event_6", &demo[..]), ("chains_24", &chains[..])] {
        let slots: Vec<PlanSlot<'_>> = metas
            .iter()
            .zip(&slot_names)
            .map(|(meta, slot)| PlanSlot { slot, meta })
            .collect();
        let stages = plan(&slots, &seeded).expect("plans").stages.len();
        assert!(stages >= 2, "{label}: {stages} stages");
        group.bench_function(label, |b| b.iter(|| plan(&slots, &seeded).expect("plans")));
    }
    group.finish();
}

criterion_group!(benches, layout_render, cache_policy, bus_plan);
criterion_main!(benches);
