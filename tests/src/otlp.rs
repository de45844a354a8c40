//! A real OTLP receiver on loopback: the collector that telemetry tests export to.
//!
//! Telemetry tests must show that what omnia exports reaches a collector intact: the spans, metrics
//! and logs, their attributes and resource, over the transport the user configured. As with Redis
//! and NATS ([`services`](crate::services)), a mock proves none of that, so each test starts its
//! own [`OtlpReceiver`]: a real OTLP server on a free loopback port, speaking gRPC or
//! HTTP/protobuf ([`Protocol`]), that decodes every export request with the official protobuf
//! definitions (`opentelemetry-proto`) and keeps what it received for the test to inspect
//! ([`spans`](OtlpReceiver::spans), [`wait_for_span`](OtlpReceiver::wait_for_span), ...).
//! [`set_delay`](OtlpReceiver::set_delay) turns it into a slow collector for back-pressure tests.
//!
//! The receiver runs on its own thread with its own tokio runtime, so it works from plain
//! `#[test]` functions and from inside `#[tokio::test]` alike, and stops when dropped.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1 as proto_logs;
use opentelemetry_proto::tonic::metrics::v1::{self as proto_metrics, metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as proto_trace;
use prost::{DecodeError, Message};
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;

/// How often the `wait_for_*` methods look at what was received.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// The resource attribute naming the service that exported a signal.
const SERVICE_NAME: &str = "service.name";
/// The content type of OTLP HTTP/protobuf requests and responses.
const PROTOBUF: &str = "application/x-protobuf";
/// HTTP/protobuf path of trace exports.
const TRACES_PATH: &str = "/v1/traces";
/// HTTP/protobuf path of metric exports.
const METRICS_PATH: &str = "/v1/metrics";
/// HTTP/protobuf path of log exports.
const LOGS_PATH: &str = "/v1/logs";

/// Which OTLP transport a receiver speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC: the trace, metrics and logs collector services on one HTTP/2 server.
    Grpc,
    /// OTLP/HTTP with protobuf bodies: `POST /v1/traces`, `/v1/metrics` and `/v1/logs`.
    HttpProtobuf,
}

/// A span as the receiver got it, flattened out of its resource and scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Trace id: 32 lowercase hex digits.
    pub trace_id: String,
    /// Span id: 16 lowercase hex digits.
    pub span_id: String,
    /// Parent span id: 16 lowercase hex digits, empty for a root span.
    pub parent_span_id: String,
    /// Span name.
    pub name: String,
    /// `SpanKind` as its protobuf number (1 internal, 2 server, 3 client, 4 producer, 5 consumer).
    pub kind: i32,
    /// Span attributes, values rendered as strings (see [`Point::attributes`]).
    pub attributes: BTreeMap<String, String>,
    /// The type of each span attribute's value (see [`value_type`]), which the rendering
    /// hides: `"string"`, `"bool"`, `"int"`, `"double"`, `"bytes"`, `"array<T>"` or `"kvlist"`.
    pub attribute_types: BTreeMap<String, String>,
    /// The `service.name` resource attribute.
    pub service_name: Option<String>,
    /// All resource attributes, values rendered as strings.
    pub resource: BTreeMap<String, String>,
    /// Name of the instrumentation scope.
    pub scope: String,
    /// Status code as its protobuf number (0 unset, 1 ok, 2 error).
    pub status_code: i32,
}

/// A metric as the receiver got it in one export, flattened out of its resource and scope.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Metric name.
    pub name: String,
    /// The aggregation: `"sum"`, `"gauge"`, `"histogram"`, `"exponential_histogram"` or
    /// `"summary"`.
    pub kind: &'static str,
    /// The data points of this export.
    pub points: Vec<Point>,
    /// The `service.name` resource attribute.
    pub service_name: Option<String>,
    /// Name of the instrumentation scope.
    pub scope: String,
}

