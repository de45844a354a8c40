//! The span export queue: a bounded buffer between the requests that end spans and the
//! collector, so that a slow or absent collector costs a request nothing but a dropped span.
//!
//! The SDK's own batch processors drop silently when full and flush only with a blocking call;
//! this one counts what it drops ([`SPANS_DROPPED`]) and what fails to export
//! ([`EXPORT_FAILURES`]), and flushes asynchronously within the shutdown grace period.

use std::fmt;
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

/// Exports (of spans or metrics) the collector did not accept.
pub static EXPORT_FAILURES: Counter = Counter::new(
    "omnia_telemetry_export_failures_total",
    "OTLP exports that failed (collector unreachable, slow or refusing)",
);

/// Three warnings a minute at most about failed exports.
static FAILURE_LOG: LogLimit = LogLimit::new(3, Duration::from_mins(1));

/// Registers this module's metrics on `/metrics` (and with the exporter).
pub fn register_metrics() {
    omnia::metrics::register(Metric::Counter(&SPANS_DROPPED));
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

/// A [`SpanProcessor`] that hands ended spans to an export task through a bounded queue.
#[derive(Debug, Clone)]
pub struct ExportQueue {
    spans: mpsc::Sender<SpanData>,
    flushes: mpsc::UnboundedSender<oneshot::Sender<()>>,
}

impl ExportQueue {
    /// Starts the export task (on the current tokio runtime): batches of at most `max_batch`
    /// spans, each sent when full or `delay` after its first span.
    pub fn start<E: SpanExporter + 'static>(
        exporter: E,
        max_queue: usize,
        max_batch: usize,
        delay: Duration,
    ) -> Self {
        let (spans, rx) = mpsc::channel(max_queue);
        let (flushes, flush_rx) = mpsc::unbounded_channel();
        tokio::spawn(export_task(exporter, rx, flush_rx, max_batch, delay));
        Self { spans, flushes }
    }

    /// Exports every span queued so far; returns once they are sent (or failed).
    pub async fn flush(&self) {
        let (done, exported) = oneshot::channel();
        if self.flushes.send(done).is_ok() {
            let _ = exported.await;
        }
    }
}

impl SpanProcessor for ExportQueue {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() && self.spans.try_send(span).is_err() {
            SPANS_DROPPED.inc();
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

async fn export_task<E: SpanExporter>(
    exporter: E,
    mut spans: mpsc::Receiver<SpanData>,
    mut flushes: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    max_batch: usize,
    delay: Duration,
) {
    let mut batch = Vec::with_capacity(max_batch);
    // When the batch must go, at the latest: `delay` after its first span.
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
            n = spans.recv_many(&mut batch, room), if room > 0 => {
                closed = n == 0;
                due.get_or_insert_with(|| Instant::now() + delay);
            }
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {}
        }
        if flush.is_some() || closed {
            while let Ok(span) = spans.try_recv() {
                batch.push(span);
                if batch.len() >= max_batch {
                    export(&exporter, &mut batch).await;
                }
            }
        }
        let ready = flush.is_some()
            || closed
            || batch.len() >= max_batch
            || due.is_some_and(|at| at <= Instant::now());
        if ready {
            export(&exporter, &mut batch).await;
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

async fn export<E: SpanExporter>(exporter: &E, batch: &mut Vec<SpanData>) {
    if batch.is_empty() {
        return;
    }
    if let Err(err) = exporter.export(std::mem::take(batch)).await {
        export_failed("spans", &err);
    }
}
