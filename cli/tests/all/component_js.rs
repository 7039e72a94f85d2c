//! JavaScript components as an author makes them: `oberon component new --lang
//! javascript`, `build` with ComponentizeJS (installed by `tests/run` into
//! `target/test-tools/`, named in `OBERON_TOOLS_DIR`), `deploy`, and renders in the
//! renderer's engine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oberon_cli::component::javascript::COMPONENTIZE_JS;
use oberon_renderer::bus::BusSnapshot;
use oberon_renderer::component::RequestContext;
use oberon_renderer::engine::{ComponentEngine, ComponentError, EngineLimits};

use crate::component_python::{oberon, ok, test_tools};

/// The tool directory with ComponentizeJS installed, as `tests/run` leaves it; a test
/// that needs it fails, with the command to run, when it is not there.
pub(crate) fn tools_dir() -> PathBuf {
    let dir = test_tools();
    let version = COMPONENTIZE_JS.version;
    let complete = COMPONENTIZE_JS.dir(&dir).join(".complete");
    assert!(
        complete.is_file(),
        "ComponentizeJS {version} is not installed for the tests ({} is missing): run `tests/run --setup-only`, which installs it into target/test-tools/, then run the tests again (tests/run does both)",
        complete.display()
    );
    dir
}

/// `oberon component new NAME --lang javascript` in `parent`, its `src/index.js`
/// replaced when `index` is given.
fn js_component(parent: &Path, tools: &Path, name: &str, index: Option<&str>) -> PathBuf {
    let dir = parent.join(name);
    let dir_text = dir.to_str().unwrap();
    let out = oberon(
        tools,
        &["new", name, "--lang", "javascript", "--dir", dir_text],
    );
    assert!(ok(&out).contains("javascript"));
    if let Some(index) = index {
        std::fs::write(dir.join("src/index.js"), index).unwrap();
    }
    dir
}

const GREETING: &str = r#"
import { Cacheability, defineComponent, Fragment, HeadEntry, Metadata, bus, html, log }
  from '../oberon/sdk-js/index.js';

export const { describe, render } = defineComponent({
  describe() {
    return new Metadata('js-greeting').subscribes('event').publishes('greeting')
      .assets('js-greeting.js').cacheability(Cacheability.Volatile);
  },
  render(ctx, props) {
    const event = bus.get('event');
    if (!event) return Fragment.html('<p>Nothing on.</p>');
    const who = props.str('who') ?? 'world';
    if (props.bool('fail')) throw new RangeError(`no seats for ${who}`);
    bus.publish('greeting', { who, event: event.id });
    log.info(`greeted ${who}`);
    return Fragment.html(
      `<p>Hello, ${html.escape(who)}: ${html.escape(event.name)}` +
      ` #${html.escape(ctx.param('id'))} (${ctx.locale})</p>`,
    ).withHead(HeadEntry.title(event.name));
  },
});
"#;

/// Scaffold, build (version from `package.json`, SHA-256 sidecar), deploy, and render
/// in the renderer's engine with its default limits: the bus both ways, props, the
/// context, head entries, and an exception as the render's error.
#[test]
fn js_component_builds_deploys_and_uses_the_bus() {
    let tools = tools_dir();
    let tmp = tempfile::tempdir().unwrap();
    let dir = js_component(tmp.path(), &tools, "js-greeting", Some(GREETING));
    let out = oberon(&tools, &["build", "--dir", dir.to_str().unwrap()]);
    let stdout = ok(&out);
    let wasm = dir.join("build/js-greeting.component.wasm");
    let fields: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "{stdout}");
    assert_eq!(
        fields[0],
        wasm.canonicalize().unwrap().display().to_string()
    );
    assert_eq!(fields[2], "0.1.0", "the version in package.json");
    let sidecar = std::fs::read_to_string(format!("{}.sha256", fields[0])).unwrap();
    assert_eq!(
        sidecar,
        format!("{}  js-greeting.component.wasm\n", fields[1])
    );
    // The build found ComponentizeJS through the link it made, which git ignores.
    let link = std::fs::read_link(dir.join("oberon/node_modules")).unwrap();
    assert!(link.ends_with("node_modules"), "{}", link.display());

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
        "deployed js-greeting 0.1.0 to stable ((none) → 0.1.0)\n"
    );
    let status = ok(&oberon(
        &tools,
        &["status", "js-greeting", "--registry", reg.to_str().unwrap()],
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
        assert_eq!(&*meta.name, "js-greeting");
        assert_eq!(meta.assets, ["js-greeting.js"]);
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
                assert_eq!(message, "no seats for Cy")
            }
            other => panic!("expected the exception as the render's error: {other:?}"),
        }
        assert!(r.published.is_empty());
    });
}

/// The demo's JavaScript component (`components/examples-js/promo-banner`), copied and
/// broken so that its `describe` throws, does not load: `deploy` (which builds it from
/// `--dir`, against this binary's SDK, as `oberon dev` does) refuses it with the reason,
/// and the registry stays empty.
#[test]
fn deploy_refuses_the_demo_js_component_when_its_describe_throws() {
    let tools = tools_dir();
    let tmp = tempfile::tempdir().unwrap();
    let dir = crate::demo_project(
        "examples-js/promo-banner",
        tmp.path(),
        "src/index.js",
        (
            "    return new Metadata(",
            "    throw new Error('no topics configured');\n    return new Metadata(",
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
        stderr.contains("promo-banner.component.wasm refused"),
        "{stderr}"
    );
    // The SDK logs what describe threw before the trap: the refusal gives that reason.
    assert!(
        stderr.contains(
            "describe() failed: describe failed: Error: no topics configured (its last error log line); then"
        ),
        "{stderr}"
    );
    let list = ok(&oberon(
        &tools,
        &["list", "--registry", reg.to_str().unwrap()],
    ));
    assert!(list.starts_with("no components in"), "{list}");
}

/// Without Node.js on `PATH`, a build says what it needs and how to get it.
#[test]
fn a_js_build_without_node_says_how_to_get_it() {
    let tmp = tempfile::tempdir().unwrap();
    let tools = tmp.path().join("tools");
    let dir = js_component(tmp.path(), &tools, "js-no-node", None);
    let out = Command::new(env!("CARGO_BIN_EXE_oberon"))
        .args(["component", "build", "--dir", dir.to_str().unwrap()])
        .env("OBERON_TOOLS_DIR", &tools)
        .env("PATH", tmp.path().join("empty"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "cannot run node: JavaScript components need Node.js 20 or newer with npm on PATH"
        ),
        "{stderr}"
    );
    assert!(!tools.exists(), "nothing installed without node");
}
