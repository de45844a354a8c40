//! The request body as the guest reads it: limited in size and in pace, and cut first when the
//! server is full.
//!
//! A client can hold a work slot by sending its body slowly, and with enough connections it
//! holds them all (a slow-body attack with 300 connections left nothing for anyone else). Two
//! bounds stop that:
//!
//! * [`BodyPace`]: the guest may wait for body data `OMNIA_HTTP_BODY_TIMEOUT` in all, plus one
//!   second for each `OMNIA_HTTP_BODY_MIN_RATE` bytes received; past that the body fails and
//!   the request gets 408.
//! * [`BodyWaiters`]: when a new request without a body (a `GET`, or an empty body) finds
//!   every slot taken, the request that has waited longest for its body (at least
//!   [`CUT_AFTER`] in all) is cut at once with 408, and the new request takes its slot. A
//!   request that is only waiting for its client goes before one whose guest is working. A new
//!   request with a body to come cuts nobody (it could be the next trickle: an attacker that
//!   reconnects at once would otherwise take back every slot it loses), and gets 503.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use omnia::metrics::Counter;
use wasmtime_wasi_http::Error as HttpError;

/// How long a request must have waited for its body, in all, before a full server may cut it to
/// make room. A client that keeps its body coming never waits this long at a time; one that
/// stalls does.
pub(super) const CUT_AFTER: Duration = Duration::from_secs(1);

/// Requests cut while waiting for their body so that a new request could be served.
pub static BODY_WAITS_CUT: Counter = Counter::new(
    "omnia_http_body_waits_cut_total",
    "Requests cut with 408 while waiting for their body, to free a work slot for a new request.",
);

/// Why reading a request body failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyFault {
    /// It grew past `OMNIA_HTTP_MAX_BODY`.
    TooLarge,
    /// It could not be decoded (e.g. bad chunked encoding).
    Malformed,
    /// The client stopped sending (closed the connection, reset the stream).
    ClientGone,
    /// The client sent it too slowly (see [`BodyPace`]).
    TooSlow,
    /// The server was full and this request was waiting for its body (see [`BodyWaiters`]).
    CutForRoom,
}

impl BodyFault {
    /// Whether the client is to blame for a guest that failed on this fault (every fault but
    /// a client that went away, which is answered to no one).
    pub(super) fn is_clients(self) -> bool {
        !matches!(self, Self::ClientGone)
    }
}

