//! A fresh instance plus one render, per component language, side by side in one run,
//! under the renderer's own [`ComponentEngine`] (its pooling allocator, default limits),
//! for the demo's event page components:
//!
//! - Rust: `event-details`, `ticket-picker` (publishes `ticket-selection`) and
//!   `cart-summary` (reads it and `promotion`), built by `oberon-test-artifacts`;
//! - Python: `delivery-options` (`components/examples-py`, reads `ticket-selection`),
//!   CPython pre-initialised in the component (~18 MiB);
//! - JavaScript: `promo-banner` (`components/examples-js`, reads `event`, publishes
//!   `promotion`), StarlingMonkey pre-initialised (~11 MiB).
//!
//! The Python and JavaScript ones are built from source as `oberon dev` builds them
//! (`oberon_e2e_tests::demo::other_languages`: componentize-py and ComponentizeJS from
//! `OBERON_TOOLS_DIR`, which `tests/run --setup-only` installs under `target/test-tools`).
//! The bus holds the demo's `event`, `ticket-selection` and `promotion`, so every
//! component renders its whole markup.
//!
//! Before criterion's own runs it prints a table of the same measurement, every case
//! in one run: each component `ROUNDS` times in a row, and all of them interleaved
//! (one of each, round after round, as a page renders them); under the renderer's
//! engine and under one without warm slots (`EngineLimits::warm_slots = 0`). Targets on the 2-core
//! development machine: Python at most 1.5 ms, JavaScript at most 1 ms, Rust as in
//! `render`'s `instance_render`.
//!
//! `cargo bench -p oberon-bench --bench languages` (add `-- --quick` for a shorter run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use oberon_renderer::bus::BusSnapshot;
use oberon_renderer::component::RequestContext;
use oberon_renderer::engine::{ComponentEngine, EngineLimits, LoadedComponent};
use oberon_test_artifacts::Artifact;

/// The same allocator as the `oberon-renderer` and `oberon` binaries.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENT: &str = include_str!("../../demo/fixtures/event-42.json");

/// What the demo's page publishes for event 42 by default (two Standard tickets, the
/// promotion of its `promo` slot).
const TICKET_SELECTION: &str = r#"{"event_id":"42","ticket_type":"standard","name":"Standard","quantity":2,"unit_price_cents":4500,"currency":"EUR"}"#;
const PROMOTION: &str = r#"{"event_id":"42","code":"EARLYBIRD","percent_off":10}"#;

/// One benchmarked component: its language, build and props.
struct Case {
    language: &'static str,
    artifact: Artifact,
    props: &'static str,
}

