//! Containment of Python and JavaScript components, as the renderer's own tests show it
//! for Rust (`renderer/tests/all/components.rs`): a component that loops, exhausts its
//! memory, raises or throws, recurses without end, or exits falls back within its
//! slot's deadline, the rest of the page renders, and the renderer keeps serving.
//!
//! The misbehaving components are `components/testing-py/misbehave/app.py` (built as an
//! author builds one: `oberon component new --lang python`, that `app.py`, `oberon
//! component build`) and `components/testing-js/misbehave` (likewise, with `--lang
//! javascript`), each built and compiled once, and put on one page
//! through the real renderer beside Rust components.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oberon_cli::component::lang::Lang;
use oberon_cli::component::new::new_component;
use oberon_renderer::bus::BusSnapshot;
use oberon_renderer::component::RequestContext;
use oberon_renderer::engine::{Budget, ComponentError};
use oberon_renderer::{Renderer, RendererOptions, server};

use crate::component_python::{oberon, ok, tools_dir};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
        .to_path_buf()
}

/// `components/testing-py/misbehave` built into a component: scaffolded by the CLI's
/// own `new`, its `app.py` put in, and built by `oberon component build`.
fn build_python_misbehave(parent: &Path) -> PathBuf {
    let tools = tools_dir();
    let dir = parent.join("misbehave-py");
    new_component("misbehave-py", Lang::Python, &dir).unwrap();
    std::fs::copy(
        repo().join("components/testing-py/misbehave/app.py"),
        dir.join("app.py"),
    )
    .unwrap();
    ok(&oberon(&tools, &["build", "--dir", dir.to_str().unwrap()]));
    dir.join("build/misbehave-py.component.wasm")
}

/// `components/testing-js/misbehave` built into a component as `build_python_misbehave`
/// builds the Python one: scaffolded, its `src/index.js` put in, `oberon component build`.
fn build_js_misbehave(parent: &Path) -> PathBuf {
    let tools = crate::component_js::tools_dir();
    let dir = parent.join("misbehave-js");
    new_component("misbehave-js", Lang::Javascript, &dir).unwrap();
    std::fs::copy(
        repo().join("components/testing-js/misbehave/src/index.js"),
        dir.join("src/index.js"),
    )
    .unwrap();
    ok(&oberon(&tools, &["build", "--dir", dir.to_str().unwrap()]));
    dir.join("build/misbehave-js.component.wasm")
}

/// How each misbehaving slot must end, as `Server-Timing` says it: the slot, the
/// component, its mode, and the outcome. Running out of memory is the language's own
/// error in both (Python's `MemoryError`, SpiderMonkey's "out of memory") when an
/// allocation is refused at the cap, so the render's error; so are Python's recursion
/// limit and SpiderMonkey's "too much recursion". Exhausting CPython's native stack,
/// `SystemExit` (not an `Exception`, so not the SDK's to catch) and `os.abort()` trap.
const MISBEHAVIOURS: [(&str, &str, &str, &str); 13] = [
    ("py_loop", "misbehave-py", "loop", "timeout"),
    ("py_oom", "misbehave-py", "oom", "fallback"),
    ("py_raise", "misbehave-py", "raise", "fallback"),
    ("py_recursion", "misbehave-py", "recursion", "fallback"),
    ("py_stack", "misbehave-py", "stack", "trap"),
    ("py_exit", "misbehave-py", "exit", "trap"),
    ("py_abort", "misbehave-py", "abort", "trap"),
    ("js_loop", "misbehave-js", "loop", "timeout"),
    ("js_oom", "misbehave-js", "oom", "fallback"),
    ("js_throw", "misbehave-js", "throw", "fallback"),
    ("js_throw_value", "misbehave-js", "throw-value", "fallback"),
    ("js_stack", "misbehave-js", "stack", "fallback"),
    ("rust_loop", "misbehave", "loop", "timeout"),
];