/// How long the guest may wait for a client to send the request body.
///
/// Header reads are cut at `OMNIA_HTTP_HEADER_TIMEOUT`; without a bound on the body, a client
/// sending a byte every few seconds held a work slot until `OMNIA_REQUEST_TIMEOUT` (a slow-body
/// attack with 300 connections kept every slot busy). The time the guest spends waiting for
/// body data, added up over the whole body, may be at most `OMNIA_HTTP_BODY_TIMEOUT` plus one
/// second for each `OMNIA_HTTP_BODY_MIN_RATE` bytes received: a body that arrives at least that
/// fast never runs out, a trickle is cut after about `OMNIA_HTTP_BODY_TIMEOUT` (408). Time the
/// guest spends not reading does not count.
pub(super) struct BodyPace {
    grace: Duration,
    min_rate: u64,
    received: u64,
    waited: Duration,
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl BodyPace {
    pub(super) fn new(grace: Duration, min_rate: usize) -> Self {
        Self {
            grace,
            min_rate: u64::try_from(min_rate).unwrap_or(u64::MAX).max(1),
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: None,
        }
    }

    /// Called when the body has no data ready: `true` once the guest has waited too long.
    fn out_of_time(&mut self, cx: &mut Context<'_>) -> bool {
        let timer = self.timer.get_or_insert_with(|| {
            // A new wait: its deadline is what is left of the allowance.
            let since = *self.waiting_since.insert(Instant::now());
            let earned = Duration::from_millis(self.received.saturating_mul(1000) / self.min_rate);
            let allowed = self.grace.saturating_add(earned);
            Box::pin(tokio::time::sleep_until(
                (since + allowed.saturating_sub(self.waited)).into(),
            ))
        });
        timer.as_mut().poll(cx).is_ready()
    }

    /// Called when the body yielded something: the wait (if any) is over.
    fn arrived(&mut self, bytes: usize) {
        if let Some(since) = self.waiting_since.take() {
            self.waited += since.elapsed();
            self.timer = None;
        }
        self.received = self
            .received
            .saturating_add(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    /// The current wait: when it started and how long the earlier ones took in all.
    fn wait(&self) -> Option<(Instant, Duration)> {
        self.waiting_since.map(|since| (since, self.waited))
    }
}

/// The requests whose guest is waiting for body data right now, so that a full server can cut
/// the one that has waited longest.
#[derive(Default)]
pub(super) struct BodyWaiters {
    waiting: Mutex<HashMap<u64, Waiter>>,
    next: AtomicU64,
}

/// One request waiting for its body.
struct Waiter {
    /// When the current wait started.
    since: Instant,
    /// How long the request waited before the current wait.
    before: Duration,
    /// Wakes the guest's read, which then sees `cut`.
    waker: Waker,
    cut: Arc<AtomicBool>,
}

impl BodyWaiters {
    /// Records that the body with `ticket` is waiting (since `since`, after `before` of earlier
    /// waits), to be woken with `waker` if it is cut.
    fn waiting(
        &self,
        ticket: &mut Option<u64>,
        cut: &Arc<AtomicBool>,
        (since, before): (Instant, Duration),
        waker: &Waker,
    ) {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let id = *ticket.get_or_insert_with(|| self.next.fetch_add(1, Ordering::Relaxed));
        match waiting.get_mut(&id) {
            Some(waiter) if waiter.waker.will_wake(waker) => {}
            Some(waiter) => waiter.waker.clone_from(waker),
            None => {
                waiting.insert(
                    id,
                    Waiter {
                        since,
                        before,
                        waker: waker.clone(),
                        cut: Arc::clone(cut),
                    },
                );
            }
        }
    }

    /// Records that the body with `ticket` is no longer waiting.
    fn done(&self, ticket: &mut Option<u64>) {
        if let Some(id) = ticket.take() {
            self.waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
        }
    }

    /// Cuts the request that has waited longest for its body, if one has waited at least
    /// [`CUT_AFTER`] in all; `true` if one was cut.
    pub(super) fn cut_longest(&self) -> bool {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let longest = waiting
            .iter()
            .map(|(id, w)| (*id, w.before + now.saturating_duration_since(w.since)))
            .filter(|(_, waited)| *waited >= CUT_AFTER)
            .max_by_key(|(_, waited)| *waited);
        let Some(waiter) = longest.and_then(|(id, _)| waiting.remove(&id)) else {
            return false;
        };
        waiter.cut.store(true, Ordering::Relaxed);
        waiter.waker.wake();
        BODY_WAITS_CUT.inc();
        true
    }
}

/// A request body limited to `OMNIA_HTTP_MAX_BODY` bytes, whatever its framing, and in pace,
/// that records why it failed so the runtime can answer 413, 400 or 408 when the guest gives up
/// on it.
pub(super) struct LimitedBody {
    body: Incoming,
    remaining: usize,
    max: usize,
    fault: Arc<OnceLock<BodyFault>>,
    pace: BodyPace,
    waiters: Arc<BodyWaiters>,
    /// This body's entry in `waiters` while it waits.
    ticket: Option<u64>,
    /// Set by [`BodyWaiters::cut_longest`].
    cut: Arc<AtomicBool>,
}

impl LimitedBody {
    /// `body`, failing past `max` bytes or `pace`, registered with `waiters` while it waits.
    pub(super) fn new(
        body: Incoming,
        max: usize,
        pace: BodyPace,
        waiters: Arc<BodyWaiters>,
        fault: Arc<OnceLock<BodyFault>>,
    ) -> Self {
        Self {
            body,
            remaining: max,
            max,
            fault,
            pace,
            waiters,
            ticket: None,
            cut: Arc::new(AtomicBool::new(false)),
        }
    }

    fn fail(&mut self, fault: BodyFault) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        self.waiters.done(&mut self.ticket);
        let _ = self.fault.set(fault);
        Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
    }
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        if this.cut.load(Ordering::Relaxed) {
            return this.fail(BodyFault::CutForRoom);
        }
        let Poll::Ready(polled) = Pin::new(&mut this.body).poll_frame(cx) else {
            if this.pace.out_of_time(cx) {
                return this.fail(BodyFault::TooSlow);
            }
            if let Some(wait) = this.pace.wait() {
                this.waiters
                    .waiting(&mut this.ticket, &this.cut, wait, cx.waker());
            }
            return Poll::Pending;
        };
        this.waiters.done(&mut this.ticket);
        match polled {
            Some(Ok(frame)) => {
                let len = frame.data_ref().map_or(0, Bytes::len);
                this.pace.arrived(len);
                if len > this.remaining {
                    let _ = this.fault.set(BodyFault::TooLarge);
                    return Poll::Ready(Some(Err(HttpError::HttpRequestBodySize(Some(
                        this.max as u64,
                    )))));
                }
                this.remaining -= len;
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(err)) => {
                this.pace.arrived(0);
                let _ = this.fault.set(fault_of(&err));
                Poll::Ready(Some(Err(HttpError::from(err))))
            }
            None => {
                this.pace.arrived(0);
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for LimitedBody {
    fn drop(&mut self) {
        self.waiters.done(&mut self.ticket);
    }
}

/// Tells a malformed body (the decoder refused it) from one the client stopped sending.
fn fault_of(err: &hyper::Error) -> BodyFault {
    if err.is_parse() {
        return BodyFault::Malformed;
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput => {
                    BodyFault::Malformed
                }
                _ => BodyFault::ClientGone,
            };
        }
        source = cause.source();
    }
    BodyFault::ClientGone
}
