//! What the soak counts while it runs ([`Recorder`]) and the table it prints at the
//! end: requests by class and status, violations (the first few in full), each
//! process's memory and file descriptors at start and end, and latency percentiles
//! per class and per renderer phase.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::load::Class;
use crate::policy::Observed;
use crate::schedule::Outcome;
use crate::stack::Usage;

/// How many violating responses are printed in full.
const SHOWN_IN_FULL: usize = 5;
/// The most a process's memory or descriptors may grow between start and end.
pub const MAX_GROWTH: f64 = 0.10;

#[derive(Default)]
struct Counts {
    by_status: BTreeMap<(Class, String), u64>,
    shed: u64,
    not_sent: u64,
    x_cache: BTreeMap<String, u64>,
    violations: u64,
    reasons: BTreeMap<String, u64>,
    in_full: Vec<String>,
    latency_us: BTreeMap<Class, Vec<u64>>,
    phases_us: BTreeMap<String, Vec<u64>>,
}

#[derive(Default)]
pub struct Recorder {
    counts: Mutex<Counts>,
}

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn not_sent(&self) {
        self.lock().not_sent += 1;
    }

    pub fn record(&self, o: &Observed, violations: Vec<String>) {
        let mut c = self.lock();
        let status = o
            .status
            .map_or_else(|| "no answer".to_string(), |s| s.to_string());
        *c.by_status.entry((o.class, status)).or_default() += 1;
        if o.shed() {
            c.shed += 1;
        }
        let x_cache = o.header("x-cache").unwrap_or("-").to_string();
        *c.x_cache.entry(x_cache.clone()).or_default() += 1;
        if o.status.is_some() {
            c.latency_us
                .entry(o.class)
                .or_default()
                .push(o.latency.as_micros() as u64);
        }
        // A cached copy carries the Server-Timing of the render that made it.
        if matches!(x_cache.as_str(), "MISS" | "PASS")
            && let Some(timing) = o.header("server-timing")
        {
            for (phase, us) in server_timing(timing) {
                c.phases_us.entry(phase).or_default().push(us);
            }
        }
        if violations.is_empty() {
            return;
        }
        c.violations += 1;
        for reason in &violations {
            *c.reasons
                .entry(format!("{}: {reason}", o.class.name()))
                .or_default() += 1;
        }
        if c.in_full.len() < SHOWN_IN_FULL {
            c.in_full.push(in_full(o, &violations));
        }
    }
}

/// `name;dur=1.23, other;dur=4` → (name, µs); entries without `dur` are skipped.
fn server_timing(value: &str) -> Vec<(String, u64)> {
    value
        .split(',')
        .filter_map(|entry| {
            let mut parts = entry.trim().split(';');
            let name = parts.next()?.trim().to_string();
            let dur = parts.find_map(|p| p.trim().strip_prefix("dur="))?;
            let ms: f64 = dur.parse().ok()?;
            Some((name, (ms * 1000.0) as u64))
        })
        .collect()
}

fn in_full(o: &Observed, violations: &[String]) -> String {
    let mut text = format!(
        "GET {} ({}{}) after {:.0} ms\n  violates: {}\n",
        o.path,
        o.class.name(),
        o.user.map(|u| format!(", user {u}")).unwrap_or_default(),
        o.latency.as_secs_f64() * 1e3,
        violations.join("; ")
    );
    match o.status {
        None => {
            let _ = writeln!(text, "  {}", o.error.as_deref().unwrap_or(""));
        }
        Some(status) => {
            let _ = writeln!(text, "  HTTP {status}");
            for (name, value) in &o.headers {
                let _ = writeln!(
                    text,
                    "  {name}: {}",
                    String::from_utf8_lossy(value.as_bytes())
                );
            }
            let body: String = o.body.chars().take(1500).collect();
            let _ = writeln!(
                text,
                "\n{body}{}",
                if o.body.len() > 1500 { "…" } else { "" }
            );
        }
    }
    text
}

/// One process's usage at start and end.
pub struct Growth {
    pub name: String,
    pub pid: u32,
    /// KiB the RSS may grow by on top of the limit (a bounded cache's storage).
    pub rss_allowance_kib: u64,
    pub start: Usage,
    pub end: Option<Usage>,
}

impl Growth {
    fn ratio(start: u64, end: u64) -> f64 {
        if start == 0 {
            return 0.0;
        }
        end as f64 / start as f64 - 1.0
    }

    /// Why this process broke the growth limit, if it did.
    pub fn violation(&self) -> Option<String> {
        let Some(end) = self.end else {
            return Some(format!("{} (pid {}) is gone", self.name, self.pid));
        };
        let rss = Self::ratio(
            self.start.rss_kib,
            end.rss_kib.saturating_sub(self.rss_allowance_kib),
        );
        let fds = Self::ratio(self.start.fds, end.fds);
        (rss > MAX_GROWTH || fds > MAX_GROWTH).then(|| {
            format!(
                "{}: RSS {:+.1} %{}, descriptors {:+.1} % (limit {:.0} %)",
                self.name,
                rss * 100.0,
                allowance_note(self.rss_allowance_kib),
                fds * 100.0,
                MAX_GROWTH * 100.0
            )
        })
    }
}

pub struct Summary<'a> {
    pub recorder: &'a Recorder,
    pub outcome: &'a Outcome,
    pub growth: &'a [Growth],
    pub measured: Duration,
    pub rate: f64,
}

