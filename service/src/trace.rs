//! Traces: `tracing` spans exported as OpenTelemetry spans over OTLP (HTTP and
//! protobuf), and the W3C `traceparent` that joins one request's spans across
//! services.
//!
//! Off unless the standard `OTEL_*` variables ask for it (`OTEL_TRACES_EXPORTER=otlp`,
//! or an `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`); read and checked once, at start, so a
//! service with a malformed setting refuses to start with the variable's name rather
//! than run without the traces its operator asked for. [`Settings`] is the rule.
//!
//! Sampling is decided once per request, as it arrives and before its span exists
//! ([`Sampling::decide`], by the configured sampler: `parentbased_*` follows the
//! caller's `traceparent` flag). Only a sampled request gets spans made for the
//! trace, the ones that declare `otel.name`, and only those reach the OpenTelemetry
//! layer ([`Exported`]): an unsampled request costs what it costs with traces off,
//! and passes its trace on, flagged unsampled ([`Onward`]).
//!
//! A request's own span is a `tracing` span: its log lines carry it. The parts of a
//! sampled request that are many (a page's phases, fetches and renders) are
//! [`Part`]s instead, OpenTelemetry spans made directly under it: a `tracing` span
//! costs every layer of the subscriber when it is made, at each poll of what it wraps
//! and when it closes, and a part needs none of that. The log lines of a part's work
//! become its events all the same ([`Exported`]).

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

use http::{HeaderMap, HeaderName, HeaderValue};
pub use opentelemetry::Context as TraceContext;
pub use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapPropagator;
pub use opentelemetry::trace::SpanKind;
use opentelemetry::trace::{
    FutureExt as _, SamplingDecision, SpanContext, SpanId, Status, TraceContextExt, TraceId,
    Tracer as _, TracerProvider as _,
};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SdkTracerProvider, ShouldSample,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;

/// Whether this process exports traces: set once, by [`Tracing::install`].
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The sampler [`Sampling::decide`] asks: set with [`ENABLED`].
static SAMPLER: RwLock<Option<Sampler>> = RwLock::new(None);

/// The tracer [`Part`]s are made with: set with [`ENABLED`].
static TRACER: RwLock<Option<opentelemetry_sdk::trace::SdkTracer>> = RwLock::new(None);

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

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
    Exported<
        tracing_opentelemetry::OpenTelemetryLayer<
            tracing_subscriber::Registry,
            opentelemetry_sdk::trace::SdkTracer,
        >,
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

    /// The SDK's sampler for the setting: [`Sampling::decide`] asks it.
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
    /// The exporter and provider for `settings`; from here on [`enabled`] is true and
    /// [`Sampling::decide`] asks `settings`' sampler. The provider's own sampler keeps
    /// every span it is given: the decision was made before the span existed.
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
            .with_sampler(Sampler::AlwaysOn)
            .with_resource(resource)
            .build();
        *SAMPLER.write().unwrap_or_else(PoisonError::into_inner) = Some(settings.sampler.sampler());
        *TRACER.write().unwrap_or_else(PoisonError::into_inner) = Some(provider.tracer("oberon"));
        ENABLED.store(true, Ordering::Relaxed);
        Ok(Tracing { provider })
    }

    /// The `tracing` layer that turns the spans made for a trace into OpenTelemetry
    /// spans and the events inside them into span events ([`Exported`] says which).
    /// Spans are started when first asked for their context or when they close, not on
    /// every poll of the future they wrap, and carry only the attributes their fields
    /// give (no code location, thread or target).
    pub fn layer<S>(
        &self,
    ) -> Exported<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        let layer = tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("oberon"))
            .with_context_activation(false)
            .with_tracked_inactivity(false)
            .with_location(false)
            .with_threads(false)
            .with_target(false);
        Exported(layer)
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        ENABLED.store(false, Ordering::Relaxed);
        *SAMPLER.write().unwrap_or_else(PoisonError::into_inner) = None;
        *TRACER.write().unwrap_or_else(PoisonError::into_inner) = None;
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

/// The OpenTelemetry layer, shown only the spans made for a trace, whose callsite
/// declares `otel.name` (a request's, made only once [`Sampling::decide`] sampled it,
/// and its parts'), and the events whose span is one of them. Any other span, an
/// unsampled request's among them, costs that layer nothing. A wrapper rather than a
/// per-layer filter: a filter that disagrees with the log output about a callsite
/// makes every span and event there ask both, every time.
#[derive(Debug)]
pub struct Exported<L>(L);

