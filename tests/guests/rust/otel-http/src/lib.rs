//! Emits telemetry with wasi:otel, for the host's tests: per request, a span (a child of the
//! span the host gives as current), a metric and a log record.
//!
//! * any request: 200 with `<trace id> <span id> <parent span id>\n` of the span it emitted,
//!   named `guest-work` (kind internal, attribute `guest.path`, an event `checked`, status ok,
//!   scope `otel-http`); a `guest_requests` sum of 1 (delta, monotonic) and a
//!   `guest_request_size` histogram; an INFO log record `handled <path>` (event name
//!   `guest.handled`, attribute `guest.path`) without a trace context of its own, which the host
//!   fills in.
use guest_http::{respond, Guest, IncomingRequest, ResponseOutparam};
use guest_otel::{attribute, logs, metrics, now, scope, tracing, types, Span};

struct Component;

impl Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let span = Span::start("guest-work", scope("otel-http"));
        let start = now();
        let size = metrics::MetricNumber::F64(path.len() as f64);
        metrics::export(&metrics::ResourceMetrics {
            resource: types::Resource {
                attributes: vec![attribute("service.name", "ignored-by-the-host")],
                schema_url: None,
            },
            scope_metrics: vec![metrics::ScopeMetrics {
                scope: scope("otel-http"),
                metrics: vec![
                    metrics::Metric {
                        name: "guest_requests".to_string(),
                        description: "requests the guest handled".to_string(),
                        unit: "1".to_string(),
                        data: metrics::MetricData::U64Sum(metrics::Sum {
                            data_points: vec![metrics::SumDataPoint {
                                attributes: vec![attribute("guest.path", &path)],
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
                                min: Some(size),
                                max: Some(size),
                                sum: size,
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
            attributes: Some(vec![attribute("guest.path", &path)]),
            event_name: Some("guest.handled".to_string()),
            resource: None,
            instrumentation_scope: Some(scope("otel-http")),
            trace_id: None,
            span_id: None,
            trace_flags: None,
        });

        let body = format!("{}\n", span.ids());
        span.end(
            vec![attribute("guest.path", &path)],
            vec![tracing::Event {
                name: "checked".to_string(),
                time: now(),
                attributes: Vec::new(),
            }],
        );
        respond(out, 200, &[("content-type", b"text/plain")], body.as_bytes());
    }
}

guest_http::export!(Component);
