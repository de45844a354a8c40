//! WASI 0.3 HTTP guests: many requests per instance, concurrently.
//!
//! A 0.3 `wasi:http/handler.handle` is an async export: the component model lets the host call
//! it again while earlier calls are still running, so one instance can serve many requests and
//! the per-request instantiation that dominates the 0.2 path disappears. The dispatch itself is
//! `wasmtime-wasi-http`'s [`ProxyHandler`] (the one `wasmtime serve` uses): requests queue, and
//! each instance (a *worker*, one store) takes them while it has room. Each serving thread
//! (`OMNIA_HTTP_THREADS`, see [`omnia::listener`]) has a pool of its own, so a request and the
//! instance serving it run on the same thread. This module decides an instance's room and when
//! it ends:
//!
//! * an instance takes at most `OMNIA_HTTP_INSTANCE_CONCURRENCY` requests at once and
//!   `OMNIA_HTTP_INSTANCE_REUSE` in its life, then finishes what it has and is dropped;
//! * an idle instance is kept `OMNIA_HTTP_INSTANCE_IDLE` for the next request;
//! * a request that runs past `OMNIA_REQUEST_TIMEOUT` answers 504 and the instance takes no more
//!   requests; an instance that is still busy (a guest in a loop blocks the instance's event loop)
//!   `OMNIA_REQUEST_TIMEOUT` after its newest request started is killed;
//! * a trap kills the instance.
//!
//! **Isolation.** Instances share nothing but the engine, as on the 0.2 path. A request that
//! traps, loops or exhausts memory fails itself and at most the other requests in flight on the
//! same instance (fewer than `OMNIA_HTTP_INSTANCE_CONCURRENCY`); their responses are 500 (504
//! for those past their deadline, 503 when the process-wide memory budget ran out), a response
//! already streaming is cut short (see `response_body`), and the next request gets a new
//! instance. Requests on other instances are not affected.
//!
//! All requests of an instance share one store: its memory limit, and its trace context, which
//! is the instance's, not any one request's (outgoing requests of a 0.3 guest carry no
//! `traceparent` of their own). What a host function needs of its own request's trace it finds
//! by the guest task it is called from: each request's trace context is recorded in the store
//! under the task serving it ([`omnia::trace::Requests`]), and the request the guest gets names
//! the runtime's span as its `traceparent` (see `request::span`).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use omnia::invoke::{self, Call, Failure};
use omnia::metrics;
use omnia::telemetry::{LogLimit, suppressed_note};
use omnia::trace::{TraceContext, Work};
use omnia::{HostView, State, StoreView};
use tokio::sync::oneshot;
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, InstantiationError, Proxy, ProxyHandler, ShouldAccept,
    WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;

use super::answers::NoAnswer;
use crate::{HttpConfig, WasiHttpCtx, http_view};

/// The export of a 0.3 HTTP guest (any 0.3.x version).
pub const HANDLER_EXPORT_PREFIX: &str = "wasi:http/handler@0.3";

/// Rate limit of the line logged when an instance fails.
static INSTANCE_LOG: LogLimit = LogLimit::new(10, Duration::from_secs(10));

/// How long a request whose instance failed waits for the instance to say why (it does so as
/// soon as its event loop has stopped; the bound is for an error that did not stop it).
const INSTANCE_REPORT_WAIT: Duration = Duration::from_secs(1);

/// Request and response of the dispatcher.
pub(super) type Request = wasmtime_wasi_http::handler::Request;
type Response = wasmtime_wasi_http::handler::Response;

/// The instances of a 0.3 guest and the requests queued for them.
pub(super) struct Pool<S: State>
where
    S::StoreCtx: HostView<WasiHttpCtx>,
{
    handler: ProxyHandler<Instances<S>>,
}

/// What a request leaves with the instance that takes it: where to report the instance's
/// failure, and a flag raised when the request's own deadline passes.
struct Ticket {
    failure: oneshot::Sender<Failure>,
    expired: Arc<AtomicBool>,
    /// When the request arrived at the pool.
    issued: Instant,
    /// The request's trace context (its span's), for the host functions its task calls.
    trace: Option<TraceContext>,
    /// The guest task serving the request, once an instance took it.
    task: Option<GuestTaskId>,
}

/// The request's half of its [`Ticket`]: the failure of the instance that served it, if that
/// instance failed (before the response, or while the response streams).
pub(super) struct Stub {
    failure: oneshot::Receiver<Failure>,
    expired: Arc<AtomicBool>,
}

impl Stub {
    /// The failure of the instance that served the request, if it failed by now. An instance
    /// reports its failure before its store (and every body streaming from it) is dropped, so
    /// a body that ended because its instance failed knows it here.
    pub(super) fn failure(mut self) -> Option<Failure> {
        self.failure.try_recv().ok()
    }
}

/// An instance that could not be made, and why (classified where its store was known).
#[derive(Debug)]
struct NotMade(Failure);

