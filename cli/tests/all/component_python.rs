//! Python components as an author makes them: `oberon component new --lang python`,
//! `build` with componentize-py (installed by `tests/run` into `target/test-tools/`,
//! named in `OBERON_TOOLS_DIR`), `deploy`, and renders in the renderer's engine; and the
//! Python SDK's own unit tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oberon_cli::component::python::COMPONENTIZE_PY;
use oberon_renderer::bus::BusSnapshot;
use oberon_renderer::component::RequestContext;
use oberon_renderer::engine::{ComponentEngine, ComponentError, EngineLimits};

/// Where `tests/run` installs the component toolchains: `OBERON_TOOLS_DIR`, else
/// `target/test-tools`.
pub(crate) fn test_tools() -> PathBuf {
    match std::env::var_os("OBERON_TOOLS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the target directory")
            .join("test-tools"),
    }
}

/// The tool directory with componentize-py installed, as `tests/run` leaves it; a test
/// that needs it fails, with the command to run, when it is not there.
pub(crate) fn tools_dir() -> PathBuf {
    let dir = test_tools();
    let version = COMPONENTIZE_PY.version;
    let complete = COMPONENTIZE_PY.dir(&dir).join(".complete");
    assert!(
        complete.is_file(),
        "componentize-py {version} is not installed for the tests ({} is missing): run `tests/run --setup-only`, which installs it into target/test-tools/, then run the tests again (tests/run does both)",
        complete.display()
    );
    dir
}

