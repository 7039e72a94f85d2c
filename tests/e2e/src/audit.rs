//! What a customer's page is held to in a real browser: Lighthouse's four categories
//! (mobile emulation, its default simulated throttling) and axe-core's WCAG 2.1 AA
//! rules, both from npm, pinned in `tests/browser/package.json` and its lock file, and
//! installed by `tests/run` (`npm ci`) into `target/test-tools/browser-<hash>`, which it
//! names in `OBERON_BROWSER_TOOLS`. Both run in Debian's chromium.
//!
//! Reports, screenshots and the like go to `target/browser-audits/` ([`artifacts`]),
//! for a reviewer to look at.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::browser::Browser;
use crate::platform::debian_program;

/// Lighthouse's categories, as its report names them.
pub const CATEGORIES: [&str; 4] = ["performance", "accessibility", "best-practices", "seo"];

/// The WCAG 2.1 AA rule tags axe runs.
const WCAG_21_AA: [&str; 4] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

/// `target/browser-audits/`, made if missing: where the tests leave what a reviewer
/// may want to look at.
pub fn artifacts() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/all-<hash> → target/
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test runs from target/<profile>/deps");
    let dir = target.join("browser-audits");
    std::fs::create_dir_all(&dir).expect("mkdir target/browser-audits");
    dir
}

/// The npm packages `tests/run` installed.
fn tools() -> PathBuf {
    let dir = std::env::var_os("OBERON_BROWSER_TOOLS")
        .map(PathBuf::from)
        .expect(
            "OBERON_BROWSER_TOOLS is not set: run the tests with `tests/run`, which installs \
         tests/browser's pinned npm packages (Lighthouse, axe-core) and sets it",
        );
    assert!(
        dir.join("node_modules/lighthouse").is_dir(),
        "{} has no node_modules/lighthouse: run `tests/run --setup-only`",
        dir.display()
    );
    dir
}

/// One page's Lighthouse report, as far as the tests read it.
#[derive(Debug)]
pub struct Lighthouse {
    /// Each category's score, 0 to 100.
    pub scores: BTreeMap<&'static str, f64>,
    pub lcp_ms: f64,
    pub cls: f64,
    pub tbt_ms: f64,
    /// Audits that count towards a category and did not pass: (category, id, title).
    pub failed: Vec<(String, String, String)>,
    /// Every request of the page's load, the page itself first.
    pub requests: Vec<Request>,
    /// The whole report, kept under [`artifacts`].
    pub report: PathBuf,
}

impl Lighthouse {
    /// Run Lighthouse on `url` (with `headers` on every request it makes), keeping its
    /// JSON report as `<artifacts>/<name>.lighthouse.json`. Pages answered with an
    /// error status are audited too (`--ignore-status-code`): the error pages are held
    /// to the same targets.
    pub fn run(name: &str, url: &str, headers: &[(&str, &str)]) -> Self {
        let report = artifacts().join(format!("{name}.lighthouse.json"));
        let chromium = debian_program("OBERON_CHROMIUM", "/usr/bin/chromium");
        let extra: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(k, v)| ((*k).to_string(), json!(v)))
            .collect();
        let profile = tempfile::tempdir().expect("tempdir");
        let mut command = Command::new("node");
        command
            .arg(tools().join("node_modules/lighthouse/cli/index.js"))
            .arg(url)
            .arg("--output=json")
            .arg(format!("--output-path={}", report.display()))
            .arg("--ignore-status-code")
            .arg("--quiet")
            .arg(format!(
                "--chrome-flags=--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
                 --no-first-run --disable-background-networking --disable-component-update \
                 --disable-sync --user-data-dir={}",
                profile.path().display()
            ))
            .env("CHROME_PATH", &chromium);
        if !extra.is_empty() {
            command.arg(format!("--extra-headers={}", Value::Object(extra)));
        }
        let output = command
            .output()
            .expect("run node (Node.js): the browser audits need it on PATH");
        assert!(
            output.status.success(),
            "lighthouse {url}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        Self::read(&report)
    }

    fn read(report: &Path) -> Self {
        let text = std::fs::read_to_string(report).expect("the Lighthouse report");
        let json: Value = serde_json::from_str(&text).expect("the report is JSON");
        if let Some(error) = json.get("runtimeError") {
            panic!("Lighthouse could not audit the page: {error}");
        }
        let mut scores = BTreeMap::new();
        let mut failed = Vec::new();
        for category in CATEGORIES {
            let c = &json["categories"][category];
            let score = c["score"]
                .as_f64()
                .unwrap_or_else(|| panic!("no {category} score in {}", report.display()));
            scores.insert(category, (score * 100.0).round());
            for reference in c["auditRefs"].as_array().into_iter().flatten() {
                let id = reference["id"].as_str().unwrap_or_default();
                let audit = &json["audits"][id];
                let weighs = reference["weight"].as_f64().unwrap_or(0.0) > 0.0;
                if weighs && audit["score"].as_f64().is_some_and(|s| s < 1.0) {
                    let title = audit["title"].as_str().unwrap_or_default();
                    failed.push((category.to_string(), id.to_string(), title.to_string()));
                }
            }
        }
        let requests = json["audits"]["network-requests"]["details"]["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| Request {
                url: item["url"].as_str().unwrap_or_default().into(),
                kind: item["resourceType"].as_str().unwrap_or_default().into(),
                decoded: item["resourceSize"].as_u64().unwrap_or(0),
            })
            .collect();
        let metric = |id: &str| {
            json["audits"][id]["numericValue"]
                .as_f64()
                .unwrap_or(f64::NAN)
        };
        Lighthouse {
            scores,
            lcp_ms: metric("largest-contentful-paint"),
            cls: metric("cumulative-layout-shift"),
            tbt_ms: metric("total-blocking-time"),
            failed,
            requests,
            report: report.to_path_buf(),
        }
    }

    /// The decoded bytes of the requests of `kind` (`Document`, `Script`, `Stylesheet`).
    pub fn bytes_of(&self, kind: &str) -> u64 {
        self.requests
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.decoded)
            .sum()
    }

    /// One line for the test's output.
    pub fn summary(&self) -> String {
        let scores: Vec<String> = self
            .scores
            .iter()
            .map(|(c, s)| format!("{c} {s:.0}"))
            .collect();
        format!(
            "{}; LCP {:.0} ms, CLS {:.3}, TBT {:.0} ms",
            scores.join(", "),
            self.lcp_ms,
            self.cls,
            self.tbt_ms
        )
    }
}

