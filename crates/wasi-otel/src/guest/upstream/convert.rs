//! `omnia:otel`'s records into the SDK's and OTLP's, by the conversions `wasi:otel` uses
//! ([`span_conversion!`], [`metric_conversion!`]) given `omnia:otel`'s typed attribute values,
//! and the runtime's resource into `omnia:otel`'s.

use opentelemetry::{Array, Value};
use opentelemetry_proto::tonic::common::v1 as proto;
use opentelemetry_sdk::Resource;

use super::bindings::omnia::otel::types;
use crate::guest::metric::metric_conversion;
use crate::guest::span::span_conversion;

pub(super) use metric::resource_metrics;
pub(super) use span::span_data;

mod span {
    super::span_conversion! {
        tracing: crate::guest::upstream::bindings::omnia::otel::tracing,
        types: crate::guest::upstream::bindings::omnia::otel::types,
        value: super::value,
    }
}

mod metric {
    use crate::guest::upstream::bindings::omnia::otel::metrics::{AggregatedMetrics, MetricData};

    super::metric_conversion! {
        metrics: crate::guest::upstream::bindings::omnia::otel::metrics,
        types: crate::guest::upstream::bindings::omnia::otel::types,
        number: DataValue,
        attributes: super::proto_attributes,
        data: data,
    }

    /// The number type (`f64`, `u64`, `s64`) is each data point's own: only the kind matters.
    fn data(data: AggregatedMetrics) -> Data {
        let (AggregatedMetrics::F64(data)
        | AggregatedMetrics::U64(data)
        | AggregatedMetrics::S64(data)) = data;
        match data {
            MetricData::Gauge(g) => gauge(g),
            MetricData::Sum(s) => sum(s),
            MetricData::Histogram(h) => histogram(h),
            MetricData::ExponentialHistogram(h) => exponential_histogram(h),
        }
    }
}

/// An attribute value as the SDK has it.
fn value(value: types::Value) -> Value {
    use types::Value as V;
    match value {
        V::String(s) => Value::String(s.into()),
        V::Bool(b) => Value::Bool(b),
        V::F64(f) => Value::F64(f),
        V::S64(i) => Value::I64(i),
        V::StringArray(list) => {
            Value::Array(Array::String(list.into_iter().map(Into::into).collect()))
        }
        V::BoolArray(list) => Value::Array(Array::Bool(list)),
        V::F64Array(list) => Value::Array(Array::F64(list)),
        V::S64Array(list) => Value::Array(Array::I64(list)),
    }
}

/// Attributes as OTLP has them.
fn proto_attributes(list: Vec<types::KeyValue>) -> Vec<proto::KeyValue> {
    list.into_iter()
        .map(|kv| proto::KeyValue {
            key: kv.key,
            value: Some(value(kv.value).into()),
        })
        .collect()
}

/// The runtime's resource as `omnia:otel` has it.
pub(super) fn resource(resource: &Resource) -> types::Resource {
    types::Resource {
        attributes: resource
            .iter()
            .map(|(key, value)| types::KeyValue {
                key: key.to_string(),
                value: typed(value),
            })
            .collect(),
        schema_url: resource.schema_url().map(Into::into),
    }
}

/// An SDK value as `omnia:otel`'s; a kind it has no case for (the SDK's are non-exhaustive) as
/// its text.
fn typed(value: &Value) -> types::Value {
    use types::Value as V;
    match value {
        Value::Bool(b) => V::Bool(*b),
        Value::I64(i) => V::S64(*i),
        Value::F64(f) => V::F64(*f),
        Value::String(s) => V::String(s.to_string()),
        Value::Array(Array::Bool(list)) => V::BoolArray(list.clone()),
        Value::Array(Array::I64(list)) => V::S64Array(list.clone()),
        Value::Array(Array::F64(list)) => V::F64Array(list.clone()),
        Value::Array(Array::String(list)) => {
            V::StringArray(list.iter().map(ToString::to_string).collect())
        }
        other => V::String(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::KeyValue as SdkKeyValue;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;

    use super::*;

    #[test]
    fn typed_values_keep_their_type() {
        let list = vec![
            types::KeyValue {
                key: "n".into(),
                value: types::Value::S64(3),
            },
            types::KeyValue {
                key: "tags".into(),
                value: types::Value::StringArray(vec!["a".into()]),
            },
        ];
        let proto = proto_attributes(list);
        assert_eq!(
            proto[0].value.as_ref().and_then(|v| v.value.clone()),
            Some(V::IntValue(3))
        );
        let Some(V::ArrayValue(array)) = proto[1].value.as_ref().and_then(|v| v.value.clone())
        else {
            panic!("{proto:?}")
        };
        assert_eq!(array.values[0].value, Some(V::StringValue("a".into())));
        assert_eq!(value(types::Value::F64(0.5)), Value::F64(0.5));
    }

    #[test]
    fn the_resource_is_the_runtimes_with_its_types() {
        let runtime = Resource::builder_empty()
            .with_attributes([
                SdkKeyValue::new("service.name", "checkout"),
                SdkKeyValue::new("process.pid", 7_i64),
            ])
            .build();
        let mut attributes = resource(&runtime).attributes;
        attributes.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(attributes[0].key, "process.pid");
        assert!(matches!(attributes[0].value, types::Value::S64(7)));
        assert_eq!(attributes[1].key, "service.name");
        assert!(matches!(&attributes[1].value, types::Value::String(s) if s == "checkout"));
    }
}
