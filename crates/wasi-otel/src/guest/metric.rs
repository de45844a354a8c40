//! Guest metrics into OTLP messages: a guest hands over metrics it has already aggregated,
//! which the SDK's instruments cannot take, so they are sent as the protocol's own messages
//! (see [`crate::otlp`]).

use opentelemetry_proto::tonic::metrics::v1 as proto_metrics;

use super::bindings::wasi::otel::metrics;
use super::common::{nanos, proto_attributes, proto_scope, span_id, trace_id};

pub(super) fn resource_metrics(data: metrics::ResourceMetrics) -> proto_metrics::ResourceMetrics {
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
