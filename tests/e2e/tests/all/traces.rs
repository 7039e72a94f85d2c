//! Issue 20: one request, one trace. A page asked of Varnish, with the client's
//! `traceparent`, goes through the gateway, the renderer, a BFF made from the template
//! and its backend; the three services export their spans over OTLP to a collector
//! this test runs, which decodes them with OpenTelemetry's protocol types. Every span
//! is in the client's trace, each parented by the span of the hop before it, and the
//! backend is asked with the BFF's backend span as its parent.

use std::net::SocketAddr;
use std::time::Duration;

use oberon_e2e_tests::otlp::{Collector, Received, describe};
use oberon_e2e_tests::platform::{self, ItemBackend, gateway_config};
use oberon_e2e_tests::varnish::{Varnish, reserve_port};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

/// The BFF's call to its backend (gRPC), as its client span names it.
const GET_ITEM: &str = "bff_template.items.v1.ItemsService/GetItem";

/// The client's trace and its span.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
/// A trace its client did not sample.
const UNSAMPLED: &str = "0af7651916cd43dd8448eb211c80319c";

/// A page of the item from the BFF, and a component that logs a line.
fn site(dir: &std::path::Path, bff: SocketAddr) {
    platform::site(
        dir,
        &format!("[bffs]\nitems = \"http://{bff}\"\n"),
        r#"route = "/p/{id}"
layout = "page.html"
team = "shop"
cache = { class = "public" }
[[data]]
topic = "item"
url = "{bff.items}/v2/items/{params.id}"
[[slots]]
name = "logged"
component = "misbehave"
props = { mode = "log" }
"#,
        &["misbehave"],
    );
}

/// The one span of `service` named `name`.
fn one<'a>(spans: &'a [Received], service: &str, name: &str) -> &'a Received {
    let found: Vec<&Received> = spans
        .iter()
        .filter(|r| r.service == service && r.span.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {service} span {name:?}:\n{}",
        describe(spans)
    );
    found[0]
}

