//! A WASIp3 HTTP handler that reports its work through upstream omnia's telemetry package
//! (`omnia:otel@0.1.0`: `tracing.export` and `metrics.export` are `async func`s), written
//! against the raw WIT as an upstream guest's SDK would call it, so the host's tests can check
//! that such guests run unchanged and that their telemetry joins the request's trace.
//!
//! On any request it exports, in one `tracing.export` call:
//!
//! * `p3-otel-http work`: a child of the request's `traceparent` header (a root span, with a
//!   new trace id, if there is none), with typed attributes: `guest.path` (string),
//!   `guest.cached` (bool), `guest.ratio` (f64), `guest.attempt` (s64), `guest.tags` (string
//!   array) and `guest.sizes` (s64 array), and an event `checked`;
//! * `p3-otel-http root`: a span without a parent in a new trace, as upstream's SDK starts a
//!   span outside any other, which the host grafts onto the request's span;
//! * `p3-otel-http step`: a child of `p3-otel-http root`, in its trace;
//!
//! then a monotonic sum `p3_otel_requests` of 1 with attribute `guest.path`, in one
//! `metrics.export` call. With a query `sleep=MS` it waits that long first (only its own task
//! waits), so that requests overlap on one instance. It answers 200 with the host's resource (`resource.resource`), a line
//! `KEY=VALUE` per attribute, sorted, then `spans: ok` and `metrics: ok`; an export error gives
//! 500 and the line `spans: error ...` or `metrics: error ...`.
use guest_http_p3::{new_id, respond, sleep_ms, ErrorCode, Guest, Request, Response};

mod otel {
    wit_bindgen::generate!({
        path: "../../wit/p3-otel",
        world: "omnia:guests-p3-otel/otel-upstream",
        generate_all,
    });
}

use otel::omnia::otel::metrics::{
    AggregatedMetrics, DataValue, Metric, MetricData, ResourceMetrics, ScopeMetrics, Sum,
    SumDataPoint, Temporality,
};
use otel::omnia::otel::tracing::{Event, SpanContext, SpanData, SpanKind, Status, TraceFlags};
use otel::omnia::otel::types::{Error, InstrumentationScope, KeyValue, Value};
use otel::omnia::otel::{metrics, resource, tracing};
use otel::wasi::clocks::wall_clock::{self, Datetime};

/// The span id upstream's SDK gives a span without a parent (`SpanId::INVALID`).
const NO_PARENT: &str = "0000000000000000";

struct Component;

impl Guest for Component {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let start = wall_clock::now();
        let path_with_query = request.get_path_with_query().unwrap_or_default();
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((&path_with_query, ""));
        let path = path.to_string();
        let sleep = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("sleep="))
            .and_then(|ms| ms.parse::<u64>().ok());
        let traceparent = request
            .get_headers()
            .get("traceparent")
            .into_iter()
            .next()
            .and_then(|value| String::from_utf8(value).ok());
        let parent = traceparent.as_deref().and_then(parse_traceparent);
        drop(request);
        if let Some(ms) = sleep {
            sleep_ms(ms).await;
        }

        let resource = resource::resource();
        let mut lines: Vec<String> = resource
            .attributes
            .iter()
            .map(|kv| format!("{}={}", kv.key, text(&kv.value)))
            .collect();
        lines.sort();

        let end = wall_clock::now();
        let (trace_id, parent_span_id) = match parent {
            Some((trace, span)) => (trace, span),
            None => (new_id(32), NO_PARENT.to_string()),
        };
        let work = span(
            "p3-otel-http work",
            trace_id,
            parent_span_id,
            start,
            end,
            vec![
                kv("guest.path", Value::String(path.clone())),
                kv("guest.cached", Value::Bool(false)),
                kv("guest.ratio", Value::F64(0.5)),
                kv("guest.attempt", Value::S64(3)),
                kv(
                    "guest.tags",
                    Value::StringArray(vec!["a".into(), "b".into()]),
                ),
                kv("guest.sizes", Value::S64Array(vec![1, 2, 3])),
            ],
        );
        let root_trace = new_id(32);
        let root = span(
            "p3-otel-http root",
            root_trace.clone(),
            NO_PARENT.into(),
            start,
            end,
            vec![],
        );
        let step = span(
            "p3-otel-http step",
            root_trace,
            root.span_context.span_id.clone(),
            start,
            end,
            vec![kv("guest.step", Value::S64(1))],
        );
        let mut ok = true;
        match tracing::export(vec![work, root, step]).await {
            Ok(()) => lines.push("spans: ok".into()),
            Err(err) => {
                ok = false;
                lines.push(format!("spans: error {}", describe(&err)));
            }
        }
        match metrics::export(counter(&path, start, end)).await {
            Ok(()) => lines.push("metrics: ok".into()),
            Err(err) => {
                ok = false;
                lines.push(format!("metrics: error {}", describe(&err)));
            }
        }
        let body: String = lines.iter().map(|line| format!("{line}\n")).collect();
        Ok(respond(if ok { 200 } else { 500 }, &[], body.into_bytes()))
    }
}