/// A span made for a trace.
fn made_for_a_trace(meta: &tracing::Metadata<'_>) -> bool {
    meta.fields().field("otel.name").is_some()
}

impl<L> Exported<L> {
    fn shown<S>(id: &tracing::span::Id, cx: &tracing_subscriber::layer::Context<'_, S>) -> bool
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        cx.metadata(id).is_some_and(made_for_a_trace)
    }
}

impl<S, L> tracing_subscriber::Layer<S> for Exported<L>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    L: tracing_subscriber::Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.0.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.0.on_layer(subscriber);
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        cx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if made_for_a_trace(attrs.metadata()) {
            self.0.on_new_span(attrs, id, cx);
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        cx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if Self::shown(id, &cx) {
            self.0.on_record(id, values, cx);
        }
    }

    fn on_follows_from(
        &self,
        id: &tracing::span::Id,
        follows: &tracing::span::Id,
        cx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if Self::shown(id, &cx) {
            self.0.on_follows_from(id, follows, cx);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, cx: tracing_subscriber::layer::Context<'_, S>) {
        if opentelemetry::Context::map_current(|current| Part::record(current, event)) {
            return;
        }
        let span = match event.parent() {
            Some(id) => cx.span(id),
            None if event.is_contextual() => cx.lookup_current(),
            None => None,
        };
        if span.is_some_and(|span| made_for_a_trace(span.metadata())) {
            self.0.on_event(event, cx);
        }
    }

    // No `on_enter` or `on_exit`: a span is entered and left on every poll of what it
    // wraps. The layer [`Tracing::layer`] makes neither attaches an OpenTelemetry
    // context on entering a span nor tracks its idle time; on leaving one it would
    // only note the time, and a span then ends when it closes.

    fn on_close(&self, id: tracing::span::Id, cx: tracing_subscriber::layer::Context<'_, S>) {
        if Self::shown(&id, &cx) {
            self.0.on_close(id, cx);
        }
    }

    fn on_id_change(
        &self,
        old: &tracing::span::Id,
        new: &tracing::span::Id,
        cx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.on_id_change(old, new, cx);
    }

    // The one unsafe method of `Layer`, forwarded as `tracing-subscriber`'s own
    // wrappers forward it: `tracing-opentelemetry` finds its span context (how
    // `Span::context` and `set_parent` work) by downcasting the subscriber to it.
    // SAFETY: `Self` is answered with a pointer to `self`, valid while `self` is;
    // anything else is the wrapped layer's to answer, under its own contract.
    #[allow(unsafe_code)]
    unsafe fn downcast_raw(&self, id: std::any::TypeId) -> Option<*const ()> {
        if id == std::any::TypeId::of::<Self>() {
            return Some(std::ptr::from_ref(self).cast());
        }
        // SAFETY: as the wrapped layer guarantees.
        unsafe { self.0.downcast_raw(id) }
    }
}

/// A part of a sampled request (a page's phase, fetch or render): an OpenTelemetry
/// span made directly, under the request's span ([`Part::parent`]). Ended when dropped.
/// While a future it wraps ([`Part::wrap`]) is polled, the events logged there are
/// its events.
#[derive(Debug)]
pub struct Part(opentelemetry::Context);

impl Part {
    /// What parts of the request whose span is `span` (one made for a trace) are made
    /// under.
    pub fn parent(span: &tracing::Span) -> opentelemetry::Context {
        span.context()
    }

    /// A part under `parent`, started now: `None` when traces are off.
    pub fn start(
        parent: &opentelemetry::Context,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
    ) -> Option<Self> {
        let tracer = TRACER.read().unwrap_or_else(PoisonError::into_inner);
        let tracer = tracer.as_ref()?;
        let span = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(tracer, parent);
        Some(Part(parent.with_span(span)))
    }

    /// Sets the attribute `key`.
    pub fn set(&self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        self.0.span().set_attribute(KeyValue::new(key, value));
    }

    /// Marks it failed (`otel.status_code = "ERROR"` on a `tracing` span).
    pub fn fail(&self) {
        self.0.span().set_status(Status::error(""));
    }