fn assert_child(child: &Received, parent: &Received, spans: &[Received]) {
    assert_eq!(
        child.parent_id(),
        parent.span_id(),
        "{} {:?} should be a child of {} {:?}:\n{}",
        child.service,
        child.span.name,
        parent.service,
        parent.span.name,
        describe(spans)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_is_one_trace_across_every_service() {
    let _exclusive = oberon_e2e_tests::exclusive().await;
    let collector = Collector::start().await;
    // Every service exports to the collector at once, and starts no trace of its own
    // (ratio 0): only a request that comes sampled is traced.
    let otel = |service: &str| {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()),
            ("OTEL_SERVICE_NAME", service.to_string()),
            (
                "OTEL_TRACES_SAMPLER",
                "parentbased_traceidratio".to_string(),
            ),
            ("OTEL_TRACES_SAMPLER_ARG", "0".to_string()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
        ]
    };
    let backend = ItemBackend::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bff = platform::bff(backend.addr, &otel("bff")).await;
    site(dir.path(), bff.addr);
    let renderer = platform::renderer(dir.path(), &otel("renderer")).await;
    let gateway = platform::gateway(
        &gateway_config(dir.path(), renderer.addr, ""),
        &otel("gateway"),
    )
    .await;
    let varnish = Varnish::start(reserve_port(), gateway.addr, "no-origin-check-here");

    let client = reqwest::Client::new();
    let page = client
        .get(varnish.url("/p/7"))
        .header("traceparent", format!("00-{TRACE}-{CLIENT_SPAN}-01"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200, "{}", renderer.log());
    let body = page.text().await.expect("body");
    assert!(body.contains("misbehave logged"), "{body}");
    // Not sampled by anyone: no spans at all, but the trace goes on to the backend.
    let unsampled = client
        .get(varnish.url("/p/8"))
        .header("traceparent", format!("00-{UNSAMPLED}-{CLIENT_SPAN}-00"))
        .send()
        .await
        .expect("page");
    assert_eq!(unsampled.status(), 200);

    collector
        .until(Duration::from_secs(20), |spans| {
            ["gateway", "renderer", "bff"].iter().all(|s| {
                spans
                    .iter()
                    .any(|r| r.service == *s && !r.span.parent_span_id.is_empty())
            }) && spans
                .iter()
                .any(|r| r.service == "bff" && r.span.name == GET_ITEM)
                && spans
                    .iter()
                    .any(|r| r.service == "renderer" && r.span.name == "GET /p/{id}")
        })
        .await;
    // Let anything else that was sent arrive (the unsampled page must have sent none).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spans = collector.spans();
    for span in &spans {
        assert_eq!(
            span.trace_id(),
            TRACE,
            "a span outside the client's trace:\n{}",
            describe(&spans)
        );
    }

    // Through Varnish, which kept the client's traceparent, to the gateway.
    let gateway_span = one(&spans, "gateway", "GET /p/{id}");
    assert_eq!(
        gateway_span.parent_id(),
        CLIENT_SPAN,
        "{}",
        describe(&spans)
    );
    assert_eq!(gateway_span.span.kind, SpanKind::Server as i32);
    assert_eq!(
        gateway_span
            .attribute("http.response.status_code")
            .as_deref(),
        Some("200")
    );
    // The renderer's page, its phases, its fetch and its slot.
    let page = one(&spans, "renderer", "GET /p/{id}");
    assert_child(page, gateway_span, &spans);
    assert_eq!(page.attribute("http.route").as_deref(), Some("/p/{id}"));
    // Its data answers after its one slot has rendered: the page streams, after the
    // phase that waits for its critical slots (none here).
    assert_child(one(&spans, "renderer", "critical"), page, &spans);
    let fetch = one(&spans, "renderer", "fetch item");
    assert_child(fetch, page, &spans);
    assert_eq!(fetch.span.kind, SpanKind::Client as i32);
    assert_eq!(fetch.attribute("oberon.cache").as_deref(), Some("miss"));
    let slot = one(&spans, "renderer", "render logged");
    assert_child(slot, page, &spans);
    assert_eq!(
        slot.attribute("oberon.component").as_deref(),
        Some("misbehave")
    );
    assert_eq!(slot.attribute("oberon.outcome").as_deref(), Some("ok"));
    assert!(
        slot.span
            .events
            .iter()
            .any(|e| e.name.contains("misbehave rendered, logging on request")),
        "the component's log line is an event of its slot's span: {:?}",
        slot.span.events
    );
    // The BFF's request, under the renderer's fetch; its backend call under it.
    let bff_request = one(&spans, "bff", "GET /v2/items/{id}");
    assert_child(bff_request, fetch, &spans);
    let backend_call = one(&spans, "bff", GET_ITEM);
    assert_child(backend_call, bff_request, &spans);
    assert_eq!(backend_call.span.kind, SpanKind::Client as i32);
    // And the backend was asked as the backend call's child.
    let asked = backend.traceparents.lock().expect("traceparents").clone();
    assert_eq!(
        asked.first().map(String::as_str),
        Some(format!("00-{TRACE}-{}-01", backend_call.span_id()).as_str()),
        "{asked:?}"
    );
    // Each service passed the unsampled trace on, flagged unsampled, through a span
    // id of its own (none exported).
    let passed_on = asked.get(1).map(|tp| tp.split('-').collect::<Vec<_>>());
    let [_, trace, parent, flags] = passed_on.as_deref().unwrap_or_default() else {
        panic!("the unsampled page's backend call: {asked:?}")
    };
    assert_eq!((*trace, *flags), (UNSAMPLED, "00"), "{asked:?}");
    assert!(spans.iter().all(|s| s.span_id() != *parent) && *parent != CLIENT_SPAN);
    drop(varnish);
}
