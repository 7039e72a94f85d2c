//! The figures: a table for the terminal, and `bench/RESULTS.md` (the same text).

use std::fmt::Write;
use std::process::Command;
use std::time::Duration;

use crate::Args;
use crate::probe::{Sample, quantile};
use crate::systems::{CRITICAL_PART, Paths, SLOW_PART};
use crate::wrk::WrkReport;

/// How a system's page compares with Oberon's bytes.
#[derive(Debug, Clone, Copy)]
pub enum Fidelity {
    Identical,
    /// The four parts, byte for byte and in order, in a page with some markup of the
    /// system's own (`extra_bytes` more than Oberon's).
    SameParts {
        extra_bytes: i64,
    },
}

/// One slow-part page, timed a few times on an idle system.
#[derive(Debug, Clone)]
pub struct SlowCase {
    pub statuses: Vec<u16>,
    pub total: Vec<Duration>,
    pub first_byte: Vec<Duration>,
    /// Whether every answer was right: the slow part's fallback shown, or the critical
    /// part rendered.
    pub as_expected: bool,
}

impl SlowCase {
    pub fn new(samples: &[Sample], expected: impl Fn(&Sample) -> bool) -> Self {
        Self {
            statuses: samples.iter().map(|s| s.status).collect(),
            total: samples.iter().map(|s| s.total).collect(),
            first_byte: samples.iter().map(|s| s.first_byte).collect(),
            as_expected: samples.iter().all(|s| s.status == 200 && expected(s)),
        }
    }

    fn max_total(&self) -> Duration {
        self.total.iter().max().copied().unwrap_or_default()
    }
}

pub struct SystemResult {
    pub name: String,
    pub fidelity: Fidelity,
    pub body_bytes: usize,
    pub wrk: WrkReport,
    /// Time to the response head of the probe's requests during the measured load.
    pub ttfb: Vec<Duration>,
    /// Pages of the probe whose length differs from the page's (a part missing).
    pub short_pages: usize,
    pub probe_pages: usize,
    pub peak_kib: u64,
    /// The server's CPU time (user and system, its whole process tree) over the
    /// measured load, per page served.
    pub cpu_per_page: Option<Duration>,
    pub slow: Option<SlowCase>,
    pub critical: Option<SlowCase>,
    /// `perf report` by object, when `--perf-record` was given.
    pub profile: Option<String>,
}

/// A cost measured in alternating turns ([`crate::run`]'s `alternate`): per round,
/// the throughput of `name` over Oberon's, and its CPU per page over Oberon's.
pub struct Alternating {
    pub name: String,
    pub turn: Duration,
    pub ratios: Vec<f64>,
    pub cpu_ratios: Vec<f64>,
}

impl Alternating {
    /// The median round's throughput ratio.
    pub fn median(&self) -> f64 {
        median(&self.ratios)
    }

    /// The median round's CPU per page ratio.
    pub fn cpu_median(&self) -> f64 {
        median(&self.cpu_ratios)
    }