/// One data point of a [`Metric`].
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Point attributes. Values are rendered as strings: strings as they are, integers, doubles
    /// and booleans with `to_string`, bytes as lowercase hex, arrays as `[a, b]` and key-value
    /// lists as `{k=v, ...}`.
    pub attributes: BTreeMap<String, String>,
    /// For a sum or gauge the value (integers converted); for the histograms and summaries the
    /// sum of the observations (0 when the exporter left it out).
    pub value: f64,
    /// For the histograms and summaries the number of observations; 0 for a sum or gauge.
    pub count: u64,
}

/// A log record as the receiver got it, flattened out of its resource and scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The body, rendered as a string (see [`Point::attributes`]); empty when absent.
    pub body: String,
    /// Severity as text (`"INFO"`), as the exporter sent it.
    pub severity_text: String,
    /// Severity as its protobuf number (9 info, 13 warn, 17 error, ...).
    pub severity_number: i32,
    /// Trace id of the span the record was emitted in: 32 lowercase hex digits, or empty.
    pub trace_id: String,
    /// Span id of the span the record was emitted in: 16 lowercase hex digits, or empty.
    pub span_id: String,
    /// Record attributes, values rendered as strings.
    pub attributes: BTreeMap<String, String>,
    /// The `service.name` resource attribute.
    pub service_name: Option<String>,
}

/// A real OTLP receiver on 127.0.0.1, recording every span, metric and log exported to it.
///
/// Runs on its own thread with its own tokio runtime; stops (and frees its port) when dropped.
pub struct OtlpReceiver {
    /// Where the server listens.
    addr: SocketAddr,
    /// What the server received, shared with its handlers.
    state: Arc<State>,
    /// Tells the server thread to stop; taken on drop.
    shutdown: Option<oneshot::Sender<()>>,
    /// The server thread; joined on drop.
    thread: Option<JoinHandle<()>>,
}

impl OtlpReceiver {
    /// Starts a receiver speaking `protocol` on a free port of 127.0.0.1.
    ///
    /// The port is bound before this returns, so exporters can connect right away.
    pub fn start(protocol: Protocol) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("make the listener non-blocking");
        let addr = listener
            .local_addr()
            .expect("local address of the listener");
        let state = Arc::new(State::default());
        let (shutdown, stopped) = oneshot::channel();
        let server_state = Arc::clone(&state);
        let thread = thread::Builder::new()
            .name(format!("otlp-receiver-{}", addr.port()))
            .spawn(move || serve(protocol, listener, server_state, stopped))
            .expect("spawn the OTLP receiver thread");
        Self {
            addr,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The URL exporters point at: `http://127.0.0.1:PORT`.
    ///
    /// For [`Protocol::HttpProtobuf`] this is the base URL: signals are posted to
    /// `/v1/traces`, `/v1/metrics` and `/v1/logs` under it.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<Span> {
        lock(&self.state.spans).clone()
    }

    /// Every metric received so far, one entry per metric per export, in arrival order.
    pub fn metrics(&self) -> Vec<Metric> {
        lock(&self.state.metrics).clone()
    }

    /// Every log record received so far, in arrival order.
    pub fn logs(&self) -> Vec<LogRecord> {
        lock(&self.state.logs).clone()
    }

    /// The first span received that satisfies `pred`, waiting up to `timeout` for it to arrive.
    ///
    /// Blocks the calling thread, looking every 20 ms.
    pub fn wait_for_span(&self, pred: impl Fn(&Span) -> bool, timeout: Duration) -> Option<Span> {
        poll(timeout, || {
            lock(&self.state.spans)
                .iter()
                .find(|span| pred(span))
                .cloned()
        })
    }

    /// The latest export of the metric called `name`, waiting up to `timeout` for one to arrive.
    ///
    /// Metric exporters send the same metric periodically; the latest export carries the most
    /// recent values. Blocks the calling thread, looking every 20 ms.
    pub fn wait_for_metric(&self, name: &str, timeout: Duration) -> Option<Metric> {
        poll(timeout, || {
            lock(&self.state.metrics)
                .iter()
                .rev()
                .find(|metric| metric.name == name)
                .cloned()
        })
    }