/// One request of a page's load, as Lighthouse saw it.
#[derive(Debug)]
pub struct Request {
    pub url: String,
    /// Chromium's resource type: `Document`, `Script`, `Stylesheet`, `Image`, ...
    pub kind: String,
    /// Its body's size, decoded.
    pub decoded: u64,
}

/// A page's performance budget (`demo/budgets.toml`): what it may weigh, decoded, and
/// how many requests its load may make.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub html_kib: f64,
    pub js_kib: f64,
    pub css_kib: f64,
    pub requests: usize,
}

impl Budget {
    /// The budgets in `file`, by name: tables of `html_kib`, `js_kib`, `css_kib` and
    /// `requests`, every one required.
    pub fn read(file: &Path) -> BTreeMap<String, Budget> {
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let table: toml::Table =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        table
            .iter()
            .map(|(name, budget)| {
                let number = |key: &str| -> f64 {
                    let value = &budget[key];
                    value
                        .as_float()
                        .or_else(|| value.as_integer().map(|i| i as f64))
                        .unwrap_or_else(|| {
                            panic!("{}: [{name}] {key} is not a number", file.display())
                        })
                };
                let requests = budget["requests"]
                    .as_integer()
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or_else(|| {
                        panic!("{}: [{name}] requests is not a count", file.display())
                    });
                let budget = Budget {
                    html_kib: number("html_kib"),
                    js_kib: number("js_kib"),
                    css_kib: number("css_kib"),
                    requests,
                };
                (name.clone(), budget)
            })
            .collect()
    }

    /// The page's figures against this budget, and what goes over it.
    pub fn check(&self, report: &Lighthouse) -> (String, Vec<String>) {
        let kib = |kind: &str| report.bytes_of(kind) as f64 / 1024.0;
        let (html, js, css) = (kib("Document"), kib("Script"), kib("Stylesheet"));
        let requests = report.requests.len();
        let figures = format!(
            "HTML {html:.1}/{} KiB, JS {js:.1}/{} KiB, CSS {css:.1}/{} KiB, requests {requests}/{}",
            self.html_kib, self.js_kib, self.css_kib, self.requests
        );
        let mut over = Vec::new();
        for (what, value, limit) in [
            ("HTML", html, self.html_kib),
            ("JS", js, self.js_kib),
            ("CSS", css, self.css_kib),
        ] {
            if value > limit {
                over.push(format!("{what} {value:.1} KiB > {limit} KiB"));
            }
        }
        if requests > self.requests {
            over.push(format!("{requests} requests > {}", self.requests));
        }
        (figures, over)
    }
}

/// An axe-core violation: the rule, its impact and the elements that break it.
#[derive(Debug)]
pub struct Violation {
    pub rule: String,
    pub impact: String,
    pub help: String,
    pub targets: Vec<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {} — {}",
            self.rule,
            self.impact,
            self.help,
            self.targets.join(", ")
        )
    }
}

/// axe-core's WCAG 2.1 AA violations on the page `browser` shows now.
pub async fn axe(browser: &Browser) -> Vec<Violation> {
    let source = std::fs::read_to_string(tools().join("node_modules/axe-core/axe.min.js"))
        .expect("axe-core's axe.min.js");
    browser
        .execute(&format!("{source}\nreturn true;"), json!([]))
        .await;
    let result = browser
        .execute_async(
            r#"
            const tags = arguments[0], done = arguments[arguments.length - 1];
            axe.run(document, { runOnly: { type: "tag", values: tags } })
              .then(r => done(r.violations.map(v => ({
                rule: v.id, impact: v.impact || "", help: v.help,
                targets: v.nodes.map(n => n.target.join(" "))
              }))))
              .catch(e => done({ error: String(e) }));
            "#,
            json!([WCAG_21_AA]),
        )
        .await;
    assert!(result.get("error").is_none(), "axe failed: {result}");
    result
        .as_array()
        .expect("violations")
        .iter()
        .map(|v| Violation {
            rule: v["rule"].as_str().unwrap_or_default().into(),
            impact: v["impact"].as_str().unwrap_or_default().into(),
            help: v["help"].as_str().unwrap_or_default().into(),
            targets: v["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(String::from))
                .collect(),
        })
        .collect()
}

/// The page's cumulative layout shift so far, as the browser measured it (every
/// `layout-shift` entry not caused by input, from the start of the page's load).
pub async fn layout_shift(browser: &Browser) -> f64 {
    browser
        .execute_async(
            r#"
            const done = arguments[arguments.length - 1];
            let shift = 0;
            new PerformanceObserver(list => {
              for (const e of list.getEntries()) if (!e.hadRecentInput) shift += e.value;
            }).observe({ type: "layout-shift", buffered: true });
            setTimeout(() => done(shift), 500);
            "#,
            json!([]),
        )
        .await
        .as_f64()
        .expect("a number")
}
