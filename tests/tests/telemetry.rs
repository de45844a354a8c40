//! OpenTelemetry end to end: `omnia` exports to a real OTLP receiver on loopback
//! ([`OtlpReceiver`], gRPC and HTTP/protobuf) the server span of each request, a child of the
//! `traceparent` the client sent, the runtime's metrics, and what the guest emits through
//! `wasi:otel` (its span a child of the request's, its metrics and log records) or, for a WASI
//! 0.3 guest written for upstream omnia, through `omnia:otel` ([`upstream`]); a slow or absent
//! collector costs requests nothing (spans are dropped and counted, memory stays flat).

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use omnia_tests::otlp::{OtlpReceiver, Protocol, Span};
use omnia_tests::{Omnia, Response, get, guests, omnia, request, run_to_end};

#[path = "telemetry/upstream.rs"]
mod upstream;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const WAIT: Duration = Duration::from_secs(20);

/// The environment that points `omnia` at `receiver`, exporting quickly.
fn export_to(receiver: &OtlpReceiver, protocol: Protocol) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "300".to_string()),
        ("OTEL_SERVICE_NAME", "checkout".to_string()),
    ];
    match protocol {
        Protocol::Grpc => env.push(("OTEL_GRPC_URL", receiver.endpoint())),
        Protocol::HttpProtobuf => {
            env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()));
            env.push(("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()));
        }
    }
    env
}

