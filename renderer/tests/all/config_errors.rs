//! Configuration errors, checked against their full expected text: each
//! `tests/config-errors/NAME.toml` is a page (or, named `site-*.toml`, a whole
//! `site.toml`) whose site must refuse to start with the message in `NAME.err`
//! (`$SITE` stands for the site directory). Run with `BLESS=1`
//! to rewrite the `.err` files after a deliberate change of wording.

use crate::support::{TestSite, config_cases_dir};

const FIXED_LAYOUT: &str =
    "<html><head>{{ head }}</head><body>{{ slots.main }}{{ scripts }}</body></html>";

async fn start_error(site: &TestSite) -> String {
    let err = match site.start().await {
        Ok(_) => panic!("site started, but it should have been refused"),
        Err(e) => e.to_string(),
    };
    err.replace(&site.path().display().to_string(), "$SITE")
}

fn fresh_site() -> TestSite {
    let site = TestSite::new(&[("events", "http://127.0.0.1:9".into())]);
    site.install(&["chain-source", "chain-sink", "relay-a", "relay-b"]);
    site.layout("fixed.html", FIXED_LAYOUT);
    // Parses, but fails whenever it renders.
    site.layout("fails.html", "{% include \"nowhere.html\" %}");
    site
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_configuration_errors_name_file_line_and_fix() {
    let mut cases: Vec<_> = std::fs::read_dir(config_cases_dir())
        .expect("cases")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 8,
        "expected the config-error cases, found {}",
        cases.len()
    );
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    for case in cases {
        let name = case
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let site = fresh_site();
        let text = std::fs::read_to_string(&case).expect("case");
        if name.starts_with("site-") {
            // A `site-*.toml` case is the whole site.toml.
            std::fs::write(site.path().join("site.toml"), text).expect("site.toml");
        } else {
            site.page(&format!("{name}.toml"), &text);
        }
        let actual = start_error(&site).await;
        let expected_path = case.with_extension("err");
        if bless {
            std::fs::write(&expected_path, &actual).expect("bless");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            failures.push(format!("--- {name}: expected\n{expected}--- got\n{actual}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_configuration_errors() {
    let site = fresh_site();
    std::fs::write(
        site.path().join("site.toml"),
        "components = \"components\"\n[limits]\npage_deadline = 5\n",
    )
    .expect("write");
    let err = start_error(&site).await;
    assert!(
        err.starts_with("1 configuration error:\n$SITE/site.toml:3:1: unknown field `page_deadline`, expected one of"),
        "{err}"
    );

    let site = fresh_site();
    std::fs::remove_dir_all(site.path().join("components/relay-a")).expect("rm");
    std::fs::write(
        site.path().join("components/chain-sink/component.wasm"),
        b"not wasm",
    )
    .expect("write");
    site.page("ok.toml", "route = \"/\"\nlayout = \"test.html\"\nteam = \"t\"\n[[slots]]\nname = \"a\"\ncomponent = \"chain-source\"\n");
    let err = start_error(&site).await;
    assert!(err.contains("$SITE/components/chain-sink/component.wasm: component chain-sink: not a valid component"), "{err}");
    assert!(
        err.contains("help: rebuild it against components/wit/v0.2.0"),
        "{err}"
    );
}