impl Summary<'_> {
    /// Everything that makes the run fail.
    pub fn failures(&self) -> Vec<String> {
        let c = self.recorder.lock();
        let mut out = Vec::new();
        if c.violations > 0 {
            out.push(format!("{} responses outside the policy", c.violations));
        }
        out.extend(self.outcome.violations.iter().cloned());
        out.extend(self.outcome.slowloris.iter().filter_map(|t| t.violations()));
        out.extend(self.growth.iter().filter_map(Growth::violation));
        out
    }

    pub fn print(&self) {
        let c = self.recorder.lock();
        let total: u64 = c.by_status.values().sum();
        println!(
            "\n== bench/soak: {:.1} min measured at {} requests/s ({} answers in all, warm-up included) ==\n",
            self.measured.as_secs_f64() / 60.0,
            self.rate,
            total
        );
        println!("Requests by class and status");
        println!("  {:<26} {:>8}  statuses", "class", "requests");
        for class in Class::ALL {
            let statuses: Vec<String> = c
                .by_status
                .iter()
                .filter(|((k, _), _)| *k == class)
                .map(|((_, s), n)| format!("{s}: {n}"))
                .collect();
            let n: u64 = c
                .by_status
                .iter()
                .filter(|((k, _), _)| *k == class)
                .map(|(_, n)| n)
                .sum();
            println!("  {:<26} {:>8}  {}", class.name(), n, statuses.join(", "));
        }
        let caches: Vec<String> = c.x_cache.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        println!("  CDN (X-Cache): {}", caches.join(", "));
        println!(
            "  shed by the renderer (503, Retry-After, no-store; allowed): {}; not sent (256 in flight): {}",
            c.shed, c.not_sent
        );

        println!("\nResponses outside the policy: {}", c.violations);
        for (reason, n) in c.reasons.iter().take(20) {
            println!("  {n:>6}  {reason}");
        }
        for (i, full) in c.in_full.iter().enumerate() {
            println!("\n--- violating response {} ---\n{full}", i + 1);
        }
        println!(
            "\nFaults whose effect was not seen: {}",
            self.outcome.violations.len()
        );
        for v in &self.outcome.violations {
            println!("  {v}");
        }
        println!("\nSlowloris (a connection must be closed within 10 s, +3 s slack)");
        for t in &self.outcome.slowloris {
            println!(
                "  {:<10} closed by the server: {:>5}, longest held {:>5.1} s, held too long: {}, refused: {}",
                t.target,
                t.closed,
                t.longest.as_secs_f64(),
                t.held_too_long,
                t.refused
            );
        }

        println!(
            "\nProcesses (after warm-up and after the run, each when idle; growth limit {:.0} %)",
            MAX_GROWTH * 100.0
        );
        println!(
            "  {:<20} {:>7} {:>10} {:>10} {:>7} {:>6} {:>6} {:>7}",
            "process", "pid", "RSS start", "RSS end", "growth", "fds", "fds", "growth"
        );
        for g in self.growth {
            let end = g.end.unwrap_or_default();
            println!(
                "  {:<20} {:>7} {:>8} M {:>8} M {:>+6.1}% {:>6} {:>6} {:>+6.1}%{}",
                g.name,
                g.pid,
                mib(g.start.rss_kib),
                mib(end.rss_kib),
                Growth::ratio(g.start.rss_kib, end.rss_kib) * 100.0,
                g.start.fds,
                end.fds,
                Growth::ratio(g.start.fds, end.fds) * 100.0,
                if g.rss_allowance_kib > 0 {
                    format!(
                        "  (RSS may also grow by its {} M cache storage)",
                        g.rss_allowance_kib / 1024
                    )
                } else {
                    String::new()
                }
            );
        }

        println!("\nLatency, end to end through Varnish (ms)");
        println!(
            "  {:<26} {:>8} {:>8} {:>8} {:>8}",
            "class", "n", "p50", "p99", "max"
        );
        for (class, samples) in &c.latency_us {
            row(class.name(), samples);
        }
        println!("\nRenderer phases, from Server-Timing of answers the CDN did not cache (ms)");
        println!(
            "  {:<26} {:>8} {:>8} {:>8} {:>8}",
            "phase", "n", "p50", "p99", "max"
        );
        for (phase, samples) in &c.phases_us {
            row(phase, samples);
        }
    }
}

fn allowance_note(kib: u64) -> String {
    if kib == 0 {
        String::new()
    } else {
        format!(" beyond its {} M storage", kib / 1024)
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn row(name: &str, samples: &[u64]) {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "  {:<26} {:>8} {:>8.1} {:>8.1} {:>8.1}",
        name,
        sorted.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_entries_with_durations() {
        assert_eq!(
            server_timing("data;dur=1.50, components;dur=0.25, reused;desc=3"),
            vec![("data".to_string(), 1500), ("components".to_string(), 250)]
        );
    }

    #[test]
    fn growth_over_the_limit_is_a_violation() {
        let start = Usage {
            rss_kib: 1000,
            fds: 20,
        };
        let grown = |rss_kib, fds| Growth {
            name: "p".into(),
            pid: 1,
            rss_allowance_kib: 0,
            start,
            end: Some(Usage { rss_kib, fds }),
        };
        assert!(grown(1099, 21).violation().is_none());
        // "Under 10 %": exactly 10 % is over.
        assert!(grown(1000, 22).violation().is_some());
        assert!(grown(1101, 20).violation().is_some());
        assert!(grown(1000, 23).violation().is_some());
    }
}
