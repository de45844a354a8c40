//! Trace context: the W3C `traceparent` a request or message arrives with, the span the
//! runtime opens for it, and the hook a telemetry capability installs to connect the two.
//!
//! Triggers open one `tracing` span per request or message (target [`SPAN_TARGET`], level
//! `DEBUG`, so it costs nothing unless a telemetry layer wants it), read the parent from the
//! `traceparent` header or metadata ([`TraceContext::parse`]), and hand both to
//! [`start_span`]. The store of that request gets a [`Work`] with the span and its own trace
//! context, which capabilities use to parent guest spans and to propagate the trace into
//! outgoing requests and published messages ([`TraceContext::traceparent`]).
//!
//! The core knows nothing about OpenTelemetry: a capability (`omnia-wasi-otel`) installs a
//! [`Tracer`] that does. Without one, no span is recorded and the incoming context is passed
//! on unchanged, so a trace still crosses the runtime.

use std::fmt::Write as _;
use std::sync::OnceLock;

use wasmtime::component::GuestTaskId;

/// The target of the request and message spans (enable it to trace: `RUST_LOG=omnia::request=debug`).
pub const SPAN_TARGET: &str = "omnia::request";

/// The header (and metadata key) W3C Trace Context uses.
pub const TRACEPARENT: &str = "traceparent";

/// A W3C trace context: which trace, which span in it, and whether it is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The trace id (16 bytes, not all zero).
    pub trace_id: [u8; 16],
    /// The span id (8 bytes, not all zero).
    pub span_id: [u8; 8],
    /// The `sampled` flag.
    pub sampled: bool,
}

impl TraceContext {
    /// Parses a `traceparent` value (`00-<trace id>-<span id>-<flags>`); `None` for anything
    /// malformed, as the specification says to ignore such a header.
    pub fn parse(traceparent: &str) -> Option<Self> {
        let mut parts = traceparent.trim().split('-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let trace_id: [u8; 16] = hex_bytes(trace)?;
        let span_id: [u8; 8] = hex_bytes(span)?;
        let [flags]: [u8; 1] = hex_bytes(flags)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The `traceparent` value of this context.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id_hex(),
            self.span_id_hex(),
            u8::from(self.sampled)
        )
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 lower-case hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

/// What a telemetry capability does with the runtime's spans.
pub trait Tracer: Send + Sync + 'static {
    /// Makes `parent` (from the incoming `traceparent`) the parent of `span`.
    fn set_parent(&self, span: &tracing::Span, parent: &TraceContext);

    /// The trace context of `span`, once it is recorded.
    fn context(&self, span: &tracing::Span) -> Option<TraceContext>;
}

static TRACER: OnceLock<Box<dyn Tracer>> = OnceLock::new();

/// Installs the tracer (once per process; later calls are ignored).
pub fn install(tracer: Box<dyn Tracer>) {
    let _ = TRACER.set(tracer);
}

/// The work a store is made for: the span of its request or message, and the trace context
/// to give its guest and to propagate.
#[derive(Debug, Clone)]
pub struct Work {
    /// The request's or message's span (disabled unless something records it).
    pub span: tracing::Span,
    /// The trace context of the span, or the incoming one when nothing records spans.
    pub trace: Option<TraceContext>,
    /// The requests of a store that serves many at once (a WASI 0.3 instance), whose work
    /// has no span or trace of its own.
    pub requests: Requests,
    /// How many calls between guests led to this work: 0 for work from outside (a request
    /// from the network, a message), one more for each local call (see `omnia-wasi-http`'s
    /// `local` module), which refuses calls past its limit.
    pub depth: u32,
}

impl Default for Work {
    /// No span, no trace (a command).
    fn default() -> Self {
        Self {
            span: tracing::Span::none(),
            trace: None,
            requests: Requests::default(),
            depth: 0,
        }
    }
}

impl Work {
    /// The trace context of the work a host call serves, given the call's async call stack
    /// (`StoreContextMut::async_call_stack`): the request its guest task serves, in a store that
    /// serves many; else the store's own.
    pub fn trace_of(&self, stack: impl IntoIterator<Item = GuestTaskId>) -> Option<TraceContext> {
        self.requests.find(stack).or(self.trace)
    }
}

/// The trace contexts of the requests a store serves at once, by the guest task serving each.
///
/// A WASI 0.3 instance serves many requests in one store, so the store's [`Work`] cannot name
/// one request. The trigger records here the trace context of each request it hands the
/// instance, under the task of the export call that serves it; a host function finds the one
/// it works for by its async call stack, whose outermost task is that export call (a task the
/// guest spawns runs within it). Entries are removed by the trigger when their request is done
/// ([`Requests::retain`]), and a task id wasmtime reuses for a new request is recorded anew.
#[derive(Debug, Clone, Default)]
pub struct Requests(Vec<(GuestTaskId, TraceContext)>);

impl Requests {
    /// Records the trace context of the request `task` serves.
    pub fn insert(&mut self, task: GuestTaskId, trace: TraceContext) {
        self.0.retain(|(t, _)| *t != task);
        self.0.push((task, trace));
    }

    /// Keeps the requests whose task `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(GuestTaskId) -> bool) {
        self.0.retain(|(task, _)| keep(*task));
    }

    /// The trace context of the request whose export call is the outermost task of `stack`
    /// (youngest first, as wasmtime gives it), if one is recorded.
    pub fn find(&self, stack: impl IntoIterator<Item = GuestTaskId>) -> Option<TraceContext> {
        if self.0.is_empty() {
            return None;
        }
        let root = stack.into_iter().last()?;
        self.0
            .iter()
            .find_map(|(task, trace)| (*task == root).then_some(*trace))
    }
}

/// Connects `span` to the incoming `parent` (if any) and returns the [`Work`] for the store.
pub fn start_span(span: tracing::Span, parent: Option<TraceContext>) -> Work {
    let tracer = TRACER.get();
    if let (Some(tracer), Some(parent)) = (tracer, &parent) {
        tracer.set_parent(&span, parent);
    }
    let trace = tracer.and_then(|t| t.context(&span)).or(parent);
    Work {
        span,
        trace,
        requests: Requests::default(),
        depth: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trip() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceContext::parse(text).unwrap();
        assert!(context.sampled);
        assert_eq!(context.traceparent(), text);
        assert_eq!(context.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn without_a_tracer_the_incoming_context_passes_through() {
        let parent = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
        let work = start_span(tracing::Span::none(), parent);
        assert_eq!(work.trace, parent);
    }
}