    /// The first log record received that satisfies `pred`, waiting up to `timeout` for it to
    /// arrive.
    ///
    /// Blocks the calling thread, looking every 20 ms.
    pub fn wait_for_log(
        &self,
        pred: impl Fn(&LogRecord) -> bool,
        timeout: Duration,
    ) -> Option<LogRecord> {
        poll(timeout, || {
            lock(&self.state.logs).iter().find(|log| pred(log)).cloned()
        })
    }

    /// Makes the receiver a slow collector: from now on every export request is answered only
    /// after `delay`. What a request carries is recorded as soon as it arrives.
    pub fn set_delay(&self, delay: Duration) {
        *lock(&self.state.delay) = delay;
    }

    /// How many export requests (of all signals) arrived so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread was already printed; don't panic again while dropping.
            let _ = thread.join();
        }
    }
}

/// Calls `find` until it finds something or `timeout` passed, pausing [`POLL_INTERVAL`] between
/// calls.
fn poll<T>(timeout: Duration, mut find: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = find() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Locks `mutex`, ignoring poisoning: a panicking handler leaves the records consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the receiver got, and how slow it is; shared by the handlers and the [`OtlpReceiver`].
#[derive(Default)]
struct State {
    /// Spans received.
    spans: Mutex<Vec<Span>>,
    /// Metrics received.
    metrics: Mutex<Vec<Metric>>,
    /// Log records received.
    logs: Mutex<Vec<LogRecord>>,
    /// How long each export request waits before it is answered.
    delay: Mutex<Duration>,
    /// Export requests received.
    requests: AtomicUsize,
}

impl State {
    /// Records the spans of a trace export.
    fn record_traces(&self, request: ExportTraceServiceRequest) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mut spans = lock(&self.spans);
        for resource_spans in request.resource_spans {
            let resource = resource_attributes(resource_spans.resource);
            for scope_spans in resource_spans.scope_spans {
                let scope = scope_name(scope_spans.scope);
                spans.extend(
                    scope_spans
                        .spans
                        .into_iter()
                        .map(|span| convert_span(span, &resource, &scope)),
                );
            }
        }
    }

    /// Records the metrics of a metrics export; metrics without data are skipped.
    fn record_metrics(&self, request: ExportMetricsServiceRequest) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mut metrics = lock(&self.metrics);
        for resource_metrics in request.resource_metrics {
            let service_name = service_name(&resource_attributes(resource_metrics.resource));
            for scope_metrics in resource_metrics.scope_metrics {
                let scope = scope_name(scope_metrics.scope);
                metrics.extend(scope_metrics.metrics.into_iter().filter_map(|metric| {
                    let (kind, points) = metric_points(metric.data?);
                    Some(Metric {
                        name: metric.name,
                        kind,
                        points,
                        service_name: service_name.clone(),
                        scope: scope.clone(),
                    })
                }));
            }
        }
    }

    /// Records the log records of a logs export.
    fn record_logs(&self, request: ExportLogsServiceRequest) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mut logs = lock(&self.logs);
        for resource_logs in request.resource_logs {
            let service_name = service_name(&resource_attributes(resource_logs.resource));
            for scope_logs in resource_logs.scope_logs {
                logs.extend(
                    scope_logs
                        .log_records
                        .into_iter()
                        .map(|log| convert_log(log, service_name.as_ref())),
                );
            }
        }
    }

    /// Waits the configured delay before an answer goes out.
    async fn pause(&self) {
        let delay = *lock(&self.delay);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

/// Runs the server for `protocol` on `listener` until `stopped` fires (or its sender is dropped).
fn serve(
    protocol: Protocol,
    listener: TcpListener,
    state: Arc<State>,
    stopped: oneshot::Receiver<()>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build the OTLP receiver runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("register the listener");
        tokio::select! {
            () = serve_protocol(protocol, listener, state) => {}
            _ = stopped => {}
        }
    });
    // Dropping the runtime cancels every connection, including answers still being delayed.
}

