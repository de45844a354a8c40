//! # OpenTelemetry for Omnia
//!
//! With an OTLP endpoint set (`OTEL_GRPC_URL`, or the standard `OTEL_EXPORTER_OTLP_ENDPOINT`
//! and `OTEL_EXPORTER_OTLP_PROTOCOL`), the runtime exports, over gRPC or HTTP/protobuf:
//!
//! * a server span per HTTP request and a consumer span per message (the triggers open them,
//!   see [`omnia::trace`]), with the semantic-convention attributes, children of the W3C
//!   `traceparent` the request or message arrived with;
//! * the runtime's metrics ([`omnia::metrics`]): requests and their duration, work in flight,
//!   instantiation time, traps, deadline kills, backend errors, connections;
//! * what guests emit through `wasi:otel@0.2.0-rc.2` ([`guest`]): their spans, children of the
//!   request's span, their metrics and their log records; and what WASI 0.3 guests written for
//!   upstream omnia emit through its own package, `omnia:otel@0.1.0`, served beside it
//!   ([`guest::upstream`]): their spans (a span without a parent grafted onto the request's, as
//!   upstream's host does) and metrics, by the same conversions, and the runtime's resource,
//!   which they read.
//!
//! Export never holds up a request: spans go through a bounded queue (`OTEL_BSP_MAX_QUEUE_SIZE`)
//! to a background task that sends them in batches; when the collector is slow or down the
//! queue fills and further spans are dropped and counted
//! (`omnia_telemetry_spans_dropped_total`; guest metrics and logs have a queue of their own,
//! `omnia_telemetry_guest_records_dropped_total`). Shutdown flushes what is queued, within the
//! grace period. Without an endpoint nothing is recorded: the request spans are disabled
//! `tracing` spans, which cost a check each, and what guests emit is dropped.
//!
//! ```ignore
//! omnia::runtime!({ "http": WasiHttpCtx, "otel": DefaultOtel });
//! ```

pub mod guest;
mod options;
mod otlp;
mod pipeline;
mod queue;
mod record;

use std::sync::OnceLock;

use anyhow::Result;
use omnia::telemetry::BoxedLayer;
use omnia::{Backend, Host, HostView};
use opentelemetry_sdk::Resource;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

pub use options::{Export, OtelOptions, Protocol};
pub use queue::{EXPORT_FAILURES, GUEST_RECORDS_DROPPED, SPANS_DROPPED};

use pipeline::Pipeline;

/// The pipeline of this process, started with the logging (before anything is connected).
static PIPELINE: OnceLock<Pipeline> = OnceLock::new();

/// The `"otel"` entry of a runtime: OTLP export of the runtime's spans and metrics, and
/// `wasi:otel` (and, for WASI 0.3 components, `omnia:otel`) for guests.
#[derive(Clone)]
pub struct DefaultOtel {
    pipeline: Option<Pipeline>,
    /// The runtime's resource (cheap to clone: the SDK shares it).
    resource: Resource,
}

impl Backend for DefaultOtel {
    type Options = OtelOptions;

    async fn connect_with(options: OtelOptions) -> Result<Self> {
        if let Some(export) = &options.export {
            tracing::info!(
                "telemetry: exporting spans and metrics over OTLP/{}",
                match export.protocol {
                    Protocol::Grpc => "gRPC",
                    Protocol::HttpProtobuf => "HTTP",
                }
            );
        }
        Ok(Self {
            pipeline: PIPELINE.get().cloned(),
            resource: pipeline::resource(options.service_named),
        })
    }

    fn tracing_layer(options: &OtelOptions) -> Result<Option<BoxedLayer>> {
        let Some(export) = &options.export else {
            return Ok(None);
        };
        if PIPELINE.get().is_some() {
            return Ok(None);
        }
        let (pipeline, layer) = Pipeline::start(export, pipeline::resource(options.service_named))?;
        let _ = PIPELINE.set(pipeline);
        Ok(Some(layer))
    }

    async fn shutdown(&self) {
        if let Some(pipeline) = &self.pipeline {
            pipeline.shutdown().await;
        }
    }
}

impl<T: HostView<DefaultOtel>> Host<T> for DefaultOtel {
    /// The runtime's own telemetry concerns every component.
    fn used_by(_engine: &Engine, _component: &Component) -> bool {
        true
    }

    fn add_to_linker(linker: &mut Linker<T>, _component: &Component) -> Result<()> {
        guest::add_to_linker(linker, view::<T>)?;
        // Upstream omnia's own package beside the standard one: its functions are `async func`,
        // which need the WASI 0.3 engine.
        if omnia::engine::kind(linker.engine()) == omnia::engine::Kind::Async {
            guest::upstream::add_to_linker(linker, view::<T>)?;
        }
        Ok(())
    }
}

/// The [`guest::OtelView`] of a store that holds a [`DefaultOtel`].
fn view<T: HostView<DefaultOtel>>(store: &mut T) -> guest::OtelView<'_> {
    let (entry, core) = store.host();
    guest::OtelView {
        pipeline: entry.pipeline.as_ref(),
        work: &core.work,
        resource: &entry.resource,
    }
}
