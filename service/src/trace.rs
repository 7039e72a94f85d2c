//! Traces: `tracing` spans exported as OpenTelemetry spans over OTLP (HTTP and
//! protobuf), and the W3C `traceparent` that joins one request's spans across
//! services.
//!
//! Off unless the standard `OTEL_*` variables ask for it (`OTEL_TRACES_EXPORTER=otlp`,
//! or an `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`); read and checked once, at start, so a
//! service with a malformed setting refuses to start with the variable's name rather
//! than run without the traces its operator asked for. [`Settings`] is the rule.
//!
//! Sampling is decided once per trace, by its first service (`parentbased_*`: the rest
//! follow the `traceparent`'s flag). A service asks [`sampled`] before it makes the
//! spans it only wants in a sampled trace (the renderer's per-slot and per-fetch
//! spans), so an unsampled page costs one span, not one per part.

use std::sync::atomic::{AtomicBool, Ordering};

use http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Whether this process exports traces: set once, by [`Tracing::install`].
static ENABLED: AtomicBool = AtomicBool::new(false);

/// What the `OTEL_*` variables ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Where spans are sent: the full URL of the collector's traces endpoint.
    pub endpoint: String,
    pub sampler: SamplerSetting,
    /// `OTEL_SERVICE_NAME`, else the service's own name.
    pub service_name: String,
}

/// `OTEL_TRACES_SAMPLER` and its `OTEL_TRACES_SAMPLER_ARG`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerSetting {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedRatio(f64),
}

/// A variable whose value this build cannot honour.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SettingsError {
    #[error("OTEL_TRACES_EXPORTER={0:?}: only `otlp` and `none` are supported")]
    Exporter(String),
    #[error("OTEL_EXPORTER_OTLP_PROTOCOL={0:?}: only `http/protobuf` is supported")]
    Protocol(String),
    #[error("{var}={value:?}: not an http:// or https:// URL")]
    Endpoint { var: &'static str, value: String },
    #[error(
        "OTEL_TRACES_SAMPLER={0:?}: expected always_on, always_off, traceidratio, \
         parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
    )]
    Sampler(String),
    #[error("OTEL_TRACES_SAMPLER_ARG={0:?}: expected a ratio from 0 to 1")]
    SamplerArg(String),
}

/// Why traces could not be set up as asked.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("the OTLP trace exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// The layer a subscriber has below its filter and its log output.
pub type Layer = Option<
    tracing_opentelemetry::OpenTelemetryLayer<
        tracing_subscriber::Registry,
        opentelemetry_sdk::trace::SdkTracer,
    >,
>;

/// Install the process's `tracing` subscriber: `filter`, then `logs` (how it writes
/// its log lines), and the OpenTelemetry layer when the environment asks for traces
/// ([`Settings::from_env`], with `service` as the default service name). Keep the
/// returned [`Tracing`] until the process ends: dropping it sends the last spans.
/// A subscriber already installed (a test's) is left in place.
pub fn init<L>(
    service: &str,
    filter: tracing_subscriber::EnvFilter,
    logs: L,
) -> Result<Option<Tracing>, TraceError>
where
    L: tracing_subscriber::Layer<
            tracing_subscriber::layer::Layered<
                tracing_subscriber::EnvFilter,
                tracing_subscriber::layer::Layered<Layer, tracing_subscriber::Registry>,
            >,
        > + Send
        + Sync
        + 'static,
{
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let tracing = Settings::from_env(service)?
        .map(|settings| Tracing::install(&settings))
        .transpose()?;
    let _ = tracing_subscriber::registry()
        .with(tracing.as_ref().map(Tracing::layer))
        .with(filter)
        .with(logs)
        .try_init();
    Ok(tracing)
}

/// The collector's default traces endpoint (OTLP over HTTP).
const DEFAULT_ENDPOINT: &str = "http://localhost:4318/v1/traces";