/// Serves `protocol` on `listener`, forever.
async fn serve_protocol(protocol: Protocol, listener: tokio::net::TcpListener, state: Arc<State>) {
    match protocol {
        Protocol::Grpc => serve_grpc(listener, state).await,
        Protocol::HttpProtobuf => serve_http(listener, state).await,
    }
}

// --- gRPC ---

/// The three OTLP collector services, recording into the shared [`State`].
#[derive(Clone)]
struct Collector(Arc<State>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.record_traces(request.into_inner());
        self.0.pause().await;
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.record_metrics(request.into_inner());
        self.0.pause().await;
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.0.record_logs(request.into_inner());
        self.0.pause().await;
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// Serves the OTLP/gRPC collector services on `listener`.
async fn serve_grpc(listener: tokio::net::TcpListener, state: Arc<State>) {
    let collector = Collector(state);
    tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .add_service(MetricsServiceServer::new(collector.clone()))
        .add_service(LogsServiceServer::new(collector))
        .serve_with_incoming(TcpIncoming::from(listener))
        .await
        .expect("serve OTLP/gRPC");
}

// --- HTTP/protobuf ---

/// Serves OTLP/HTTP with protobuf bodies on `listener`, each connection on its own task.
async fn serve_http(listener: tokio::net::TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |request| handle_http(Arc::clone(&state), request));
            // A connection the exporter drops mid-request is its business, not the test's.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Answers one HTTP request: an export posted to a signal's path is recorded and answered with an
/// empty protobuf response after the delay; a body that doesn't decode is a 400; anything else a
/// 404.
async fn handle_http(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::POST || !is_protobuf(request.headers()) {
        return Ok(empty(StatusCode::NOT_FOUND));
    }
    let path = request.uri().path().to_owned();
    let Ok(body) = request.into_body().collect().await else {
        return Ok(empty(StatusCode::BAD_REQUEST));
    };
    let answer = match export_http(&state, &path, body.to_bytes()) {
        None => return Ok(empty(StatusCode::NOT_FOUND)),
        Some(Err(_)) => return Ok(empty(StatusCode::BAD_REQUEST)),
        Some(Ok(answer)) => answer,
    };
    state.pause().await;
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, PROTOBUF)
        .body(Full::new(Bytes::from(answer)))
        .expect("a valid response"))
}

/// Decodes and records the export request posted to `path`, returning the encoded (empty)
/// response; `None` when `path` is no OTLP signal.
fn export_http(state: &State, path: &str, body: Bytes) -> Option<Result<Vec<u8>, DecodeError>> {
    let answer = match path {
        TRACES_PATH => ExportTraceServiceRequest::decode(body).map(|request| {
            state.record_traces(request);
            ExportTraceServiceResponse::default().encode_to_vec()
        }),
        METRICS_PATH => ExportMetricsServiceRequest::decode(body).map(|request| {
            state.record_metrics(request);
            ExportMetricsServiceResponse::default().encode_to_vec()
        }),
        LOGS_PATH => ExportLogsServiceRequest::decode(body).map(|request| {
            state.record_logs(request);
            ExportLogsServiceResponse::default().encode_to_vec()
        }),
        _ => return None,
    };
    Some(answer)
}

/// Whether the request body is protobuf (`content-type: application/x-protobuf`, parameters
/// ignored).
fn is_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case(PROTOBUF))
}

/// A response with `status` and no body.
fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

// --- From protobuf to the records tests read ---

/// A protobuf span as a [`Span`] of `resource` and `scope`.
fn convert_span(span: proto_trace::Span, resource: &BTreeMap<String, String>, scope: &str) -> Span {
    Span {
        trace_id: hex(&span.trace_id),
        span_id: hex(&span.span_id),
        parent_span_id: hex(&span.parent_span_id),
        name: span.name,
        kind: span.kind,
        attributes: attributes(&span.attributes),
        attribute_types: span
            .attributes
            .iter()
            .map(|pair| (pair.key.clone(), value_type(pair.value.as_ref())))
            .collect(),
        service_name: service_name(resource),
        resource: resource.clone(),
        scope: scope.to_owned(),
        status_code: span.status.map_or(0, |status| status.code),
    }
}

