//! `wasi:otel` for guests: their spans, metrics and log records, exported with the runtime's.
//!
//! A guest's OpenTelemetry SDK asks [`current-span-context`] for its parent, which is the span
//! the runtime opened for the request or message, so the guest's spans are its children in the
//! same trace. Ended spans join the runtime's span queue (same exporter, same bound, same
//! drop count); metrics and log records go through [`crate::otlp`]. Everything is exported
//! under the runtime's resource (`OTEL_SERVICE_NAME`, ...): the resource a guest reports is
//! not used, as the operator, not the component, names the service. Log records without a
//! trace context get the request's.
//!
//! Without an export endpoint the interfaces are still served (a guest built with telemetry
//! runs anywhere): the span context is the incoming `traceparent`'s, or the invalid one, and
//! what the guest emits is dropped.
//!
//! Guest input is checked, never trusted: a span with a malformed trace or span id is dropped;
//! attributes, events and links beyond 128 are dropped and counted in the span as the SDK
//! would; attribute values are the JSON the WIT prescribes, and text that is not JSON is kept
//! as a string.
//!
//! [`current-span-context`]: https://github.com/WebAssembly/wasi-otel

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use omnia::trace::TraceContext;
use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::common::v1 as proto;
use opentelemetry_proto::tonic::logs::v1 as proto_logs;
use opentelemetry_proto::tonic::metrics::v1 as proto_metrics;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use serde_json::Value as Json;
use wasmtime::component::HasData;

use crate::pipeline::Pipeline;
use crate::record::GuestRecord;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "omnia:wasi-otel/otel-host",
    });
}

use bindings::wasi::clocks::wall_clock::Datetime;
use bindings::wasi::otel::{logs, metrics, tracing, types};

/// Attributes, events and links kept per span or record at most (the SDK's default limits).
const LIMIT: usize = 128;

/// The prefix of a byte array in a `wasi:otel` value.
const BYTES_PREFIX: &str = "data:application/octet-stream;base64,";

/// What the `wasi:otel` host functions of one store see.
pub struct OtelView<'a> {
    /// The export pipeline, if export is on.
    pub pipeline: Option<&'a Pipeline>,
    /// The trace context of the store's request or message.
    pub trace: Option<TraceContext>,
}

struct HasOtel;

impl HasData for HasOtel {
    type Data<'a> = OtelView<'a>;
}

/// Adds `wasi:otel` (tracing, metrics, logs) to `linker`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> OtelView<'_>,
) -> anyhow::Result<()> {
    types::add_to_linker::<_, HasOtel>(linker, view)?;
    tracing::add_to_linker::<_, HasOtel>(linker, view)?;
    metrics::add_to_linker::<_, HasOtel>(linker, view)?;
    logs::add_to_linker::<_, HasOtel>(linker, view)?;
    Ok(())
}

impl types::Host for OtelView<'_> {}

impl tracing::Host for OtelView<'_> {
    /// Nothing to do: a span is exported when it ends.
    fn on_start(&mut self, _context: tracing::SpanContext) {}

    fn on_end(&mut self, span: tracing::SpanData) {
        if let Some(pipeline) = self.pipeline {
            if let Some(span) = span_data(span) {
                pipeline.export_span(span);
            } else {
                ::tracing::debug!("wasi:otel: a span with a malformed id was dropped");
            }
        }
    }

    /// The request's (or message's) span, so that the guest's spans are its children.
    fn current_span_context(&mut self) -> tracing::SpanContext {
        let (trace_id, span_id, sampled) = self.trace.map_or_else(
            || ("0".repeat(32), "0".repeat(16), false),
            |t| (t.trace_id_hex(), t.span_id_hex(), t.sampled),
        );
        tracing::SpanContext {
            trace_id,
            span_id,
            trace_flags: if sampled {
                tracing::TraceFlags::SAMPLED
            } else {
                tracing::TraceFlags::empty()
            },
            is_remote: false,
            trace_state: Vec::new(),
        }
    }
}

impl metrics::Host for OtelView<'_> {
    fn export(&mut self, data: metrics::ResourceMetrics) -> Result<(), metrics::Error> {
        if let Some(pipeline) = self.pipeline {
            pipeline.export_guest(GuestRecord::Metrics(resource_metrics(data)));
        }
        Ok(())
    }
}

impl logs::Host for OtelView<'_> {
    fn on_emit(&mut self, data: logs::LogRecord) {
        if let Some(pipeline) = self.pipeline {
            let scope = data.instrumentation_scope.clone().map(proto_scope);
            pipeline.export_guest(GuestRecord::Log(scope, log_record(data, self.trace)));
        }
    }
}

