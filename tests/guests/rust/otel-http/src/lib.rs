//! Emits telemetry with wasi:otel, for the host's tests: per request, a span (a child of the
//! span the host gives as current), a metric and a log record.
//!
//! * any request: 200 with `<trace id> <span id> <parent span id>\n` of the span it emitted,
//!   named `guest-work` (kind internal, attribute `guest.path`, an event `checked`, status ok,
//!   scope `otel-http`); a `guest_requests` sum of 1 (delta, monotonic) and a
//!   `guest_request_size` histogram; an INFO log record `handled <path>` (event name
//!   `guest.handled`, attribute `guest.path`) without a trace context of its own, which the host
//!   fills in.
//!
//! Its wasi:otel bindings are its own (wit/: the published wasi:otel WIT, which uses
//! wasi:clocks@0.2.0), beside guest-http's for HTTP (wasi:clocks@0.2.12).
use guest_http::wasi::clocks::wall_clock;
use guest_http::wasi::random::random;
use guest_http::{respond, Guest, IncomingRequest, ResponseOutparam};

wit_bindgen::generate!({
    path: "wit",
    world: "omnia:otel-guest/otel-imports",
    generate_all,
});

use wasi::otel::{logs, metrics, tracing, types};

struct Component;

impl Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let start = now();
        let parent = tracing::current_span_context();
        let context = tracing::SpanContext {
            trace_id: parent.trace_id.clone(),
            span_id: format!("{:016x}", random::get_random_u64() | 1),
            trace_flags: parent.trace_flags,
            is_remote: false,
            trace_state: Vec::new(),
        };
        tracing::on_start(&context);
        let scope = types::InstrumentationScope {
            name: "otel-http".to_string(),
            version: Some("0.1.0".to_string()),
            schema_url: None,
            attributes: Vec::new(),
        };
        let path_attribute = || types::KeyValue {
            key: "guest.path".to_string(),
            value: format!("{path:?}"),
        };

        metrics::export(&metrics::ResourceMetrics {
            resource: types::Resource {
                attributes: vec![types::KeyValue {
                    key: "service.name".to_string(),
                    value: "\"ignored-by-the-host\"".to_string(),
                }],
                schema_url: None,
            },
            scope_metrics: vec![metrics::ScopeMetrics {
                scope: scope.clone(),
                metrics: vec![
                    metrics::Metric {
                        name: "guest_requests".to_string(),
                        description: "requests the guest handled".to_string(),
                        unit: "1".to_string(),
                        data: metrics::MetricData::U64Sum(metrics::Sum {
                            data_points: vec![metrics::SumDataPoint {
                                attributes: vec![path_attribute()],
                                value: metrics::MetricNumber::U64(1),
                                exemplars: Vec::new(),
                            }],
                            start_time: start,
                            time: now(),
                            temporality: metrics::Temporality::Delta,
                            is_monotonic: true,
                        }),
                    },
                    metrics::Metric {
                        name: "guest_request_size".to_string(),
                        description: "path lengths".to_string(),
                        unit: "By".to_string(),
                        data: metrics::MetricData::F64Histogram(metrics::Histogram {
                            data_points: vec![metrics::HistogramDataPoint {
                                attributes: Vec::new(),
                                count: 1,
                                bounds: vec![10.0, 100.0],
                                bucket_counts: vec![0, 1, 0],
                                min: Some(metrics::MetricNumber::F64(path.len() as f64)),
                                max: Some(metrics::MetricNumber::F64(path.len() as f64)),
                                sum: metrics::MetricNumber::F64(path.len() as f64),
                                exemplars: Vec::new(),
                            }],
                            start_time: start,
                            time: now(),
                            temporality: metrics::Temporality::Delta,
                        }),
                    },
                ],
            }],
        })
        .expect("the host takes the metrics");

        logs::on_emit(&logs::LogRecord {
            timestamp: Some(now()),
            observed_timestamp: None,
            severity_text: Some("INFO".to_string()),
            severity_number: Some(9),
            body: Some(format!("{:?}", format!("handled {path}"))),
            attributes: Some(vec![path_attribute()]),
            event_name: Some("guest.handled".to_string()),
            resource: None,
            instrumentation_scope: Some(scope.clone()),
            trace_id: None,
            span_id: None,
            trace_flags: None,
        });

        let body = format!("{} {} {}\n", context.trace_id, context.span_id, parent.span_id);
        tracing::on_end(&tracing::SpanData {
            span_context: context,
            parent_span_id: parent.span_id,
            span_kind: tracing::SpanKind::Internal,
            name: "guest-work".to_string(),
            start_time: start,
            end_time: now(),
            attributes: vec![path_attribute()],
            events: vec![tracing::Event {
                name: "checked".to_string(),
                time: now(),
                attributes: Vec::new(),
            }],
            links: Vec::new(),
            status: tracing::Status::Ok,
            instrumentation_scope: scope,
            dropped_attributes: 0,
            dropped_events: 0,
            dropped_links: 0,
        });
        respond(out, 200, &[("content-type", b"text/plain")], body.as_bytes());
    }
}

/// Now, as the wasi:otel datetime (wasi:clocks@0.2.0's record, the same as the newer one's).
fn now() -> tracing::Datetime {
    let t = wall_clock::now();
    tracing::Datetime {
        seconds: t.seconds,
        nanoseconds: t.nanoseconds,
    }
}

guest_http::export!(Component);