    /// The trace the work it stands for sends on: it becomes the next service's parent.
    pub fn onward(&self) -> Onward {
        let own = self.0.span().span_context().clone();
        Onward::through(own.trace_id(), own.span_id(), Some(&own), own.is_sampled())
    }

    /// `future`, whose logged events become this part's.
    pub fn wrap<F: std::future::Future>(&self, future: F) -> opentelemetry::trace::WithContext<F> {
        future.with_context(self.0.clone())
    }

    /// `future`, to be spawned from a part's work: its logged events stay that part's
    /// (the part current here, if any).
    pub fn carry<F: std::future::Future>(future: F) -> opentelemetry::trace::WithContext<F> {
        future.with_current_context()
    }

    /// `event` as an event of the part the current thread runs in (`current`'s span),
    /// if there is one: whether it was.
    fn record(current: &opentelemetry::Context, event: &tracing::Event<'_>) -> bool {
        if !current.has_active_span() {
            return false;
        }
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let mut attributes = fields.attributes;
        attributes.push(KeyValue::new("level", event.metadata().level().as_str()));
        current.span().add_event(fields.message, attributes);
        true
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        self.0.span().end();
    }
}

/// An event's message, and its other fields as attributes.
#[derive(Default)]
struct EventFields {
    message: String,
    attributes: Vec<KeyValue>,
}

impl tracing::field::Visit for EventFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            name => self.attributes.push(KeyValue::new(name, value.to_string())),
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            name => self
                .attributes
                .push(KeyValue::new(name, format!("{value:?}"))),
        }
    }
}

/// A request's place in its trace, decided from its headers as it arrives, before
/// its span exists.
#[derive(Debug)]
pub enum Sampling {
    /// Exported: its span, one made for a trace (see [`Exported`]), joins the caller's
    /// trace with [`Sampling::join`], or begins a new one.
    Sampled(Option<opentelemetry::Context>),
    /// Not exported: the request gets no span made for a trace. The services it calls
    /// still learn its trace, and that it is not sampled.
    Unsampled(Onward),
}

impl Sampling {
    /// The configured sampler's decision for a request with `headers`; `None` when
    /// traces are off. A new trace's decision is the sampler's for a new trace id.
    pub fn decide(headers: &HeaderMap) -> Option<Self> {
        if !enabled() {
            return None;
        }
        let sampler = SAMPLER.read().unwrap_or_else(PoisonError::into_inner);
        Some(Self::by(sampler.as_ref()?, headers))
    }

    fn by(sampler: &impl ShouldSample, headers: &HeaderMap) -> Self {
        let parent = caller(headers);
        let trace_id = parent.as_ref().map_or_else(
            || RandomIdGenerator::default().new_trace_id(),
            |cx| cx.span().span_context().trace_id(),
        );
        let kind = SpanKind::Server;
        let said = sampler.should_sample(parent.as_ref(), trace_id, "", &kind, &[], &[]);
        match said.decision {
            SamplingDecision::RecordAndSample => Sampling::Sampled(parent),
            SamplingDecision::Drop | SamplingDecision::RecordOnly => {
                let caller = parent.as_ref().map(|cx| cx.span().span_context().clone());
                let span_id = RandomIdGenerator::default().new_span_id();
                Sampling::Unsampled(Onward::through(trace_id, span_id, caller.as_ref(), false))
            }
        }
    }

    /// Whether the request's trace is kept.
    pub fn is_sampled(&self) -> bool {
        matches!(self, Sampling::Sampled(_))
    }

    /// `span`, the request's own, joins the caller's trace when sampled: before it is
    /// first entered. Unsampled, the trace the request sends on; sampled, `None`: it
    /// sends on its span's context or a part's ([`Onward::of`], which starts the span:
    /// after the span has its final name).
    pub fn begin(self, span: &tracing::Span) -> Option<Onward> {
        match self {
            Sampling::Sampled(parent) => {
                if let Some(parent) = parent {
                    let _ = span.set_parent(parent);
                }
                None
            }
            Sampling::Unsampled(onward) => Some(onward),
        }
    }
}

/// The caller's trace, from a valid `traceparent` (and its `tracestate`) in `headers`.
fn caller(headers: &HeaderMap) -> Option<opentelemetry::Context> {
    headers
        .contains_key(TRACEPARENT)
        .then(|| TraceContextPropagator::new().extract(&HeaderExtractor(headers)))
        .filter(|cx| cx.span().span_context().is_valid())
}

