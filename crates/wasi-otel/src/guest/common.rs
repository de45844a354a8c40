//! What the conversions of guest spans, metrics and logs share, in both shapes (`wasi:otel`,
//! `omnia:otel`): the SDK's limit on attributes, trace and span ids checked from their hex, and
//! WASI datetimes as the SDK's and OTLP's times (`omnia:otel`'s bindings use `wasi:otel`'s
//! datetime type); and `wasi:otel`'s OTLP attribute values from the JSON its WIT prescribes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_proto::tonic::common::v1 as proto;
use serde_json::Value as Json;

use super::bindings::wasi::clocks::wall_clock::Datetime;
use super::bindings::wasi::otel::types;

/// Attributes, events and links kept per span or record at most (the SDK's default limits).
pub(super) const LIMIT: usize = 128;

/// The prefix of a byte array in a `wasi:otel` value.
const BYTES_PREFIX: &str = "data:application/octet-stream;base64,";

pub(super) fn trace_id(hex: &str) -> Option<TraceId> {
    is_hex(hex, 32)
        .then(|| TraceId::from_hex(hex).ok())
        .flatten()
}

pub(super) fn span_id(hex: &str) -> Option<SpanId> {
    is_hex(hex, 16)
        .then(|| SpanId::from_hex(hex).ok())
        .flatten()
}

/// `len` hex digits and nothing else (`from_str_radix` would take a sign).
fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `wasi:otel` attributes as OTLP's, their values typed from their JSON.
pub(super) fn proto_attributes(list: Vec<types::KeyValue>) -> Vec<proto::KeyValue> {
    list.into_iter()
        .map(|kv| proto::KeyValue {
            value: Some(any_value(&kv.value)),
            key: kv.key,
        })
        .collect()
}

/// An OTLP value from its JSON: objects and arrays nested, byte arrays (the `data:` prefix)
/// as bytes; text that is not JSON as a string.
pub(super) fn any_value(json: &str) -> proto::AnyValue {
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

pub(super) fn system_time(t: Datetime) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::new(t.seconds, t.nanoseconds.min(999_999_999)))
        .unwrap_or(UNIX_EPOCH)
}

pub(super) fn nanos(t: Datetime) -> u64 {
    t.seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(t.nanoseconds))
}

pub(super) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

pub(super) fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

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
