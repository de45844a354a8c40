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
//! already streaming is cut short (see [`super`]), and the next request gets a new instance.
//! Requests on other instances are not affected.
//!
//! All requests of an instance share one store: its memory limit, and its trace context, which
//! is the instance's, not any one request's (outgoing requests of a 0.3 guest carry no
//! `traceparent` of their own).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Result;
use omnia::metrics;
use omnia::trace::Work;
use omnia::{HostView, State, StoreView};
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::handler::{
    ExpirationError, HandlerState, Instance, Proxy, ProxyHandler, ShouldAccept, TrapOrPanicError,
    WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;

use super::{Failure, TRAP_LOG};
use crate::{HttpConfig, WasiHttpCtx, http_view};
use omnia::telemetry::suppressed_note;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;

/// The export of a 0.3 HTTP guest (any 0.3.x version).
pub const HANDLER_EXPORT_PREFIX: &str = "wasi:http/handler@0.3";

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

/// What a request leaves with the instance that takes it: flags to raise if the instance fails.
struct Ticket {
    /// Set when the instance serving the request fails, so that a response that is still
    /// streaming ends as an error, not as a short body that looks whole.
    failed: Arc<AtomicBool>,
    /// Set when the instance failed because the process-wide memory budget ran out.
    out_of_budget: Arc<AtomicBool>,
}

impl<S> Pool<S>
where
    S: State,
    S::StoreCtx: HostView<WasiHttpCtx>,
{
    /// A pool serving `pre`'s component, empty until the first request.
    pub(super) fn new(state: S, pre: ServicePre<S::StoreCtx>, config: &HttpConfig) -> Self {
        Self {
            handler: ProxyHandler::new(Instances {
                state,
                pre,
                reuse: config.instance_reuse,
                concurrency: config.instance_concurrency,
                idle: config.instance_idle,
            }),
        }
    }

    /// Serves `request` on an instance with room, or a new one: the response (`Err` when the
    /// guest gave none), and the flag raised if the instance fails while the response streams.
    pub(super) async fn call(
        &self,
        request: Request,
    ) -> (Result<Response, Failure>, Arc<AtomicBool>) {
        let failed = Arc::<AtomicBool>::default();
        let out_of_budget = Arc::<AtomicBool>::default();
        let ticket = || Ticket {
            failed: Arc::clone(&failed),
            out_of_budget: Arc::clone(&out_of_budget),
        };
        let started = Instant::now();
        let timeout = self.handler.state().state.config().request_timeout;
        let result = self.handler.handle(ticket(), request).await;
        let result = result.map_err(|err| {
            if out_of_budget.load(Ordering::Acquire) {
                Failure::OutOfBudget
            } else if err.is::<ExpirationError>()
                || (err.is::<TrapOrPanicError>() && started.elapsed() >= timeout)
            {
                Failure::Timeout
            } else if let Some(code) = err.downcast_ref::<ErrorCode>() {
                Failure::ErrorCode(format!("{code:?}"))
            } else if err.is::<TrapOrPanicError>() {
                Failure::Trap(wasmtime::Error::msg(
                    "its instance failed (the error is logged with the instance)",
                ))
            } else {
                Failure::Trap(err)
            }
        });
        (result, failed)
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
        let service =
            match tokio::time::timeout(timeout, self.pre.instantiate_async(&mut store)).await {
                Ok(service) => service?,
                Err(_) => wasmtime::bail!("instantiation ran past OMNIA_REQUEST_TIMEOUT"),
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
    /// The requests this instance took (their flags, to raise if it fails).
    tickets: Mutex<Vec<Ticket>>,
    /// The store's "refused by the memory budget" flag.
    out_of_budget: Arc<AtomicBool>,
    store: PhantomData<fn() -> T>,
}

impl<T: Send + 'static> WorkerState for Worker<T> {
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
        _store: StoreContextMut<'_, T>,
        ticket: Ticket,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        let mut tickets = self
            .tickets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget requests whose responses are long finished.
        tickets.retain(|t| Arc::strong_count(&t.failed) > 1);
        tickets.push(ticket);
        Box::pin(tokio::time::sleep(self.request_timeout))
    }

    fn drop(&self, store: Store<T>, result: wasmtime::Result<()>) {
        if let Err(err) = result {
            let out_of_budget = self.out_of_budget.load(Ordering::Acquire);
            let tickets = self
                .tickets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut in_flight = 0;
            for ticket in tickets.iter().filter(|t| Arc::strong_count(&t.failed) > 1) {
                ticket.out_of_budget.store(out_of_budget, Ordering::Release);
                ticket.failed.store(true, Ordering::Release);
                in_flight += 1;
            }
            if in_flight == 0 && !out_of_budget {
                // Nothing was lost: an idle instance whose task ended with the runtime (which
                // wasmtime reports as "worker panicked"), or background work of the guest.
                tracing::debug!("http: a WASI 0.3 guest instance ended: {err:#}");
            } else if let Some(suppressed) = TRAP_LOG.check() {
                tracing::error!(
                    "http: a WASI 0.3 guest instance failed and was dropped, with {in_flight} \
                     request(s) in flight on it: {err:#}{}",
                    suppressed_note(suppressed)
                );
            }
        }
        // The store (and with it every body still streaming from it) ends only now, after the
        // flags are set.
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