guest_http_p3::export!(Component);

/// The trace id and span id of a `traceparent` (`00-<trace id>-<span id>-<flags>`).
fn parse_traceparent(value: &str) -> Option<(String, String)> {
    let mut parts = value.trim().split('-');
    let (_version, trace, span) = (parts.next()?, parts.next()?, parts.next()?);
    (trace.len() == 32 && span.len() == 16).then(|| (trace.to_string(), span.to_string()))
}

fn span(
    name: &str,
    trace_id: String,
    parent_span_id: String,
    start: Datetime,
    end: Datetime,
    attributes: Vec<KeyValue>,
) -> SpanData {
    SpanData {
        span_context: SpanContext {
            trace_id,
            span_id: new_id(16),
            trace_flags: TraceFlags::SAMPLED,
            is_remote: false,
            trace_state: Vec::new(),
        },
        parent_span_id,
        span_kind: SpanKind::Internal,
        name: name.to_string(),
        start_time: start,
        end_time: end,
        attributes,
        events: vec![Event {
            name: "checked".into(),
            time: end,
            attributes: vec![kv("guest.ok", Value::Bool(true))],
        }],
        links: Vec::new(),
        status: Status::Ok,
        instrumentation_scope: scope(),
        dropped_attributes: 0,
        dropped_events: 0,
        dropped_links: 0,
    }
}

/// One request counted, as upstream's SDK exports a counter.
fn counter(path: &str, start: Datetime, end: Datetime) -> ResourceMetrics {
    ResourceMetrics {
        // The guest's own resource: the host exports under the runtime's whatever it says.
        resource: otel::omnia::otel::types::Resource {
            attributes: vec![kv("service.name", Value::String("guest-says".into()))],
            schema_url: None,
        },
        scope_metrics: vec![ScopeMetrics {
            scope: scope(),
            metrics: vec![Metric {
                name: "p3_otel_requests".into(),
                description: "requests the guest handled".into(),
                unit: "1".into(),
                data: AggregatedMetrics::U64(MetricData::Sum(Sum {
                    data_points: vec![SumDataPoint {
                        attributes: vec![kv("guest.path", Value::String(path.to_string()))],
                        value: DataValue::U64(1),
                        exemplars: Vec::new(),
                    }],
                    start_time: start,
                    time: end,
                    temporality: Temporality::Cumulative,
                    is_monotonic: true,
                })),
            }],
        }],
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "p3-otel-http".into(),
        version: Some("0.1.0".into()),
        schema_url: None,
        attributes: Vec::new(),
    }
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value,
    }
}

/// A value as the response shows it.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::F64(f) => f.to_string(),
        Value::S64(i) => i.to_string(),
        Value::StringArray(list) => list.join(","),
        Value::BoolArray(list) => list
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        Value::F64Array(list) => list
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        Value::S64Array(list) => list
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn describe(err: &Error) -> String {
    match err {
        Error::AlreadyShutdown => "already-shutdown".into(),
        Error::Timeout(ms) => format!("timeout {ms}"),
        Error::InternalFailure(message) => format!("internal-failure {message}"),
    }
}