/// The trace headers a request sends on to the services it calls: `traceparent`, and
/// the caller's `tracestate` when it sent one. Empty sends nothing. Kept as ids and
/// written only when a request is sent: a page whose data is all cached sends none.
#[derive(Debug, Clone, Default)]
pub struct Onward {
    parent: Option<Parent>,
    tracestate: Option<HeaderValue>,
}

/// The span the next service's spans become children of.
#[derive(Debug, Clone, Copy)]
struct Parent {
    trace_id: TraceId,
    span_id: SpanId,
    sampled: bool,
}

impl Parent {
    /// Its `traceparent` (version 00): `00-<trace id>-<span id>-<flags>`.
    fn header(self) -> HeaderValue {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut value = *b"00-00000000000000000000000000000000-0000000000000000-00";
        let mut put = |at: usize, bytes: &[u8]| {
            for (pair, b) in value[at..].chunks_exact_mut(2).zip(bytes) {
                pair.copy_from_slice(&[DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xf)]]);
            }
        };
        put(3, &self.trace_id.to_bytes());
        put(36, &self.span_id.to_bytes());
        if self.sampled {
            value[54] = b'1';
        }
        HeaderValue::from_bytes(&value).expect("lowercase hex and dashes are a header value")
    }
}

impl Onward {
    /// From `span`, exported: it becomes the next service's parent. Empty when traces
    /// are off or `span` is not exported.
    pub fn of(span: &tracing::Span) -> Self {
        if !enabled() {
            return Self::default();
        }
        let cx = span.context();
        let own = cx.span().span_context().clone();
        if !own.is_valid() {
            return Self::default();
        }
        Self::through(own.trace_id(), own.span_id(), Some(&own), own.is_sampled())
    }

    /// Without a span of its own to export (traces off here): the trace `headers`
    /// carry, as the caller flagged it, or a new one flagged sampled, under a span id
    /// of this service's.
    pub fn passed_on(headers: &HeaderMap) -> Self {
        let caller = caller(headers).map(|cx| cx.span().span_context().clone());
        let ids = RandomIdGenerator::default();
        let (trace_id, sampled) = match &caller {
            Some(caller) => (caller.trace_id(), caller.is_sampled()),
            None => (ids.new_trace_id(), true),
        };
        Self::through(trace_id, ids.new_span_id(), caller.as_ref(), sampled)
    }

    /// `trace_id`'s trace under `span_id`, flagged `sampled` or not, with the
    /// `caller`'s trace state.
    fn through(
        trace_id: TraceId,
        span_id: SpanId,
        caller: Option<&SpanContext>,
        sampled: bool,
    ) -> Self {
        let tracestate = caller
            .map(|c| c.trace_state().header())
            .filter(|state| !state.is_empty())
            .and_then(|state| HeaderValue::try_from(state).ok());
        Self {
            parent: Some(Parent {
                trace_id,
                span_id,
                sampled,
            }),
            tracestate,
        }
    }

    /// Whether it continues a trace: false when empty.
    pub fn is_empty(&self) -> bool {
        self.parent.is_none()
    }

    /// The headers, to add to a request.
    pub fn headers(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        let traceparent = self.parent.map(|p| (TRACEPARENT, p.header()));
        let tracestate = self.tracestate.clone().map(|v| (TRACESTATE, v));
        let named = |(name, value)| (HeaderName::from_static(name), value);
        traceparent.into_iter().chain(tracestate).map(named)
    }

    /// Into `headers`, replacing the trace headers there (all of them, when empty).
    pub fn write(&self, headers: &mut HeaderMap) {
        headers.remove(TRACEPARENT);
        headers.remove(TRACESTATE);
        for (name, value) in self.headers() {
            headers.insert(name, value);
        }
    }
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

    const CALLER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331";

