//! Guest metrics into OTLP messages: a guest hands over metrics it has already aggregated,
//! which the SDK's instruments cannot take, so they are sent as the protocol's own messages
//! (see [`crate::otlp`]).
//!
//! `wasi:otel` and `omnia:otel` spell their metric records alike (gauge, sum, histogram,
//! exponential histogram, exemplar, temporality: the same fields and cases) and differ in how an
//! attribute's value is written, in the name of their number type (`metric-number`,
//! `data-value`) and in how a metric's data says its kind and number type. So the records'
//! conversion is written once, as [`metric_conversion!`], instantiated in each shape's module,
//! which adds its `data` (the metric's data: one `match` on its kind and number type).

/// Defines, in the module that invokes it, `resource_metrics` and `scope` for one shape of
/// the telemetry WIT, and the conversions of its records (`gauge`, `sum`, `histogram`,
/// `exponential_histogram`), which its `data` calls: `metrics` and `types` are the shape's
/// generated interfaces, `number` its number type, `attributes` turns its attribute list into
/// OTLP's and `data` a metric's data (defined beside the invocation).
macro_rules! metric_conversion {
    (
        metrics: $metrics:path,
        types: $types:path,
        number: $number:ident,
        attributes: $attributes:path,
        data: $data:path $(,)?
    ) => {
        use opentelemetry_proto::tonic::common::v1 as proto;
        use opentelemetry_proto::tonic::metrics::v1 as proto_metrics;
        use proto_metrics::metric::Data;
        use $metrics as wit_metrics;
        use $types as wit_types;

        use $crate::guest::common::{nanos, span_id, trace_id};

        /// The OTLP message of one `export`; its resource is left to the sink, which sets the
        /// runtime's.
        pub(crate) fn resource_metrics(
            data: wit_metrics::ResourceMetrics,
        ) -> proto_metrics::ResourceMetrics {
            proto_metrics::ResourceMetrics {
                scope_metrics: data
                    .scope_metrics
                    .into_iter()
                    .map(|scope_metrics| proto_metrics::ScopeMetrics {
                        scope: Some(scope(scope_metrics.scope)),
                        metrics: scope_metrics.metrics.into_iter().map(metric).collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }
        }

        /// An instrumentation scope as OTLP has it.
        pub(crate) fn scope(scope: wit_types::InstrumentationScope) -> proto::InstrumentationScope {
            proto::InstrumentationScope {
                name: scope.name,
                version: scope.version.unwrap_or_default(),
                attributes: $attributes(scope.attributes),
                ..Default::default()
            }
        }

        fn metric(metric: wit_metrics::Metric) -> proto_metrics::Metric {
            proto_metrics::Metric {
                name: metric.name,
                description: metric.description,
                unit: metric.unit,
                data: Some($data(metric.data)),
                ..Default::default()
            }
        }

        fn gauge(g: wit_metrics::Gauge) -> Data {
            Data::Gauge(proto_metrics::Gauge {
                data_points: g
                    .data_points
                    .into_iter()
                    .map(|p| proto_metrics::NumberDataPoint {
                        attributes: $attributes(p.attributes),
                        start_time_unix_nano: g.start_time.map_or(0, nanos),
                        time_unix_nano: nanos(g.time),
                        exemplars: p.exemplars.into_iter().map(exemplar).collect(),
                        value: Some(number(p.value)),
                        ..Default::default()
                    })
                    .collect(),
            })
        }

        fn sum(s: wit_metrics::Sum) -> Data {
            Data::Sum(proto_metrics::Sum {
                data_points: s
                    .data_points
                    .into_iter()
                    .map(|p| proto_metrics::NumberDataPoint {
                        attributes: $attributes(p.attributes),
                        start_time_unix_nano: nanos(s.start_time),
                        time_unix_nano: nanos(s.time),
                        exemplars: p.exemplars.into_iter().map(exemplar).collect(),
                        value: Some(number(p.value)),
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: temporality(s.temporality),
                is_monotonic: s.is_monotonic,
            })
        }

        fn histogram(h: wit_metrics::Histogram) -> Data {
            Data::Histogram(proto_metrics::Histogram {
                data_points: h
                    .data_points
                    .into_iter()
                    .map(|p| proto_metrics::HistogramDataPoint {
                        attributes: $attributes(p.attributes),
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

        fn exponential_histogram(h: wit_metrics::ExponentialHistogram) -> Data {
            use proto_metrics::exponential_histogram_data_point::Buckets;
            Data::ExponentialHistogram(proto_metrics::ExponentialHistogram {
                data_points: h
                    .data_points
                    .into_iter()
                    .map(|p| proto_metrics::ExponentialHistogramDataPoint {
                        attributes: $attributes(p.attributes),
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

        /// OTLP's integers are `i64`: a larger `u64` saturates.
        fn number(n: wit_metrics::$number) -> proto_metrics::number_data_point::Value {
            use proto_metrics::number_data_point::Value as V;
            match n {
                wit_metrics::$number::F64(f) => V::AsDouble(f),
                wit_metrics::$number::S64(i) => V::AsInt(i),
                wit_metrics::$number::U64(u) => V::AsInt(i64::try_from(u).unwrap_or(i64::MAX)),
            }
        }

        #[expect(
            clippy::cast_precision_loss,
            reason = "OTLP histogram sums and bounds are doubles"
        )]
        fn float(n: wit_metrics::$number) -> f64 {
            match n {
                wit_metrics::$number::F64(f) => f,
                wit_metrics::$number::S64(i) => i as f64,
                wit_metrics::$number::U64(u) => u as f64,
            }
        }

        fn exemplar(e: wit_metrics::Exemplar) -> proto_metrics::Exemplar {
            use proto_metrics::exemplar::Value as V;
            proto_metrics::Exemplar {
                filtered_attributes: $attributes(e.filtered_attributes),
                time_unix_nano: nanos(e.time),
                span_id: span_id(&e.span_id).map_or_else(Vec::new, |id| id.to_bytes().to_vec()),
                trace_id: trace_id(&e.trace_id).map_or_else(Vec::new, |id| id.to_bytes().to_vec()),
                value: Some(match number(e.value) {
                    proto_metrics::number_data_point::Value::AsDouble(f) => V::AsDouble(f),
                    proto_metrics::number_data_point::Value::AsInt(i) => V::AsInt(i),
                }),
            }
        }

        /// Low-memory is the SDK's delta temporality for counters and histograms.
        fn temporality(t: wit_metrics::Temporality) -> i32 {
            use proto_metrics::AggregationTemporality as A;
            match t {
                wit_metrics::Temporality::Cumulative => A::Cumulative as i32,
                wit_metrics::Temporality::Delta | wit_metrics::Temporality::LowMemory => {
                    A::Delta as i32
                }
            }
        }
    };
}

pub(super) use metric_conversion;

/// `wasi:otel`'s metrics: one case of its metric data per kind and number type.
pub(super) mod wasi {
    use crate::guest::bindings::wasi::otel::metrics::MetricData;
    use crate::guest::common::proto_attributes;

    metric_conversion! {
        metrics: crate::guest::bindings::wasi::otel::metrics,
        types: crate::guest::bindings::wasi::otel::types,
        number: MetricNumber,
        attributes: proto_attributes,
        data: data,
    }

    fn data(data: MetricData) -> Data {
        use MetricData as D;
        match data {
            D::F64Gauge(g) | D::U64Gauge(g) | D::S64Gauge(g) => gauge(g),
            D::F64Sum(s) | D::U64Sum(s) | D::S64Sum(s) => sum(s),
            D::F64Histogram(h) | D::U64Histogram(h) | D::S64Histogram(h) => histogram(h),
            D::F64ExponentialHistogram(h)
            | D::U64ExponentialHistogram(h)
            | D::S64ExponentialHistogram(h) => exponential_histogram(h),
        }
    }
}