impl std::fmt::Display for NotMade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the guest could not be instantiated: {}", self.0)
    }
}

impl std::error::Error for NotMade {}

/// A ticket for a request traced as `trace`, and its stub.
fn ticket(trace: Option<TraceContext>) -> (Ticket, Stub) {
    let (tx, rx) = oneshot::channel();
    let expired = Arc::<AtomicBool>::default();
    let ticket = Ticket {
        failure: tx,
        expired: Arc::clone(&expired),
        issued: Instant::now(),
        trace,
        task: None,
    };
    (
        ticket,
        Stub {
            failure: rx,
            expired,
        },
    )
}

impl<S> Pool<S>
where
    S: State,
    S::StoreCtx: HostView<WasiHttpCtx>,
{
    /// A pool serving `pre`'s component, empty until the first request, its instances'
    /// concurrency and reuse the guest's own limits, or the trigger's settings.
    pub(super) fn new(state: S, pre: ServicePre<S::StoreCtx>, config: &HttpConfig) -> Self {
        Self {
            handler: ProxyHandler::new(Instances {
                reuse: state
                    .limits()
                    .instance_reuse
                    .unwrap_or(config.instance_reuse),
                concurrency: state
                    .limits()
                    .instance_concurrency
                    .unwrap_or(config.instance_concurrency),
                state,
                pre,
                idle: config.instance_idle,
            }),
        }
    }

    /// Serves `request` (for `call`, traced as `trace`) on an instance with room, or a new
    /// one: the response and the stub that tells, when the response has streamed, whether its
    /// instance failed.
    pub(super) async fn call(
        &self,
        request: Request,
        call: &Call,
        trace: Option<TraceContext>,
    ) -> Result<(Response, Stub), NoAnswer> {
        let (ticket, mut stub) = ticket(trace);
        let error = match self.handler.handle(ticket, request).await {
            Ok(response) => return Ok((response, stub)),
            Err(error) => error,
        };
        // The instance's own report first: an instance that failed (out of memory budget, say)
        // may have ended its requests with an error code too.
        if let Ok(failure) = stub.failure.try_recv() {
            return Err(NoAnswer::Failed(failure));
        }
        if let Some(not_made) = error.downcast_ref::<InstantiationError<Ticket>>()
            && let Some(NotMade(failure)) = not_made.error.downcast_ref::<NotMade>()
        {
            return Err(NoAnswer::Failed(failure.clone()));
        }
        if let Some(code) = error.downcast_ref::<ErrorCode>() {
            return Err(NoAnswer::ErrorCode(format!("{code:?}")));
        }
        if stub.expired.load(Ordering::Acquire) {
            // The request's own deadline passed; its instance goes on with the others.
            return Err(NoAnswer::Failed(call.classify(None)));
        }
        // Its instance failed: the instance reports why, classified with what only its store
        // knows, before it is dropped. wasmtime may hand a request's ticket back inside the
        // error, so the error is classified, and dropped, before waiting: a ticket dropped
        // with it ends the wait at once.
        let unreported = call.classify(Some(error));
        let Stub { failure, .. } = stub;
        Err(NoAnswer::Failed(
            match tokio::time::timeout(INSTANCE_REPORT_WAIT, failure).await {
                Ok(Ok(failure)) => failure,
                Ok(Err(_)) | Err(_) => unreported,
            },
        ))
    }
}

/// How the pool makes instances ([`HandlerState`] of the dispatcher).
struct Instances<S: State> {
    state: S,
    pre: ServicePre<S::StoreCtx>,
    reuse: usize,
    concurrency: usize,
    idle: Duration,
}

impl<S> HandlerState for Instances<S>
where
    S: State,
    S::StoreCtx: HostView<WasiHttpCtx>,
{
    type StoreData = S::StoreCtx;
    type WorkerExpiration = Expiry;
    type WorkerState = Worker<S::StoreCtx>;

    async fn instantiate(
        &self,
    ) -> wasmtime::Result<Instance<S::StoreCtx, Expiry, Worker<S::StoreCtx>>> {
        let mut store = self.state.new_store(Work::default());
        let out_of_budget = store.data_mut().core().limits.budget_exhausted_flag();
        let timeout = self.state.config().request_timeout;
        let instantiating = Instant::now();
        let made = tokio::time::timeout(timeout, self.pre.instantiate_async(&mut store)).await;
        let service = match made {
            Ok(Ok(service)) => service,
            // Classified here, where the store's budget flag is known, for the requests that
            // were waiting for this instance (see `Pool::call`).
            Ok(Err(err)) => {
                let failed = out_of_budget.load(Ordering::Acquire);
                let failure = invoke::classify(Some(err), false, failed, timeout);
                return Err(wasmtime::Error::new(NotMade(failure)));
            }
            Err(_) => {
                let failure = invoke::classify(None, true, false, timeout);
                return Err(wasmtime::Error::new(NotMade(failure)));
            }
        };
        metrics::INSTANTIATION_DURATION.record(instantiating.elapsed());
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            view: http_view::<S::StoreCtx>,
            expiration: Expiry {
                request_timeout: timeout,
                idle: self.idle,
                timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
                armed: None,
            },
            state: Worker {
                reuse: self.reuse,
                concurrency: self.concurrency,
                request_timeout: timeout,
                tickets: Mutex::default(),
                out_of_budget,
                store: PhantomData,
            },
        })
    }
}

