//! The OTLP pipeline: exporters for the configured protocol, the tracer provider behind a
//! `tracing` layer that records the runtime's request and message spans, a meter provider
//! that exports the runtime's metrics ([`omnia::metrics`]), and the queues that guests' spans,
//! metrics and log records join ([`crate::guest`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use anyhow::{Context as _, Result};
use omnia::metrics::{self, Metric, Recorder};
use omnia::telemetry::BoxedLayer;
use omnia::trace::{SPAN_TARGET, TraceContext, Tracer};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter, MeterProvider as _};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_otlp::{
    MetricExporter, SpanExporter, WithExportConfig as _, WithHttpConfig as _,
};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use opentelemetry_sdk::trace::{
    SdkTracerProvider, SpanData, SpanExporter as _, SpanProcessor as _,
};
use opentelemetry_sdk::{Resource, runtime};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{LevelFilter, Targets};

use crate::options::{Export, Protocol};
use crate::otlp::GuestSink;
use crate::queue::{self, ExportQueue, GUEST_RECORDS_DROPPED, SPANS_DROPPED, Spans};
use crate::record::GuestRecord;

/// The running pipeline: what shutdown flushes.
#[derive(Clone)]
pub struct Pipeline {
    spans: ExportQueue<SpanData>,
    guest: ExportQueue<GuestRecord>,
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    /// Raised when shutdown begins: what guests hand over later is refused.
    shut_down: Arc<AtomicBool>,
}

impl Pipeline {
    /// Builds the exporters and providers (on the current tokio runtime), installs the metrics
    /// recorder and the trace hook, and returns the pipeline and the `tracing` layer; everything
    /// is exported under `resource`.
    pub fn start(export: &Export, resource: Resource) -> Result<(Self, BoxedLayer)> {
        let mut span_exporter = span_exporter(export)?;
        span_exporter.set_resource(&resource);
        let spans = ExportQueue::start(
            Spans(span_exporter),
            export.max_queue,
            export.max_batch,
            export.delay,
            &SPANS_DROPPED,
        );
        let guest = ExportQueue::start(
            GuestSink::new(export, proto_resource(&resource))?,
            export.max_queue,
            export.max_batch,
            export.delay,
            &GUEST_RECORDS_DROPPED,
        );
        let tracer_provider = SdkTracerProvider::builder()
            .with_span_processor(spans.clone())
            .with_resource(resource.clone())
            .build();
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer_provider.tracer("omnia"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(Targets::new().with_target(SPAN_TARGET, LevelFilter::DEBUG))
            .boxed();

        let reader = PeriodicReader::builder(metric_exporter(export)?, runtime::Tokio).build();
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource)
            .build();
        queue::register_metrics();
        metrics::set_recorder(Box::new(OtelRecorder::new(meter_provider.meter("omnia"))));
        omnia::trace::install(Box::new(OtelTracer));
        Ok((
            Self {
                spans,
                guest,
                tracer_provider,
                meter_provider,
                shut_down: Arc::default(),
            },
            layer,
        ))
    }

    /// Whether shutdown has begun (a guest's export is then refused: upstream's
    /// `already-shutdown`).
    pub fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// Queues a guest's ended span (sampled ones only, as the runtime's).
    pub fn export_span(&self, span: SpanData) {
        self.spans.on_end(span);
    }

    /// Queues a guest's metrics or log record.
    pub fn export_guest(&self, record: GuestRecord) {
        self.guest.push(record);
    }

    /// Exports what is queued: every span, guest record, and the metrics' last values.
    pub async fn shutdown(&self) {
        self.shut_down.store(true, Ordering::Release);
        tokio::join!(self.spans.flush(), self.guest.flush());
        let (tracer, meter) = (self.tracer_provider.clone(), self.meter_provider.clone());
        let flushed = tokio::task::spawn_blocking(move || {
            let _ = tracer.shutdown();
            meter.shutdown()
        })
        .await;
        if let Ok(Err(err)) = flushed {
            queue::export_failed("metrics", &err);
        }
    }
}

