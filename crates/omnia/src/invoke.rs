//! One guest call, from any trigger: the deadline, the outcome, and what is recorded of it.
//!
//! Every trigger (HTTP 0.2 and 0.3, messaging, whatever comes next) runs guest code the same
//! way: under `OMNIA_REQUEST_TIMEOUT`, in a store whose memory the process-wide budget may
//! refuse, for a caller that may go away. What can come of it is the same too, and so is what
//! the runtime must record: the duration, the outcome by trigger, a failure log line at a
//! limited rate, the span's error status. A trigger makes a [`Call`], runs the guest under it,
//! and [`finish`](Call::finish)es it with the [`Outcome`]; what stays in the trigger is its
//! protocol: the status code for an outcome, ack / nak / redelivery for a message.
//!
//! Why a call failed is decided in one place, [`classify`]: a guest that traps because the
//! memory budget refused it is [`Failure::OutOfBudget`], not a trap; a guest stopped at (or
//! past) its deadline is [`Failure::Timeout`], however the stop shows up (a dropped future, an
//! epoch trap, an instance killed by its pool); anything else is [`Failure::Trap`].
//!
//! | outcome | counted in | logged (10 lines per 10 s) |
//! |---|---|---|
//! | the guest returned | `omnia_guest_calls_total{outcome="ok"}` | no |
//! | the guest returned its interface's error | `…{outcome="guest_error"}` | no (the trigger's protocol says what it means) |
//! | it trapped | `…{outcome="trap"}`, `omnia_guest_traps_total` | error |
//! | it ran past `OMNIA_REQUEST_TIMEOUT` | `…{outcome="timeout"}`, `omnia_guest_timeouts_total` | warning |
//! | the memory budget refused it | `…{outcome="out_of_budget"}` | warning (1 per 10 s) |
//! | its caller went away first | `…{outcome="cancelled"}`, `omnia_guest_cancelled_total` | no |
//! | it failed because its input was bad (a client's broken body) | `…{outcome="client_error"}` | no (the trigger answers the client) |
//!
//! Every call also records `omnia_work_duration_seconds{trigger,component}`; every metric of a
//! call carries the guest's id as its `component` label.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::Store;

use crate::StoreView;
use crate::metrics;
use crate::telemetry::{LogLimit, suppressed_note};

/// Rate limits of the failure log lines, shared by every trigger.
static FAILURE_LOG: LogLimit = LogLimit::new(10, Duration::from_secs(10));
static TIMEOUT_LOG: LogLimit = LogLimit::new(10, Duration::from_secs(10));
static BUDGET_LOG: LogLimit = LogLimit::new(1, Duration::from_secs(10));

/// What came of a guest call.
#[derive(Debug)]
pub enum Outcome<T, E = Infallible> {
    /// The guest returned `T`.
    Ok(T),
    /// The guest returned its interface's own error (a messaging `error`, say).
    GuestError(E),
    /// The call did not return (see [`Failure`]).
    Failed(Failure),
}

impl<T, E> Outcome<T, E> {
    /// The `outcome` label of `omnia_guest_calls_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Ok(_) => "ok",
            Self::GuestError(_) => "guest_error",
            Self::Failed(failure) => failure.label(),
        }
    }
}

/// Why a guest call did not return.
#[derive(Debug, Clone)]
pub enum Failure {
    /// It trapped (panic, `unreachable`, out of its own memory limit, a host error).
    Trap(Arc<wasmtime::Error>),
    /// It ran past its deadline (`OMNIA_REQUEST_TIMEOUT`).
    Timeout(Duration),
    /// The process-wide memory budget (`OMNIA_MEMORY_BUDGET`) refused it memory.
    OutOfBudget,
    /// Its caller went away (a client closed the connection) before it ended.
    Cancelled,
}

impl Failure {
    /// The `outcome` label of `omnia_guest_calls_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Trap(_) => "trap",
            Self::Timeout(_) => "timeout",
            Self::OutOfBudget => "out_of_budget",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for Failure {
    /// What happened, to follow "the guest failed: " in a log line or a dead letter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Trap(err) => write!(f, "{err:#}"),
            Self::Timeout(limit) => write!(f, "it ran past OMNIA_REQUEST_TIMEOUT ({limit:?})"),
            Self::OutOfBudget => f.write_str("out of guest memory (OMNIA_MEMORY_BUDGET)"),
            Self::Cancelled => f.write_str("its caller went away"),
        }
    }
}

