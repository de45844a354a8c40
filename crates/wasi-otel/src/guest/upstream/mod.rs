//! `omnia:otel@0.1.0`: upstream omnia's own telemetry package, for WASI 0.3 components written
//! for upstream omnia, served beside `wasi:otel` (see `wit-p3/README.md` for how they differ).
//!
//! Upstream's guests hand over their ended spans in batches (`tracing.export`) and their
//! aggregated metrics (`metrics.export`), and report the host's resource as theirs
//! (`resource.resource`). They cannot ask for their parent span (there is no
//! `current-span-context`): upstream's SDK starts a span without a parent as the root of a new
//! trace, and the host grafts it onto the span it runs in. So does this module, with the request
//! the call works for: a WASI 0.3 instance serves many requests in one store, and the host
//! function finds its own by the guest task it is called from
//! ([`omnia::trace::Work::trace_of`]). Every span of the batch then joins the request's trace
//! (its sampled flag too), and a root span becomes a child of the request's span; a span with a
//! parent keeps it (a guest that read its request's `traceparent` made its span a child of the
//! request's span already). Without a request to graft onto (a command, or a guest task still
//! exporting after its response has gone and another request has started), spans are exported
//! as the guest made them.
//!
//! Everything else is `wasi:otel`'s policy, by the same code (`guest::span`,
//! `guest::metric`): ids checked (a span with a malformed id is dropped), attributes, events
//! and links past 128 dropped and counted, the runtime's span queue for spans and
//! `export_guest` for metrics, the runtime's resource (`OTEL_SERVICE_NAME`, ...) for both,
//! whatever resource the guest reports. `resource()` returns that resource, with or without an
//! export endpoint. Without an endpoint what the guest hands over is dropped and the call
//! succeeds; once shutdown has begun, the call is `already-shutdown`, as upstream's WIT says.
//! A full queue is not the guest's error (upstream logs and goes on): what does not fit is
//! dropped and counted.
//!
//! `export` is an `async func`, so this package is linked only into the WASI 0.3 engine (see
//! [`omnia::engine::Kind`]); `wasi:clocks/wall-clock@0.2.8`, whose `datetime` it uses, is the
//! WASI 0.2 linker's.

mod convert;

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId};
use opentelemetry_sdk::trace::SpanData;
use wasmtime::AsContextMut as _;
use wasmtime::component::{Accessor, GuestTaskId};

use omnia::trace::TraceContext;

use super::{HasOtel, OtelView};
use crate::record::GuestRecord;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit-p3",
        world: "omnia:wasi-otel-p3/host",
        imports: { default: trappable },
        with: {
            // The same `datetime` as wasi:otel's, so both shapes share the time conversions.
            "wasi:clocks/wall-clock": crate::guest::bindings::wasi::clocks::wall_clock,
        },
    });
}

use bindings::omnia::otel::{metrics, resource, tracing, types};

/// Links `omnia:otel/{types, tracing, metrics, resource}@0.1.0` into `linker` (an engine with
/// concurrency support: WASI 0.3), reading each store's telemetry through `view`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> OtelView<'_>,
) -> anyhow::Result<()> {
    types::add_to_linker::<_, HasOtel>(linker, view)?;
    tracing::add_to_linker::<_, HasOtel>(linker, view)?;
    metrics::add_to_linker::<_, HasOtel>(linker, view)?;
    resource::add_to_linker::<_, HasOtel>(linker, view)?;
    Ok(())
}

impl types::Host for OtelView<'_> {}

impl tracing::Host for OtelView<'_> {}

