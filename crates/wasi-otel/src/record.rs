//! What a guest emitted that is not a span (spans become the SDK's `SpanData`): the unit the
//! guest's host functions ([`crate::guest`]) produce, the pipeline queues and the OTLP sink
//! ([`crate::otlp`]) sends. It has a module of its own so that the producer, the queue and the
//! transport depend on it and not on each other.

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;

/// What a guest emitted, waiting for export.
#[derive(Debug)]
pub enum GuestRecord {
    /// One `metrics.export` call.
    Metrics(ResourceMetrics),
    /// One log record and the scope it came from.
    Log(Option<InstrumentationScope>, LogRecord),
}