/// A protobuf log record as a [`LogRecord`] of the service `service_name`.
fn convert_log(log: proto_logs::LogRecord, service_name: Option<&String>) -> LogRecord {
    LogRecord {
        body: log.body.as_ref().map(render).unwrap_or_default(),
        severity_text: log.severity_text,
        severity_number: log.severity_number,
        trace_id: hex(&log.trace_id),
        span_id: hex(&log.span_id),
        attributes: attributes(&log.attributes),
        service_name: service_name.cloned(),
    }
}

/// The kind of a metric's data and its points.
fn metric_points(data: metric::Data) -> (&'static str, Vec<Point>) {
    match data {
        metric::Data::Sum(sum) => ("sum", sum.data_points.iter().map(number_point).collect()),
        metric::Data::Gauge(gauge) => (
            "gauge",
            gauge.data_points.iter().map(number_point).collect(),
        ),
        metric::Data::Histogram(histogram) => {
            let points = histogram
                .data_points
                .iter()
                .map(|point| Point {
                    attributes: attributes(&point.attributes),
                    value: point.sum.unwrap_or_default(),
                    count: point.count,
                })
                .collect();
            ("histogram", points)
        }
        metric::Data::ExponentialHistogram(histogram) => {
            let points = histogram
                .data_points
                .iter()
                .map(|point| Point {
                    attributes: attributes(&point.attributes),
                    value: point.sum.unwrap_or_default(),
                    count: point.count,
                })
                .collect();
            ("exponential_histogram", points)
        }
        metric::Data::Summary(summary) => {
            let points = summary
                .data_points
                .iter()
                .map(|point| Point {
                    attributes: attributes(&point.attributes),
                    value: point.sum,
                    count: point.count,
                })
                .collect();
            ("summary", points)
        }
    }
}

/// A sum or gauge point, its value as `f64`.
#[expect(clippy::cast_precision_loss, reason = "test values are far below 2^53")]
fn number_point(point: &proto_metrics::NumberDataPoint) -> Point {
    let value = match point.value {
        Some(number_data_point::Value::AsDouble(value)) => value,
        Some(number_data_point::Value::AsInt(value)) => value as f64,
        None => 0.0,
    };
    Point {
        attributes: attributes(&point.attributes),
        value,
        count: 0,
    }
}

/// The attributes of a resource (none when absent).
fn resource_attributes(resource: Option<Resource>) -> BTreeMap<String, String> {
    resource
        .map(|resource| attributes(&resource.attributes))
        .unwrap_or_default()
}

/// The `service.name` among resource attributes.
fn service_name(resource: &BTreeMap<String, String>) -> Option<String> {
    resource.get(SERVICE_NAME).cloned()
}

/// The name of an instrumentation scope (empty when absent).
fn scope_name(scope: Option<InstrumentationScope>) -> String {
    scope.map(|scope| scope.name).unwrap_or_default()
}

/// Key-value pairs as a map, values rendered as strings.
fn attributes(pairs: &[KeyValue]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|pair| {
            (
                pair.key.clone(),
                pair.value.as_ref().map(render).unwrap_or_default(),
            )
        })
        .collect()
}

/// The type of an attribute value: `"string"`, `"bool"`, `"int"`, `"double"`, `"bytes"`,
/// `"kvlist"`, `"array<T>"` with `T` the type of its first item (`"array<>"` if empty), or
/// `""` if absent.
pub fn value_type(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(_)) => "string".to_owned(),
        Some(any_value::Value::BoolValue(_)) => "bool".to_owned(),
        Some(any_value::Value::IntValue(_)) => "int".to_owned(),
        Some(any_value::Value::DoubleValue(_)) => "double".to_owned(),
        Some(any_value::Value::BytesValue(_)) => "bytes".to_owned(),
        Some(any_value::Value::KvlistValue(_)) => "kvlist".to_owned(),
        Some(any_value::Value::ArrayValue(array)) => {
            format!("array<{}>", value_type(array.values.first()))
        }
    }
}