/// Why a guest call failed: the one place a failure is told apart.
///
/// `error` is what the call ended with (`None` when the host stopped it at the deadline and it
/// left no error); `past_deadline` whether the call ran to (or past) `deadline`, by whatever
/// signal the trigger has (elapsed time, an expired instance); `budget_exhausted` whether the
/// store's memory was refused by the process-wide budget (see
/// [`GuestLimits::budget_exhausted`](crate::limits::GuestLimits::budget_exhausted)), which
/// makes the guest trap for want of memory that was not its fault.
pub fn classify(
    error: Option<wasmtime::Error>,
    past_deadline: bool,
    budget_exhausted: bool,
    deadline: Duration,
) -> Failure {
    if budget_exhausted {
        Failure::OutOfBudget
    } else if past_deadline {
        Failure::Timeout(deadline)
    } else {
        Failure::Trap(Arc::new(error.unwrap_or_else(|| {
            wasmtime::Error::msg("the guest call ended without a result")
        })))
    }
}

/// One guest call: made when the work arrives, [`run`](Self::run) under the deadline, and
/// [`finish`](Self::finish)ed with its outcome, which records it. Dropped unfinished, it is
/// recorded as [`Failure::Cancelled`] (its caller went away).
#[derive(Debug)]
pub struct Call {
    /// The trigger, as the `trigger` label: `http`, `messaging`.
    trigger: &'static str,
    /// The guest's id, as the `component` label (see [`State::id`](crate::State::id)).
    component: String,
    /// What the call serves, for log lines: `GET /path`, a topic.
    what: String,
    /// Said after "guest failed" in the failure log line, when the trigger knows more.
    note: &'static str,
    span: tracing::Span,
    deadline: Duration,
    started: Instant,
    /// The store's "refused by the memory budget" flag, once [`Self::watching`] a store.
    budget_exhausted: Option<Arc<AtomicBool>>,
    finished: bool,
}

impl Call {
    /// A call for `trigger` (the `trigger` label) to the guest `component` (the `component`
    /// label, named in log lines) serving `what` (named in log lines), whose span is `span`,
    /// to end within `deadline`. Its duration counts from now.
    pub fn new(
        trigger: &'static str,
        component: &str,
        what: impl Into<String>,
        span: tracing::Span,
        deadline: Duration,
    ) -> Self {
        Self {
            trigger,
            component: component.to_owned(),
            what: what.into(),
            note: "",
            span,
            deadline,
            started: Instant::now(),
            budget_exhausted: None,
            finished: false,
        }
    }

    /// Watches `store`'s memory: a call that fails after the budget refused the store memory
    /// ends as [`Failure::OutOfBudget`].
    #[must_use]
    pub fn watching<T: StoreView>(mut self, store: &mut Store<T>) -> Self {
        self.budget_exhausted = Some(store.data_mut().core().limits.budget_exhausted_flag());
        self
    }

    /// Says more about a failure in its log line: "guest failed `note`: cause".
    pub fn note(&mut self, note: &'static str) {
        self.note = note;
    }

    /// Runs the guest's `call` under the deadline. Its output is the guest's result (`Err` of
    /// the outer result: a trap; of the inner one: the interface's own error). The outcome is
    /// recorded only by [`Self::finish`].
    pub async fn run<T, E>(
        &self,
        call: impl Future<Output = wasmtime::Result<Result<T, E>>>,
    ) -> Outcome<T, E> {
        let ended = tokio::time::timeout(self.deadline, call).await;
        match ended {
            Ok(Ok(Ok(value))) => Outcome::Ok(value),
            Ok(Ok(Err(error))) => Outcome::GuestError(error),
            Ok(Err(error)) => Outcome::Failed(self.classify(Some(error))),
            Err(_) => Outcome::Failed(self.classify(None)),
        }
    }

