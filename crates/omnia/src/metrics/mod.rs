//! Counters and gauges of what the runtime did, served on the admin endpoint as `/metrics` in
//! the Prometheus text format.
//!
//! The core's own metrics are statics here; a capability declares its own statics the same way
//! and [`register`]s them when its trigger starts, so the core never lists a capability's names.
//! Every failure that is logged at a limited rate (see [`crate::telemetry::LogLimit`]) is also
//! counted here, so nothing suppressed from the log is lost from the numbers.

mod family;
mod histogram;

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

pub use family::{CounterFamily, Family, HistogramFamily, Labels};
pub use histogram::{BUCKETS, Buckets, Histogram};

/// A number that only goes up.
#[derive(Debug)]
pub struct Counter {
    name: &'static str,
    help: &'static str,
    value: AtomicU64,
}

impl Counter {
    /// A counter named `name` (Prometheus style, ending in `_total`).
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            value: AtomicU64::new(0),
        }
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// A number that goes up and down.
#[derive(Debug)]
pub struct Gauge {
    name: &'static str,
    help: &'static str,
    value: AtomicI64,
}

impl Gauge {
    /// A gauge named `name`.
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            value: AtomicI64::new(0),
        }
    }

    /// Adds `n` (negative to subtract).
    pub fn add(&self, n: i64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the value.
    pub fn set(&self, n: i64) {
        self.value.store(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// A telemetry exporter's view of the metrics: told of every metric once (those that exist
/// when it is installed, then each one [`register`]ed later), and of every [`Histogram`]
/// record as it happens (counters and gauges it reads when it exports).
pub trait Recorder: Send + Sync + 'static {
    /// `metric` exists; called once per metric.
    fn describe(&self, metric: Metric);

    /// `seconds` was recorded into the histogram `name` (the member with `labels`, for a
    /// [`HistogramFamily`]; none for a [`Histogram`]).
    fn record(&self, name: &'static str, labels: &[(&'static str, &str)], seconds: f64);
}

static RECORDER: std::sync::OnceLock<Box<dyn Recorder>> = std::sync::OnceLock::new();

/// The installed recorder, if any (for the histograms to hand each record to).
fn recorder() -> Option<&'static dyn Recorder> {
    RECORDER.get().map(AsRef::as_ref)
}

/// Installs the recorder (once per process; later calls are ignored) and describes every
/// metric that exists to it.
pub fn set_recorder(recorder: Box<dyn Recorder>) {
    if RECORDER.set(recorder).is_ok()
        && let Some(recorder) = RECORDER.get()
    {
        for metric in all() {
            recorder.describe(metric);
        }
    }
}

