//! Metrics: recorded through the `metrics` facade, exposed in Prometheus's text format
//! at `GET /metrics` on a service's ops port. The exporter is set up here once, so every
//! service has the same buckets and the same names for what they share
//! (`docs/observability.md` is the catalogue).
//!
//! A service that has no ops port never calls [`Exporter::install`]: the facade's
//! calls are then no-ops, which is what `bench/run` compares against.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::SharedString;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// What `GET /metrics` answers with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The buckets of every duration histogram, in seconds: from a cached page's 100 µs
/// to a deadline's 10 s, with 0.5 s (the page latency objective) among them.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// How often histogram samples recorded since the last scrape are folded in, so that
/// memory stays bounded when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// `oberon_http_server_request_duration_seconds`: OpenTelemetry's
/// `http.server.request.duration`, labelled by its attributes.
pub const HTTP_SERVER_REQUEST_DURATION: &str = "oberon_http_server_request_duration_seconds";

/// `oberon_http_client_request_duration_seconds`: `http.client.request.duration`, by
/// the upstream's configured name.
pub const HTTP_CLIENT_REQUEST_DURATION: &str = "oberon_http_client_request_duration_seconds";

/// The process's Prometheus exporter: what `GET /metrics` renders.
#[derive(Clone)]
pub struct Exporter {
    handle: PrometheusHandle,
}

impl Exporter {
    /// Installs the process's recorder and starts its upkeep, once: later calls (a test
    /// starting a second service in the same process) share the first. Records
    /// `oberon_build_info{service, version}`.
    pub fn install(service: &'static str, version: &'static str) -> Exporter {
        static EXPORTER: OnceLock<Exporter> = OnceLock::new();
        let exporter = EXPORTER.get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&DURATION_BUCKETS)
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                // Only another library's recorder can be there first; ours renders empty.
                tracing::warn!(error = %e, "metrics: a recorder was already installed");
            }
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "metrics: no upkeep thread; scrapes still fold samples in");
            }
            Exporter { handle }
        });
        metrics::gauge!("oberon_build_info", "service" => service, "version" => version).set(1.0);
        exporter.clone()
    }

    /// The exposition text, for `GET /metrics`.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// A service's ops router: `GET /metrics`, calling `observe` first to record what
    /// is state (read as Prometheus scrapes rather than kept up to date on the request
    /// path).
    pub fn app(self, observe: impl Fn() + Clone + Send + Sync + 'static) -> axum::Router {
        axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || async move {
                observe();
                ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], self.render())
            }),
        )
    }
}

/// Records one answered request in [`HTTP_SERVER_REQUEST_DURATION`]. `route` is the
/// matched route *pattern* (never the raw path); `took` runs from the request's head to
/// the response's head.
pub fn http_server_request(
    route: impl Into<SharedString>,
    method: &http::Method,
    status: http::StatusCode,
    took: Duration,
) {
    metrics::histogram!(
        HTTP_SERVER_REQUEST_DURATION,
        "http_route" => route.into(),
        "http_request_method" => method_label(method),
        "http_response_status_code" => status_label(status),
    )
    .record(took.as_secs_f64());
}

/// Records one request to an upstream in [`HTTP_CLIENT_REQUEST_DURATION`].
pub fn http_client_request(upstream: impl Into<SharedString>, took: Duration) {
    metrics::histogram!(HTTP_CLIENT_REQUEST_DURATION, "upstream" => upstream.into())
        .record(took.as_secs_f64());
}

/// A method as OpenTelemetry labels it: the known methods by name, any other as
/// `_OTHER` (a client must not grow the label's values).
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// A status code's three digits, without an allocation for the ones a service sends.
pub fn status_label(status: http::StatusCode) -> SharedString {
    let digits: &'static str = match status.as_u16() {
        200 => "200",
        201 => "201",
        204 => "204",
        206 => "206",
        301 => "301",
        302 => "302",
        303 => "303",
        304 => "304",
        307 => "307",
        308 => "308",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        410 => "410",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        431 => "431",
        500 => "500",
        501 => "501",
        502 => "502",
        503 => "503",
        504 => "504",
        other => return SharedString::from_owned(other.to_string()),
    };
    SharedString::const_str(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_set_share_one_label() {
        assert_eq!(method_label(&http::Method::GET), "GET");
        let custom = http::Method::from_bytes(b"BREW").expect("a valid token");
        assert_eq!(method_label(&custom), "_OTHER");
    }

    #[test]
    fn every_status_label_is_its_three_digits() {
        for code in 100..=599 {
            let status = http::StatusCode::from_u16(code).expect("in range");
            assert_eq!(&*status_label(status), code.to_string(), "{code}");
        }
    }

    #[test]
    fn the_exporter_renders_what_was_recorded_with_the_shared_buckets() {
        let exporter = Exporter::install("test", "0.0.0");
        http_server_request(
            "/events/{id}",
            &http::Method::GET,
            http::StatusCode::OK,
            Duration::from_millis(3),
        );
        let text = exporter.render();
        assert!(
            text.contains(r#"oberon_build_info{service="test",version="0.0.0"} 1"#),
            "{text}"
        );
        let bucket = |le: &str| {
            format!(
                r#"oberon_http_server_request_duration_seconds_bucket{{http_route="/events/{{id}}",http_request_method="GET",http_response_status_code="200",le="{le}"}} "#
            )
        };
        // 3 ms: not in the 2.5 ms bucket, in the 5 ms one.
        let count_in = |le: &str| -> u64 {
            let prefix = bucket(le);
            let line = text
                .lines()
                .find(|l| l.starts_with(&prefix))
                .unwrap_or_else(|| panic!("no bucket le={le} in:\n{text}"));
            line[prefix.len()..].parse().expect("a count")
        };
        assert_eq!(count_in("0.0025"), 0);
        assert!(count_in("0.005") >= 1);
        assert!(count_in("+Inf") >= 1);
    }
}