    /// The rounds' throughput ratios, as percentages, in order.
    fn rounds(&self) -> String {
        percentages(&self.ratios)
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn percentages(values: &[f64]) -> String {
    let each: Vec<String> = values.iter().map(|r| format!("{:.1}", r * 100.0)).collect();
    format!("{} %", each.join(", "))
}

pub fn alternating_line(a: &Alternating) -> String {
    format!(
        "{} / Oberon, alternating: throughput median {:.1} % (rounds {}), CPU per page median {:.1} % (rounds {})",
        label(&a.name),
        a.median() * 100.0,
        a.rounds(),
        a.cpu_median() * 100.0,
        percentages(&a.cpu_ratios)
    )
}

pub fn one_line(r: &SystemResult) -> String {
    format!(
        "{}: {:.0} pages/s, p50 {}, p99 {}, CPU per page {}, peak {} MiB",
        r.name,
        r.wrk.requests_per_s,
        ms(r.wrk.p50),
        ms(r.wrk.p99),
        cpu(r.cpu_per_page),
        r.peak_kib / 1024
    )
}

fn cpu(d: Option<Duration>) -> String {
    d.map_or_else(
        || "?".into(),
        |d| format!("{:.1} µs", d.as_secs_f64() * 1e6),
    )
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// The machine, as the kernel describes it.
pub struct Machine {
    pub cpu: String,
    pub cpus: String,
    pub memory: String,
    pub kernel: String,
    pub load: String,
    pub date: String,
}

impl Machine {
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or_else(
                || "unknown".into(),
                |kib| format!("{:.1} GiB", kib as f64 / 1048576.0),
            );
        Self {
            cpu,
            cpus: output("nproc", &["--all"]),
            memory,
            kernel: output("uname", &["-sr"]),
            load: std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
            date: output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        }
    }
}

pub struct Versions {
    pub lines: Vec<(String, String)>,
}

impl Versions {
    pub fn read(paths: &Paths) -> Self {
        let package = |name: &str| {
            let file = paths
                .peers
                .join("node_modules")
                .join(name)
                .join("package.json");
            std::fs::read_to_string(file)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["version"].as_str().map(str::to_string))
                .unwrap_or_else(|| "?".into())
        };
        let repo = env!("CARGO_MANIFEST_DIR");
        let commit = output("git", &["-C", repo, "rev-parse", "--short", "HEAD"]);
        let dirty = !output("git", &["-C", repo, "status", "--porcelain"]).is_empty();
        let wrk = output("wrk", &["-v"]);
        Self {
            lines: vec![
                (
                    "oberon".into(),
                    format!(
                        "{commit}{}",
                        if dirty { " (with local changes)" } else { "" }
                    ),
                ),
                ("rustc".into(), without_name(&output("rustc", &["-V"]))),
                (
                    "node".into(),
                    output(&paths.node.display().to_string(), &["--version"]),
                ),
                ("@podium/layout".into(), package("@podium/layout")),
                ("@podium/client".into(), package("@podium/client")),
                ("node-tailor".into(), package("node-tailor")),
                (
                    "wrk".into(),
                    without_name(wrk.split(" [").next().unwrap_or_default()),
                ),
            ],
        }
    }
}

/// `rustc 1.95.0 (…)` → `1.95.0 (…)`.
fn without_name(version: &str) -> String {
    version
        .split_once(' ')
        .map_or(version, |(_, v)| v)
        .to_string()
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            if text.trim().is_empty() {
                text = String::from_utf8_lossy(&o.stderr).into_owned();
            }
            text.lines().next().unwrap_or_default().trim().to_string()
        })
        .unwrap_or_default()
}

pub struct Document<'a> {
    pub args: &'a Args,
    pub machine_before: Machine,
    pub machine_after: Machine,
    pub versions: Versions,
    pub page_bytes: usize,
    pub part_bytes: Vec<usize>,
    pub results: Vec<SystemResult>,
    pub alternating: Vec<Alternating>,
    pub elapsed: Duration,
}

