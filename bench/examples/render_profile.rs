//! A fixed amount of the render hot path, for `valgrind --tool=callgrind`, whose
//! instruction counts do not depend on the machine's load the way criterion's timings
//! do. `render_profile <component|page> [iterations]`; count only the loop with
//! `--toggle-collect='render_profile::measured*'` and divide by the iterations.
//! Valgrind cannot reserve the pool's address space for 256 instances (4 GiB each),
//! so this runs with `max_instances` from `OBERON_PROFILE_INSTANCES` (default 6; the
//! demo page needs 5 at once).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oberon_renderer::bus::BusSnapshot;
use oberon_renderer::component::RequestContext;
use oberon_renderer::engine::{ComponentEngine, EngineLimits};
use oberon_renderer::{Renderer, RendererOptions};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENT: &str = include_str!("../../demo/fixtures/event-42.json");

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "page".into());
    let iterations: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // `OBERON_PROFILE_EVENT` gives another event topic (a file of JSON text).
    let event = std::env::var_os("OBERON_PROFILE_EVENT")
        .map(|path| std::fs::read_to_string(path).expect("event file"))
        .unwrap_or_else(|| EVENT.to_string());
    let compact = serde_json::from_str::<serde_json::Value>(&event)
        .expect("fixture")
        .to_string();
    let max_instances: u32 = std::env::var("OBERON_PROFILE_INSTANCES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(6);
    if what == "page" {
        // The demo site with fewer instances, so that valgrind can map the pool.
        let site = tempfile::tempdir().expect("tempdir");
        let demo = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../demo"));
        for dir in ["pages", "layouts"] {
            std::fs::create_dir(site.path().join(dir)).expect("mkdir");
            for entry in std::fs::read_dir(demo.join(dir)).expect("read demo") {
                let entry = entry.expect("entry");
                std::fs::copy(entry.path(), site.path().join(dir).join(entry.file_name()))
                    .expect("copy");
            }
        }
        let toml = std::fs::read_to_string(demo.join("site.toml")).expect("site.toml");
        assert!(toml.trim_end().ends_with("component_memory_mib = 16"));
        // Deadlines long enough for valgrind (the first renders map each component's
        // memory image): a timed-out slot would be a different workload.
        let toml = toml
            .replace("page_deadline_ms = 1000", "page_deadline_ms = 30000")
            .replace(
                "component_deadline_ms = 100",
                "component_deadline_ms = 20000",
            );
        std::fs::write(
            site.path().join("site.toml"),
            format!("{toml}max_instances = {max_instances}\n"),
        )
        .expect("write site.toml");
        let components = tempfile::tempdir().expect("tempdir");
        // `OBERON_PROFILE_BUILD` profiles the components of another build (a directory
        // of `<crate_name>.wasm` components, e.g. cargo's `wasm32-wasip2/release`).
        let build = std::env::var_os("OBERON_PROFILE_BUILD").map(std::path::PathBuf::from);
        for artifact in oberon_test_artifacts::examples() {
            let wasm = build.as_ref().map_or_else(
                || artifact.wasm().to_path_buf(),
                |dir| dir.join(format!("{}.wasm", artifact.name.replace('-', "_"))),
            );
            oberon_renderer::component_set::install(
                components.path(),
                artifact.name,
                &wasm,
                Some(&artifact.assets_dir()),
            )
            .expect("install");
        }
        let renderer = rt
            .block_on(Renderer::start(RendererOptions {
                site_dir: site.path().to_path_buf(),
                components_dir: Some(components.path().to_path_buf()),
                bffs: BTreeMap::new(),
                data_client: None,
                identity: None,
                admin_token: None,
                code_cache: None,
            }))
            .expect("demo site starts");
        let headers = http::HeaderMap::new();
        let data = [("event", compact.as_str())];
        let page = || async {
            let page = renderer
                .render_with_data("/events/42", None, &headers, &data)
                .await;
            assert_eq!(page.status, 200);
            // No slot fell back (a fallback would make this a different workload).
            assert!(
                !page.body.contains("unavailable right now"),
                "a slot fell back"
            );
            assert!(
                !page.body.contains("Ticket sales are paused"),
                "a slot fell back"
            );
        };
        rt.block_on(page());
        measured(&rt, iterations, page);
    } else {
        let engine = ComponentEngine::new(EngineLimits {
            max_instances,
            ..EngineLimits::default()
        })
        .expect("engine");
        let mut event = BusSnapshot::default();
        event.insert(Arc::from("event"), Arc::from(compact));
        let bus = Arc::new(event);
        let ctx = RequestContext {
            path: "/events/42".into(),
            params: vec![("id".into(), "42".into())],
            query: vec![],
            locale: "en-GB".into(),
            user: None,
            request_id: Arc::from("bench"),
        };
        // `OBERON_PROFILE_WASM` profiles another build of the component.
        let path = std::env::var_os("OBERON_PROFILE_WASM")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| oberon_test_artifacts::artifact(&what).wasm().to_path_buf());
        let wasm = std::fs::read(path).expect("wasm");
        let component = rt.block_on(engine.load(&wasm)).expect("load");
        let once = || async {
            let deadline = Instant::now() + Duration::from_secs(20);
            let result = engine
                .render(&component, &ctx, "{}", &bus, engine.budget(deadline))
                .await;
            let fragment = result.outcome.expect("rendered");
            if std::env::var_os("OBERON_PROFILE_PRINT").is_some() {
                println!("{}", fragment.html);
            }
        };
        rt.block_on(once());
        measured(&rt, iterations, once);
    }
}

#[inline(never)]
fn measured<F, Fut>(rt: &tokio::runtime::Runtime, iterations: usize, f: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    rt.block_on(async {
        for _ in 0..iterations {
            f().await;
        }
    });
    let each = started.elapsed() / iterations as u32;
    println!("{iterations} iterations, {each:?} each");
}