fn cases() -> Vec<Case> {
    let rust = |name: &str, props| Case {
        language: "rust",
        artifact: oberon_test_artifacts::artifact(name),
        props,
    };
    let mut cases = vec![
        rust("event-details", "{}"),
        rust("ticket-picker", r#"{"default_quantity":2}"#),
        rust("cart-summary", "{}"),
    ];
    for built in oberon_e2e_tests::demo::other_languages() {
        let props = match built.name.as_str() {
            "delivery-options" => r#"{"post_fee_cents":250}"#,
            "promo-banner" => r#"{"code":"EARLYBIRD","percent_off":10}"#,
            other => panic!("a new demo component, {other}: give it its props here"),
        };
        cases.push(Case {
            language: built.lang.name(),
            artifact: built.artifact(),
            props,
        });
    }
    cases
}

struct Setup {
    rt: tokio::runtime::Runtime,
    engine: ComponentEngine,
    ctx: RequestContext,
    bus: Arc<BusSnapshot>,
}

impl Setup {
    fn new(limits: EngineLimits) -> Setup {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let engine = ComponentEngine::new(limits).expect("engine");
        let mut bus = BusSnapshot::default();
        let compact: serde_json::Value = serde_json::from_str(EVENT).expect("fixture");
        bus.insert(Arc::from("event"), Arc::from(compact.to_string()));
        bus.insert(Arc::from("ticket-selection"), Arc::from(TICKET_SELECTION));
        bus.insert(Arc::from("promotion"), Arc::from(PROMOTION));
        let ctx = RequestContext {
            path: "/events/42".into(),
            params: vec![("id".into(), "42".into())],
            query: vec![],
            locale: "en-GB".into(),
            user: None,
            request_id: Arc::from("bench"),
        };
        Setup {
            rt,
            engine,
            ctx,
            bus: Arc::new(bus),
        }
    }

    async fn render(&self, component: &LoadedComponent, props: &str) -> Duration {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(1);
        let result = self
            .engine
            .render(
                component,
                &self.ctx,
                props,
                &self.bus,
                self.engine.budget(deadline),
            )
            .await;
        let elapsed = started.elapsed();
        if let Err(e) = result.outcome {
            panic!("{}: {e}", component.metadata().name);
        }
        elapsed
    }

    /// Every case loaded into this setup's engine.
    fn load<'a>(&self, cases: &'a [Case]) -> Vec<(&'a Case, LoadedComponent)> {
        cases
            .iter()
            .map(|case| {
                let wasm = std::fs::read(case.artifact.wasm()).expect("wasm");
                let started = Instant::now();
                let component = self.rt.block_on(self.engine.load(&wasm)).expect("load");
                eprintln!(
                    "{}/{}: {:.1} MiB, compiled and described in {:.1} s",
                    case.language,
                    case.artifact.name,
                    wasm.len() as f64 / f64::from(1 << 20),
                    started.elapsed().as_secs_f64()
                );
                (case, component)
            })
            .collect()
    }

    /// Each case `ROUNDS` times in a row, then all of them interleaved `ROUNDS` rounds,
    /// as a page renders them one after another: the samples of each, per case.
    fn table(&self, loaded: &[(&Case, LoadedComponent)]) -> Vec<(Vec<Duration>, Vec<Duration>)> {
        self.rt.block_on(async {
            let mut in_a_row = Vec::new();
            for (case, component) in loaded {
                let mut samples = Vec::with_capacity(ROUNDS);
                for _ in 0..ROUNDS {
                    samples.push(self.render(component, case.props).await);
                }
                in_a_row.push(samples);
            }
            let mut interleaved = vec![Vec::with_capacity(ROUNDS); loaded.len()];
            for _ in 0..ROUNDS {
                for ((case, component), samples) in loaded.iter().zip(&mut interleaved) {
                    samples.push(self.render(component, case.props).await);
                }
            }
            in_a_row.into_iter().zip(interleaved).collect()
        })
    }
}

/// Median, p90 and min of `samples` fresh instance + render, in µs.
fn summary(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.9), at(0.0))
}

/// Fresh instances per case and way, in the table.
const ROUNDS: usize = 400;

fn instance_render_by_language(c: &mut Criterion) {
    let cases = cases();
    // The renderer's engine, and one that keeps no freed slot for its module (the
    // setting before warm slots), measured one after the other in this run.
    let setup = Setup::new(EngineLimits::default());
    let cold_slots = Setup::new(EngineLimits {
        warm_slots: 0,
        ..EngineLimits::default()
    });
    let loaded = setup.load(&cases);
    let loaded_cold = cold_slots.load(&cases);
    let warm = setup.table(&loaded);
    let cold = cold_slots.table(&loaded_cold);

    println!("fresh instance + render, {ROUNDS} each (µs): median / p90 / min");
    println!(
        "  {:<28} {:>26} {:>26} {:>26} {:>26}",
        "language/component",
        "in a row",
        "interleaved",
        "in a row, no warm slots",
        "interleaved, no warm slots"
    );
    let show = |samples: &Vec<Duration>| {
        let (median, p90, min) = summary(samples.clone());
        format!("{median:8.1} {p90:8.1} {min:8.1}")
    };
    for (((case, _), (row, mixed)), (cold_row, cold_mixed)) in loaded.iter().zip(&warm).zip(&cold) {
        println!(
            "  {:<28} {:>26} {:>26} {:>26} {:>26}",
            format!("{}/{}", case.language, case.artifact.name),
            show(row),
            show(mixed),
            show(cold_row),
            show(cold_mixed)
        );
    }
    drop(loaded_cold);

    let mut group = c.benchmark_group("instance_render_by_language");
    for (case, component) in &loaded {
        group.bench_function(format!("{}/{}", case.language, case.artifact.name), |b| {
            b.to_async(&setup.rt)
                .iter(|| setup.render(component, case.props))
        });
    }
    group.finish();
}

criterion_group!(benches, instance_render_by_language);
criterion_main!(benches);