/// An attribute value or log body as a string (see [`Point::attributes`]).
fn render(value: &AnyValue) -> String {
    match &value.value {
        None => String::new(),
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(any_value::Value::DoubleValue(number)) => number.to_string(),
        Some(any_value::Value::BytesValue(bytes)) => hex(bytes),
        Some(any_value::Value::ArrayValue(array)) => {
            let items: Vec<String> = array.values.iter().map(render).collect();
            format!("[{}]", items.join(", "))
        }
        Some(any_value::Value::KvlistValue(list)) => {
            let items: Vec<String> = attributes(&list.values)
                .into_iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// `bytes` as lowercase hex; empty for no bytes.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;

    use super::*;

    /// Long enough for a loaded machine; the exports here take milliseconds.
    const TIMEOUT: Duration = Duration::from_secs(10);

    /// A string attribute.
    fn string(key: &str, value: &str) -> KeyValue {
        value_pair(key, any_value::Value::StringValue(value.to_owned()))
    }

    /// An attribute of any type.
    fn value_pair(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    /// The resource of the service `checkout`.
    fn resource() -> Resource {
        Resource {
            attributes: vec![string(SERVICE_NAME, "checkout"), string("host.name", "box")],
            ..Resource::default()
        }
    }

    /// The scope `omnia-test`.
    fn scope() -> InstrumentationScope {
        InstrumentationScope {
            name: "omnia-test".to_owned(),
            ..InstrumentationScope::default()
        }
    }

    /// A trace export with one server span.
    fn trace_request() -> ExportTraceServiceRequest {
        let span = proto_trace::Span {
            trace_id: (1..=16).collect(),
            span_id: (0xa1..=0xa8).collect(),
            name: "GET /items".to_owned(),
            kind: 2,
            attributes: vec![
                string("http.request.method", "GET"),
                value_pair("http.response.status_code", any_value::Value::IntValue(200)),
                value_pair("sampled", any_value::Value::BoolValue(true)),
                value_pair("ratio", any_value::Value::DoubleValue(0.5)),
            ],
            status: Some(proto_trace::Status {
                code: 1,
                ..proto_trace::Status::default()
            }),
            ..proto_trace::Span::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![proto_trace::ResourceSpans {
                resource: Some(resource()),
                scope_spans: vec![proto_trace::ScopeSpans {
                    scope: Some(scope()),
                    spans: vec![span],
                    ..proto_trace::ScopeSpans::default()
                }],
                ..proto_trace::ResourceSpans::default()
            }],
        }
    }

    /// A metrics export with an integer counter and a histogram.
    fn metrics_request() -> ExportMetricsServiceRequest {
        let counter = proto_metrics::Metric {
            name: "requests".to_owned(),
            data: Some(metric::Data::Sum(proto_metrics::Sum {
                data_points: vec![proto_metrics::NumberDataPoint {
                    attributes: vec![string("route", "/items")],
                    value: Some(number_data_point::Value::AsInt(3)),
                    ..proto_metrics::NumberDataPoint::default()
                }],
                ..proto_metrics::Sum::default()
            })),
            ..proto_metrics::Metric::default()
        };
        let histogram = proto_metrics::Metric {
            name: "duration".to_owned(),
            data: Some(metric::Data::Histogram(proto_metrics::Histogram {
                data_points: vec![proto_metrics::HistogramDataPoint {
                    count: 2,
                    sum: Some(1.5),
                    ..proto_metrics::HistogramDataPoint::default()
                }],
                ..proto_metrics::Histogram::default()
            })),
            ..proto_metrics::Metric::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![proto_metrics::ResourceMetrics {
                resource: Some(resource()),
                scope_metrics: vec![proto_metrics::ScopeMetrics {
                    scope: Some(scope()),
                    metrics: vec![counter, histogram],
                    ..proto_metrics::ScopeMetrics::default()
                }],
                ..proto_metrics::ResourceMetrics::default()
            }],
        }
    }

    /// A logs export with one record emitted inside the span of [`trace_request`].
    fn logs_request() -> ExportLogsServiceRequest {
        let log = proto_logs::LogRecord {
            severity_number: 9,
            severity_text: "INFO".to_owned(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue("hello".to_owned())),
            }),
            attributes: vec![value_pair("attempt", any_value::Value::IntValue(1))],
            trace_id: (1..=16).collect(),
            span_id: (0xa1..=0xa8).collect(),
            ..proto_logs::LogRecord::default()
        };
        ExportLogsServiceRequest {
            resource_logs: vec![proto_logs::ResourceLogs {
                resource: Some(resource()),
                scope_logs: vec![proto_logs::ScopeLogs {
                    scope: Some(scope()),
                    log_records: vec![log],
                    ..proto_logs::ScopeLogs::default()
                }],
                ..proto_logs::ResourceLogs::default()
            }],
        }
    }

    /// Exports one request of each signal over OTLP/gRPC with the generated tonic clients.
    async fn export_grpc(endpoint: String) {
        TraceServiceClient::connect(endpoint.clone())
            .await
            .expect("connect the trace client")
            .export(trace_request())
            .await
            .expect("export traces");
        MetricsServiceClient::connect(endpoint.clone())
            .await
            .expect("connect the metrics client")
            .export(metrics_request())
            .await
            .expect("export metrics");
        LogsServiceClient::connect(endpoint)
            .await
            .expect("connect the logs client")
            .export(logs_request())
            .await
            .expect("export logs");
    }

    /// Posts `body` to `url` as protobuf, returning the response.
    async fn post_protobuf(url: &str, body: Vec<u8>) -> crate::Response {
        crate::request(
            Method::POST,
            url,
            &[("content-type", PROTOBUF)],
            body.into(),
            false,
        )
        .await
        .expect("POST the export")
    }

    /// Exports one request of each signal over OTLP/HTTP, checking each answer.
    async fn export_http(endpoint: &str) {
        let exports = [
            (TRACES_PATH, trace_request().encode_to_vec()),
            (METRICS_PATH, metrics_request().encode_to_vec()),
            (LOGS_PATH, logs_request().encode_to_vec()),
        ];
        for (path, body) in exports {
            let response = post_protobuf(&format!("{endpoint}{path}"), body).await;
            assert_eq!(response.status, StatusCode::OK, "POST {path}");
            assert_eq!(
                response.headers[header::CONTENT_TYPE],
                PROTOBUF,
                "POST {path}"
            );
            // The empty response of every signal encodes to no bytes at all.
            assert!(response.body.is_empty(), "POST {path}: {:?}", response.body);
        }
    }

    /// Exports one request of each signal over `protocol`.
    async fn export(protocol: Protocol, endpoint: String) {
        match protocol {
            Protocol::Grpc => export_grpc(endpoint).await,
            Protocol::HttpProtobuf => export_http(&endpoint).await,
        }
    }

    /// Checks that the receiver recorded exactly what [`export`] sent.
    fn assert_recorded(receiver: &OtlpReceiver) {
        let resource = BTreeMap::from([
            (SERVICE_NAME.to_owned(), "checkout".to_owned()),
            ("host.name".to_owned(), "box".to_owned()),
        ]);
        let span = Span {
            trace_id: "0102030405060708090a0b0c0d0e0f10".to_owned(),
            span_id: "a1a2a3a4a5a6a7a8".to_owned(),
            parent_span_id: String::new(),
            name: "GET /items".to_owned(),
            kind: 2,
            attributes: BTreeMap::from([
                ("http.request.method".to_owned(), "GET".to_owned()),
                ("http.response.status_code".to_owned(), "200".to_owned()),
                ("ratio".to_owned(), "0.5".to_owned()),
                ("sampled".to_owned(), "true".to_owned()),
            ]),
            attribute_types: BTreeMap::from([
                ("http.request.method".to_owned(), "string".to_owned()),
                ("http.response.status_code".to_owned(), "int".to_owned()),
                ("ratio".to_owned(), "double".to_owned()),
                ("sampled".to_owned(), "bool".to_owned()),
            ]),
            service_name: Some("checkout".to_owned()),
            resource,
            scope: "omnia-test".to_owned(),
            status_code: 1,
        };
        assert_eq!(receiver.spans(), std::slice::from_ref(&span));
        assert_eq!(
            receiver.wait_for_span(|s| s.name == "GET /items", TIMEOUT),
            Some(span)
        );

        let counter = Metric {
            name: "requests".to_owned(),
            kind: "sum",
            points: vec![Point {
                attributes: BTreeMap::from([("route".to_owned(), "/items".to_owned())]),
                value: 3.0,
                count: 0,
            }],
            service_name: Some("checkout".to_owned()),
            scope: "omnia-test".to_owned(),
        };
        let histogram = Metric {
            name: "duration".to_owned(),
            kind: "histogram",
            points: vec![Point {
                attributes: BTreeMap::new(),
                value: 1.5,
                count: 2,
            }],
            service_name: Some("checkout".to_owned()),
            scope: "omnia-test".to_owned(),
        };
        assert_eq!(receiver.metrics(), [counter.clone(), histogram]);
        assert_eq!(receiver.wait_for_metric("requests", TIMEOUT), Some(counter));

        let log = LogRecord {
            body: "hello".to_owned(),
            severity_text: "INFO".to_owned(),
            severity_number: 9,
            trace_id: "0102030405060708090a0b0c0d0e0f10".to_owned(),
            span_id: "a1a2a3a4a5a6a7a8".to_owned(),
            attributes: BTreeMap::from([("attempt".to_owned(), "1".to_owned())]),
            service_name: Some("checkout".to_owned()),
        };
        assert_eq!(receiver.logs(), std::slice::from_ref(&log));
        assert_eq!(
            receiver.wait_for_log(|l| l.body == "hello", TIMEOUT),
            Some(log)
        );

        assert_eq!(receiver.requests(), 3);
    }

    #[tokio::test]
    async fn grpc_exports_are_recorded() {
        let receiver = OtlpReceiver::start(Protocol::Grpc);
        export(Protocol::Grpc, receiver.endpoint()).await;
        assert_recorded(&receiver);
    }

    #[tokio::test]
    async fn http_protobuf_exports_are_recorded() {
        let receiver = OtlpReceiver::start(Protocol::HttpProtobuf);
        export(Protocol::HttpProtobuf, receiver.endpoint()).await;
        assert_recorded(&receiver);
    }

    #[tokio::test]
    async fn http_protobuf_answers_404_to_anything_but_an_export() {
        let receiver = OtlpReceiver::start(Protocol::HttpProtobuf);
        let endpoint = receiver.endpoint();
        let body = trace_request().encode_to_vec();
        let wrong_path = post_protobuf(&format!("{endpoint}/v1/spans"), body.clone()).await;
        assert_eq!(wrong_path.status, StatusCode::NOT_FOUND);
        let url = format!("{endpoint}{TRACES_PATH}");
        let json = [("content-type", "application/json")];
        let wrong_type = crate::request(Method::POST, &url, &json, body.into(), false).await;
        assert_eq!(
            wrong_type.expect("POST as JSON").status,
            StatusCode::NOT_FOUND
        );
        let get = crate::get(&url).await.expect("GET the traces path");
        assert_eq!(get.status, StatusCode::NOT_FOUND);
        assert_eq!(receiver.requests(), 0);
    }

    #[test]
    fn the_delay_holds_back_every_answer() {
        let delay = Duration::from_millis(300);
        let runtime = tokio::runtime::Runtime::new().expect("a client runtime");
        for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
            let receiver = OtlpReceiver::start(protocol);
            receiver.set_delay(delay);
            let started = Instant::now();
            runtime.block_on(export(protocol, receiver.endpoint()));
            // Three exports, one after the other, each answered only after the delay.
            assert!(
                started.elapsed() >= delay * 3,
                "{protocol:?}: {:?}",
                started.elapsed()
            );
            assert_eq!(receiver.requests(), 3, "{protocol:?}");
        }
    }
}
