//! Prometheus metrics in the text exposition format: requests by route and status,
//! request duration as a histogram, and backend calls by outcome.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the duration histogram, in seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// (route, status) → count.
    requests: BTreeMap<(String, u16), u64>,
    /// route → histogram.
    durations: BTreeMap<String, Histogram>,
    /// outcome (`ok`, `status_4xx`, `status_5xx`, `timeout`, `error`) → count.
    backend: BTreeMap<&'static str, u64>,
}

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    /// `route` is the matched route pattern (never the raw path: bounded cardinality).
    pub fn request(&self, route: &str, status: u16, took: Duration) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *m.requests.entry((route.to_string(), status)).or_default() += 1;
        let h = m.durations.entry(route.to_string()).or_default();
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    pub fn backend(&self, outcome: &'static str) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *m.backend.entry(outcome).or_default() += 1;
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str("# HELP bff_requests_total Requests answered, by route and status.\n");
        out.push_str("# TYPE bff_requests_total counter\n");
        for ((route, status), n) in &m.requests {
            let _ = writeln!(
                out,
                "bff_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP bff_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE bff_request_duration_seconds histogram\n");
        for (route, h) in &m.durations {
            let route = escape(route);
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                let _ = writeln!(
                    out,
                    "bff_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "bff_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "bff_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "bff_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        out.push_str("# HELP bff_backend_calls_total Calls to the backend, by outcome.\n");
        out.push_str("# TYPE bff_backend_calls_total counter\n");
        for (outcome, n) in &m.backend {
            let _ = writeln!(out, "bff_backend_calls_total{{outcome=\"{outcome}\"}} {n}");
        }
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.request("/v2/items/{id}", 200, Duration::from_millis(7));
        m.request("/v2/items/{id}", 200, Duration::from_millis(300));
        m.backend("ok");
        let text = m.render();
        assert!(text.contains("bff_requests_total{route=\"/v2/items/{id}\",status=\"200\"} 2"));
        assert!(text.contains("le=\"0.005\"} 0"));
        assert!(text.contains("le=\"0.01\"} 1"));
        assert!(text.contains("le=\"0.5\"} 2"));
        assert!(text.contains("le=\"+Inf\"} 2"));
        assert!(text.contains("bff_backend_calls_total{outcome=\"ok\"} 1"));
    }
}