impl Settings {
    /// From the process's environment: `None` when traces are not asked for.
    pub fn from_env(service: &str) -> Result<Option<Self>, SettingsError> {
        Self::from_vars(service, |name| {
            std::env::var(name).ok().filter(|v| !v.is_empty())
        })
    }

    /// From `var`, which gives a variable's value (unset and empty alike are `None`).
    pub fn from_vars(
        service: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, SettingsError> {
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let traces_endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let endpoint = var("OTEL_EXPORTER_OTLP_ENDPOINT");
        match var("OTEL_TRACES_EXPORTER").as_deref() {
            Some("none") => return Ok(None),
            Some("otlp") => {}
            Some(other) => return Err(SettingsError::Exporter(other.to_string())),
            None if traces_endpoint.is_none() && endpoint.is_none() => return Ok(None),
            None => {}
        }
        if let Some(protocol) = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .filter(|p| p != "http/protobuf")
        {
            return Err(SettingsError::Protocol(protocol));
        }
        // The signal's own endpoint is used as given; the general one is a base URL
        // the signal's path is appended to (the OTLP exporter specification).
        let endpoint = match (traces_endpoint, endpoint) {
            (Some(url), _) => checked_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url)?,
            (None, Some(base)) => {
                let base = checked_url("OTEL_EXPORTER_OTLP_ENDPOINT", base)?;
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
            (None, None) => DEFAULT_ENDPOINT.to_string(),
        };
        Ok(Some(Settings {
            endpoint,
            sampler: SamplerSetting::from_vars(&var)?,
            service_name: var("OTEL_SERVICE_NAME").unwrap_or_else(|| service.to_string()),
        }))
    }
}

fn checked_url(var: &'static str, value: String) -> Result<String, SettingsError> {
    let ok = http::Uri::try_from(value.as_str()).is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()
    });
    if ok {
        Ok(value)
    } else {
        Err(SettingsError::Endpoint { var, value })
    }
}

impl SamplerSetting {
    /// The specification's default is `parentbased_always_on`: with no sampler set,
    /// every trace a service starts is kept. Production sets a ratio.
    fn from_vars(var: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let ratio = || match var("OTEL_TRACES_SAMPLER_ARG") {
            None => Ok(1.0),
            Some(arg) => arg
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or(SettingsError::SamplerArg(arg)),
        };
        Ok(match var("OTEL_TRACES_SAMPLER").as_deref() {
            None | Some("parentbased_always_on") => Self::ParentBasedAlwaysOn,
            Some("parentbased_always_off") => Self::ParentBasedAlwaysOff,
            Some("parentbased_traceidratio") => Self::ParentBasedRatio(ratio()?),
            Some("always_on") => Self::AlwaysOn,
            Some("always_off") => Self::AlwaysOff,
            Some("traceidratio") => Self::Ratio(ratio()?),
            Some(other) => return Err(SettingsError::Sampler(other.to_string())),
        })
    }

    fn sampler(self) -> Sampler {
        let parent_based = |root| Sampler::ParentBased(Box::new(root));
        match self {
            Self::AlwaysOn => Sampler::AlwaysOn,
            Self::AlwaysOff => Sampler::AlwaysOff,
            Self::Ratio(r) => Sampler::TraceIdRatioBased(r),
            Self::ParentBasedAlwaysOn => parent_based(Sampler::AlwaysOn),
            Self::ParentBasedAlwaysOff => parent_based(Sampler::AlwaysOff),
            Self::ParentBasedRatio(r) => parent_based(Sampler::TraceIdRatioBased(r)),
        }
    }
}