// ---- spans, into the SDK's span data ----

fn span_data(span: tracing::SpanData) -> Option<SpanData> {
    let context = span_context(&span.span_context)?;
    let parent_span_id = if span.parent_span_id.is_empty() {
        SpanId::INVALID
    } else {
        span_id(&span.parent_span_id)?
    };
    let (span_attributes, dropped) = attributes(span.attributes);
    let mut events = SpanEvents::default();
    events.dropped_count = span
        .dropped_events
        .saturating_add(count(span.events.len().saturating_sub(LIMIT)));
    events.events = span
        .events
        .into_iter()
        .take(LIMIT)
        .map(|event| {
            let (attributes, dropped) = attributes(event.attributes);
            Event::new(event.name, system_time(event.time), attributes, dropped)
        })
        .collect();
    let mut links = SpanLinks::default();
    links.dropped_count = span
        .dropped_links
        .saturating_add(count(span.links.len().saturating_sub(LIMIT)));
    links.links = span
        .links
        .into_iter()
        .take(LIMIT)
        .filter_map(|link| {
            let (attributes, dropped) = attributes(link.attributes);
            Some(Link::new(
                span_context(&link.span_context)?,
                attributes,
                dropped,
            ))
        })
        .collect();
    Some(SpanData {
        span_context: context,
        parent_span_id,
        parent_span_is_remote: false,
        span_kind: match span.span_kind {
            tracing::SpanKind::Client => SpanKind::Client,
            tracing::SpanKind::Server => SpanKind::Server,
            tracing::SpanKind::Producer => SpanKind::Producer,
            tracing::SpanKind::Consumer => SpanKind::Consumer,
            tracing::SpanKind::Internal => SpanKind::Internal,
        },
        name: Cow::Owned(span.name),
        start_time: system_time(span.start_time),
        end_time: system_time(span.end_time),
        attributes: span_attributes,
        dropped_attributes_count: span.dropped_attributes.saturating_add(dropped),
        events,
        links,
        status: match span.status {
            tracing::Status::Unset => Status::Unset,
            tracing::Status::Ok => Status::Ok,
            tracing::Status::Error(description) => Status::error(description),
        },
        instrumentation_scope: scope(span.instrumentation_scope),
    })
}

fn span_context(context: &tracing::SpanContext) -> Option<SpanContext> {
    let trace_id = trace_id(&context.trace_id)?;
    let flags = if context.trace_flags.contains(tracing::TraceFlags::SAMPLED) {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let state = TraceState::from_key_value(context.trace_state.iter().cloned()).unwrap_or_default();
    Some(SpanContext::new(
        trace_id,
        span_id(&context.span_id)?,
        flags,
        context.is_remote,
        state,
    ))
}

fn trace_id(hex: &str) -> Option<TraceId> {
    is_hex(hex, 32)
        .then(|| TraceId::from_hex(hex).ok())
        .flatten()
}

fn span_id(hex: &str) -> Option<SpanId> {
    is_hex(hex, 16)
        .then(|| SpanId::from_hex(hex).ok())
        .flatten()
}

/// `len` hex digits and nothing else (`from_str_radix` would take a sign).
fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn scope(scope: types::InstrumentationScope) -> InstrumentationScope {
    let mut builder = InstrumentationScope::builder(scope.name);
    if let Some(version) = scope.version {
        builder = builder.with_version(version);
    }
    if let Some(url) = scope.schema_url {
        builder = builder.with_schema_url(url);
    }
    builder
        .with_attributes(attributes(scope.attributes).0)
        .build()
}

/// At most [`LIMIT`] attributes, and how many were dropped.
fn attributes(list: Vec<types::KeyValue>) -> (Vec<KeyValue>, u32) {
    let dropped = count(list.len().saturating_sub(LIMIT));
    let kept = list
        .into_iter()
        .take(LIMIT)
        .map(|kv| KeyValue::new(kv.key, value(&kv.value)))
        .collect();
    (kept, dropped)
}

/// A span attribute value from its JSON: scalars and arrays of one scalar type as such,
/// anything else (objects, mixed arrays, null, text that is not JSON) as its text.
fn value(json: &str) -> Value {
    let Ok(parsed) = serde_json::from_str::<Json>(json) else {
        return Value::String(json.to_owned().into());
    };
    let scalar = |v: &Json| -> Option<Value> {
        match v {
            Json::Bool(b) => Some(Value::Bool(*b)),
            Json::String(s) => Some(Value::String(s.clone().into())),
            Json::Number(n) => n
                .as_i64()
                .map(Value::I64)
                .or_else(|| n.as_f64().map(Value::F64)),
            _ => None,
        }
    };
    if let Some(v) = scalar(&parsed) {
        return v;
    }
    if let Json::Array(items) = &parsed {
        let values: Option<Vec<Value>> = items.iter().map(scalar).collect();
        if let Some(values) = values {
            let array = match values.first() {
                None => Some(Array::String(Vec::new())),
                Some(Value::Bool(_)) => values
                    .iter()
                    .map(|v| match v {
                        Value::Bool(b) => Some(*b),
                        _ => None,
                    })
                    .collect::<Option<_>>()
                    .map(Array::Bool),
                Some(Value::I64(_)) => values
                    .iter()
                    .map(|v| match v {
                        Value::I64(i) => Some(*i),
                        _ => None,
                    })
                    .collect::<Option<_>>()
                    .map(Array::I64),
                Some(Value::F64(_)) => values
                    .iter()
                    .map(|v| match v {
                        Value::F64(f) => Some(*f),
                        #[expect(clippy::cast_precision_loss, reason = "as JSON reads it")]
                        Value::I64(i) => Some(*i as f64),
                        _ => None,
                    })
                    .collect::<Option<_>>()
                    .map(Array::F64),
                Some(_) => values
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Some(StringValue::from(s.as_str().to_owned())),
                        _ => None,
                    })
                    .collect::<Option<_>>()
                    .map(Array::String),
            };
            if let Some(array) = array {
                return Value::Array(array);
            }
        }
    }
    Value::String(json.to_owned().into())
}

