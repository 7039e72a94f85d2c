//! The four systems: how each is laid out on disk and started.
//!
//! Every system serves the same three pages: `/bench` (four parts, all fast),
//! `/slow` (part 3 answers after the slow delay; it is not critical, so the page
//! shows its fallback once the part timeout passes) and `/critical` (part 1, the
//! critical one, answers after the critical delay). Every part has the same timeout
//! everywhere: Oberon's data-source deadline, Podium's podlet timeout, Tailor's
//! fragment timeout.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::parts;
use oberon_bench::process::{Server, free_port};

/// The critical part (1-based).
pub const CRITICAL_PART: usize = 1;
/// The part made slow in `/slow`.
pub const SLOW_PART: usize = 3;

/// Part delays (ms) of each page, shared by every system.
#[derive(Debug, Clone, Copy)]
pub struct Delays {
    pub slow_ms: u64,
    pub critical_ms: u64,
}

impl Delays {
    pub fn pages(self) -> [(&'static str, [u64; parts::PARTS]); 3] {
        let mut slow = [0; parts::PARTS];
        slow[SLOW_PART - 1] = self.slow_ms;
        let mut critical = [0; parts::PARTS];
        critical[CRITICAL_PART - 1] = self.critical_ms;
        [
            ("/bench", [0; parts::PARTS]),
            ("/slow", slow),
            ("/critical", critical),
        ]
    }
}

/// A started system: its server and address.
pub struct Running {
    pub server: Server,
    pub addr: String,
}

/// Lay out Oberon's site in `dir` (with the render cache at its default size, or off):
/// the `bench-part` component, the three compared pages, and one page per part (`/part/N`, whose layout is that part alone, so the
/// harness can read each part's HTML from Oberon itself).
pub fn oberon_site(
    dir: &Path,
    bff: &str,
    part_timeout_ms: u64,
    delays: Delays,
    render_cache: bool,
) -> anyhow::Result<()> {
    for sub in ["pages", "layouts", "components"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let artifact = oberon_test_artifacts::artifact("bench-part");
    oberon_renderer::component_set::install(
        &dir.join("components"),
        "bench-part",
        artifact.wasm(),
        None,
    )
    .context("installing bench-part")?;
    // The page deadline does not bind: the parts' own deadlines do, as in the peers.
    let page_deadline_ms = part_timeout_ms + 1000;
    std::fs::write(
        dir.join("site.toml"),
        format!(
            "components = \"components\"\n\n[bffs]\nparts = \"{bff}\"\n\n[limits]\npage_deadline_ms = {page_deadline_ms}\n{}",
            // The default size, or off.
            if render_cache {
                ""
            } else {
                "\n[render_cache]\nmax_mib = 0\n"
            }
        ),
    )?;
    let mut layout = String::from(
        "<!doctype html>\n<html lang=\"{{ lang }}\">\n<head>\n<meta charset=\"utf-8\">\n<title>Offers</title>\n{{ head }}\n</head>\n<body>\n<main>\n",
    );
    for n in parts::numbers() {
        let _ = writeln!(layout, "{{{{ slots.p{n} }}}}");
    }
    layout.push_str("</main>\n{{ scripts }}\n</body>\n</html>\n");
    std::fs::write(dir.join("layouts/bench.html"), layout)?;
    std::fs::write(dir.join("layouts/part.html"), "{{ slots.p }}")?;

    for (route, delays) in delays.pages() {
        let mut page = page_head(route, "bench.html");
        for (i, delay) in delays.iter().enumerate() {
            page.push_str(&data_source(i + 1, *delay, part_timeout_ms));
        }
        for n in parts::numbers() {
            page.push_str(&slot(&format!("p{n}"), n));
        }
        let name = route.trim_start_matches('/');
        std::fs::write(dir.join(format!("pages/{name}.toml")), page)?;
    }
    for n in parts::numbers() {
        let mut page = page_head(&format!("/part/{n}"), "part.html");
        page.push_str(&data_source(n, 0, part_timeout_ms));
        page.push_str(&slot("p", n));
        std::fs::write(dir.join(format!("pages/part-{n}.toml")), page)?;
    }
    Ok(())
}

fn page_head(route: &str, layout: &str) -> String {
    format!(
        "route = \"{route}\"\nlayout = \"{layout}\"\nteam = \"bench\"\ncache = {{ class = \"public\", ttl_s = 60 }}\n\n"
    )
}

/// Part `n`'s data source. A delayed one carries the request's `r` so that each
/// request makes its own fetch (the data client would otherwise let a request join
/// the previous request's fetch, still running past that request's deadline).
fn data_source(n: usize, delay_ms: u64, deadline_ms: u64) -> String {
    let url = match delay_ms {
        0 => format!("{{bff.parts}}/data/{n}"),
        d => format!("{{bff.parts}}/data/{n}?delay_ms={d}&r={{query.r}}"),
    };
    // Private: the parts need no client-side state, so their data is not embedded.
    format!(
        "[[data]]\ntopic = \"part-{n}\"\nurl = \"{url}\"\ndeadline_ms = {deadline_ms}\nprivate = true\n\n"
    )
}

/// Slot of part `n`: the one `bench-part` component placed four times, each placement
/// choosing its part by props and reading only that part's topic (so it waits for no
/// other part's data, as the peers' fragments do not).
fn slot(name: &str, n: usize) -> String {
    format!(
        "[[slots]]\nname = \"{name}\"\ncomponent = \"bench-part\"\nprops = {{ topic = \"part-{n}\" }}\nreads = [\"part-{n}\"]\nfallback = '{}'\ncritical = {}\n\n",
        parts::fallback(n),
        n == CRITICAL_PART
    )
}

/// The bytes of the page around the four parts: five strings. Fails unless `page`
/// holds each part exactly where the layout puts it, in order.
pub fn skeleton(page: &str, parts_html: &[String]) -> anyhow::Result<Vec<String>> {
    let mut skeleton = Vec::new();
    let mut rest = page;
    for (i, part) in parts_html.iter().enumerate() {
        let at = rest
            .find(part.as_str())
            .with_context(|| format!("part {} is not in Oberon's page", i + 1))?;
        skeleton.push(rest[..at].to_string());
        rest = &rest[at + part.len()..];
    }
    skeleton.push(rest.to_string());
    Ok(skeleton)
}

/// The configuration both Node peers read.
pub fn peer_config(
    path: &Path,
    port: u16,
    parts_origin: &str,
    part_timeout_ms: u64,
    skeleton: &[String],
    delays: Delays,
) -> anyhow::Result<()> {
    let pages: serde_json::Map<String, serde_json::Value> = delays
        .pages()
        .into_iter()
        .map(|(route, d)| (route.to_string(), serde_json::json!(d)))
        .collect();
    let config = serde_json::json!({
        "port": port,
        "parts": parts_origin,
        "timeout_ms": part_timeout_ms,
        "critical": CRITICAL_PART,
        "skeleton": skeleton,
        "pages": pages,
    });
    std::fs::write(path, serde_json::to_vec_pretty(&config)?)?;
    Ok(())
}

/// Where the harness's inputs live.
pub struct Paths {
    /// `bench/peers`: the Node peers' package and scripts.
    pub peers: PathBuf,
    pub renderer: PathBuf,
    /// `--baseline-renderer`, if given.
    pub baseline: Option<PathBuf>,
    pub node: PathBuf,
    pub this_exe: PathBuf,
    pub work: PathBuf,
}

/// What a measured renderer keeps of its own telemetry.
pub enum Observed<'a> {
    /// Nothing: a baseline binary, which may predate the flags.
    Nothing,
    /// Its metrics, as in production (`--ops-listen`, on a port nobody scrapes here:
    /// the exporter folds samples in every few seconds either way).
    Metrics,
    /// Its metrics, and traces of 1 % of its pages sent over OTLP to `endpoint`.
    MetricsAndTraces { endpoint: &'a str },
}

/// The sampling of `Observed::MetricsAndTraces`: what a production site would set.
pub const TRACE_SAMPLING: &str = "0.01";

/// The renderer at `renderer` serving `site`, keeping what `observed` says.
pub fn start_oberon(
    paths: &Paths,
    renderer: &Path,
    site: &Path,
    cpus: Option<&str>,
    observed: Observed<'_>,
) -> anyhow::Result<Running> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let mut argv = vec![
        "--site".to_string(),
        site.display().to_string(),
        "--listen".into(),
        addr.clone(),
    ];
    if !matches!(observed, Observed::Nothing) {
        argv.extend(["--ops-listen".into(), format!("127.0.0.1:{}", free_port()?)]);
    }
    let env: Vec<(&str, &str)> = match observed {
        Observed::MetricsAndTraces { endpoint } => vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", TRACE_SAMPLING),
        ],
        _ => Vec::new(),
    };
    let server = Server::start(
        "oberon",
        cpus,
        renderer,
        &argv,
        &env,
        paths.work.join("oberon.log"),
    )?;
    Ok(Running { server, addr })
}

