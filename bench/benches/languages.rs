//! A fresh instance plus one render, per component language, side by side in one run,
//! under the renderer's own [`ComponentEngine`] (its pooling allocator, default limits):
//!
//! - `instance_render_by_language/rust/<component>`: Rust components built by the
//!   workspace (`event-details` from the demo, `misbehave` rendering `ok`);
//! - `.../python/misbehave-py`: `components/testing-py/misbehave` (mode `ok`), built
//!   with componentize-py (CPython pre-initialised in the component, ~18 MiB);
//! - `.../javascript/<component>`: `components/testing-js/misbehave` (mode `ok`) and
//!   `components/examples-js/greeting` (reads the bus, publishes, one head entry), built
//!   with `components/sdk-js/build.mjs` (StarlingMonkey pre-initialised, ~11 MiB).
//!
//! Before criterion's own runs it prints a table of the same measurement (median, p90,
//! min over fresh instances, one after another on one core), so the three languages
//! can be read side by side at a glance. Targets on the 2-core development machine:
//! Python at most 1.5 ms, JavaScript at most 1 ms, Rust as in `render`'s
//! `instance_render` (under 20 µs).
//!
//! Needs componentize-py where `tests/run` installs it (`target/test-tools/`, or
//! `OBERON_TOOLS_DIR`) and `npm ci` done in `components/sdk-js`; it stops, saying what
//! to run, when either is missing. Building the guests takes about a minute, compiling
//! them with Cranelift about as long again.
//!
//! `cargo bench -p oberon-bench --bench languages` (add `-- --quick` for a shorter run).
//!
//! Measured so far only in a debug build of the workspace (dependencies, wasmtime
//! among them, at opt-level 2: `cargo bench --profile dev`) on the loaded 2-core
//! machine, criterion `--quick`: Rust event-details 38 µs, misbehave 33 µs; Python
//! 1.99 ms; JavaScript misbehave-js 0.79 ms, greeting-js 0.98 ms. The table's
//! interleaved figures are higher for all (each component's instance lands in a pool
//! slot last used by another's, whose memory image must be mapped again).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use oberon_renderer::bus::BusSnapshot;
use oberon_renderer::component::RequestContext;
use oberon_renderer::engine::{ComponentEngine, EngineLimits, LoadedComponent};

/// The same allocator as the `oberon-renderer` and `oberon` binaries.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENT: &str = include_str!("../../demo/fixtures/event-42.json");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
        .to_path_buf()
}

/// componentize-py as `tests/run` installs it, at the version the CLI pins.
fn componentize_py() -> PathBuf {
    let source = include_str!("../../cli/src/component/python.rs");
    let version = source
        .lines()
        .find_map(|l| l.strip_prefix("pub const COMPONENTIZE_PY_VERSION: &str = \""))
        .and_then(|rest| rest.strip_suffix("\";"))
        .expect("python.rs pins COMPONENTIZE_PY_VERSION");
    let tools = match std::env::var_os("OBERON_TOOLS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the target directory")
            .join("test-tools"),
    };
    let dir = tools.join(format!("componentize-py-{version}"));
    assert!(
        dir.join(".complete").is_file(),
        "componentize-py {version} is not installed in {}: run `tests/run --setup-only` (or point OBERON_TOOLS_DIR at a directory that has it)",
        dir.display()
    );
    dir.join("bin/componentize-py")
}

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `components/testing-py/misbehave` with the Python SDK, as `oberon component build`
/// builds a Python project.
fn build_python(out_dir: &Path) -> PathBuf {
    let out = out_dir.join("misbehave-py.wasm");
    run(Command::new(componentize_py())
        .arg("--quiet")
        .arg("-d")
        .arg(repo().join("components/wit/v0.2.0"))
        .args(["-w", "component", "componentize", "-p"])
        .arg(repo().join("components/testing-py/misbehave"))
        .arg("-p")
        .arg(repo().join("components/sdk-py"))
        .arg("app")
        .arg("-o")
        .arg(&out));
    out
}