/// The process's tracer provider. Dropped, it sends the spans it still holds.
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// The exporter and provider for `settings`; from here on [`enabled`] is true.
    pub fn install(settings: &Settings) -> Result<Self, TraceError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(settings.endpoint.clone())
            .build()?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(settings.service_name.clone())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(settings.sampler.sampler())
            .with_resource(resource)
            .build();
        ENABLED.store(true, Ordering::Relaxed);
        Ok(Tracing { provider })
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans and the events
    /// inside them into span events. Spans are started when first asked for their
    /// context or when they close, not on every poll of the future they wrap, and
    /// carry only the attributes their fields give (no code location, thread or
    /// target: each would cost every span, sampled or not).
    pub fn layer<S>(
        &self,
    ) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("oberon"))
            .with_context_activation(false)
            .with_tracked_inactivity(false)
            .with_location(false)
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

/// How a plain-text log line writes span and event fields: as `tracing-subscriber`'s
/// default does, without the fields only a trace reads (`otel.*`, `http.*`). A span's
/// fields are formatted when it is made, for every log line in it: those would cost
/// every page and say nothing the line needs.
pub struct LogFields;

impl<'writer> tracing_subscriber::fmt::FormatFields<'writer> for LogFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: tracing_subscriber::fmt::format::Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        use tracing_subscriber::field::VisitOutput as _;
        let mut visitor = WithoutTraceFields(tracing_subscriber::fmt::format::DefaultVisitor::new(
            writer, true,
        ));
        fields.record(&mut visitor);
        visitor.0.finish()
    }

    fn add_fields(
        &self,
        current: &'writer mut tracing_subscriber::fmt::FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> std::fmt::Result {
        let mut added = String::new();
        self.format_fields(
            tracing_subscriber::fmt::format::Writer::new(&mut added),
            fields,
        )?;
        if !added.is_empty() {
            if !current.fields.is_empty() {
                current.fields.push(' ');
            }
            current.fields.push_str(&added);
        }
        Ok(())
    }
}

/// A visitor that passes on every field but the ones only a trace reads.
struct WithoutTraceFields<V>(V);

fn trace_only(field: &tracing::field::Field) -> bool {
    let name = field.name();
    name.starts_with("otel.") || name.starts_with("http.")
}

impl<V: tracing::field::Visit> tracing::field::Visit for WithoutTraceFields<V> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if !trace_only(field) {
            self.0.record_debug(field, value);
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if !trace_only(field) {
            self.0.record_str(field, value);
        }
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        if !trace_only(field) {
            self.0.record_i64(field, value);
        }
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if !trace_only(field) {
            self.0.record_u64(field, value);
        }
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        if !trace_only(field) {
            self.0.record_bool(field, value);
        }
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        if !trace_only(field) {
            self.0.record_f64(field, value);
        }
    }

    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        if !trace_only(field) {
            self.0.record_error(field, value);
        }
    }
}

