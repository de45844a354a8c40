//! `wasi:otel` for guests: their spans, metrics and log records, exported with the runtime's.
//!
//! A guest's OpenTelemetry SDK asks [`current-span-context`] for its parent, which is the span
//! the runtime opened for the request or message, so the guest's spans are its children in the
//! same trace. Ended spans join the runtime's span queue (same exporter, same bound, same
//! drop count); metrics and log records go through `otlp`. Everything is exported
//! under the runtime's resource (`OTEL_SERVICE_NAME`, ...): the resource a guest reports is
//! not used, as the operator, not the component, names the service. Log records without a
//! trace context get the request's.
//!
//! Without an export endpoint the interfaces are still served (a guest built with telemetry
//! runs anywhere): the span context is the incoming `traceparent`'s, or the invalid one, and
//! what the guest emits is dropped.
//!
//! Guest input is checked, never trusted: a span with a malformed trace or span id is dropped;
//! attributes, events and links beyond 128 are dropped and counted in the span as the SDK
//! would; attribute values are the JSON the WIT prescribes, and text that is not JSON is kept
//! as a string.
//!
//! This module serves the interfaces; the conversions of what guests emit live beside it:
//! `span` (into the SDK's span data), `metric` and `log` (into OTLP messages) and `common`
//! (what those share: ids, values, times). [`upstream`] serves upstream omnia's own package,
//! `omnia:otel@0.1.0`, to WASI 0.3 components, by the same conversions and policy.
//!
//! [`current-span-context`]: https://github.com/WebAssembly/wasi-otel

use omnia::trace::Work;
use opentelemetry_sdk::Resource;
use wasmtime::component::HasData;

use crate::pipeline::Pipeline;
use crate::record::GuestRecord;

mod common;
mod log;
mod metric;
mod span;
pub mod upstream;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "omnia:wasi-otel/otel-host",
    });
}

use bindings::wasi::otel::{logs, metrics, tracing, types};
use log::log_record;
use metric::wasi::{resource_metrics, scope as proto_scope};
use span::wasi::span_data;

/// What the `wasi:otel` and `omnia:otel` host functions of one store see.
pub struct OtelView<'a> {
    /// The export pipeline, if export is on.
    pub pipeline: Option<&'a Pipeline>,
    /// The store's request or message: its trace context, or those of the requests it
    /// serves at once.
    pub work: &'a Work,
    /// The runtime's resource, which `omnia:otel` guests read.
    pub resource: &'a Resource,
}

/// Marks [`OtelView`] as the data the host functions reach (through their accessor, for the
/// async ones).
struct HasOtel;

impl HasData for HasOtel {
    type Data<'a> = OtelView<'a>;
}

/// Adds `wasi:otel` (tracing, metrics, logs) to `linker`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> OtelView<'_>,
) -> anyhow::Result<()> {
    types::add_to_linker::<_, HasOtel>(linker, view)?;
    tracing::add_to_linker::<_, HasOtel>(linker, view)?;
    metrics::add_to_linker::<_, HasOtel>(linker, view)?;
    logs::add_to_linker::<_, HasOtel>(linker, view)?;
    Ok(())
}

impl types::Host for OtelView<'_> {}

impl tracing::Host for OtelView<'_> {
    /// Nothing to do: a span is exported when it ends.
    fn on_start(&mut self, _context: tracing::SpanContext) {}

    fn on_end(&mut self, span: tracing::SpanData) {
        if let Some(pipeline) = self.pipeline {
            if let Some(span) = span_data(span) {
                pipeline.export_span(span);
            } else {
                ::tracing::debug!("wasi:otel: a span with a malformed id was dropped");
            }
        }
    }

    /// The request's (or message's) span, so that the guest's spans are its children.
    fn current_span_context(&mut self) -> tracing::SpanContext {
        let (trace_id, span_id, sampled) = self.work.trace.map_or_else(
            || ("0".repeat(32), "0".repeat(16), false),
            |t| (t.trace_id_hex(), t.span_id_hex(), t.sampled),
        );
        tracing::SpanContext {
            trace_id,
            span_id,
            trace_flags: if sampled {
                tracing::TraceFlags::SAMPLED
            } else {
                tracing::TraceFlags::empty()
            },
            is_remote: false,
            trace_state: Vec::new(),
        }
    }
}

impl metrics::Host for OtelView<'_> {
    fn export(&mut self, data: metrics::ResourceMetrics) -> Result<(), metrics::Error> {
        if let Some(pipeline) = self.pipeline {
            pipeline.export_guest(GuestRecord::Metrics(resource_metrics(data)));
        }
        Ok(())
    }
}

impl logs::Host for OtelView<'_> {
    fn on_emit(&mut self, data: logs::LogRecord) {
        if let Some(pipeline) = self.pipeline {
            let scope = data.instrumentation_scope.clone().map(proto_scope);
            pipeline.export_guest(GuestRecord::Log(scope, log_record(data, self.work.trace)));
        }
    }
}