pub fn start_node(
    name: &str,
    script: &str,
    paths: &Paths,
    config: &Path,
    port: u16,
    cpus: Option<&str>,
) -> anyhow::Result<Running> {
    let server = Server::start(
        name,
        cpus,
        &paths.node,
        &[
            paths.peers.join(script).display().to_string(),
            config.display().to_string(),
        ],
        &[("NODE_ENV", "production")],
        paths.work.join(format!("{name}.log")),
    )?;
    Ok(Running {
        server,
        addr: format!("127.0.0.1:{port}"),
    })
}

/// This executable in one of its server roles (`serve-parts`, `serve-static`).
pub fn start_self(
    name: &str,
    paths: &Paths,
    args: &[String],
    cpus: Option<&str>,
) -> anyhow::Result<Running> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let mut argv = args.to_vec();
    argv.extend(["--listen".into(), addr.clone()]);
    let server = Server::start(
        name,
        cpus,
        &paths.this_exe,
        &argv,
        &[],
        paths.work.join(format!("{name}.log")),
    )?;
    Ok(Running { server, addr })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skeleton_is_the_page_around_its_parts() {
        let parts = vec!["<a>".to_string(), "<b>".into(), "<c>".into(), "<d>".into()];
        let s = skeleton("head<a>1<b><c>2<d>tail", &parts).expect("found");
        assert_eq!(s, ["head", "1", "", "2", "tail"]);
        assert!(skeleton("head<b><a><c><d>", &parts).is_err());
    }
}
