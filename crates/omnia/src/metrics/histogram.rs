//! Distributions of durations: a [`Histogram`], and the [`Buckets`] behind it (and behind each
//! member of a [`HistogramFamily`](super::HistogramFamily)), in the Prometheus layout of
//! cumulative buckets with fixed bounds, so that every exporter sees the same buckets.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The upper bounds (seconds) of the [`Histogram`] buckets: 1 ms to 30 s.
pub const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A distribution of durations, in seconds, over [`BUCKETS`].
#[derive(Debug)]
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    values: Buckets,
}

impl Histogram {
    /// A histogram named `name` (Prometheus style, ending in `_seconds`).
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            values: Buckets::new(),
        }
    }

    /// Records one duration (and hands it to the installed [`Recorder`](super::Recorder), if any).
    pub fn record(&'static self, duration: Duration) {
        self.values.observe(duration);
        if let Some(recorder) = super::recorder() {
            recorder.record(self.name, &[], duration.as_secs_f64());
        }
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.values.count()
    }

    /// The histogram's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The histogram's help text.
    pub fn help(&self) -> &'static str {
        self.help
    }

    /// Writes the histogram's buckets in the Prometheus text format.
    pub(super) fn render(&self, out: &mut String) {
        self.values.render(out, self.name, "");
    }
}

/// The counts behind a histogram: how many durations fell in each of [`BUCKETS`], how many in
/// all, and their sum.
#[derive(Debug, Default)]
pub struct Buckets {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// The sum, in microseconds.
    sum_micros: AtomicU64,
}

impl Buckets {
    const fn new() -> Self {
        Self {
            counts: [const { AtomicU64::new(0) }; BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub(super) fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Writes the Prometheus lines of these buckets, `labels` (`key="value",` pairs, each
    /// followed by a comma) before each `le`.
    pub(super) fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.counts) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count();
        #[allow(clippy::cast_precision_loss, reason = "seconds, for display")]
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let labels = labels.trim_end_matches(',');
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{}le=\"+Inf\"}} {count}\n{name}_sum{braces} {sum}\n\
             {name}_count{braces} {count}",
            if labels.is_empty() { "" } else { "," }
        );
    }
}
