//! Guest spans into the SDK's span data, so that they join the runtime's span queue and
//! exporter: ids checked, attributes, events and links past the limit dropped and counted as
//! the SDK would.
//!
//! `wasi:otel` and `omnia:otel` spell their span records alike (the same records, fields and
//! cases) and differ only in how an attribute's value is written: JSON text in `wasi:otel`
//! ([`value`] types it), a typed variant in `omnia:otel`. Their generated types are distinct all
//! the same, so the conversion is written once, as [`span_conversion!`], and instantiated in
//! each shape's module with its value conversion: the checks and limits cannot drift apart.

use opentelemetry::{Array, StringValue, Value};
use serde_json::Value as Json;

/// Defines, in the module that invokes it, `span_data(tracing::SpanData) ->
/// Option<SpanData>` for one shape of the telemetry WIT: `tracing` and `types` are that shape's
/// generated interfaces and `value` turns its attribute value into the SDK's. A span with a
/// malformed trace or span id (its own, its parent's) is `None`; a link with one is dropped.
macro_rules! span_conversion {
    (tracing: $tracing:path, types: $types:path, value: $value:path $(,)?) => {
        use std::borrow::Cow;

        use opentelemetry::trace::{
            Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceState,
        };
        use opentelemetry::{InstrumentationScope, KeyValue};
        use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
        use $tracing as wit_tracing;
        use $types as wit_types;

        use $crate::guest::common::{LIMIT, count, span_id, system_time, trace_id};

        /// The SDK's span data of a guest span; `None` if one of its ids is malformed.
        pub(crate) fn span_data(span: wit_tracing::SpanData) -> Option<SpanData> {
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
                    wit_tracing::SpanKind::Client => SpanKind::Client,
                    wit_tracing::SpanKind::Server => SpanKind::Server,
                    wit_tracing::SpanKind::Producer => SpanKind::Producer,
                    wit_tracing::SpanKind::Consumer => SpanKind::Consumer,
                    wit_tracing::SpanKind::Internal => SpanKind::Internal,
                },
                name: Cow::Owned(span.name),
                start_time: system_time(span.start_time),
                end_time: system_time(span.end_time),
                attributes: span_attributes,
                dropped_attributes_count: span.dropped_attributes.saturating_add(dropped),
                events,
                links,
                status: match span.status {
                    wit_tracing::Status::Unset => Status::Unset,
                    wit_tracing::Status::Ok => Status::Ok,
                    wit_tracing::Status::Error(description) => Status::error(description),
                },
                instrumentation_scope: scope(span.instrumentation_scope),
            })
        }

        fn span_context(context: &wit_tracing::SpanContext) -> Option<SpanContext> {
            let trace_id = trace_id(&context.trace_id)?;
            let flags = if context
                .trace_flags
                .contains(wit_tracing::TraceFlags::SAMPLED)
            {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            };
            let state =
                TraceState::from_key_value(context.trace_state.iter().cloned()).unwrap_or_default();
            Some(SpanContext::new(
                trace_id,
                span_id(&context.span_id)?,
                flags,
                context.is_remote,
                state,
            ))
        }

        fn scope(scope: wit_types::InstrumentationScope) -> InstrumentationScope {
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
        fn attributes(list: Vec<wit_types::KeyValue>) -> (Vec<KeyValue>, u32) {
            let dropped = count(list.len().saturating_sub(LIMIT));
            let kept = list
                .into_iter()
                .take(LIMIT)
                .map(|kv| KeyValue::new(kv.key, $value(kv.value)))
                .collect();
            (kept, dropped)
        }
    };
}

pub(super) use span_conversion;

/// `wasi:otel`'s spans.
pub(super) mod wasi {
    span_conversion! {
        tracing: crate::guest::bindings::wasi::otel::tracing,
        types: crate::guest::bindings::wasi::otel::types,
        value: super::value,
    }
}

/// A `wasi:otel` attribute value from its JSON: scalars and arrays of one scalar type as such,
/// anything else (objects, mixed arrays, null, text that is not JSON) as its text.
pub(super) fn value(json: String) -> Value {
    let Ok(parsed) = serde_json::from_str::<Json>(&json) else {
        return Value::String(json.into());
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
    Value::String(json.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_values_follow_their_json() {
        let value = |json: &str| value(json.to_owned());
        assert_eq!(value("\"GET\""), Value::from("GET"));
        assert_eq!(value("200"), Value::I64(200));
        assert_eq!(value("1.5"), Value::F64(1.5));
        assert_eq!(value("true"), Value::Bool(true));
        assert_eq!(value("[1,2]"), Value::Array(Array::I64(vec![1, 2])));
        assert_eq!(value("not json"), Value::from("not json"));
        assert_eq!(value("{\"a\":1}"), Value::from("{\"a\":1}"));
    }
}