    fn from_caller(flags: &str, state: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, format!("{CALLER}-{flags}").parse().unwrap());
        if let Some(state) = state {
            headers.insert(TRACESTATE, HeaderValue::from_static(state));
        }
        headers
    }

    /// (trace id, parent span id, flags) of the `traceparent` `onward` sends.
    fn sent(onward: &Onward) -> (String, String, String) {
        let headers: HeaderMap = onward.headers().collect();
        let tp = headers.get(TRACEPARENT).expect("a traceparent");
        let parts: Vec<String> = tp.to_str().unwrap().split('-').map(String::from).collect();
        assert_eq!((parts.len(), parts[0].as_str()), (4, "00"), "{tp:?}");
        (parts[1].clone(), parts[2].clone(), parts[3].clone())
    }

    #[test]
    fn the_sampler_decides_before_the_span_and_the_unsampled_trace_goes_on() {
        let parent_based = SamplerSetting::ParentBasedRatio(0.0).sampler();
        let kept = Sampling::by(&parent_based, &from_caller("01", None));
        let Sampling::Sampled(Some(parent)) = kept else {
            panic!("the caller's sampled trace is kept: {kept:?}")
        };
        assert_eq!(
            parent.span().span_context().trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        // The caller's unsampled trace goes on, unsampled, with its state.
        let Sampling::Unsampled(onward) =
            Sampling::by(&parent_based, &from_caller("00", Some("vendor=1")))
        else {
            panic!("the caller's unsampled trace is not kept")
        };
        let (trace, parent, flags) = sent(&onward);
        assert_eq!(trace, "0af7651916cd43dd8448eb211c80319c");
        assert_ne!(parent, "b7ad6b7169203331", "a span id of this service's");
        assert_eq!(flags, "00");
        assert_eq!(onward.tracestate.as_ref().expect("tracestate"), "vendor=1");
        // A new trace: the ratio decides.
        assert!(!Sampling::by(&parent_based, &HeaderMap::new()).is_sampled());
        let always = SamplerSetting::ParentBasedAlwaysOn.sampler();
        assert!(matches!(
            Sampling::by(&always, &HeaderMap::new()),
            Sampling::Sampled(None)
        ));
        // Not parent-based: the caller's flag does not decide.
        let ratio = SamplerSetting::Ratio(1.0).sampler();
        assert!(Sampling::by(&ratio, &from_caller("00", None)).is_sampled());
        let Sampling::Unsampled(onward) = Sampling::by(&parent_based, &HeaderMap::new()) else {
            unreachable!()
        };
        let (trace, _, flags) = sent(&onward);
        assert_ne!(trace, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(flags, "00");
    }

    #[test]
    fn without_traces_a_trace_is_passed_on_or_begun() {
        let onward = Onward::passed_on(&from_caller("01", Some("vendor=1")));
        let (trace, parent, flags) = sent(&onward);
        assert_eq!(trace, "0af7651916cd43dd8448eb211c80319c");
        assert_ne!(parent, "b7ad6b7169203331", "a new parent span");
        assert_eq!(flags, "01");
        assert_eq!(onward.tracestate.as_ref().expect("tracestate"), "vendor=1");
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(TRACEPARENT, HeaderValue::from_static(bad));
            headers.insert(TRACESTATE, HeaderValue::from_static("vendor=1"));
            let onward = Onward::passed_on(&headers);
            let (trace, _, flags) = sent(&onward);
            assert!(!bad.contains(&trace), "{bad}: a new trace");
            assert_eq!(flags, "01", "{bad}");
            assert!(
                onward.tracestate.is_none(),
                "{bad}: not the new trace's state"
            );
            let mut written = headers.clone();
            onward.write(&mut written);
            assert_eq!(written.get_all(TRACEPARENT).iter().count(), 1);
            assert!(!written.contains_key(TRACESTATE));
        }
    }

    #[test]
    fn only_the_spans_made_for_a_trace_and_their_events_reach_its_layer() {
        use tracing_subscriber::layer::SubscriberExt as _;
        /// What the filtered layer saw: span names and event messages.
        #[derive(Clone, Default)]
        struct Seen(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
            fn on_new_span(
                &self,
                attrs: &tracing::span::Attributes<'_>,
                _: &tracing::span::Id,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                self.0
                    .lock()
                    .unwrap()
                    .push(attrs.metadata().name().to_string());
            }
            fn on_event(
                &self,
                event: &tracing::Event<'_>,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                struct Message(String);
                impl tracing::field::Visit for Message {
                    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                        if f.name() == "message" {
                            self.0 = format!("{v:?}");
                        }
                    }
                }
                let mut message = Message(String::new());
                event.record(&mut message);
                self.0.lock().unwrap().push(message.0);
            }
        }
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry().with(Exported(seen.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("unsampled", request_id = "r1").in_scope(|| {
                tracing::info!("in an unsampled page");
            });
            let page = tracing::info_span!("sampled", otel.name = "GET /p/{id}");
            page.in_scope(|| {
                tracing::info!("in a sampled page");
                // A span not made for the trace: neither it nor its events are shown.
                tracing::info_span!("plain").in_scope(|| tracing::info!("in its plain part"));
            });
            tracing::info_span!(parent: &page, "slot", otel.name = "render header")
                .in_scope(|| tracing::info!("in its slot"));
            tracing::info!("outside");
        });
        assert_eq!(
            *seen.0.lock().unwrap(),
            ["sampled", "in a sampled page", "slot", "in its slot"]
        );
    }

    #[test]
    fn a_part_is_a_child_span_whose_work_logs_its_events() {
        use opentelemetry::trace::{TraceContextExt as _, Tracer as _, TracerProvider as _};
        use opentelemetry_sdk::trace::{SpanData, SpanExporter};
        use std::future::Future as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        /// The spans ended, as the SDK hands them to an exporter.
        #[derive(Debug, Clone, Default)]
        struct Ended(std::sync::Arc<std::sync::Mutex<Vec<SpanData>>>);
        impl SpanExporter for Ended {
            async fn export(
                &self,
                batch: Vec<SpanData>,
            ) -> opentelemetry_sdk::error::OTelSdkResult {
                self.0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(batch);
                Ok(())
            }
        }
        /// How many events reached the layer behind `Exported`.
        #[derive(Clone, Default)]
        struct Events(std::sync::Arc<std::sync::atomic::AtomicUsize>);
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Events {
            fn on_event(
                &self,
                _: &tracing::Event<'_>,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let ended = Ended::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(ended.clone())
            .build();
        let tracer = provider.tracer("test");
        let page = opentelemetry::Context::new().with_span(tracer.start("GET /p/{id}"));
        let page_id = page.span().span_context().span_id();
        let slot = Part(page.with_span(tracer.start_with_context("render header", &page)));
        let onward = slot.onward();
        let events = Events::default();
        let subscriber = tracing_subscriber::registry().with(Exported(events.clone()));
        tracing::subscriber::with_default(subscriber, || {
            // In the page's span (one made for a trace), its slot's work runs.
            tracing::info_span!("page", otel.name = "GET /p/{id}").in_scope(|| {
                let logged = slot.wrap(async {
                    tracing::warn!(component = "header", "no events today");
                });
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                assert!(std::pin::pin!(logged).poll(&mut cx).is_ready());
                tracing::info!("the page's own event");
            });
        });
        slot.set("oberon.outcome", "ok");
        drop(slot);

        let ended = ended.0.lock().unwrap();
        let [span] = &ended[..] else {
            panic!("one span ends with its part: {ended:?}")
        };
        assert_eq!(span.name, "render header");
        assert_eq!(span.parent_span_id, page_id);
        assert!(
            span.attributes
                .contains(&KeyValue::new("oberon.outcome", "ok"))
        );
        let event = span
            .events
            .iter()
            .next()
            .expect("the logged line is its event");
        assert_eq!(event.name, "no events today");
        assert!(
            event
                .attributes
                .contains(&KeyValue::new("component", "header"))
        );
        assert!(event.attributes.contains(&KeyValue::new("level", "WARN")));
        assert_eq!(span.events.len(), 1);
        // The line logged in the part's work went to it alone; the page's, to the layer.
        assert_eq!(events.0.load(Ordering::Relaxed), 1);
        // What the part's work sends on: the part is the next service's parent.
        let mut headers = HeaderMap::new();
        onward.write(&mut headers);
        let sent = headers[TRACEPARENT].to_str().unwrap().to_string();
        assert_eq!(
            sent,
            format!(
                "00-{}-{}-01",
                span.span_context.trace_id(),
                span.span_context.span_id()
            )
        );
    }

    #[test]
    fn nothing_is_decided_or_sent_when_traces_are_off() {
        assert!(Sampling::decide(&from_caller("01", None)).is_none());
        assert!(Onward::of(&tracing::info_span!("page", otel.name = "GET")).is_empty());
        let mut headers = from_caller("01", None);
        Onward::default().write(&mut headers);
        assert!(headers.is_empty(), "an empty onward sends no trace");
    }
}