/// Whether this process exports traces.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// `span` continues the trace `headers` carry (`traceparent`, `tracestate`), if they
/// carry one. Before `span` is first entered.
pub fn continue_from(span: &tracing::Span, headers: &HeaderMap) {
    if !enabled() {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Write `span`'s `traceparent` (and `tracestate`) into `headers`, replacing any there:
/// the next service's spans become its children. False, and nothing written, when
/// traces are off or `span` is not exported (`Span::none()`).
pub fn inject(span: &tracing::Span, headers: &mut HeaderMap) -> bool {
    if !enabled() {
        return false;
    }
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return false;
    }
    headers.remove("traceparent");
    headers.remove("tracestate");
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
    true
}

/// Whether `span` is in a trace that is kept: the test for spans worth making only
/// then. False when traces are off.
pub fn sampled(span: &tracing::Span) -> bool {
    enabled() && span.context().span().span_context().is_sampled()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Option<Settings>, SettingsError> {
        Settings::from_vars("renderer", |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn traces_are_off_unless_asked_for() {
        assert_eq!(settings(&[]), Ok(None));
        assert_eq!(settings(&[("OTEL_TRACES_EXPORTER", "none")]), Ok(None));
        assert_eq!(
            settings(&[
                ("OTEL_SDK_DISABLED", "true"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
            ]),
            Ok(None)
        );
    }

    #[test]
    fn the_endpoint_is_the_signals_own_or_the_base_with_its_path() {
        let on = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")])
            .unwrap()
            .unwrap();
        assert_eq!(on.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(on.service_name, "renderer");
        assert_eq!(on.sampler, SamplerSetting::ParentBasedAlwaysOn);
        let own = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://t.example/in"),
            ("OTEL_SERVICE_NAME", "renderer-eu"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(own.endpoint, "https://t.example/in");
        assert_eq!(own.service_name, "renderer-eu");
        let default = settings(&[("OTEL_TRACES_EXPORTER", "otlp")])
            .unwrap()
            .unwrap();
        assert_eq!(default.endpoint, DEFAULT_ENDPOINT);
    }

    #[test]
    fn the_sampler_and_its_ratio_are_read() {
        let with = |sampler, arg| {
            settings(&[
                ("OTEL_TRACES_EXPORTER", "otlp"),
                ("OTEL_TRACES_SAMPLER", sampler),
                ("OTEL_TRACES_SAMPLER_ARG", arg),
            ])
            .map(|s| s.unwrap().sampler)
        };
        assert_eq!(
            with("parentbased_traceidratio", "0.01"),
            Ok(SamplerSetting::ParentBasedRatio(0.01))
        );
        assert_eq!(with("traceidratio", "1"), Ok(SamplerSetting::Ratio(1.0)));
        assert_eq!(with("always_off", "ignored"), Ok(SamplerSetting::AlwaysOff));
    }

    #[test]
    fn a_setting_this_build_cannot_honour_is_refused_by_name() {
        let refused = |vars: &[(&str, &str)]| settings(vars).unwrap_err().to_string();
        assert_eq!(
            refused(&[("OTEL_TRACES_EXPORTER", "zipkin")]),
            "OTEL_TRACES_EXPORTER=\"zipkin\": only `otlp` and `none` are supported"
        );
        assert_eq!(
            refused(&[
                ("OTEL_TRACES_EXPORTER", "otlp"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            ]),
            "OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\": only `http/protobuf` is supported"
        );
        assert_eq!(
            refused(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]),
            "OTEL_EXPORTER_OTLP_ENDPOINT=\"collector:4318\": not an http:// or https:// URL"
        );
        assert_eq!(
            refused(&[
                ("OTEL_TRACES_EXPORTER", "otlp"),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "1%")
            ]),
            "OTEL_TRACES_SAMPLER_ARG=\"1%\": expected a ratio from 0 to 1"
        );
        assert!(
            refused(&[
                ("OTEL_TRACES_EXPORTER", "otlp"),
                ("OTEL_TRACES_SAMPLER", "xray")
            ])
            .starts_with("OTEL_TRACES_SAMPLER=\"xray\"")
        );
    }

    #[test]
    fn log_lines_leave_out_the_fields_only_a_trace_reads() {
        use tracing_subscriber::layer::SubscriberExt as _;
        #[derive(Clone, Default)]
        struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let written = buffer.clone();
        let logs = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .fmt_fields(LogFields)
            .with_writer(move || written.clone());
        let subscriber = tracing_subscriber::registry().with(logs);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "page",
                request_id = "r1",
                otel.kind = "server",
                http.route = "/e/{id}",
                http.response.status_code = tracing::field::Empty,
            );
            span.record("http.response.status_code", 200);
            span.in_scope(|| tracing::info!(slot = "header", n = 2, "fell back"));
        });
        let line = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(
            line.ends_with("page{request_id=\"r1\"}: oberon_service::trace::tests: fell back slot=\"header\" n=2\n"),
            "{line:?}"
        );
    }

    #[test]
    fn headers_are_left_alone_when_traces_are_off() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        let span = tracing::Span::none();
        assert!(!inject(&span, &mut headers));
        continue_from(&span, &headers);
        assert!(!sampled(&span));
        assert_eq!(headers.len(), 1);
    }
}