impl Document<'_> {
    fn get(&self, name: &str) -> Option<&SystemResult> {
        self.results.iter().find(|r| r.name == name)
    }

    pub fn render(&self) -> String {
        let a = self.args;
        let m = &self.machine_before;
        let mut out = String::new();
        let command = std::env::var("OBERON_BENCH_COMMAND")
            .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" "));
        let _ = writeln!(
            out,
            "# Oberon, Podium, Tailor and the static-bytes limit\n\n\
             Written by `bench/run` (issue 7) on {}; every run rewrites it. Figures from one \
             run on one machine: compare ratios within a run, not figures across machines.\n",
            m.date
        );
        let _ = writeln!(
            out,
            "Command: `{command}` ({:.0} s in all)\n",
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "Machine: {} × {}, {} of memory, {}; load average {} before the run, {} after.\n",
            m.cpus, m.cpu, m.memory, m.kernel, m.load, self.machine_after.load
        );
        let versions: Vec<String> = self
            .versions
            .lines
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "Versions: {}.\n", versions.join(", "));
        let pin = |c: &str| {
            if c.is_empty() {
                "not pinned".to_string()
            } else {
                format!("CPU {c}")
            }
        };
        let _ = writeln!(
            out,
            "Load: `wrk -t1 -c{} -d{}s --latency` on {} after {} s of warm-up, with one \
             probe connection beside it timing the response head (TTFB); the system under \
             test alone on {}; the parts server on {}. Part timeout {} ms everywhere. The \
             page is {} bytes; its parts {} bytes.\n",
            a.connections,
            a.duration_s,
            pin(&a.load_cpus),
            a.warmup_s,
            pin(&a.server_cpus),
            pin(&a.load_cpus),
            a.part_timeout_ms,
            self.page_bytes,
            self.part_bytes
                .iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        );

        let _ = writeln!(out, "## Four-part page, {} connections\n", a.connections);
        let _ = writeln!(
            out,
            "| system | pages/s | CPU per page | p50 | p99 | max | TTFB p50 | TTFB p99 | peak memory | page bytes | errors | probe pages not whole |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &self.results {
            let bytes = match r.fidelity {
                Fidelity::Identical => format!("{} (same)", r.body_bytes),
                Fidelity::SameParts { extra_bytes } => {
                    format!("{} (same parts, {extra_bytes:+})", r.body_bytes)
                }
            };
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {:.1} MiB | {} | {} | {} of {} |",
                label(&r.name),
                r.wrk.requests_per_s,
                cpu(r.cpu_per_page),
                ms(r.wrk.p50),
                ms(r.wrk.p99),
                ms(r.wrk.max),
                ms(quantile(&r.ttfb, 0.5)),
                ms(quantile(&r.ttfb, 0.99)),
                r.peak_kib as f64 / 1024.0,
                bytes,
                r.wrk.non_2xx + r.wrk.socket_errors,
                r.short_pages,
                r.probe_pages,
            );
        }
        out.push('\n');

        let _ = writeln!(out, "## Ratios and targets\n");
        let _ = writeln!(out, "| | measured | target | |");
        let _ = writeln!(out, "|---|---:|---:|---|");
        let oberon = self.get("oberon");
        let rps = |n: &str| self.get(n).map(|r| r.wrk.requests_per_s);
        // The page whose renders are reused must be 15× the peers; the page where
        // nothing is reused 10×; the render cache off is reported beside them.
        for (system, target) in [
            ("oberon", Some(15.0)),
            ("oberon-uncached", None),
            ("oberon-varied", Some(10.0)),
        ] {
            for peer in ["podium", "tailor"] {
                let (Some(o), Some(p)) = (rps(system), rps(peer)) else {
                    continue;
                };
                let ratio = o / p;
                let (target, verdict) = match target {
                    Some(t) => (format!("≥ {t:.0}×"), verdict(ratio >= t)),
                    None => ("(reported)".to_string(), ""),
                };
                let _ = writeln!(
                    out,
                    "| {} / {} throughput | {ratio:.1}× | {target} | {verdict} |",
                    label(system),
                    label(peer),
                );
            }
        }
        for system in ["oberon", "oberon-uncached", "oberon-varied"] {
            if let (Some(o), Some(l)) = (rps(system), rps("limit")) {
                let ratio = o / l;
                let (target, verdict) = if system == "oberon" {
                    ("≥ 40 %", verdict(ratio >= 0.4))
                } else {
                    ("(reported)", "")
                };
                let _ = writeln!(
                    out,
                    "| {} / static-bytes limit | {:.0} % | {target} | {verdict} |",
                    label(system),
                    ratio * 100.0,
                );
            }
        }
        // What traces cost: the same renderer with them on, sampled as in production.
        // Held to its target in alternating turns, where the machine's drift cancels.
        let alternating = |name: &str| self.alternating.iter().find(|a| a.name == name);
        if let (Some(o), Some(t)) = (oberon, self.get("oberon-traced")) {
            let ratio = t.wrk.requests_per_s / o.wrk.requests_per_s;
            let (target, verdict) = match alternating("oberon-traced") {
                Some(_) => ("(reported)", ""),
                None => ("≥ 95 %", verdict(ratio >= 0.95)),
            };
            let _ = writeln!(
                out,
                "| Oberon, traces on (1 % sampled) / Oberon throughput, each measured alone | {:.1} % | {target} | {verdict} |",
                ratio * 100.0,
            );
        }
        if let Some(a) = alternating("oberon-traced") {
            let ratio = a.median();
            let _ = writeln!(
                out,
                "| Oberon, traces on (1 % sampled) / Oberon throughput, alternating (median of {}) | {:.1} % | ≥ 95 % | {} |",
                a.ratios.len(),
                ratio * 100.0,
                verdict(ratio >= 0.95)
            );
            let _ = writeln!(
                out,
                "| Oberon, traces on (1 % sampled) / Oberon CPU per page, alternating (median of {}) | {:.1} % | (reported) |  |",
                a.cpu_ratios.len(),
                a.cpu_median() * 100.0,
            );
        }
        if let Some(a) = alternating("oberon-baseline") {
            let _ = writeln!(
                out,
                "| Oberon / baseline renderer throughput, alternating (median of {}) | {:.2}× | (reported) |  |",
                a.ratios.len(),
                1.0 / a.median()
            );
        }
        // A change's cost: this renderer against the baseline's, both figures.
        if let (Some(o), Some(b)) = (oberon, self.get("oberon-baseline")) {
            let _ = writeln!(
                out,
                "| Oberon / baseline renderer throughput | {:.2}× | (reported) |  |",
                o.wrk.requests_per_s / b.wrk.requests_per_s
            );
            if let (Some(oc), Some(bc)) = (o.cpu_per_page, b.cpu_per_page) {
                let _ = writeln!(
                    out,
                    "| Oberon / baseline renderer CPU per page | {:.2}× | (reported) |  |",
                    oc.as_secs_f64() / bc.as_secs_f64()
                );
            }
        }
        if let Some(o) = oberon {
            let _ = writeln!(
                out,
                "| Oberon p99 at {} connections | {} | < 10 ms | {} |",
                a.connections,
                ms(o.wrk.p99),
                verdict(o.wrk.p99 < Duration::from_millis(10))
            );
            if let Some(slow) = &o.slow {
                let late = slow
                    .max_total()
                    .saturating_sub(Duration::from_millis(a.part_timeout_ms));
                let _ = writeln!(
                    out,
                    "| Oberon page with a {} ms part: past its {} ms deadline (worst of {}) | {} | ≤ 10 ms | {} |",
                    a.slow_part_ms,
                    a.part_timeout_ms,
                    slow.total.len(),
                    ms(late),
                    verdict(late <= Duration::from_millis(10) && slow.as_expected)
                );
                let first = slow.first_byte.iter().copied().max().unwrap_or_default();
                let _ = writeln!(
                    out,
                    "| Oberon page with a {} ms part: first byte (worst of {}) | {} | ≤ 5 ms | {} |",
                    a.slow_part_ms,
                    slow.first_byte.len(),
                    ms(first),
                    verdict(first <= Duration::from_millis(5))
                );
            }
        }
        out.push('\n');
        for a in &self.alternating {
            let _ = writeln!(
                out,
                "Alternating turns of {} s, per round: {} / Oberon throughput {}; CPU per page {}.\n",
                a.turn.as_secs(),
                label(&a.name),
                a.rounds(),
                percentages(&a.cpu_ratios)
            );
        }

        let _ = writeln!(
            out,
            "## Slow parts (idle system, {} requests each, one after another)\n\n\
             `/slow`: part {SLOW_PART} (not critical) answers after {} ms, past the {} ms part \
             timeout, so the page must show its fallback. `/critical`: part {CRITICAL_PART} (critical: \
             Oberon's critical slot, Podium's throwable podlet, Tailor's primary fragment) \
             answers after {} ms.\n",
            a.slow_samples, a.slow_part_ms, a.part_timeout_ms, a.critical_part_ms
        );
        let _ = writeln!(
            out,
            "| system | `/slow` complete (median, worst) | `/slow` TTFB | fallback shown | `/critical` complete (median, worst) | `/critical` TTFB | `/critical` complete | statuses |"
        );
        let _ = writeln!(out, "|---|---:|---:|---|---:|---:|---|---|");
        for r in &self.results {
            let (Some(slow), Some(critical)) = (&r.slow, &r.critical) else {
                continue;
            };
            let _ = writeln!(
                out,
                "| {} | {}, {} | {} | {} | {}, {} | {} | {} | {} |",
                label(&r.name),
                ms(quantile(&slow.total, 0.5)),
                ms(slow.max_total()),
                ms(quantile(&slow.first_byte, 0.5)),
                yes(slow.as_expected),
                ms(quantile(&critical.total, 0.5)),
                ms(critical.max_total()),
                ms(quantile(&critical.first_byte, 0.5)),
                yes(critical.as_expected),
                statuses(slow, critical),
            );
        }
        out.push('\n');
        for r in &self.results {
            if let Some(profile) = &r.profile {
                let _ = writeln!(
                    out,
                    "## Where {}'s time goes\n\n`perf record` during a second, unmeasured load; \
                     self time by object (`[JIT]` is the components' compiled WebAssembly):\n\n```\n{profile}\n```\n",
                    label(&r.name)
                );
            }
        }
        out.push_str(NOTES);
        out
    }
}

