//! The export queues: a bounded buffer between the requests that end spans (or guests that
//! emit telemetry) and the collector, so that a slow or absent collector costs a request
//! nothing but a dropped record.
//!
//! The SDK's own batch processors drop silently when full and flush only with a blocking call;
//! these count what they drop ([`SPANS_DROPPED`], [`GUEST_RECORDS_DROPPED`]) and what fails to
//! export ([`EXPORT_FAILURES`]), and flush asynchronously within the shutdown grace period.
//! One queue carries the spans (the runtime's and the guests'), to the SDK's span exporter;
//! another the guests' metrics and log records, to [`crate::otlp`].

use std::fmt;
use std::future::Future;
use std::time::Duration;

use omnia::metrics::{Counter, Metric};
use omnia::telemetry::{LogLimit, suppressed_note};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter, SpanProcessor};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Spans dropped because the export queue was full (the collector is slow or down).
pub static SPANS_DROPPED: Counter = Counter::new(
    "omnia_telemetry_spans_dropped_total",
    "spans dropped because the export queue was full (the collector is slow or down)",
);

/// Guest metric exports and log records dropped because their export queue was full.
pub static GUEST_RECORDS_DROPPED: Counter = Counter::new(
    "omnia_telemetry_guest_records_dropped_total",
    "guest metric exports and log records dropped because the export queue was full",
);

/// Exports (of spans, metrics or logs) the collector did not accept.
pub static EXPORT_FAILURES: Counter = Counter::new(
    "omnia_telemetry_export_failures_total",
    "OTLP exports that failed (collector unreachable, slow or refusing)",
);

/// Three warnings a minute at most about failed exports.
static FAILURE_LOG: LogLimit = LogLimit::new(3, Duration::from_mins(1));

/// Registers this module's metrics on `/metrics` (and with the exporter).
pub fn register_metrics() {
    omnia::metrics::register(Metric::Counter(&SPANS_DROPPED));
    omnia::metrics::register(Metric::Counter(&GUEST_RECORDS_DROPPED));
    omnia::metrics::register(Metric::Counter(&EXPORT_FAILURES));
}

/// Counts and (rate-limited) logs a failed export.
pub fn export_failed(what: &str, err: &dyn fmt::Display) {
    EXPORT_FAILURES.inc();
    if let Some(suppressed) = FAILURE_LOG.check() {
        tracing::warn!(
            "telemetry: exporting {what} failed: {err}{}",
            suppressed_note(suppressed)
        );
    }
}

/// Where a queue's batches go.
pub trait Sink<I>: Send + Sync + 'static {
    /// What the items are, for the failure log ("spans").
    const WHAT: &'static str;

    /// Sends one batch; a failure is counted and logged by the queue.
    fn send(&self, batch: Vec<I>) -> impl Future<Output = Result<(), String>> + Send;
}

/// The SDK's span exporter as a [`Sink`].
pub struct Spans<E>(pub E);

impl<E: SpanExporter + 'static> Sink<SpanData> for Spans<E> {
    const WHAT: &'static str = "spans";

    async fn send(&self, batch: Vec<SpanData>) -> Result<(), String> {
        self.0.export(batch).await.map_err(|err| err.to_string())
    }
}

/// A bounded queue in front of an export task: items go in without waiting (or are dropped
/// and counted when it is full) and leave in batches.
pub struct ExportQueue<I> {
    items: mpsc::Sender<I>,
    flushes: mpsc::UnboundedSender<oneshot::Sender<()>>,
    dropped: &'static Counter,
}

impl<I> Clone for ExportQueue<I> {
    fn clone(&self) -> Self {
        Self {
            items: self.items.clone(),
            flushes: self.flushes.clone(),
            dropped: self.dropped,
        }
    }
}

impl<I> fmt::Debug for ExportQueue<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportQueue")
            .field("room", &self.items.capacity())
            .finish_non_exhaustive()
    }
}

impl<I: Send + 'static> ExportQueue<I> {
    /// Starts the export task (on the current tokio runtime): batches of at most `max_batch`
    /// items, each sent when full or `delay` after its first item; what does not fit in
    /// `max_queue` is counted in `dropped`.
    pub fn start<S: Sink<I>>(
        sink: S,
        max_queue: usize,
        max_batch: usize,
        delay: Duration,
        dropped: &'static Counter,
    ) -> Self {
        let (items, rx) = mpsc::channel(max_queue);
        let (flushes, flush_rx) = mpsc::unbounded_channel();
        tokio::spawn(export_task(sink, rx, flush_rx, max_batch, delay));
        Self {
            items,
            flushes,
            dropped,
        }
    }

    /// Queues `item` for export, or drops and counts it if the queue is full.
    pub fn push(&self, item: I) {
        if self.items.try_send(item).is_err() {
            self.dropped.inc();
        }
    }

    /// Exports every item queued so far; returns once they are sent (or failed).
    pub async fn flush(&self) {
        let (done, exported) = oneshot::channel();
        if self.flushes.send(done).is_ok() {
            let _ = exported.await;
        }
    }
}

/// The span queue is the tracer provider's span processor.
impl SpanProcessor for ExportQueue<SpanData> {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.push(span);
        }
    }

    /// Flushing happens asynchronously ([`ExportQueue::flush`]), at shutdown.
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

async fn export_task<I, S: Sink<I>>(
    sink: S,
    mut items: mpsc::Receiver<I>,
    mut flushes: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    max_batch: usize,
    delay: Duration,
) {
    let mut batch = Vec::with_capacity(max_batch);
    // When the batch must go, at the latest: `delay` after its first item.
    let mut due: Option<Instant> = None;
    loop {
        let mut flush = None;
        let mut closed = false;
        let room = max_batch - batch.len();
        tokio::select! {
            done = flushes.recv() => match done {
                Some(done) => flush = Some(done),
                None => closed = true,
            },
            n = items.recv_many(&mut batch, room), if room > 0 => {
                closed = n == 0;
                due.get_or_insert_with(|| Instant::now() + delay);
            }
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {}
        }
        if flush.is_some() || closed {
            while let Ok(item) = items.try_recv() {
                batch.push(item);
                if batch.len() >= max_batch {
                    export(&sink, &mut batch).await;
                }
            }
        }
        let ready = flush.is_some()
            || closed
            || batch.len() >= max_batch
            || due.is_some_and(|at| at <= Instant::now());
        if ready {
            export(&sink, &mut batch).await;
            due = None;
        }
        if let Some(done) = flush {
            let _ = done.send(());
        }
        if closed {
            break;
        }
    }
}

async fn export<I, S: Sink<I>>(sink: &S, batch: &mut Vec<I>) {
    if batch.is_empty() {
        return;
    }
    if let Err(err) = sink.send(std::mem::take(batch)).await {
        export_failed(S::WHAT, &err);
    }
}