/// One instance's acceptance rules and the tickets of the requests it took.
struct Worker<T> {
    reuse: usize,
    concurrency: usize,
    request_timeout: Duration,
    /// The requests this instance took, to tell if it fails.
    tickets: Mutex<Vec<Ticket>>,
    /// The store's "refused by the memory budget" flag.
    out_of_budget: Arc<AtomicBool>,
    store: PhantomData<fn() -> T>,
}

impl<T: StoreView> WorkerState for Worker<T> {
    type StoreData = T;
    type RequestData = Ticket;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.reuse {
            ShouldAccept::Never
        } else if concurrent >= self.concurrency {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, T>,
        mut ticket: Ticket,
        task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        let expired = Arc::clone(&ticket.expired);
        let mut tickets = self
            .tickets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget requests whose responses are long finished.
        tickets.retain(|t| !t.failure.is_closed());
        // The host functions a request's task calls find its trace context by the task.
        let requests = &mut store.data_mut().core().work.requests;
        requests.retain(|t| tickets.iter().any(|ticket| ticket.task == Some(t)));
        ticket.task = Some(task);
        if let Some(trace) = ticket.trace {
            requests.insert(task, trace);
        }
        tickets.push(ticket);
        let timeout = self.request_timeout;
        Box::pin(async move {
            tokio::time::sleep(timeout).await;
            expired.store(true, Ordering::Release);
        })
    }

    fn drop(&self, store: Store<T>, result: wasmtime::Result<()>) {
        if let Err(err) = result {
            let out_of_budget = self.out_of_budget.load(Ordering::Acquire);
            let tickets = std::mem::take(
                &mut *self
                    .tickets
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            let in_flight = tickets.iter().filter(|t| !t.failure.is_closed()).count();
            if in_flight == 0 && !out_of_budget {
                // Nothing was lost: an idle instance whose task ended with the runtime (which
                // wasmtime reports as "worker panicked"), or background work of the guest.
                tracing::debug!("http: a WASI 0.3 guest instance ended: {err:#}");
            } else if let Some(suppressed) = INSTANCE_LOG.check() {
                tracing::error!(
                    "http: a WASI 0.3 guest instance failed and was dropped, with {in_flight} \
                     request(s) in flight on it: {err:#}{}",
                    suppressed_note(suppressed)
                );
            }
            // Each request in flight failed with its instance; one past its own deadline (a
            // guest in a loop stops the instance's event loop, and with it the request timers)
            // timed out.
            let limit = self.request_timeout;
            let failed = invoke::classify(
                Some(err.context("its instance failed")),
                false,
                out_of_budget,
                limit,
            );
            let timed_out = invoke::classify(None, true, out_of_budget, limit);
            for ticket in tickets {
                let past_deadline = ticket.issued.elapsed() >= limit;
                let failure = if past_deadline { &timed_out } else { &failed };
                let _ = ticket.failure.send(failure.clone());
            }
        }
        // The store (and with it every body still streaming from it) ends only now, after the
        // requests are told.
        drop(store);
    }
}

/// When an instance ends ([`WorkerExpiration`]): idle past `OMNIA_HTTP_INSTANCE_IDLE`, or busy
/// past `OMNIA_REQUEST_TIMEOUT` since its newest request started (or since its last response,
/// for work the guest does after responding). Polled outside the instance's event loop, so it
/// fires even while a guest spins.
struct Expiry {
    request_timeout: Duration,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    armed: Option<Instant>,
}

impl WorkerExpiration for Expiry {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let this = self.get_mut();
        let limit = match status {
            WorkerStatus::Idle => this.idle,
            WorkerStatus::Requests | WorkerStatus::PostReturn => this.request_timeout,
        };
        let deadline = start + limit;
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        // The deadline moves with every request; re-arming the timer each time would cost every
        // request a timer update. It is moved only to an earlier deadline: firing early just
        // brings the next poll, which arms it anew.
        if this.armed.is_none_or(|armed| deadline < armed) {
            this.timer.as_mut().reset(deadline.into());
            this.armed = Some(deadline);
        }
        if this.timer.as_mut().poll(cx).is_ready() {
            // Early: the deadline moved on since. Wait for the one that holds now.
            this.timer.as_mut().reset(deadline.into());
            this.armed = Some(deadline);
            return this.timer.as_mut().poll(cx);
        }
        Poll::Pending
    }
}
