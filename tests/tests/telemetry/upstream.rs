//! Upstream omnia's telemetry package, `omnia:otel@0.1.0`, served to a WASI 0.3 guest written
//! as upstream's are (`p3-otel-http`, against the raw WIT): its spans reach the collector in the
//! request's trace under the runtime's resource, with their typed attributes; a span it starts
//! without a parent is grafted onto the request's span, as upstream's host does, even when
//! requests overlap on one instance; its metric arrives; it reads the runtime's resource; and
//! without an export endpoint it runs all the same.

use bytes::Bytes;
use http::Method;
use omnia_tests::otlp::{OtlpReceiver, Protocol, Span};
use omnia_tests::{Omnia, Response, guests, omnia, request};

use super::{CLIENT_SPAN, TRACE_ID, WAIT, export_to, is_request_span, traced};

const GUEST: &str = "p3-otel-http";

fn serve(env: &[(&'static str, String)]) -> Omnia {
    let all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Omnia::serve(&omnia(), &guests::rust(GUEST), &all)
}

/// The guest's answer: its resource lines and how its exports went.
fn answered(response: &Response) -> String {
    let text = response.text();
    assert_eq!(response.status, 200, "{text}");
    assert!(
        text.contains("spans: ok\n") && text.contains("metrics: ok\n"),
        "{text}"
    );
    text
}

/// The guest span named `name` in the trace `trace_id`.
fn guest_span(receiver: &OtlpReceiver, name: &str, trace_id: &str) -> Span {
    receiver
        .wait_for_span(|s| s.name == name && s.trace_id == trace_id, WAIT)
        .unwrap_or_else(|| panic!("no {name:?} in {trace_id}; got {:?}", receiver.spans()))
}

async fn an_upstream_guests_telemetry_joins_the_request_trace(protocol: Protocol) {
    let receiver = OtlpReceiver::start(protocol);
    let server = serve(&export_to(&receiver, protocol));
    let text = answered(&traced(&server, "/upstream").await);
    assert!(
        text.lines().any(|line| line == "service.name=checkout"),
        "the runtime's resource: {text}"
    );

    let host = receiver
        .wait_for_span(is_request_span("/upstream"), WAIT)
        .expect("the request span");
    assert_eq!(host.parent_span_id, CLIENT_SPAN);

    let work = guest_span(&receiver, "p3-otel-http work", TRACE_ID);
    assert_eq!(
        work.parent_span_id, host.span_id,
        "the traceparent the guest read is the request span's"
    );
    assert_eq!(work.kind, 1, "internal");
    assert_eq!(work.status_code, 1, "ok");
    assert_eq!(work.scope, GUEST);
    assert_eq!(
        work.service_name.as_deref(),
        Some("checkout"),
        "exported under the runtime's resource"
    );
    let expected = [
        ("guest.path", "/upstream", "string"),
        ("guest.cached", "false", "bool"),
        ("guest.ratio", "0.5", "double"),
        ("guest.attempt", "3", "int"),
        ("guest.tags", "[a, b]", "array<string>"),
        ("guest.sizes", "[1, 2, 3]", "array<int>"),
    ];
    for (key, value, kind) in expected {
        assert_eq!(work.attributes[key], value, "{key}: {work:?}");
        assert_eq!(work.attribute_types[key], kind, "{key}: {work:?}");
    }

    // Started without a parent, in a trace of its own: grafted onto the request's span.
    let root = guest_span(&receiver, "p3-otel-http root", TRACE_ID);
    assert_eq!(
        root.parent_span_id, host.span_id,
        "a child of the request span"
    );
    let step = guest_span(&receiver, "p3-otel-http step", TRACE_ID);
    assert_eq!(step.parent_span_id, root.span_id, "keeps its parent");
    assert_eq!(step.attribute_types["guest.step"], "int");

    let requests = receiver
        .wait_for_metric("p3_otel_requests", WAIT)
        .unwrap_or_else(|| panic!("no guest metric; got {:?}", receiver.metrics()));
    assert_eq!(requests.kind, "sum");
    assert_eq!(requests.scope, GUEST);
    assert_eq!(
        requests.service_name.as_deref(),
        Some("checkout"),
        "the runtime's resource, not the one the guest reported"
    );
    assert_eq!(requests.points.len(), 1);
    assert!((requests.points[0].value - 1.0).abs() < f64::EPSILON);
    assert_eq!(requests.points[0].attributes["guest.path"], "/upstream");
}

#[tokio::test]
async fn an_upstream_guests_telemetry_reaches_a_grpc_collector_in_the_request_trace() {
    an_upstream_guests_telemetry_joins_the_request_trace(Protocol::Grpc).await;
}

#[tokio::test]
async fn an_upstream_guests_telemetry_reaches_an_http_collector_in_the_request_trace() {
    an_upstream_guests_telemetry_joins_the_request_trace(Protocol::HttpProtobuf).await;
}

/// Requests served at once by one instance (one store), each in a trace of its own: each root
/// span joins its own request's.
#[tokio::test]
async fn overlapping_requests_on_one_instance_each_get_their_own_spans() {
    let receiver = OtlpReceiver::start(Protocol::Grpc);
    let mut env = export_to(&receiver, Protocol::Grpc);
    env.push(("OMNIA_ADMIN_ADDR", "127.0.0.1:0".into()));
    env.push(("OMNIA_HTTP_THREADS", "1".into()));
    let server = serve(&env);
    // A warm instance with room takes the burst (a cold pool may start one per request).
    answered(&traced(&server, "/warm").await);
    let before = server.metric("omnia_instantiations_total").await;

    let traces: Vec<String> = (1..=4).map(|n| format!("{n:0>32}")).collect();
    let calls = traces.iter().enumerate().map(|(n, trace)| {
        let url = server.url(&format!("/overlap/{n}?sleep=300"));
        let traceparent = format!("00-{trace}-{CLIENT_SPAN}-01");
        async move {
            request(
                Method::GET,
                &url,
                &[("traceparent", &traceparent)],
                Bytes::new(),
                false,
            )
            .await
            .expect("omnia answers")
        }
    });
    for response in futures::future::join_all(calls).await {
        answered(&response);
    }
    let made = server.metric("omnia_instantiations_total").await - before;
    assert!(
        made < 4,
        "the requests shared instances ({made} made for 4)"
    );

    for (n, trace) in traces.iter().enumerate() {
        let path = format!("/overlap/{n}");
        let host = receiver
            .wait_for_span(is_request_span(&path), WAIT)
            .expect("the request span");
        assert_eq!(&host.trace_id, trace);
        let root = guest_span(&receiver, "p3-otel-http root", trace);
        assert_eq!(
            root.parent_span_id, host.span_id,
            "{path}: its own request's span"
        );
        let work = guest_span(&receiver, "p3-otel-http work", trace);
        assert_eq!(work.parent_span_id, host.span_id, "{path}");
    }
}

/// Without an endpoint the package is served all the same: the guest's exports succeed (and are
/// dropped) and it reads the runtime's resource.
#[tokio::test]
async fn without_export_an_upstream_guest_runs_and_reads_the_resource() {
    let server = serve(&[("OTEL_SERVICE_NAME", "checkout".to_owned())]);
    let text = answered(&traced(&server, "/quiet").await);
    assert!(
        text.lines().any(|line| line == "service.name=checkout"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|line| line == "process.runtime.name=omnia"),
        "{text}"
    );
}