impl<T> tracing::HostWithStore<T> for HasOtel {
    async fn export(
        accessor: &Accessor<T, Self>,
        spans: Vec<tracing::SpanData>,
    ) -> wasmtime::Result<Result<(), types::Error>> {
        Ok(accessor.with(|mut access| {
            // Youngest first; the outermost is the export call serving the request.
            let stack: Vec<GuestTaskId> = access
                .as_context_mut()
                .async_call_stack()
                .map(Iterator::collect)
                .unwrap_or_default();
            let view = access.get();
            let Some(pipeline) = view.pipeline else {
                return Ok(());
            };
            if pipeline.is_shut_down() {
                return Err(types::Error::AlreadyShutdown);
            }
            let request = view.work.trace_of(stack);
            let mut malformed = 0_usize;
            for span in spans {
                match convert::span_data(span) {
                    Some(span) => pipeline.export_span(graft(span, request)),
                    None => malformed += 1,
                }
            }
            if malformed > 0 {
                ::tracing::debug!("omnia:otel: {malformed} span(s) with a malformed id dropped");
            }
            Ok(())
        }))
    }
}

/// `span` in the trace of the `request` it was made for, if known: the request's trace id and
/// sampled flag, and the request's span as its parent if it has none.
fn graft(mut span: SpanData, request: Option<TraceContext>) -> SpanData {
    let Some(request) = request else {
        return span;
    };
    let own = &span.span_context;
    let flags = if request.sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    span.span_context = SpanContext::new(
        TraceId::from_bytes(request.trace_id),
        own.span_id(),
        flags,
        false,
        own.trace_state().clone(),
    );
    if span.parent_span_id == SpanId::INVALID {
        span.parent_span_id = SpanId::from_bytes(request.span_id);
    }
    span
}

impl metrics::Host for OtelView<'_> {}

impl<T> metrics::HostWithStore<T> for HasOtel {
    async fn export(
        accessor: &Accessor<T, Self>,
        rm: metrics::ResourceMetrics,
    ) -> wasmtime::Result<Result<(), types::Error>> {
        Ok(accessor.with(|mut access| {
            let view = access.get();
            let Some(pipeline) = view.pipeline else {
                return Ok(());
            };
            if pipeline.is_shut_down() {
                return Err(types::Error::AlreadyShutdown);
            }
            pipeline.export_guest(GuestRecord::Metrics(convert::resource_metrics(rm)));
            Ok(())
        }))
    }
}

impl resource::Host for OtelView<'_> {
    /// The runtime's resource, which the guest's SDK reports as its own.
    fn resource(&mut self) -> wasmtime::Result<types::Resource> {
        Ok(convert::resource(self.resource))
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use opentelemetry::InstrumentationScope;
    use opentelemetry::trace::{SpanKind, Status, TraceState};
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

    use super::*;

    const REQUEST: TraceContext = TraceContext {
        trace_id: [0x4b; 16],
        span_id: [0x0f; 8],
        sampled: true,
    };

    fn span(trace: u8, span: u8, parent: u8) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from_bytes([trace; 16]),
                SpanId::from_bytes([span; 8]),
                TraceFlags::default(),
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::from_bytes([parent; 8]),
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "work".into(),
            start_time: SystemTime::UNIX_EPOCH,
            end_time: SystemTime::UNIX_EPOCH,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }

    #[test]
    fn a_root_span_becomes_a_child_of_the_request_span() {
        let grafted = graft(span(1, 2, 0), Some(REQUEST));
        assert_eq!(
            grafted.span_context.trace_id(),
            TraceId::from_bytes([0x4b; 16])
        );
        assert_eq!(grafted.span_context.span_id(), SpanId::from_bytes([2; 8]));
        assert!(grafted.span_context.is_sampled(), "the request's flag");
        assert_eq!(grafted.parent_span_id, SpanId::from_bytes([0x0f; 8]));
    }

    #[test]
    fn a_child_keeps_its_parent_in_the_request_trace() {
        let grafted = graft(span(1, 3, 2), Some(REQUEST));
        assert_eq!(
            grafted.span_context.trace_id(),
            TraceId::from_bytes([0x4b; 16])
        );
        assert_eq!(grafted.parent_span_id, SpanId::from_bytes([2; 8]));
    }

    #[test]
    fn without_a_request_a_span_is_kept_as_made() {
        let kept = graft(span(1, 2, 0), None);
        assert_eq!(kept.span_context.trace_id(), TraceId::from_bytes([1; 16]));
        assert_eq!(kept.parent_span_id, SpanId::INVALID);
    }
}