pub(crate) fn oberon(tools: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oberon"))
        .arg("component")
        .args(args)
        .env("OBERON_TOOLS_DIR", tools)
        .env("OBERON_ACTOR", "ci")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

pub(crate) fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `oberon component new NAME --lang python` in `parent`, its `app.py` replaced.
fn python_component(parent: &Path, tools: &Path, name: &str, app: &str) -> PathBuf {
    let dir = parent.join(name);
    let dir_text = dir.to_str().unwrap();
    let out = oberon(tools, &["new", name, "--lang", "python", "--dir", dir_text]);
    assert!(ok(&out).contains("python"));
    std::fs::write(dir.join("app.py"), app).unwrap();
    dir
}

const GREETING: &str = r#"
from oberon_sdk import (Cacheability, Component, Fragment, HeadEntry, Metadata, bus,
                        export, html, log)


class PyGreeting(Component):
    def describe(self):
        return Metadata("py-greeting", subscribes=["event"], publishes=["greeting"],
                        assets=["py-greeting.js"], cacheability=Cacheability.VOLATILE)

    def render(self, ctx, props):
        event = bus.get("event")
        if event is None:
            return Fragment("<p>Nothing on.</p>")
        who = props.str("who", "world")
        if props.bool("fail"):
            raise LookupError(f"no seats for {who}")
        bus.publish("greeting", {"who": who, "event": event["id"]})
        log.info(f"greeted {who}")
        return Fragment(
            f"<p>Hello, {html.escape(who)}: {html.escape(event['name'])}"
            f" #{html.escape(ctx.param('id'))} ({ctx.locale})</p>"
        ).with_head(HeadEntry.title(event["name"]))


WitWorld = export(PyGreeting)
"#;

/// Scaffold, build (version from `pyproject.toml`, SHA-256 sidecar), deploy, and render
/// in the renderer's engine with its default limits: the bus both ways, props, the
/// context, head entries, and an exception as the render's error.
#[test]
fn python_component_builds_deploys_and_uses_the_bus() {
    let tools = tools_dir();
    let tmp = tempfile::tempdir().unwrap();
    let dir = python_component(tmp.path(), &tools, "py-greeting", GREETING);
    let out = oberon(&tools, &["build", "--dir", dir.to_str().unwrap()]);
    let stdout = ok(&out);
    let wasm = dir.join("build/py-greeting.component.wasm");
    let fields: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "{stdout}");
    assert_eq!(
        fields[0],
        wasm.canonicalize().unwrap().display().to_string()
    );
    assert_eq!(fields[2], "0.1.0", "the version in pyproject.toml");
    let sidecar = std::fs::read_to_string(format!("{}.sha256", fields[0])).unwrap();
    assert_eq!(
        sidecar,
        format!("{}  py-greeting.component.wasm\n", fields[1])
    );

    let reg = tmp.path().join("registry");
    let out = oberon(
        &tools,
        &[
            "deploy",
            "--wasm",
            fields[0],
            "--version",
            "0.1.0",
            "--assets",
            dir.join("assets").to_str().unwrap(),
            "--registry",
            reg.to_str().unwrap(),
        ],
    );
    assert_eq!(
        ok(&out),
        "deployed py-greeting 0.1.0 to stable ((none) → 0.1.0)\n"
    );
    let status = ok(&oberon(
        &tools,
        &["status", "py-greeting", "--registry", reg.to_str().unwrap()],
    ));
    assert!(
        status.contains(" 1 asset(s) oberon:component@0.2.0"),
        "{status}"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let engine = ComponentEngine::new(EngineLimits::default()).unwrap();
        let loaded = engine.load(&std::fs::read(&wasm).unwrap()).await.unwrap();
        let meta = loaded.metadata();
        assert_eq!(&*meta.name, "py-greeting");
        assert_eq!(meta.assets, ["py-greeting.js"]);
        let ctx = RequestContext {
            path: "/events/42".into(),
            params: vec![("id".into(), "42".into())],
            query: vec![],
            locale: "en-GB".into(),
            user: None,
            request_id: Arc::from("r1"),
        };
        let mut bus = BusSnapshot::default();
        bus.insert("event".into(), r#"{"id":42,"name":"Gig <live>"}"#.into());
        let bus = Arc::new(bus);
        let deadline = || Instant::now() + Duration::from_secs(5);

        let r = engine
            .render(
                &loaded,
                &ctx,
                r#"{"who":"Ann & Bo"}"#,
                &bus,
                engine.budget(deadline()),
            )
            .await;
        let fragment = r.outcome.unwrap();
        assert_eq!(
            fragment.html,
            "<p>Hello, Ann &amp; Bo: Gig &lt;live&gt; #42 (en-GB)</p>"
        );
        assert_eq!(fragment.head.len(), 1);
        assert_eq!(fragment.head[0].tag, "title");
        assert_eq!(fragment.head[0].content.as_deref(), Some("Gig <live>"));
        let published: Vec<(&str, &str)> = r.published.iter().map(|(t, v)| (&**t, &**v)).collect();
        assert_eq!(
            published,
            [("greeting", r#"{"who":"Ann & Bo","event":42}"#)]
        );

        let r = engine
            .render(
                &loaded,
                &ctx,
                "{}",
                &Arc::new(BusSnapshot::default()),
                engine.budget(deadline()),
            )
            .await;
        assert_eq!(r.outcome.unwrap().html, "<p>Nothing on.</p>");
        assert!(r.published.is_empty());

        let r = engine
            .render(
                &loaded,
                &ctx,
                r#"{"who":"Cy","fail":true}"#,
                &bus,
                engine.budget(deadline()),
            )
            .await;
        match r.outcome {
            Err(ComponentError::Guest { message, .. }) => {
                assert_eq!(message, "LookupError: no seats for Cy")
            }
            other => panic!("expected the exception as the render's error: {other:?}"),
        }
        assert!(r.published.is_empty());
    });
}

/// The demo's Python component (`components/examples-py/delivery-options`), copied and
/// broken so that its `describe` raises, does not load: `deploy` (which builds it from
/// `--dir`, against this binary's SDK, as `oberon dev` does) refuses it with the
/// exception, and the registry stays empty.
#[test]
fn deploy_refuses_the_demo_python_component_when_its_describe_raises() {
    let tools = tools_dir();
    let tmp = tempfile::tempdir().unwrap();
    let dir = crate::demo_project(
        "examples-py/delivery-options",
        tmp.path(),
        "app.py",
        (
            "        return Metadata(",
            "        raise ValueError(\"no topics configured\")\n        return Metadata(",
        ),
    );
    let reg = tmp.path().join("registry");
    let out = oberon(
        &tools,
        &[
            "deploy",
            "--dir",
            dir.to_str().unwrap(),
            "--registry",
            reg.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("delivery-options.component.wasm refused"),
        "{stderr}"
    );
    // The SDK logs the exception before the trap: the refusal gives that reason.
    assert!(
        stderr.contains(
            "describe() failed: describe failed: ValueError: no topics configured (its last error log line); then"
        ),
        "{stderr}"
    );
    let list = ok(&oberon(
        &tools,
        &["list", "--registry", reg.to_str().unwrap()],
    ));
    assert!(list.starts_with("no components in"), "{list}");
}

/// The Python SDK's plain-Python unit tests (`python3 -m unittest` in
/// `components/sdk-py`), so `cargo test` runs them.
#[test]
fn python_sdk_unit_tests_pass() {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../components/sdk-py");
    let python = std::env::var_os("OBERON_PYTHON").unwrap_or_else(|| "python3".into());
    let out = Command::new(python)
        .args(["-m", "unittest", "-v"])
        .current_dir(&sdk)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let ran: usize = stderr
        .lines()
        .find_map(|l| l.strip_prefix("Ran "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(ran >= 10, "ran {ran} tests: {stderr}");
}