/// The runtime's resource: `service.name` from `OTEL_SERVICE_NAME` or
/// `OTEL_RESOURCE_ATTRIBUTES` (which the builder reads), else `omnia`
/// ([`OtelOptions::service_named`](crate::OtelOptions::service_named)); the other attributes of
/// `OTEL_RESOURCE_ATTRIBUTES`; the SDK's; the runtime's name and version.
pub fn resource(service_named: bool) -> Resource {
    let mut builder = Resource::builder();
    if !service_named {
        builder = builder.with_service_name("omnia");
    }
    builder
        .with_attribute(KeyValue::new("process.runtime.name", "omnia"))
        .with_attribute(KeyValue::new(
            "process.runtime.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build()
}

/// The runtime's resource as an OTLP message, for guest metrics and logs.
fn proto_resource(resource: &Resource) -> opentelemetry_proto::tonic::resource::v1::Resource {
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    opentelemetry_proto::tonic::resource::v1::Resource {
        attributes: ResourceAttributesWithSchema::from(resource).attributes.0,
        ..Default::default()
    }
}

fn span_exporter(export: &Export) -> Result<SpanExporter> {
    let built = match export.protocol {
        Protocol::Grpc => {
            let builder = SpanExporter::builder().with_tonic();
            match &export.grpc_url {
                Some(url) => builder.with_endpoint(url).build(),
                None => builder.build(),
            }
        }
        Protocol::HttpProtobuf => SpanExporter::builder()
            .with_http()
            .with_http_client(HyperClient::with_default_connector(export.timeout, None))
            .build(),
    };
    built.context("cannot set up the OTLP span exporter")
}

fn metric_exporter(export: &Export) -> Result<MetricExporter> {
    let built = match export.protocol {
        Protocol::Grpc => {
            let builder = MetricExporter::builder().with_tonic();
            match &export.grpc_url {
                Some(url) => builder.with_endpoint(url).build(),
                None => builder.build(),
            }
        }
        Protocol::HttpProtobuf => MetricExporter::builder()
            .with_http()
            .with_http_client(HyperClient::with_default_connector(export.timeout, None))
            .build(),
    };
    built.context("cannot set up the OTLP metric exporter")
}

/// Connects the runtime's spans to the incoming trace context, and reads theirs back.
struct OtelTracer;

impl Tracer for OtelTracer {
    fn set_parent(&self, span: &tracing::Span, parent: &TraceContext) {
        let flags = if parent.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id),
            SpanId::from_bytes(parent.span_id),
            flags,
            true,
            TraceState::default(),
        );
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }

    fn context(&self, span: &tracing::Span) -> Option<TraceContext> {
        let context = span.context();
        let span_context = context.span().span_context().clone();
        span_context.is_valid().then(|| TraceContext {
            trace_id: span_context.trace_id().to_bytes(),
            span_id: span_context.span_id().to_bytes(),
            sampled: span_context.is_sampled(),
        })
    }
}

/// The runtime's metrics as OpenTelemetry instruments: counters and gauges observed at each
/// export, histograms recorded as they happen.
struct OtelRecorder {
    meter: Meter,
    histograms: RwLock<HashMap<&'static str, Histogram<f64>>>,
    /// Instruments already made, by name (a metric is described once, but be sure).
    described: Mutex<Vec<&'static str>>,
}

impl OtelRecorder {
    fn new(meter: Meter) -> Self {
        Self {
            meter,
            histograms: RwLock::new(HashMap::new()),
            described: Mutex::new(Vec::new()),
        }
    }
}

/// The OpenTelemetry name and unit of a Prometheus-style metric name: `_total` and `_seconds`
/// are left to the exporter's conventions (the unit says seconds).
fn otel_name(name: &'static str) -> (String, Option<&'static str>) {
    if let Some(base) = name.strip_suffix("_seconds") {
        (base.to_owned(), Some("s"))
    } else if let Some(base) = name.strip_suffix("_bytes") {
        (base.to_owned(), Some("By"))
    } else {
        (name.strip_suffix("_total").unwrap_or(name).to_owned(), None)
    }
}

impl Recorder for OtelRecorder {
    fn describe(&self, metric: Metric) {
        let name = metric.name();
        {
            let mut described = self
                .described
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if described.contains(&name) {
                return;
            }
            described.push(name);
        }
        let (otel, unit) = otel_name(name);
        let help = metric.help();
        match metric {
            Metric::Counter(counter) => {
                let mut builder = self
                    .meter
                    .u64_observable_counter(otel)
                    .with_description(help)
                    .with_callback(move |observer| observer.observe(counter.get(), &[]));
                if let Some(unit) = unit {
                    builder = builder.with_unit(unit);
                }
                builder.build();
            }
            Metric::Gauge(gauge) => {
                let mut builder = self
                    .meter
                    .i64_observable_gauge(otel)
                    .with_description(help)
                    .with_callback(move |observer| observer.observe(gauge.get(), &[]));
                if let Some(unit) = unit {
                    builder = builder.with_unit(unit);
                }
                builder.build();
            }
            Metric::CounterFamily(family) => {
                let mut builder = self
                    .meter
                    .u64_observable_counter(otel)
                    .with_description(help)
                    .with_callback(move |observer| {
                        for (labels, value) in family.members() {
                            let attributes: Vec<KeyValue> = labels
                                .into_iter()
                                .map(|(label, value)| KeyValue::new(label, value))
                                .collect();
                            observer.observe(value.load(Ordering::Relaxed), &attributes);
                        }
                    });
                if let Some(unit) = unit {
                    builder = builder.with_unit(unit);
                }
                builder.build();
            }
            Metric::Histogram(_) | Metric::HistogramFamily(_) => {
                let histogram = self
                    .meter
                    .f64_histogram(otel)
                    .with_description(help)
                    .with_unit(unit.unwrap_or("s"))
                    .with_boundaries(metrics::BUCKETS.to_vec())
                    .build();
                self.histograms
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(name, histogram);
            }
        }
    }

    fn record(&self, name: &'static str, labels: &[(&'static str, &str)], seconds: f64) {
        if let Some(histogram) = self
            .histograms
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            let attributes: Vec<KeyValue> = labels
                .iter()
                .map(|(label, value)| KeyValue::new(*label, (*value).to_owned()))
                .collect();
            histogram.record(seconds, &attributes);
        }
    }
}