// ---- metrics and logs, into OTLP messages ----

fn resource_metrics(data: metrics::ResourceMetrics) -> proto_metrics::ResourceMetrics {
    proto_metrics::ResourceMetrics {
        scope_metrics: data
            .scope_metrics
            .into_iter()
            .map(|scope| proto_metrics::ScopeMetrics {
                scope: Some(proto_scope(scope.scope)),
                metrics: scope.metrics.into_iter().map(metric).collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn metric(metric: metrics::Metric) -> proto_metrics::Metric {
    use metrics::MetricData as D;
    use proto_metrics::metric::Data;
    let data = match metric.data {
        D::F64Gauge(g) | D::U64Gauge(g) | D::S64Gauge(g) => Data::Gauge(proto_metrics::Gauge {
            data_points: g
                .data_points
                .into_iter()
                .map(|p| proto_metrics::NumberDataPoint {
                    attributes: proto_attributes(p.attributes),
                    start_time_unix_nano: g.start_time.map_or(0, nanos),
                    time_unix_nano: nanos(g.time),
                    exemplars: p.exemplars.into_iter().map(exemplar).collect(),
                    value: Some(number(p.value)),
                    ..Default::default()
                })
                .collect(),
        }),
        D::F64Sum(s) | D::U64Sum(s) | D::S64Sum(s) => Data::Sum(proto_metrics::Sum {
            data_points: s
                .data_points
                .into_iter()
                .map(|p| proto_metrics::NumberDataPoint {
                    attributes: proto_attributes(p.attributes),
                    start_time_unix_nano: nanos(s.start_time),
                    time_unix_nano: nanos(s.time),
                    exemplars: p.exemplars.into_iter().map(exemplar).collect(),
                    value: Some(number(p.value)),
                    ..Default::default()
                })
                .collect(),
            aggregation_temporality: temporality(s.temporality),
            is_monotonic: s.is_monotonic,
        }),
        D::F64Histogram(h) | D::U64Histogram(h) | D::S64Histogram(h) => {
            Data::Histogram(proto_metrics::Histogram {
                data_points: h
                    .data_points
                    .into_iter()
                    .map(|p| proto_metrics::HistogramDataPoint {
                        attributes: proto_attributes(p.attributes),
                        start_time_unix_nano: nanos(h.start_time),
                        time_unix_nano: nanos(h.time),
                        count: p.count,
                        sum: Some(float(p.sum)),
                        bucket_counts: p.bucket_counts,
                        explicit_bounds: p.bounds,
                        exemplars: p.exemplars.into_iter().map(exemplar).collect(),
                        min: p.min.map(float),
                        max: p.max.map(float),
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: temporality(h.temporality),
            })
        }
        D::F64ExponentialHistogram(h)
        | D::U64ExponentialHistogram(h)
        | D::S64ExponentialHistogram(h) => {
            use proto_metrics::exponential_histogram_data_point::Buckets;
            Data::ExponentialHistogram(proto_metrics::ExponentialHistogram {
                data_points: h
                    .data_points
                    .into_iter()
                    .map(|p| proto_metrics::ExponentialHistogramDataPoint {
                        attributes: proto_attributes(p.attributes),
                        start_time_unix_nano: nanos(h.start_time),
                        time_unix_nano: nanos(h.time),
                        count: p.count,
                        sum: Some(float(p.sum)),
                        scale: i32::from(p.scale),
                        zero_count: p.zero_count,
                        positive: Some(Buckets {
                            offset: p.positive_bucket.offset,
                            bucket_counts: p.positive_bucket.counts,
                        }),
                        negative: Some(Buckets {
                            offset: p.negative_bucket.offset,
                            bucket_counts: p.negative_bucket.counts,
                        }),
                        exemplars: p.exemplars.into_iter().map(exemplar).collect(),
                        min: p.min.map(float),
                        max: p.max.map(float),
                        zero_threshold: p.zero_threshold,
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: temporality(h.temporality),
            })
        }
    };
    proto_metrics::Metric {
        name: metric.name,
        description: metric.description,
        unit: metric.unit,
        data: Some(data),
        ..Default::default()
    }
}

fn number(n: metrics::MetricNumber) -> proto_metrics::number_data_point::Value {
    use proto_metrics::number_data_point::Value as V;
    match n {
        metrics::MetricNumber::F64(f) => V::AsDouble(f),
        metrics::MetricNumber::S64(i) => V::AsInt(i),
        metrics::MetricNumber::U64(u) => V::AsInt(i64::try_from(u).unwrap_or(i64::MAX)),
    }
}

#[expect(
    clippy::cast_precision_loss,
    reason = "OTLP histogram sums and bounds are doubles"
)]
fn float(n: metrics::MetricNumber) -> f64 {
    match n {
        metrics::MetricNumber::F64(f) => f,
        metrics::MetricNumber::S64(i) => i as f64,
        metrics::MetricNumber::U64(u) => u as f64,
    }
}

fn exemplar(e: metrics::Exemplar) -> proto_metrics::Exemplar {
    use proto_metrics::exemplar::Value as V;
    proto_metrics::Exemplar {
        filtered_attributes: proto_attributes(e.filtered_attributes),
        time_unix_nano: nanos(e.time),
        span_id: span_id(&e.span_id).map_or_else(Vec::new, |id| id.to_bytes().to_vec()),
        trace_id: trace_id(&e.trace_id).map_or_else(Vec::new, |id| id.to_bytes().to_vec()),
        value: Some(match e.value {
            metrics::MetricNumber::F64(f) => V::AsDouble(f),
            metrics::MetricNumber::S64(i) => V::AsInt(i),
            metrics::MetricNumber::U64(u) => V::AsInt(i64::try_from(u).unwrap_or(i64::MAX)),
        }),
    }
}

/// Low-memory is the SDK's delta temporality for counters and histograms.
fn temporality(t: metrics::Temporality) -> i32 {
    use proto_metrics::AggregationTemporality as A;
    match t {
        metrics::Temporality::Cumulative => A::Cumulative as i32,
        metrics::Temporality::Delta | metrics::Temporality::LowMemory => A::Delta as i32,
    }
}

fn log_record(data: logs::LogRecord, trace: Option<TraceContext>) -> proto_logs::LogRecord {
    let (attributes, dropped) = match data.attributes {
        Some(list) => {
            let dropped = count(list.len().saturating_sub(LIMIT));
            (
                proto_attributes(list.into_iter().take(LIMIT).collect()),
                dropped,
            )
        }
        None => (Vec::new(), 0),
    };
    // The guest's own trace context, else the request's.
    let ids = match (&data.trace_id, &data.span_id) {
        (Some(t), Some(s)) => trace_id(t).zip(span_id(s)).map(|(t, s)| {
            let sampled = data
                .trace_flags
                .is_some_and(|f| f.contains(tracing::TraceFlags::SAMPLED));
            (t.to_bytes().to_vec(), s.to_bytes().to_vec(), sampled)
        }),
        _ => trace.map(|t| (t.trace_id.to_vec(), t.span_id.to_vec(), t.sampled)),
    };
    let (trace_id, span_id, sampled) = ids.unwrap_or_default();
    proto_logs::LogRecord {
        time_unix_nano: data.timestamp.map_or(0, nanos),
        observed_time_unix_nano: data.observed_timestamp.map_or_else(now_nanos, nanos),
        severity_number: data
            .severity_number
            .filter(|n| *n <= 24)
            .map_or(0, i32::from),
        severity_text: data.severity_text.unwrap_or_default(),
        body: data.body.map(|json| any_value(&json)),
        attributes,
        dropped_attributes_count: dropped,
        flags: u32::from(sampled),
        trace_id,
        span_id,
        event_name: data.event_name.unwrap_or_default(),
    }
}

fn proto_scope(scope: types::InstrumentationScope) -> proto::InstrumentationScope {
    proto::InstrumentationScope {
        name: scope.name,
        version: scope.version.unwrap_or_default(),
        attributes: proto_attributes(scope.attributes),
        ..Default::default()
    }
}

fn proto_attributes(list: Vec<types::KeyValue>) -> Vec<proto::KeyValue> {
    list.into_iter()
        .map(|kv| proto::KeyValue {
            value: Some(any_value(&kv.value)),
            key: kv.key,
        })
        .collect()
}

/// An OTLP value from its JSON: objects and arrays nested, byte arrays (the `data:` prefix)
/// as bytes; text that is not JSON as a string.
fn any_value(json: &str) -> proto::AnyValue {
    match serde_json::from_str::<Json>(json) {
        Ok(parsed) => from_json(parsed),
        Err(_) => string(json.to_owned()),
    }
}

fn from_json(json: Json) -> proto::AnyValue {
    use proto::any_value::Value as V;
    let value = match json {
        Json::Null => None,
        Json::Bool(b) => Some(V::BoolValue(b)),
        Json::Number(n) => n
            .as_i64()
            .map(V::IntValue)
            .or_else(|| n.as_f64().map(V::DoubleValue)),
        Json::String(s) => match s
            .strip_prefix(BYTES_PREFIX)
            .map(|b64| base64::engine::general_purpose::STANDARD.decode(b64))
        {
            Some(Ok(bytes)) => Some(V::BytesValue(bytes)),
            _ => Some(V::StringValue(s)),
        },
        Json::Array(items) => Some(V::ArrayValue(proto::ArrayValue {
            values: items.into_iter().map(from_json).collect(),
        })),
        Json::Object(map) => Some(V::KvlistValue(proto::KeyValueList {
            values: map
                .into_iter()
                .map(|(key, value)| proto::KeyValue {
                    key,
                    value: Some(from_json(value)),
                })
                .collect(),
        })),
    };
    proto::AnyValue { value }
}

fn string(s: String) -> proto::AnyValue {
    proto::AnyValue {
        value: Some(proto::any_value::Value::StringValue(s)),
    }
}

// ---- time and counts ----

fn system_time(t: Datetime) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::new(t.seconds, t.nanoseconds.min(999_999_999)))
        .unwrap_or(UNIX_EPOCH)
}

fn nanos(t: Datetime) -> u64 {
    t.seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(t.nanoseconds))
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_values_follow_their_json() {
        assert_eq!(value("\"GET\""), Value::from("GET"));
        assert_eq!(value("200"), Value::I64(200));
        assert_eq!(value("1.5"), Value::F64(1.5));
        assert_eq!(value("true"), Value::Bool(true));
        assert_eq!(value("[1,2]"), Value::Array(Array::I64(vec![1, 2])));
        assert_eq!(value("not json"), Value::from("not json"));
        assert_eq!(value("{\"a\":1}"), Value::from("{\"a\":1}"));
    }

    #[test]
    fn log_bodies_keep_structure_and_bytes() {
        use proto::any_value::Value as V;
        let body = any_value("{\"bytes\":\"data:application/octet-stream;base64,AAE=\"}");
        let Some(V::KvlistValue(list)) = body.value else {
            panic!("{body:?}")
        };
        assert_eq!(list.values[0].key, "bytes");
        assert_eq!(
            list.values[0].value.as_ref().and_then(|v| v.value.clone()),
            Some(V::BytesValue(vec![0, 1]))
        );
        assert_eq!(
            any_value("plain").value,
            Some(V::StringValue("plain".into()))
        );
    }

    #[test]
    fn malformed_ids_are_refused() {
        assert!(trace_id("4bf92f3577b34da6a3ce929d0e0e4736").is_some());
        assert!(trace_id("4bf92f35").is_none());
        assert!(trace_id("zzf92f3577b34da6a3ce929d0e0e4736").is_none());
        assert!(span_id("00f067aa0ba902b7").is_some());
        assert!(span_id("+0f067aa0ba902b7").is_none());
    }
}