/// Why a component failed, as the engine reports it.
#[derive(Debug)]
enum Why {
    /// The render's error, starting with this text.
    Error(&'static str),
    Trap,
}

/// The modes that end by the component's own failure, and how each fails.
const WHY: [(&str, &str, Why); 11] = [
    ("misbehave-py", "oom", Why::Error("MemoryError")),
    (
        "misbehave-py",
        "raise",
        Why::Error("RuntimeError: misbehave-py asked to raise"),
    ),
    (
        "misbehave-py",
        "recursion",
        Why::Error("RecursionError: maximum recursion depth"),
    ),
    ("misbehave-py", "stack", Why::Trap),
    ("misbehave-py", "exit", Why::Trap),
    ("misbehave-py", "abort", Why::Trap),
    ("misbehave-js", "oom", Why::Error("out of memory")),
    (
        "misbehave-js",
        "throw",
        Why::Error("misbehave-js asked to throw"),
    ),
    ("misbehave-js", "throw-value", Why::Error("[object Object]")),
    ("misbehave-js", "stack", Why::Error("too much recursion")),
    ("misbehave", "trap", Why::Trap),
];

/// The slots that render: one per language.
const GOOD: [(&str, &str, &str, &str); 3] = [
    (
        "py_ok",
        "misbehave-py",
        "{ mode = \"ok\" }",
        "<p>misbehave-py ok</p>",
    ),
    (
        "js_ok",
        "misbehave-js",
        "{ mode = \"ok\" }",
        "<p>misbehave-js ok</p>",
    ),
    ("rust", "chain-source", "{ n = 1 }", "<p>source n=1</p>"),
];

/// The site's deadline for a component render: the looping slots' (they end by it).
const DEADLINE_MS: u64 = 200;
/// The deadline of every other slot: generous, since each must end by its own
/// failure (or render), not by the clock. They share two threads with the looping
/// ones until those are stopped, and filling 48 MiB takes a while in a debug build on
/// a loaded machine.
const LONG_DEADLINE_MS: u64 = 2000;
/// The memory cap of the slots that exhaust it: more than the site's default (16 MiB),
/// as a big guest's slot is given.
const OOM_MEMORY_MIB: u64 = 48;

fn site(dir: &Path, python: &Path, js: &Path) {
    std::fs::write(
        dir.join("site.toml"),
        format!(
            "components = \"components\"\n[limits]\npage_deadline_ms = 5000\ncomponent_deadline_ms = {DEADLINE_MS}\nmax_instances = 64\n"
        ),
    )
    .unwrap();
    for sub in ["pages", "layouts", "components"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(
        dir.join("layouts/test.html"),
        "<!doctype html><html><head>{{ head }}</head><body>\
{% for name, html in slots|items %}<div data-slot=\"{{ name }}\">{{ html }}</div>{% endfor %}\
{{ scripts }}</body></html>",
    )
    .unwrap();
    let components = dir.join("components");
    let install = |name: &str, wasm: &Path| {
        oberon_renderer::component_set::install(&components, name, wasm, None).unwrap();
    };
    install("misbehave-py", python);
    install("misbehave-js", js);
    for name in ["misbehave", "chain-source"] {
        install(name, oberon_test_artifacts::artifact(name).wasm());
    }

    let mut bad = String::from("route = \"/bad\"\nlayout = \"test.html\"\nteam = \"t\"\n");
    for (slot, component, mode, _) in MISBEHAVIOURS {
        bad.push_str(&format!(
            "[[slots]]\nname = \"{slot}\"\ncomponent = \"{component}\"\nprops = {{ mode = \"{mode}\" }}\nfallback = \"<p>{slot} fallback</p>\"\n"
        ));
        if mode != "loop" {
            bad.push_str(&format!("deadline_ms = {LONG_DEADLINE_MS}\n"));
        }
        if mode == "oom" {
            bad.push_str(&format!("memory_mib = {OOM_MEMORY_MIB}\n"));
        }
    }
    let mut good = String::from("route = \"/good\"\nlayout = \"test.html\"\nteam = \"t\"\n");
    for (slot, component, props, _) in GOOD {
        let slot_toml = format!(
            "[[slots]]\nname = \"{slot}\"\ncomponent = \"{component}\"\nprops = {props}\ndeadline_ms = {LONG_DEADLINE_MS}\n"
        );
        bad.push_str(&slot_toml);
        good.push_str(&slot_toml);
    }
    std::fs::write(dir.join("pages/bad.toml"), bad).unwrap();
    std::fs::write(dir.join("pages/good.toml"), good).unwrap();
}

struct Page {
    status: u16,
    body: String,
    server_timing: String,
    elapsed: Duration,
}

impl Page {
    async fn get(client: &reqwest::Client, url: String) -> Page {
        let started = Instant::now();
        let response = client.get(url).send().await.unwrap();
        let status = response.status().as_u16();
        let server_timing = response
            .headers()
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = response.text().await.unwrap();
        Page {
            status,
            body,
            server_timing,
            elapsed: started.elapsed(),
        }
    }

    fn slot(&self, name: &str) -> &str {
        let open = format!("<div data-slot=\"{name}\">");
        let start = self
            .body
            .find(&open)
            .unwrap_or_else(|| panic!("no slot {name} in:\n{}", self.body))
            + open.len();
        let end = self.body[start..]
            .find("</div><")
            .map_or(self.body.len(), |e| start + e);
        &self.body[start..end]
    }

    /// The slot's `Server-Timing` entry: how long it took, and how it ended.
    fn timing(&self, slot: &str) -> (f64, &str) {
        let entry = self
            .server_timing
            .split(", ")
            .find(|m| m.starts_with(&format!("slot-{slot};")))
            .unwrap_or_else(|| panic!("no slot-{slot} in Server-Timing: {}", self.server_timing));
        let [_, dur, desc] = entry.split(';').collect::<Vec<_>>()[..] else {
            panic!("{entry}");
        };
        let ms = dur.strip_prefix("dur=").and_then(|d| d.parse().ok());
        let ended = desc.strip_prefix("desc=");
        (ms.expect(entry), ended.expect(entry))
    }
}

/// Every misbehaving Python and JavaScript slot (and a looping Rust one) falls back by
/// its deadline, ending as it should (a timeout, the memory cap, the language's error
/// as the render's error, or a trap), while a slot of each language beside them
/// renders; page after page, and an ordinary page after them.
#[test]
fn python_and_javascript_components_are_contained_like_rust_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let python = build_python_misbehave(tmp.path());
    let js = build_js_misbehave(tmp.path());
    let site_dir = tmp.path().join("site");
    std::fs::create_dir_all(&site_dir).unwrap();
    site(&site_dir, &python, &js);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Compiles each component once (Python and JavaScript take seconds each).
        let renderer = Renderer::start(RendererOptions {
            site_dir: site_dir.clone(),
            components_dir: None,
            bffs: BTreeMap::new(),
            data_client: None,
            identity: None,
            admin_token: None,
            code_cache: None,
        })
        .await
        .unwrap_or_else(|e| panic!("the renderer does not start: {e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(server::serve(
            listener,
            server::app(Arc::clone(&renderer)),
            std::future::pending(),
        ));
        let client = reqwest::Client::new();
        let url = |path: &str| format!("http://{addr}{path}");

        for round in 0..4 {
            let page = Page::get(&client, url("/bad")).await;
            assert_eq!(page.status, 200, "round {round}: {}", page.body);
            for (slot, _, mode, ended) in MISBEHAVIOURS {
                assert_eq!(
                    page.slot(slot),
                    format!("<p>{slot} fallback</p>"),
                    "round {round}"
                );
                let (ms, how) = page.timing(slot);
                assert_eq!(
                    how, ended,
                    "round {round}: {slot} ({mode}) ended so: {}",
                    page.server_timing
                );
                // Stopped by its deadline: a little late at most (the deadline is
                // checked every millisecond; the machine may be busy).
                let deadline = if mode == "loop" {
                    DEADLINE_MS
                } else {
                    LONG_DEADLINE_MS
                };
                assert!(
                    ms <= (deadline + 150) as f64,
                    "round {round}: {slot} took {ms} ms, its deadline is {deadline} ms"
                );
            }
            for (slot, _, _, html) in GOOD {
                assert_eq!(page.slot(slot), html, "round {round}");
                assert_eq!(page.timing(slot).1, "ok", "round {round}");
            }
            // The slots run concurrently: the page takes about its longest slot.
            assert!(
                page.elapsed < Duration::from_millis(LONG_DEADLINE_MS + 1000),
                "round {round}: took {:?}",
                page.elapsed
            );
        }

        // The instances that looped, ran out of memory and trapped went back to the
        // pool; the renderer keeps serving whole pages from it.
        for round in 0..3 {
            let page = Page::get(&client, url("/good")).await;
            assert_eq!(page.status, 200, "round {round}: {}", page.body);
            for (slot, _, _, html) in GOOD {
                assert_eq!(page.slot(slot), html, "round {round}");
            }
        }
        // Why each slot fell back, as the engine tells the renderer: the language's
        // own error for the errors, a trap for the rest.
        let site = renderer.site();
        let ctx = RequestContext {
            path: "/bad".into(),
            params: vec![],
            query: vec![],
            locale: "en".into(),
            user: None,
            request_id: Arc::from("containment"),
        };
        let bus = Arc::new(BusSnapshot::default());
        for (component, mode, expected) in WHY {
            let loaded = &site.components.get(component).unwrap().component;
            let budget = Budget {
                deadline: Instant::now() + Duration::from_millis(LONG_DEADLINE_MS),
                memory_bytes: (OOM_MEMORY_MIB as usize) << 20,
            };
            let props = format!(r#"{{"mode":"{mode}"}}"#);
            let outcome = renderer
                .engine()
                .render(loaded, &ctx, &props, &bus, budget)
                .await
                .outcome;
            match (&outcome, &expected) {
                (Err(ComponentError::Guest { message, .. }), Why::Error(text)) => {
                    assert!(message.starts_with(*text), "{component} {mode}: {message}")
                }
                (Err(ComponentError::Trap { .. }), Why::Trap) => {}
                _ => panic!("{component} {mode}: expected {expected:?}, got {outcome:?}"),
            }
        }

        let livez = client.get(url("/_oberon/livez")).send().await.unwrap();
        assert_eq!(livez.status(), 200);
        assert_eq!(renderer.engine().pool().instances_in_use, 0);
    });
}
