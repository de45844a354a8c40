//! Logging: `tracing` to stderr, filtered by `RUST_LOG`, with a rate limit for failures that
//! can repeat once per request.
//!
//! The default filter shows Omnia's own start-up lines (the address it listens on, the drain on
//! shutdown) and warnings from everything else. In command mode nothing of Omnia's is logged at
//! that level, so a `wasi:cli/run` guest's stderr stays its own.
//!
//! A guest that traps on every request would otherwise write one error line per request: at
//! tens of thousands of requests a second, gigabytes of log. Such lines go through a
//! [`LogLimit`]: a burst is logged, then lines at a steady rate; the rest are counted, and the next line logged
//! says how many were suppressed (the [`metrics`] count every one).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::metrics;

/// The filter used when `RUST_LOG` is unset: warnings from everything, and `info` from Omnia's
/// crates. Directives match targets by prefix, so `omnia` covers `omnia_wasi_http`,
/// `omnia_redis` and every capability crate to come, without naming each.
pub const DEFAULT_FILTER: &str = "warn,omnia=info";

/// A layer a capability adds to the subscriber (a telemetry exporter), with its own filter.
pub type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the global subscriber once (later calls do nothing): `layers` (from capabilities,
/// each filtering for itself) and the log lines to stderr, filtered by `RUST_LOG`. A span or
/// event that neither wants costs a check and nothing more.
pub fn init(layers: Vec<BoxedLayer>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|err| {
        if std::env::var_os("RUST_LOG").is_some() {
            eprintln!("omnia: RUST_LOG is not a valid filter ({err}); using {DEFAULT_FILTER:?}");
        }
        EnvFilter::new(DEFAULT_FILTER)
    });
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    // An empty `Vec` of layers would report "never interested" for every callsite and so
    // silence the logs too: add the capabilities' layers only if there are some.
    let layers = (!layers.is_empty()).then_some(layers);
    let _ = tracing_subscriber::registry()
        .with(layers)
        .with(logs)
        .try_init();
}

/// A rate limit for one kind of log line: a burst of `burst` lines, then `burst` per `window`
/// on average (a token bucket); the rest are counted and reported with the next line that
/// passes. Guest output goes through one too (see [`crate::guest_output`]).
///
/// ```
/// use std::time::Duration;
/// static TRAPS: omnia::telemetry::LogLimit = omnia::telemetry::LogLimit::new(10, Duration::from_secs(10));
/// if let Some(suppressed) = TRAPS.check() {
///     tracing::error!("guest trapped{}", omnia::telemetry::suppressed_note(suppressed));
/// }
/// ```
#[derive(Debug)]
pub struct LogLimit {
    burst: u32,
    window: Duration,
    /// Counts every line that does not pass.
    dropped: &'static metrics::Counter,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Lines that may pass now; the bucket starts full.
    tokens: f64,
    /// When `tokens` was last brought up to date (`None`: never used, so full).
    last: Option<Instant>,
    /// Lines that did not pass since the last one that did.
    suppressed: u64,
}

impl LogLimit {
    /// A limit of `burst` lines per `window`, counting suppressed lines in
    /// `omnia_log_lines_suppressed_total`.
    pub const fn new(burst: u32, window: Duration) -> Self {
        Self::counting(burst, window, &metrics::LOG_LINES_SUPPRESSED)
    }

    /// A limit of `burst` lines per `window` that counts the lines it stops in `dropped`.
    pub const fn counting(
        burst: u32,
        window: Duration,
        dropped: &'static metrics::Counter,
    ) -> Self {
        Self {
            burst,
            window,
            dropped,
            bucket: Mutex::new(Bucket {
                tokens: 0.0,
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// The lines a second it lets through on average.
    pub fn rate(&self) -> f64 {
        f64::from(self.burst) / self.window.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// `Some(suppressed)` if a line may be logged now, with how many were suppressed since the
    /// last one logged; `None` if this one must be suppressed.
    pub fn check(&self) -> Option<u64> {
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let burst = f64::from(self.burst);
        bucket.tokens = match bucket.last {
            None => burst,
            Some(last) => {
                (bucket.tokens + now.duration_since(last).as_secs_f64() * self.rate()).min(burst)
            }
        };
        bucket.last = Some(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Some(std::mem::take(&mut bucket.suppressed))
        } else {
            bucket.suppressed += 1;
            self.dropped.inc();
            None
        }
    }
}

/// `" (N similar lines suppressed)"`, or nothing when none were.
pub fn suppressed_note(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" ({suppressed} similar lines suppressed since the last one)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_counts() {
        let limit = LogLimit::new(2, Duration::from_millis(200));
        assert_eq!(limit.check(), Some(0));
        assert_eq!(limit.check(), Some(0));
        assert_eq!(limit.check(), None);
        assert_eq!(limit.check(), None);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(
            limit.check(),
            Some(2),
            "the next window reports what was dropped"
        );
        assert_eq!(limit.check(), Some(0));
    }

    #[test]
    fn notes() {
        assert_eq!(suppressed_note(0), "");
        assert!(suppressed_note(5).contains("5 similar lines suppressed"));
    }
}
