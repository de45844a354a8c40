//! Guest log records into OTLP messages, keeping what the guest chose (severity text, event
//! name), which the SDK's loggers would not; a record without a trace context gets the
//! request's.

use omnia::trace::TraceContext;
use opentelemetry_proto::tonic::logs::v1 as proto_logs;

use super::bindings::wasi::otel::{logs, tracing};
use super::common::{
    LIMIT, any_value, count, nanos, now_nanos, proto_attributes, span_id, trace_id,
};

pub(super) fn log_record(
    data: logs::LogRecord,
    trace: Option<TraceContext>,
) -> proto_logs::LogRecord {
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
