//! An OTLP collector for tests: `POST /v1/traces` over HTTP, each body decoded as an
//! `ExportTraceServiceRequest` with OpenTelemetry's own protocol types
//! (`opentelemetry-proto`), its spans kept with the name of the service that sent them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

/// One span as received, with the `service.name` of the resource it came with.
#[derive(Debug, Clone)]
pub struct Received {
    pub service: String,
    pub span: Span,
}

impl Received {
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// The parent's span id, empty for a root.
    pub fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    /// A string attribute's value.
    pub fn attribute(&self, key: &str) -> Option<String> {
        string_of(&self.span.attributes, key)
    }
}

/// The collector; it stops with the test's runtime.
pub struct Collector {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    pub async fn start() -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/v1/traces", post(export))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Collector { addr, received }
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT` for a service that should send here.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Received> {
        self.received.lock().expect("spans").clone()
    }

    /// The spans received once `done` holds for them, or a panic after `within`
    /// with what had come.
    pub async fn until(
        &self,
        within: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let until = Instant::now() + within;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < until,
                "the spans expected did not arrive within {within:?}; received:\n{}",
                describe(&spans)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn export(
    State(received): State<Arc<Mutex<Vec<Received>>>>,
    body: Bytes,
) -> Result<Vec<u8>, (StatusCode, String)> {
    let request = ExportTraceServiceRequest::decode(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("not an OTLP export: {e}")))?;
    let mut received = received.lock().expect("spans");
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|r| string_of(&r.attributes, "service.name"))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            received.extend(scope.spans.into_iter().map(|span| Received {
                service: service.clone(),
                span,
            }));
        }
    }
    Ok(ExportTraceServiceResponse::default().encode_to_vec())
}

fn string_of(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Value::StringValue(s) => s.clone(),
            Value::IntValue(i) => i.to_string(),
            Value::BoolValue(b) => b.to_string(),
            Value::DoubleValue(d) => d.to_string(),
            other => format!("{other:?}"),
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One line per span: service, name, ids, for a failure's message.
pub fn describe(spans: &[Received]) -> String {
    spans
        .iter()
        .map(|r| {
            format!(
                "{:<16} {:<24} trace {} span {} parent {}\n",
                r.service,
                r.span.name,
                r.trace_id(),
                r.span_id(),
                r.parent_id()
            )
        })
        .collect()
}