fn serve(env: &[(&'static str, String)], extra: &[(&str, &str)]) -> Omnia {
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    Omnia::serve(&omnia(), &guests::rust("http-echo"), &all)
}

/// A request carrying the client's trace context.
async fn traced(server: &Omnia, path: &str) -> Response {
    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    request(
        Method::GET,
        &server.url(path),
        &[("traceparent", &traceparent)],
        Bytes::new(),
        false,
    )
    .await
    .expect("omnia answers")
}

/// Has the guest publish a message on `topic` in a request carrying the client's trace context
/// (`POST /publish/{topic}`, as msg-echo and otel-msg serve it).
async fn traced_publish(server: &Omnia, topic: &str) {
    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let published = request(
        Method::POST,
        &server.url(&format!("/publish/{topic}")),
        &[("traceparent", &traceparent)],
        Bytes::from_static(b"order 1"),
        false,
    )
    .await
    .expect("omnia answers");
    assert_eq!(published.status, 204, "{}", published.text());
}

/// The status of a [`traced`] request.
async fn traced_get(server: &Omnia, path: &str) -> u16 {
    traced(server, path).await.status.as_u16()
}

fn is_request_span(path: &str) -> impl Fn(&Span) -> bool + '_ {
    move |span| span.attributes.get("url.path").map(String::as_str) == Some(path)
}

async fn spans_and_metrics_reach_the_collector(protocol: Protocol) {
    let receiver = OtlpReceiver::start(protocol);
    let server = serve(&export_to(&receiver, protocol), &[]);
    assert_eq!(traced_get(&server, "/traced").await, 200);
    assert_eq!(traced_get(&server, "/status/503").await, 503);

    let span = receiver
        .wait_for_span(is_request_span("/traced"), WAIT)
        .unwrap_or_else(|| panic!("no request span; got {:?}", receiver.spans()));
    assert_eq!(span.trace_id, TRACE_ID, "the client's trace");
    assert_eq!(
        span.parent_span_id, CLIENT_SPAN,
        "a child of the client's span"
    );
    assert_eq!(span.kind, 2, "a server span");
    assert_eq!(span.name, "GET");
    assert_eq!(span.service_name.as_deref(), Some("checkout"));
    assert_eq!(span.attributes["http.request.method"], "GET");
    assert_eq!(span.attributes["http.response.status_code"], "200");
    assert_eq!(span.status_code, 0, "unset for a success");
    let failed = receiver
        .wait_for_span(is_request_span("/status/503"), WAIT)
        .expect("the failed request's span");
    assert_eq!(failed.attributes["http.response.status_code"], "503");
    assert_eq!(failed.status_code, 2, "error for a 5xx");

    let duration = receiver
        .wait_for_metric("omnia_work_duration", WAIT)
        .expect("the request duration histogram");
    assert_eq!(duration.kind, "histogram");
    assert_eq!(duration.service_name.as_deref(), Some("checkout"));
    let requests = receiver
        .wait_for_metric("omnia_http_requests", WAIT)
        .expect("the request counter");
    assert!(
        requests.points.iter().any(|p| p.value >= 2.0),
        "{requests:?}"
    );
    for name in [
        "omnia_instantiation_duration",
        "omnia_work_in_flight",
        "omnia_guest_traps",
        "omnia_guest_timeouts",
        "omnia_backend_errors",
    ] {
        assert!(
            receiver.wait_for_metric(name, WAIT).is_some(),
            "{name}: got {:?}",
            receiver
                .metrics()
                .iter()
                .map(|m| &m.name)
                .collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn spans_and_metrics_reach_a_grpc_collector() {
    spans_and_metrics_reach_the_collector(Protocol::Grpc).await;
}

#[tokio::test]
async fn spans_and_metrics_reach_an_http_collector() {
    spans_and_metrics_reach_the_collector(Protocol::HttpProtobuf).await;
}

/// A bad `OTEL_EXPORTER_OTLP_TIMEOUT` stops start-up naming the variable and the value (the
/// exporters would silently use their default instead).
#[test]
fn a_bad_export_timeout_stops_start_up() {
    let guest = guests::rust("http-echo");
    let out = run_to_end(
        &omnia(),
        &["run", guest.to_str().unwrap()],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "abc"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit code 1, stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_TIMEOUT=\"abc\" is not valid")
            && stderr.contains("milliseconds"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_request_without_trace_context_starts_a_trace() {
    let receiver = OtlpReceiver::start(Protocol::Grpc);
    let server = serve(&export_to(&receiver, Protocol::Grpc), &[]);
    assert_eq!(get(&server.url("/root")).await.unwrap().status, 200);
    let span = receiver
        .wait_for_span(is_request_span("/root"), WAIT)
        .expect("the request span");
    assert!(span.parent_span_id.is_empty(), "a root span: {span:?}");
    assert_eq!(span.trace_id.len(), 32);
    assert_ne!(span.trace_id, "0".repeat(32));
}

#[tokio::test]
async fn shutdown_flushes_queued_spans() {
    let receiver = OtlpReceiver::start(Protocol::Grpc);
    // Spans would wait a minute for their batch: only the shutdown flush sends them.
    let mut env = export_to(&receiver, Protocol::Grpc);
    env.retain(|(k, _)| *k != "OTEL_BSP_SCHEDULE_DELAY");
    env.push(("OTEL_BSP_SCHEDULE_DELAY", "60000".into()));
    let mut server = serve(&env, &[]);
    assert_eq!(traced_get(&server, "/flushed").await, 200);
    server.signal("TERM");
    assert!(server.wait(WAIT).is_some_and(|s| s.success()), "exits 0");
    assert!(
        receiver
            .wait_for_span(is_request_span("/flushed"), Duration::from_secs(1))
            .is_some(),
        "the span was exported before exit: {:?}",
        receiver.spans()
    );
}

#[tokio::test]
async fn a_slow_collector_costs_requests_nothing() {
    let receiver = OtlpReceiver::start(Protocol::Grpc);
    receiver.set_delay(Duration::from_secs(30));
    let mut env = export_to(&receiver, Protocol::Grpc);
    env.push(("OTEL_BSP_MAX_QUEUE_SIZE", "64".into()));
    env.push(("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "16".into()));
    env.push(("OTEL_EXPORTER_OTLP_TIMEOUT", "2000".into()));
    env.push(("OMNIA_SHUTDOWN_GRACE", "1s".into()));
    let admin = format!("127.0.0.1:{}", omnia_tests::services::free_port());
    let server = serve(&env, &[("OMNIA_ADMIN_ADDR", &admin)]);

    let warm_up = 300;
    let measured: u64 = 3000;
    for _ in 0..warm_up {
        assert_eq!(traced_get(&server, "/slow-collector").await, 200);
    }
    let before = server.status_kib("VmRSS");
    for _ in 0..measured {
        assert_eq!(traced_get(&server, "/slow-collector").await, 200);
    }
    let after = server.status_kib("VmRSS");
    let dropped = server.metric("omnia_telemetry_spans_dropped_total").await;
    assert!(
        dropped >= measured / 2,
        "the queue is bounded: spans past it are dropped and counted ({dropped})"
    );
    assert!(
        after < before + 16 * 1024,
        "memory stays flat: VmRSS {before} KiB -> {after} KiB over {measured} requests"
    );
}

#[tokio::test]
async fn the_trace_crosses_outgoing_http_into_the_next_service() {
    let receiver = OtlpReceiver::start(Protocol::Grpc);
    let env = export_to(&receiver, Protocol::Grpc);
    let upstream = serve(&env, &[]);
    let port = upstream.addr().rsplit(':').next().unwrap().to_string();
    let allowed = format!("127.0.0.1:{port}");
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.push(("OMNIA_HTTP_ALLOWED_HOSTS", &allowed));
    let caller = Omnia::serve(&omnia(), &guests::rust("http-fetch"), &all);
    let target = upstream.url("/downstream");
    assert_eq!(traced_get(&caller, &format!("/?url={target}")).await, 200);

    let outer = receiver
        .wait_for_span(is_request_span("/"), WAIT)
        .expect("the caller's span");
    let inner = receiver
        .wait_for_span(is_request_span("/downstream"), WAIT)
        .expect("the callee's span");
    assert_eq!(outer.trace_id, TRACE_ID);
    assert_eq!(inner.trace_id, TRACE_ID, "one trace across both services");
    assert_eq!(
        inner.parent_span_id, outer.span_id,
        "the callee's span is the caller's child"
    );
}

#[tokio::test]
async fn without_export_the_incoming_trace_context_is_passed_on() {
    let upstream = Omnia::serve(&omnia(), &guests::rust("http-echo"), &[]);
    let port = upstream.addr().rsplit(':').next().unwrap().to_string();
    let caller = Omnia::serve(
        &omnia(),
        &guests::rust("http-fetch"),
        &[("OMNIA_HTTP_ALLOWED_HOSTS", &format!("127.0.0.1:{port}"))],
    );
    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let response = request(
        Method::GET,
        &caller.url(&format!("/?url={}", upstream.url("/echo"))),
        &[("traceparent", &traceparent)],
        Bytes::new(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(
        response
            .text()
            .contains(&format!("traceparent: {traceparent}")),
        "the callee got the caller's traceparent: {}",
        response.text()
    );
}

#[tokio::test]
async fn a_message_published_in_a_request_is_handled_in_the_same_trace() {
    let receiver = OtlpReceiver::start(Protocol::Grpc);
    let mut env = export_to(&receiver, Protocol::Grpc);
    env.push(("OMNIA_MESSAGING_TOPICS", "orders".into()));
    let all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Omnia::serve(&omnia(), &guests::rust("msg-echo"), &all);
    traced_publish(&server, "orders").await;

    let http = receiver
        .wait_for_span(is_request_span("/publish/orders"), WAIT)
        .expect("the publishing request's span");
    let process = receiver
        .wait_for_span(|s| s.name == "process orders", WAIT)
        .unwrap_or_else(|| panic!("no message span; got {:?}", receiver.spans()));
    assert_eq!(process.kind, 5, "a consumer span");
    assert_eq!(process.trace_id, TRACE_ID);
    assert_eq!(process.parent_span_id, http.span_id);
    assert_eq!(process.attributes["messaging.destination.name"], "orders");
    assert_eq!(process.attributes["messaging.operation.type"], "process");
}

/// The otel-http guest answers with its span's ids: `<trace id> <span id> <parent span id>`.
fn guest_ids(response: &Response) -> [String; 3] {
    let text = response.text();
    let ids: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    ids.try_into()
        .unwrap_or_else(|_| panic!("expected three ids, got {text:?}"))
}

async fn guest_telemetry_joins_the_request_trace(protocol: Protocol) {
    let receiver = OtlpReceiver::start(protocol);
    let env = export_to(&receiver, protocol);
    let all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Omnia::serve(&omnia(), &guests::rust("otel-http"), &all);
    let response = traced(&server, "/guest").await;
    assert_eq!(response.status, 200, "{}", response.text());
    let [trace, span, parent] = guest_ids(&response);

    let host = receiver
        .wait_for_span(is_request_span("/guest"), WAIT)
        .expect("the request span");
    assert_eq!(
        parent, host.span_id,
        "the guest's current span is the request's"
    );
    let guest = receiver
        .wait_for_span(|s| s.name == "guest-work", WAIT)
        .unwrap_or_else(|| panic!("no guest span; got {:?}", receiver.spans()));
    assert_eq!(guest.trace_id, TRACE_ID, "the client's trace");
    assert_eq!(trace, TRACE_ID);
    assert_eq!(guest.span_id, span);
    assert_eq!(
        guest.parent_span_id, host.span_id,
        "a child of the request span"
    );
    assert_eq!(guest.kind, 1, "internal");
    assert_eq!(guest.status_code, 1, "ok");
    assert_eq!(guest.scope, "otel-http");
    assert_eq!(guest.attributes["guest.path"], "/guest");
    assert_eq!(
        guest.service_name.as_deref(),
        Some("checkout"),
        "exported under the runtime's resource"
    );

    let requests = receiver
        .wait_for_metric("guest_requests", WAIT)
        .unwrap_or_else(|| panic!("no guest metric; got {:?}", receiver.metrics()));
    assert_eq!(requests.kind, "sum");
    assert_eq!(requests.scope, "otel-http");
    assert_eq!(requests.service_name.as_deref(), Some("checkout"));
    assert_eq!(requests.points.len(), 1);
    assert!((requests.points[0].value - 1.0).abs() < f64::EPSILON);
    assert_eq!(requests.points[0].attributes["guest.path"], "/guest");
    let size = receiver
        .wait_for_metric("guest_request_size", WAIT)
        .expect("the guest's histogram");
    assert_eq!(size.kind, "histogram");
    assert_eq!(size.points[0].count, 1);

    let log = receiver
        .wait_for_log(|l| l.body == "handled /guest", WAIT)
        .unwrap_or_else(|| panic!("no guest log; got {:?}", receiver.logs()));
    assert_eq!(log.severity_text, "INFO");
    assert_eq!(log.severity_number, 9);
    assert_eq!(log.attributes["guest.path"], "/guest");
    assert_eq!(log.service_name.as_deref(), Some("checkout"));
    assert_eq!(
        log.trace_id, TRACE_ID,
        "the request's trace context, filled in"
    );
    assert_eq!(log.span_id, host.span_id);
}

#[tokio::test]
async fn guest_telemetry_reaches_a_grpc_collector_in_the_request_trace() {
    guest_telemetry_joins_the_request_trace(Protocol::Grpc).await;
}

#[tokio::test]
async fn guest_telemetry_reaches_an_http_collector_in_the_request_trace() {
    guest_telemetry_joins_the_request_trace(Protocol::HttpProtobuf).await;
}

#[tokio::test]
async fn without_export_a_guest_with_telemetry_runs_in_the_incoming_trace() {
    let server = Omnia::serve(&omnia(), &guests::rust("otel-http"), &[]);
    let response = traced(&server, "/quiet").await;
    assert_eq!(response.status, 200, "{}", response.text());
    let [trace, _, parent] = guest_ids(&response);
    assert_eq!(trace, TRACE_ID);
    assert_eq!(
        parent, CLIENT_SPAN,
        "nothing records spans: the client's is current"
    );
    let untraced = get(&server.url("/untraced")).await.unwrap();
    let [trace, _, parent] = guest_ids(&untraced);
    assert_eq!(
        (trace.as_str(), parent.as_str()),
        ("0".repeat(32).as_str(), "0".repeat(16).as_str()),
        "no trace: the invalid context, as the OpenTelemetry API has it"
    );
}

#[tokio::test]
async fn a_collector_that_is_down_costs_requests_nothing() {
    // Nothing listens on the port: every export fails, quickly.
    let down = format!("http://127.0.0.1:{}", omnia_tests::services::free_port());
    let admin = format!("127.0.0.1:{}", omnia_tests::services::free_port());
    let mut server = Omnia::serve(
        &omnia(),
        &guests::rust("otel-http"),
        &[
            ("OTEL_GRPC_URL", &down),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OMNIA_SHUTDOWN_GRACE", "2s"),
            ("OMNIA_ADMIN_ADDR", &admin),
        ],
    );
    for i in 0..200 {
        let response = traced(&server, &format!("/down/{i}")).await;
        assert_eq!(response.status, 200, "{}", response.text());
    }
    let deadline = std::time::Instant::now() + WAIT;
    let mut failures = 0;
    while failures == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        failures = server.metric("omnia_telemetry_export_failures_total").await;
    }
    assert!(failures > 0, "failed exports are counted");
    server.signal("TERM");
    assert!(
        server.wait(WAIT).is_some_and(|s| s.success()),
        "shuts down within its grace period, collector or not"
    );
}

#[tokio::test]
async fn a_guest_span_in_a_message_handler_is_a_child_of_the_message_span() {
    let receiver = OtlpReceiver::start(Protocol::Grpc);
    let mut env = export_to(&receiver, Protocol::Grpc);
    env.push(("OMNIA_MESSAGING_TOPICS", "orders".into()));
    let all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Omnia::serve(&omnia(), &guests::rust("otel-msg"), &all);
    traced_publish(&server, "orders").await;

    let process = receiver
        .wait_for_span(|s| s.name == "process orders", WAIT)
        .unwrap_or_else(|| panic!("no message span; got {:?}", receiver.spans()));
    let guest = receiver
        .wait_for_span(|s| s.name == "guest-message", WAIT)
        .unwrap_or_else(|| panic!("no guest span; got {:?}", receiver.spans()));
    assert_eq!(process.trace_id, TRACE_ID);
    assert_eq!(
        guest.trace_id, TRACE_ID,
        "the client's trace, through the message"
    );
    assert_eq!(
        guest.parent_span_id, process.span_id,
        "a child of the message span"
    );
    assert_eq!(guest.scope, "otel-msg");
    assert_eq!(guest.attributes["guest.topic"], "orders");
}
