//! Metrics, through the `metrics` facade, exposed by `metrics-exporter-prometheus` in
//! Prometheus's text format on the ops port: requests by route and status with their
//! duration, backend calls by outcome and duration, and requests to deprecated API
//! versions (so a team knows when it may sunset one). Names as every Oberon service has
//! them: an `oberon_` prefix, base units, OpenTelemetry's HTTP names where they exist.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Upper bounds of the duration histograms, in seconds (the same as Oberon's services).
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The process's exporter. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// Installs the process's recorder, once (tests build many services in one
    /// process: they share it), and folds samples in every few seconds so memory stays
    /// bounded when nobody scrapes.
    pub fn install() -> Metrics {
        static METRICS: OnceLock<Metrics> = OnceLock::new();
        METRICS
            .get_or_init(|| {
                let recorder = PrometheusBuilder::new()
                    .set_buckets(&BUCKETS)
                    .expect("the buckets are not empty")
                    .build_recorder();
                let handle = recorder.handle();
                if let Err(e) = metrics::set_global_recorder(recorder) {
                    tracing::warn!(error = %e, "metrics: a recorder was already installed");
                }
                let upkeep = handle.clone();
                let _ = std::thread::Builder::new()
                    .name("metrics-upkeep".into())
                    .spawn(move || {
                        loop {
                            std::thread::sleep(Duration::from_secs(5));
                            upkeep.run_upkeep();
                        }
                    });
                Metrics { handle }
            })
            .clone()
    }

    /// One answered request. `route` is the matched route pattern (never the raw path:
    /// bounded cardinality); `deprecated` when the answer carried `Deprecation`.
    pub fn request(
        &self,
        route: &str,
        method: &str,
        status: u16,
        deprecated: bool,
        took: Duration,
    ) {
        metrics::histogram!(
            "oberon_http_server_request_duration_seconds",
            "http_route" => route.to_string(),
            "http_request_method" => method.to_string(),
            "http_response_status_code" => status.to_string(),
        )
        .record(took.as_secs_f64());
        if deprecated {
            metrics::counter!(
                "oberon_bff_deprecated_requests_total",
                "api_version" => api_version(route).to_string(),
            )
            .increment(1);
        }
    }

    /// One backend call: `outcome` is `ok`, `status_4xx`, `status_5xx`, `timeout` or
    /// `error`.
    pub fn backend(&self, outcome: &'static str, took: Duration) {
        metrics::counter!("oberon_bff_backend_calls_total", "outcome" => outcome).increment(1);
        metrics::histogram!(
            "oberon_http_client_request_duration_seconds",
            "upstream" => "backend",
        )
        .record(took.as_secs_f64());
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// The API version a route belongs to: its first segment (`/v1/items/{id}` → `v1`).
fn api_version(route: &str) -> &str {
    route
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_requests_backend_calls_and_deprecated_use() {
        let m = Metrics::install();
        m.request("/v9/items/{id}", "GET", 200, true, Duration::from_millis(7));
        m.request(
            "/v9/items/{id}",
            "GET",
            200,
            true,
            Duration::from_millis(300),
        );
        m.backend("ok", Duration::from_millis(2));
        let text = m.render();
        let series = |prefix: &str| -> f64 {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
        };
        let bucket = |le: &str| {
            series(&format!(
                "oberon_http_server_request_duration_seconds_bucket{{http_route=\"/v9/items/{{id}}\",http_request_method=\"GET\",http_response_status_code=\"200\",le=\"{le}\"}}"
            ))
        };
        assert_eq!(bucket("0.005"), 0.0);
        assert_eq!(bucket("0.01"), 1.0);
        assert_eq!(bucket("0.5"), 2.0);
        assert_eq!(bucket("+Inf"), 2.0);
        assert_eq!(
            series("oberon_bff_deprecated_requests_total{api_version=\"v9\"}"),
            2.0
        );
        assert!(series("oberon_bff_backend_calls_total{outcome=\"ok\"}") >= 1.0);
    }

    #[test]
    fn the_api_version_is_the_routes_first_segment() {
        assert_eq!(api_version("/v1/items/{id}"), "v1");
        assert_eq!(api_version("/openapi.json"), "openapi.json");
    }
}