    /// Why this call failed with `error` (`None`: stopped at the deadline), see [`classify`].
    pub fn classify(&self, error: Option<wasmtime::Error>) -> Failure {
        let past_deadline = error.is_none() || self.started.elapsed() >= self.deadline;
        let budget_exhausted = self
            .budget_exhausted
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Acquire));
        classify(error, past_deadline, budget_exhausted, self.deadline)
    }

    /// Records the call's `outcome`: its duration and outcome metrics, a failure's log line
    /// (rate-limited) and the span's error status.
    pub fn finish<T, E>(mut self, outcome: &Outcome<T, E>) {
        self.finished = true;
        let failure = match outcome {
            Outcome::Failed(failure) => Some(failure),
            Outcome::Ok(_) | Outcome::GuestError(_) => None,
        };
        self.record(outcome.label(), failure);
    }

    /// Records a call that failed because of its input, not of the guest (a client's body that
    /// was too large, malformed or too slow, which the guest could not read): the trigger
    /// answers the client; nothing is counted against the guest.
    pub fn finish_as_client_error(mut self) {
        self.finished = true;
        self.record("client_error", None);
    }

    fn record(&self, outcome: &'static str, failure: Option<&Failure>) {
        let component = self.component.as_str();
        metrics::WORK_DURATION.record(&[self.trigger, component], self.started.elapsed());
        metrics::GUEST_CALLS.inc(&[self.trigger, component, outcome]);
        // A caller that went away, or a client's bad input, is not the call's error.
        if !matches!(outcome, "ok" | "cancelled" | "client_error") {
            self.span.record("otel.status_code", "ERROR");
        }
        let Some(failure) = failure else {
            return;
        };
        let (trigger, what, note) = (self.trigger, &self.what, self.note);
        match failure {
            Failure::Trap(_) => {
                metrics::GUEST_TRAPS.inc();
                if let Some(suppressed) = FAILURE_LOG.check() {
                    tracing::error!(
                        component,
                        "{trigger}: {what}: guest failed{note}: {failure}{}",
                        suppressed_note(suppressed)
                    );
                }
            }
            Failure::Timeout(limit) => {
                metrics::GUEST_TIMEOUTS.inc();
                if let Some(suppressed) = TIMEOUT_LOG.check() {
                    tracing::warn!(
                        component,
                        "{trigger}: {what}: guest ran past OMNIA_REQUEST_TIMEOUT ({limit:?}){note}{}",
                        suppressed_note(suppressed)
                    );
                }
            }
            Failure::OutOfBudget => {
                if let Some(suppressed) = BUDGET_LOG.check() {
                    tracing::warn!(
                        component,
                        "{trigger}: {what}: guest memory of all instances reached \
                         OMNIA_MEMORY_BUDGET{note}{}",
                        suppressed_note(suppressed)
                    );
                }
            }
            Failure::Cancelled => metrics::GUEST_CANCELLED.inc(),
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            self.record("cancelled", Some(&Failure::Cancelled));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_outranks_the_deadline_which_outranks_a_trap() {
        let limit = Duration::from_secs(1);
        let trap = || Some(wasmtime::Error::msg("unreachable"));
        assert!(matches!(
            classify(trap(), true, true, limit),
            Failure::OutOfBudget
        ));
        assert!(matches!(
            classify(trap(), true, false, limit),
            Failure::Timeout(d) if d == limit
        ));
        assert!(matches!(
            classify(None, true, false, limit),
            Failure::Timeout(_)
        ));
        let Failure::Trap(err) = classify(trap(), false, false, limit) else {
            panic!("a trap before the deadline is a trap");
        };
        assert_eq!(err.to_string(), "unreachable");
    }

    #[tokio::test]
    async fn run_stops_the_call_at_the_deadline() {
        let call = Call::new(
            "test",
            "g",
            "t",
            tracing::Span::none(),
            Duration::from_millis(10),
        );
        let outcome: Outcome<(), ()> = call
            .run(async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(Ok(()))
            })
            .await;
        assert!(matches!(outcome, Outcome::Failed(Failure::Timeout(_))));
        call.finish(&outcome);
    }

    #[test]
    fn finishing_counts_the_outcome_by_trigger_and_dropping_counts_a_cancel() {
        let before = metrics::GUEST_CALLS.get(&["unit", "g", "guest_error"]);
        let call = Call::new(
            "unit",
            "g",
            "t",
            tracing::Span::none(),
            Duration::from_secs(1),
        );
        call.finish(&Outcome::<(), _>::GuestError("no"));
        assert_eq!(
            metrics::GUEST_CALLS.get(&["unit", "g", "guest_error"]),
            before + 1
        );

        let cancelled = metrics::GUEST_CANCELLED.get();
        drop(Call::new(
            "unit",
            "g",
            "t",
            tracing::Span::none(),
            Duration::from_secs(1),
        ));
        assert_eq!(metrics::GUEST_CALLS.get(&["unit", "g", "cancelled"]), 1);
        assert!(metrics::GUEST_CANCELLED.get() > cancelled);
    }
}