/// The distinct statuses of both pages' answers.
fn statuses(slow: &SlowCase, critical: &SlowCase) -> String {
    let mut all: Vec<u16> = slow
        .statuses
        .iter()
        .chain(&critical.statuses)
        .copied()
        .collect();
    all.sort_unstable();
    all.dedup();
    all.iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn label(name: &str) -> &str {
    match name {
        "oberon" => "Oberon",
        "oberon-uncached" => "Oberon, render cache off",
        "oberon-varied" => "Oberon, inputs new on every request",
        "oberon-baseline" => "Oberon, baseline renderer",
        "oberon-traced" => "Oberon, traces on (1 % sampled)",
        "podium" => "Podium",
        "tailor" => "Tailor",
        "limit" => "static bytes (limit)",
        other => other,
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

fn yes(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

/// The line in `bench/RESULTS.md` after which the document is kept by hand: earlier
/// measurements, dated, that explain why the code is as it is. A run rewrites only
/// what comes before it.
pub const HISTORY_MARKER: &str =
    "<!-- bench/run rewrites what is above this line and keeps what is below -->";

/// The results document: this run's `generated` text, then the history kept from the
/// `existing` document (from its marker on), or just the marker when it has none.
pub fn keeping_history(generated: &str, existing: &str) -> String {
    let history = existing
        .find(HISTORY_MARKER)
        .map_or(HISTORY_MARKER, |at| &existing[at..]);
    format!(
        "{}

{history}",
        generated.trim_end()
    )
}

const NOTES: &str = "## How the comparison is made fair\n\n\
- The same four parts, byte for byte: Oberon's `bench-part` component renders each \
  (about 2 KB) from its data source's JSON, already in the renderer's data cache (the BFF \
  says `public, max-age=3600`); the harness reads those parts from Oberon and serves \
  them to Podium's podlets and Tailor's fragments from one small Rust parts server. \
  The page around them is Oberon's too: Podium's document template is replaced by it \
  (so Podium's page is the same bytes), Tailor's template is it with `<fragment>` tags, \
  and Tailor adds its own pipe script. The limit serves Oberon's page from memory.\n\
- The peers' parts are as cheap as can be (a Rust server, on the load generator's CPU, \
  not the composer's), as if the podlets ran on other machines. Podium and Tailor \
  cannot cache a part's content, so they fetch four parts per page; Oberon composes its \
  four components per page over cached data. That is the difference being measured. \
  Oberon is measured three ways: as it runs by default (`bench-part` declares its render \
  reusable, so the render cache answers for each part whose inputs were seen before); \
  with the render cache off (`[render_cache] max_mib = 0`: a fresh WebAssembly instance \
  per part per page); and with the cache on but every request's query new (`?v=N`, a \
  wrk script), so the request context — part of every render's inputs — never repeats \
  and nothing is reused (the probe beside that load asks for `/bench`).\n\
- Each system is measured alone, on the same single CPU, with the same load generator \
  and settings. Oberon is the `oberon-renderer` release binary with its defaults \
  (info-level logs, to a file: a line per partial or streamed page, ordinary pages at \
  debug; caching headers, ETag, Server-Timing) and its metrics kept as in production \
  (`--ops-listen`; a `--baseline-renderer` runs without, since an older binary may not \
  know the flag). `oberon-traced` is the same with OpenTelemetry traces on as a \
  production site would set them (`parentbased_traceidratio`, 1 % of pages), exported \
  over OTLP to a sink on the load generator's CPU. Node runs with `NODE_ENV=production`.\n\
- A cost is a few per cent, less than the machine's speed drifts between two systems \
  measured one after the other (the traced ratio read 88 % and 105 % in two runs a few \
  minutes apart). So it is measured again in alternating turns: Oberon and the other \
  (traced, or the baseline renderer) both up on the same CPU, short loads taking turns, \
  first one order then the other; the median round's ratio is the one held to the \
  target.\n\
- Podium caches its podlets' manifests and fallbacks (it fetches them once); Tailor \
  parses its template on every request (its `fetchTemplate` contract; the template \
  itself is held in memory). Same part timeout everywhere: Oberon's data-source \
  deadline, Podium's podlet `timeout`, Tailor's fragment `timeout` (their defaults are \
  1 s and 3 s). A delayed part's URL carries the request's `r` in every system, so \
  Oberon's data client cannot join a previous request's fetch.\n\
- The load is a closed loop: with 50 connections always busy, latency is about 50 \
  divided by the throughput, so a p99 under 10 ms needs well over 5,000 pages/s.\n\
- Peak memory is VmHWM from `/proc/PID/status`, summed over the server process and its \
  descendants, read at the end of the system's turn (warm-up, load and slow pages).\n\
- CPU per page is the server's CPU time (user and system, from `/proc/PID/stat`, its \
  whole process tree) over the measured load, divided by the pages it served then (wrk's \
  and the probe's). The machine's speed of the moment moves it less than throughput: \
  compare a change with `bench/run --baseline-renderer OLD-BINARY`, which measures the \
  other renderer right after this one on the same site and load.\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alternating_cost_is_its_median_round() {
        let traced = Alternating {
            name: "oberon-traced".into(),
            turn: Duration::from_secs(4),
            ratios: vec![0.9, 1.05, 0.97, 0.99],
            cpu_ratios: vec![1.1, 1.0],
        };
        assert!((traced.cpu_median() - 1.05).abs() < 1e-12);
        assert!((traced.median() - 0.98).abs() < 1e-12);
        assert_eq!(traced.rounds(), "90.0, 105.0, 97.0, 99.0 %");
        let odd = Alternating {
            ratios: vec![1.2, 0.8, 1.0],
            ..traced
        };
        assert!((odd.median() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_run_rewrites_the_figures_and_keeps_the_history() {
        let old = format!("# old figures\n\n{HISTORY_MARKER}\n\n## 2026-11-24\n\nkept\n");
        let new = keeping_history("# new figures\n", &old);
        assert_eq!(
            new,
            format!("# new figures\n\n{HISTORY_MARKER}\n\n## 2026-11-24\n\nkept\n")
        );
        assert!(!new.contains("old figures"));
        let first = keeping_history("# figures\n", "");
        assert_eq!(first, format!("# figures\n\n{HISTORY_MARKER}"));
        assert_eq!(keeping_history("# figures\n", &first), first);
    }
}
