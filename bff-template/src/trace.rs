//! Traces: this BFF's request and backend spans, exported over OTLP (HTTP and
//! protobuf) when the standard `OTEL_*` variables ask for it, and the W3C
//! `traceparent` that makes them children of the renderer's fetch and parents of the
//! backend's spans.
//!
//! Off unless `OTEL_TRACES_EXPORTER=otlp` or an `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`
//! is set (and `OTEL_SDK_DISABLED` is not `true`). The OpenTelemetry SDK reads the rest
//! as its specification says: the endpoint, `OTEL_TRACES_SAMPLER` and its argument
//! (default `parentbased_always_on`: this BFF follows the renderer's decision),
//! `OTEL_SERVICE_NAME` (default: this crate's name), `OTEL_RESOURCE_ATTRIBUTES`.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// The tracer provider. Dropped, it sends the spans it still holds.
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// The exporter and provider, if the environment asks for traces.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let asked = match var("OTEL_TRACES_EXPORTER").as_deref() {
            Some("otlp") => true,
            Some("none") => false,
            Some(other) => {
                anyhow::bail!(
                    "OTEL_TRACES_EXPORTER={other:?}: only `otlp` and `none` are supported"
                )
            }
            None => {
                var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
                    || var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            }
        };
        let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if !asked || disabled {
            return Ok(None);
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()?;
        let mut resource = opentelemetry_sdk::Resource::builder();
        if var("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name(env!("CARGO_PKG_NAME"));
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        ENABLED.store(true, Ordering::Relaxed);
        Ok(Some(Tracing { provider }))
    }

    /// The `tracing` layer: spans become OpenTelemetry spans, the events in them
    /// span events.
    pub fn layer<S>(
        &self,
    ) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer(env!("CARGO_PKG_NAME")))
            .with_threads(false)
            .with_target(false)
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        ENABLED.store(false, Ordering::Relaxed);
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!("traces: the last spans were not sent: {e}");
        }
    }
}

/// Whether spans are exported.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// `span` continues the trace the request's `traceparent` carries, if any.
pub fn continue_from(span: &tracing::Span, headers: &HeaderMap) {
    if !enabled() {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// `span`'s `traceparent` (and `tracestate`), for a request to the backend. Empty
/// when spans are not exported.
pub fn headers_for(span: &tracing::Span) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if enabled() {
        let cx = span.context();
        if cx.span().span_context().is_valid() {
            TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(&mut headers));
        }
    }
    headers
}