/// A JavaScript project built by the JS SDK's `build.mjs`.
fn build_js(out_dir: &Path, project: &str, name: &str) -> PathBuf {
    let sdk = repo().join("components/sdk-js");
    assert!(
        sdk.join("node_modules/@bytecodealliance/componentize-js")
            .is_dir(),
        "the JavaScript SDK's toolchain is not installed: run `npm ci` in {}",
        sdk.display()
    );
    let out = out_dir.join(format!("{name}.wasm"));
    run(Command::new("node")
        .arg(sdk.join("build.mjs"))
        .arg("--project")
        .arg(repo().join(project))
        .arg("--wit")
        .arg(repo().join("components/wit/v0.2.0"))
        .arg("--out")
        .arg(&out));
    out
}

/// One benchmarked component: its language, name, wasm and props.
struct Case {
    language: &'static str,
    name: &'static str,
    wasm: PathBuf,
    props: &'static str,
}

fn cases(out_dir: &Path) -> Vec<Case> {
    let rust = |name: &'static str, props| Case {
        language: "rust",
        name,
        wasm: oberon_test_artifacts::artifact(name).wasm().to_path_buf(),
        props,
    };
    vec![
        rust("event-details", "{}"),
        rust("misbehave", r#"{"mode":"ok"}"#),
        Case {
            language: "python",
            name: "misbehave-py",
            wasm: build_python(out_dir),
            props: r#"{"mode":"ok"}"#,
        },
        Case {
            language: "javascript",
            name: "misbehave-js",
            wasm: build_js(out_dir, "components/testing-js/misbehave", "misbehave-js"),
            props: r#"{"mode":"ok"}"#,
        },
        Case {
            language: "javascript",
            name: "greeting-js",
            wasm: build_js(out_dir, "components/examples-js/greeting", "greeting-js"),
            props: "{}",
        },
    ]
}

struct Setup {
    rt: tokio::runtime::Runtime,
    engine: ComponentEngine,
    ctx: RequestContext,
    bus: Arc<BusSnapshot>,
}

impl Setup {
    fn new() -> Setup {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let engine = ComponentEngine::new(EngineLimits::default()).expect("engine");
        let mut event = BusSnapshot::default();
        let compact: serde_json::Value = serde_json::from_str(EVENT).expect("fixture");
        event.insert(Arc::from("event"), Arc::from(compact.to_string()));
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
            bus: Arc::new(event),
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
}

/// Median, p90 and min of `samples` fresh instance + render, in µs.
fn summary(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.9), at(0.0))
}

fn instance_render_by_language(c: &mut Criterion) {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let cases = cases(out_dir.path());
    let setup = Setup::new();
    let loaded: Vec<(&Case, LoadedComponent)> = cases
        .iter()
        .map(|case| {
            let wasm = std::fs::read(&case.wasm).expect("wasm");
            let started = Instant::now();
            let component = setup.rt.block_on(setup.engine.load(&wasm)).expect("load");
            eprintln!(
                "{}/{}: {:.1} MiB, compiled and described in {:.1} s",
                case.language,
                case.name,
                wasm.len() as f64 / f64::from(1 << 20),
                started.elapsed().as_secs_f64()
            );
            (case, component)
        })
        .collect();

    // The table: every case in one run, interleaved so a busy moment on the machine
    // falls on all of them alike.
    const ROUNDS: usize = 400;
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(ROUNDS); loaded.len()];
    setup.rt.block_on(async {
        for _ in 0..ROUNDS {
            for ((case, component), samples) in loaded.iter().zip(&mut samples) {
                samples.push(setup.render(component, case.props).await);
            }
        }
    });
    println!("fresh instance + render, {ROUNDS} each, interleaved (µs):");
    println!(
        "  {:<28} {:>9} {:>9} {:>9}",
        "language/component", "median", "p90", "min"
    );
    for ((case, _), samples) in loaded.iter().zip(samples) {
        let (median, p90, min) = summary(samples);
        println!(
            "  {:<28} {median:>9.1} {p90:>9.1} {min:>9.1}",
            format!("{}/{}", case.language, case.name)
        );
    }

    let mut group = c.benchmark_group("instance_render_by_language");
    for (case, component) in &loaded {
        group.bench_function(format!("{}/{}", case.language, case.name), |b| {
            b.to_async(&setup.rt)
                .iter(|| setup.render(component, case.props))
        });
    }
    group.finish();
}

criterion_group!(benches, instance_render_by_language);
criterion_main!(benches);
