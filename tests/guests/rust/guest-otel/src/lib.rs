//! wasi:otel bindings for the telemetry test guests, and [`Span`], a span the way a guest's
//! OpenTelemetry SDK makes one: a child of `current-span-context`, reported with `on-start` and
//! `on-end`.
//!
//! The bindings are from the published wasi:otel WIT (wit/), which uses wasi:clocks@0.2.0; they
//! are separate from guest-http's (wasi:clocks@0.2.12), whose clock and random number generator
//! they use.

wit_bindgen::generate!({
    path: "wit",
    world: "omnia:otel-guest/otel-imports",
    generate_all,
});

pub use wasi::otel::{logs, metrics, tracing, types};

use guest_http::wasi::clocks::wall_clock;
use guest_http::wasi::random::random;

/// Now, as the wasi:otel datetime (wasi:clocks@0.2.0's record, the same as the newer one's).
pub fn now() -> tracing::Datetime {
    let t = wall_clock::now();
    tracing::Datetime {
        seconds: t.seconds,
        nanoseconds: t.nanoseconds,
    }
}

/// The instrumentation scope `name`, version 0.1.0.
pub fn scope(name: &str) -> types::InstrumentationScope {
    types::InstrumentationScope {
        name: name.to_string(),
        version: Some("0.1.0".to_string()),
        schema_url: None,
        attributes: Vec::new(),
    }
}

/// A string attribute (its value JSON-encoded, as wasi:otel has it).
pub fn attribute(key: &str, value: &str) -> types::KeyValue {
    types::KeyValue {
        key: key.to_string(),
        value: format!("{value:?}"),
    }
}

/// A started span: a child of the host's current span.
pub struct Span {
    /// This span's context.
    pub context: tracing::SpanContext,
    /// The host's current span when this one started: its parent.
    pub parent: tracing::SpanContext,
    name: String,
    scope: types::InstrumentationScope,
    start: tracing::Datetime,
}

impl Span {
    /// Starts the span `name` in `scope`.
    pub fn start(name: &str, scope: types::InstrumentationScope) -> Self {
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
        Self {
            context,
            parent,
            name: name.to_string(),
            scope,
            start,
        }
    }

    /// The ids to report: `<trace id> <span id> <parent span id>`.
    pub fn ids(&self) -> String {
        format!(
            "{} {} {}",
            self.context.trace_id, self.context.span_id, self.parent.span_id
        )
    }

    /// Ends the span (kind internal, status ok) with `attributes` and `events`.
    pub fn end(self, attributes: Vec<types::KeyValue>, events: Vec<tracing::Event>) {
        tracing::on_end(&tracing::SpanData {
            span_context: self.context,
            parent_span_id: self.parent.span_id,
            span_kind: tracing::SpanKind::Internal,
            name: self.name,
            start_time: self.start,
            end_time: now(),
            attributes,
            events,
            links: Vec::new(),
            status: tracing::Status::Ok,
            instrumentation_scope: self.scope,
            dropped_attributes: 0,
            dropped_events: 0,
            dropped_links: 0,
        });
    }
}