/// A metric the `/metrics` page lists.
#[derive(Debug, Clone, Copy)]
pub enum Metric {
    /// A [`Counter`].
    Counter(&'static Counter),
    /// A [`Gauge`].
    Gauge(&'static Gauge),
    /// A [`Histogram`].
    Histogram(&'static Histogram),
    /// A [`CounterFamily`].
    CounterFamily(&'static CounterFamily),
    /// A [`HistogramFamily`].
    HistogramFamily(&'static HistogramFamily),
}

impl Metric {
    /// The metric's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Counter(c) => c.name,
            Self::Gauge(g) => g.name,
            Self::Histogram(h) => h.name(),
            Self::CounterFamily(f) => f.name(),
            Self::HistogramFamily(f) => f.name(),
        }
    }

    /// The metric's help text.
    pub fn help(self) -> &'static str {
        match self {
            Self::Counter(c) => c.help,
            Self::Gauge(g) => g.help,
            Self::Histogram(h) => h.help(),
            Self::CounterFamily(f) => f.help(),
            Self::HistogramFamily(f) => f.help(),
        }
    }
}

/// Guest calls that trapped (panic, `unreachable`, out of memory).
pub static GUEST_TRAPS: Counter = Counter::new(
    "omnia_guest_traps_total",
    "Guest calls that trapped (panic, unreachable, out of memory).",
);
/// Guest calls stopped at the deadline.
pub static GUEST_TIMEOUTS: Counter = Counter::new(
    "omnia_guest_timeouts_total",
    "Guest calls stopped at OMNIA_REQUEST_TIMEOUT.",
);
/// Guest calls cancelled because the client went away.
pub static GUEST_CANCELLED: Counter = Counter::new(
    "omnia_guest_cancelled_total",
    "Guest calls cancelled because the client went away.",
);
/// Work refused because every slot was taken.
pub static OVERLOAD_REJECTIONS: Counter = Counter::new(
    "omnia_overload_rejections_total",
    "Requests refused because OMNIA_MAX_CONCURRENCY were in flight.",
);
/// Work that failed because the memory budget was spent.
pub static MEMORY_BUDGET_REFUSALS: Counter = Counter::new(
    "omnia_memory_budget_refusals_total",
    "Instances refused memory because OMNIA_MEMORY_BUDGET was spent.",
);
/// Guest instances created.
pub static INSTANTIATIONS: Counter =
    Counter::new("omnia_instantiations_total", "Guest instances created.");
/// Log lines dropped by the rate limit.
pub static LOG_LINES_SUPPRESSED: Counter = Counter::new(
    "omnia_log_lines_suppressed_total",
    "Repeated failure log lines suppressed by the rate limit.",
);
/// Linear memory held by live instances.
pub static GUEST_MEMORY_BYTES: Gauge = Gauge::new(
    "omnia_guest_memory_bytes",
    "Linear memory held by live guest instances (bytes of OMNIA_MEMORY_BUDGET in use).",
);
/// The memory budget.
pub static MEMORY_BUDGET_BYTES: Gauge = Gauge::new(
    "omnia_memory_budget_bytes",
    "OMNIA_MEMORY_BUDGET: the linear memory all guest instances may hold together (bytes).",
);
/// Requests and messages being handled.
pub static WORK_IN_FLIGHT: Gauge = Gauge::new(
    "omnia_work_in_flight",
    "Requests and messages being handled (work slots in use), all triggers together.",
);
/// How long guest calls take, by trigger (recorded by [`crate::invoke`]).
pub static WORK_DURATION: HistogramFamily = HistogramFamily::new(
    "omnia_work_duration_seconds",
    "Time from the start of a guest call (a request's arrival, a message's delivery) to its end.",
    &["trigger", "component"],
);
/// Guest calls by trigger, guest and outcome (recorded by [`crate::invoke`]).
pub static GUEST_CALLS: CounterFamily = CounterFamily::new(
    "omnia_guest_calls_total",
    "Guest calls by trigger, guest (component) and outcome (ok, guest_error, trap, timeout, \
     out_of_budget, cancelled, client_error).",
    &["trigger", "component", "outcome"],
);
/// How long instantiating a guest takes.
pub static INSTANTIATION_DURATION: Histogram = Histogram::new(
    "omnia_instantiation_duration_seconds",
    "Time to instantiate a guest for one request or message.",
);
/// Failures of backends (key-value, messaging) seen by guests.
pub static BACKEND_ERRORS: Counter = Counter::new(
    "omnia_backend_errors_total",
    "Operations of backends (Redis, NATS, ...) that failed and answered the guest with an error.",
);
/// Open connections on every HTTP listener.
pub static CONNECTIONS_OPEN: Gauge = Gauge::new(
    "omnia_connections_open",
    "Open client connections, every listener together.",
);
/// Connections closed to make room under the connection cap.
pub static CONNECTIONS_SHED: Counter = Counter::new(
    "omnia_connections_shed_total",
    "Idle connections closed to make room for new clients at the connection cap.",
);
/// Connections refused at the cap.
pub static CONNECTIONS_REFUSED: Counter = Counter::new(
    "omnia_connections_refused_total",
    "Connections closed at once because the cap was reached and none was idle.",
);
/// Connections closed by the header or idle timeout.
pub static CONNECTIONS_TIMED_OUT: Counter = Counter::new(
    "omnia_connections_timed_out_total",
    "Connections closed by the header-read or idle timeout.",
);

const CORE: &[Metric] = &[
    Metric::Counter(&INSTANTIATIONS),
    Metric::Histogram(&INSTANTIATION_DURATION),
    Metric::Gauge(&WORK_IN_FLIGHT),
    Metric::HistogramFamily(&WORK_DURATION),
    Metric::CounterFamily(&GUEST_CALLS),
    Metric::Counter(&BACKEND_ERRORS),
    Metric::Counter(&GUEST_TRAPS),
    Metric::Counter(&GUEST_TIMEOUTS),
    Metric::Counter(&GUEST_CANCELLED),
    Metric::Counter(&OVERLOAD_REJECTIONS),
    Metric::Counter(&MEMORY_BUDGET_REFUSALS),
    Metric::Gauge(&GUEST_MEMORY_BYTES),
    Metric::Gauge(&MEMORY_BUDGET_BYTES),
    Metric::Gauge(&CONNECTIONS_OPEN),
    Metric::Counter(&CONNECTIONS_SHED),
    Metric::Counter(&CONNECTIONS_REFUSED),
    Metric::Counter(&CONNECTIONS_TIMED_OUT),
    Metric::Counter(&LOG_LINES_SUPPRESSED),
];

static REGISTERED: Mutex<Vec<Metric>> = Mutex::new(Vec::new());

/// Lists `metric` on the `/metrics` page (a capability's own; registering twice is harmless).
pub fn register(metric: Metric) {
    let mut registered = REGISTERED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !registered.iter().any(|m| m.name() == metric.name()) {
        registered.push(metric);
        drop(registered);
        if let Some(recorder) = RECORDER.get() {
            recorder.describe(metric);
        }
    }
}

/// Every metric: the core's and those registered.
pub fn all() -> Vec<Metric> {
    let registered = REGISTERED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    CORE.iter().copied().chain(registered).collect()
}

/// Every metric in the Prometheus text exposition format.
pub fn render() -> String {
    let mut out = String::new();
    for metric in all() {
        let (name, help) = (metric.name(), metric.help());
        match metric {
            Metric::Counter(c) => {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                    c.get()
                );
            }
            Metric::Gauge(g) => {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                    g.get()
                );
            }
            Metric::Histogram(h) => {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
                h.render(&mut out);
            }
            Metric::CounterFamily(f) => {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                f.render(&mut out);
            }
            Metric::HistogramFamily(f) => {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
                f.render(&mut out);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    static EXTRA: Counter = Counter::new("omnia_test_extra_total", "A test counter.");

    static DURATIONS: Histogram = Histogram::new("omnia_test_seconds", "A test histogram.");

    #[test]
    fn histograms_render_cumulative_buckets() {
        DURATIONS.record(std::time::Duration::from_millis(3));
        DURATIONS.record(std::time::Duration::from_secs(2));
        register(Metric::Histogram(&DURATIONS));
        let page = render();
        assert!(
            page.contains("omnia_test_seconds_bucket{le=\"0.005\"} 1\n"),
            "{page}"
        );
        assert!(
            page.contains("omnia_test_seconds_bucket{le=\"2.5\"} 2\n"),
            "{page}"
        );
        assert!(page.contains("omnia_test_seconds_count 2\n"), "{page}");
    }

    #[test]
    fn renders_core_and_registered() {
        EXTRA.add(3);
        register(Metric::Counter(&EXTRA));
        register(Metric::Counter(&EXTRA));
        let page = render();
        assert!(page.contains("# TYPE omnia_guest_traps_total counter\n"));
        assert!(page.contains("omnia_test_extra_total 3\n"));
        assert_eq!(page.matches("# HELP omnia_test_extra_total").count(), 1);
    }
}
