//! The stdout and stderr of served guests: passed on to Omnia's own, line by line, at a
//! bounded rate.
//!
//! A guest's output is its log, and it can repeat with every request: a guest that panics on
//! each of 40,000 requests writes 120,000 lines of panic message, enough to fill a disk or
//! drown a log shipper, while Omnia's own failure lines are rate-limited. So served guests
//! write through a [`GuestOutput`]: whole lines (a line longer than [`MAX_LINE`] is cut into
//! several), at most `OMNIA_GUEST_OUTPUT_RATE` lines a second for all instances together, with a
//! burst of ten seconds' worth. Lines past the limit are dropped and counted
//! (`omnia_guest_output_lines_dropped_total`), and the next line that passes is preceded by a
//! note saying how many were dropped. Nothing is queued: a line is written when it is complete,
//! or dropped, so memory stays bounded whatever the guest writes.
//!
//! Commands (`wasi:cli/run`) keep the process's stdout and stderr as they are: their output is
//! the program's output, not a log.

use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::metrics::{self, Counter};
use crate::telemetry::LogLimit;

/// The longest line passed on whole; longer ones are cut into lines of this length.
pub const MAX_LINE: usize = 16 * 1024;

/// Guest output lines dropped by the rate limit.
pub static LINES_DROPPED: Counter = Counter::new(
    "omnia_guest_output_lines_dropped_total",
    "Lines of served guests' stdout and stderr dropped by OMNIA_GUEST_OUTPUT_RATE.",
);

/// Where a guest's lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The process's stdout.
    Stdout,
    /// The process's stderr.
    Stderr,
}

/// The rate limit all served guests' output shares: `rate` lines a second (0: none), with a
/// burst of ten seconds' worth.
pub fn output_limit(rate: u32) -> Arc<LogLimit> {
    metrics::register(metrics::Metric::Counter(&LINES_DROPPED));
    Arc::new(LogLimit::counting(
        rate.saturating_mul(10),
        Duration::from_secs(10),
        &LINES_DROPPED,
    ))
}

/// A served guest's stdout or stderr (see the module documentation).
#[derive(Debug, Clone)]
pub struct GuestOutput {
    target: Target,
    limit: Arc<LogLimit>,
}

impl GuestOutput {
    /// Output to `target` under `limit`.
    pub fn new(target: Target, limit: Arc<LogLimit>) -> Self {
        Self { target, limit }
    }

    fn lines(&self) -> Lines {
        Lines {
            output: self.clone(),
            partial: Vec::new(),
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.lines())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.lines())
    }
}

/// One stream of a guest's output: gathers bytes into lines and passes each on, or drops it.
struct Lines {
    output: GuestOutput,
    /// The start of a line not yet ended, at most [`MAX_LINE`] bytes.
    partial: Vec<u8>,
}

impl Lines {
    fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = MAX_LINE - self.partial.len();
            let end = bytes
                .iter()
                .take(room)
                .position(|&b| b == b'\n')
                .map(|i| i + 1);
            let take = end.unwrap_or(room.min(bytes.len()));
            self.partial.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if end.is_some() || self.partial.len() == MAX_LINE {
                self.emit();
            }
        }
    }

    /// Writes the gathered line (ending it with a newline if it has none) if the limit allows.
    fn emit(&mut self) {
        let mut line = std::mem::take(&mut self.partial);
        if line.is_empty() {
            return;
        }
        let Some(dropped) = self.output.limit.check() else {
            self.partial = reuse(line);
            return;
        };
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        let note = (dropped > 0).then(|| {
            format!(
                "omnia: {dropped} lines of guest output dropped (more than \
                 OMNIA_GUEST_OUTPUT_RATE={} lines/s)\n",
                self.output.limit.rate()
            )
        });
        // As the process's own stdio streams do, a failed write is ignored: the guest's
        // output has nowhere else to go.
        let _ = match self.output.target {
            Target::Stdout => write_lines(&mut std::io::stdout().lock(), note, &line),
            Target::Stderr => write_lines(&mut std::io::stderr().lock(), note, &line),
        };
        self.partial = reuse(line);
    }
}

/// An emptied buffer, kept if it is small (so a guest's lines reuse one allocation).
fn reuse(mut buffer: Vec<u8>) -> Vec<u8> {
    if buffer.capacity() > MAX_LINE + 1 {
        return Vec::new();
    }
    buffer.clear();
    buffer
}

fn write_lines(out: &mut impl Write, note: Option<String>, line: &[u8]) -> std::io::Result<()> {
    if let Some(note) = note {
        out.write_all(note.as_bytes())?;
    }
    out.write_all(line)
}

impl Drop for Lines {
    /// A last line without a newline is passed on when the stream goes away.
    fn drop(&mut self) {
        self.emit();
    }
}

impl OutputStream for Lines {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

#[async_trait::async_trait]
impl Pollable for Lines {
    async fn ready(&mut self) {}
}

impl AsyncWrite for Lines {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().emit();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_passes_a_burst_then_the_rate() {
        let limit = output_limit(10);
        let passed = (0..1000).filter(|_| limit.check().is_some()).count();
        assert_eq!(passed, 100, "a burst of ten seconds' worth");
        std::thread::sleep(std::time::Duration::from_millis(250));
        let after = (0..1000).filter(|_| limit.check().is_some()).count();
        assert!(
            (1..=4).contains(&after),
            "about 2.5 lines in 250 ms: {after}"
        );
        let limit = output_limit(0);
        assert!(limit.check().is_none(), "0 drops everything");
    }

    #[test]
    fn lines_are_gathered_and_long_ones_cut() {
        let mut lines = GuestOutput::new(Target::Stderr, output_limit(0)).lines();
        lines.push(b"par");
        assert_eq!(lines.partial, b"par");
        lines.push(b"tial\nnext");
        assert_eq!(
            lines.partial, b"next",
            "the first line was emitted (and dropped)"
        );
        lines.push(&vec![b'x'; 2 * MAX_LINE]);
        assert_eq!(
            lines.partial.len(),
            4,
            "cut into lines of MAX_LINE, the rest pending"
        );
        assert!(lines.partial.capacity() <= MAX_LINE + 1);
    }
}
