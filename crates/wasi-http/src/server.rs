//! The HTTP trigger: hyper in front, guest instances behind.
//!
//! Connections are accepted and policed by [`omnia::listener`] (header-read and idle timeouts, a
//! cap on open connections, drain on shutdown) and served with HTTP/1.1 or HTTP/2 (detected from
//! the first bytes, so `h2c` prior knowledge works). For a WASI 0.2 guest, each request gets a
//! new store and instance made from the one `ProxyPre` built at start-up, and the guest's
//! `wasi:http/incoming-handler.handle` runs in its own task. A WASI 0.3 guest's
//! `wasi:http/handler.handle` is called many times per instance, concurrently (see [`reuse`]).
//! Either way, when the guest does not answer itself, the outcome maps to a status code:
//!
//! | what happened | status |
//! |---|---|
//! | `OMNIA_MAX_CONCURRENCY` requests and messages already in flight, none of them waiting for its body | 503, at once |
//! | (the other side of that) a request that waited for its body for a second or more, when a new request without a body finds every slot taken (see [`request_body`]) | 408 |
//! | the client already has `OMNIA_HTTP_CLIENT_SHARE` requests in flight (see [`clients`]) | 503, at once |
//! | the guest needed memory past `OMNIA_MEMORY_BUDGET` (all instances together) | 503 |
//! | `Content-Length` above `OMNIA_HTTP_MAX_BODY` | 413, before the guest runs |
//! | the body arrived too slowly (see [`request_body`]) | 408 |
//! | a body without `Content-Length` (chunked, HTTP/2) grew past the limit as the guest read it | 413 |
//! | a malformed body (bad chunked encoding) | 400 |
//! | an HTTP/1.1 request without `Host`, two `Host` headers, or an authority (`Host`, or an absolute-form target's) that is not `host[:port]` (RFC 9112 §3.2, RFC 3986) | 400 |
//! | the guest trapped (panic, `unreachable`, out of its own memory limit) | 500 |
//! | the guest ran past `OMNIA_REQUEST_TIMEOUT` | 504 |
//!
//! An HTTP/1.0 request without `Host` is served with the listener's address as its authority.
//!
//! When the client goes away (the connection closes, or an HTTP/2 stream is reset) before the
//! response is complete, the guest call is cancelled at once and its slot freed. A guest that
//! fails after sending its response head cannot change the status any more: the body is cut off
//! so that the client sees an incomplete response (HTTP/1.1 without the final chunk, HTTP/2 with
//! a stream reset) rather than a short one that looks whole, and the failure is logged and
//! counted (`omnia_http_responses_truncated_total`).
//!
//! A failing request never affects another on the 0.2 path: stores share nothing but the
//! engine (for 0.3 guests, see [`reuse`] for what a failing request may take with it). Failure
//! log lines are rate-limited (see [`omnia::telemetry::LogLimit`]); the metrics count every one.

mod authority;
pub mod clients;
mod request_body;
pub mod reuse;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response, StatusCode};
use omnia::listener::{ConnInfo, ConnectionPolicy, Listener};
use omnia::metrics::{self, Counter, Metric};
use omnia::telemetry::{LogLimit, suppressed_note};
use omnia::trace::{SPAN_TARGET, TRACEPARENT, TraceContext, Work};
use omnia::{Admission, HostView, Serving, Shutdown, State, StoreView};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument as _;
use wasmtime::Engine;
use wasmtime::component::{Component, Resource};
use wasmtime_wasi_http::Error as HttpError;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode as P3ErrorCode;

use crate::{HttpConfig, WasiHttpCtx, http_view};
use clients::ClientShares;
use request_body::{BodyFault, BodyPace, BodyWaiters, LimitedBody};

pub use request_body::BODY_WAITS_CUT;

/// The export this trigger calls on a WASI 0.2 guest (any 0.2.x version).
pub const HANDLER_EXPORT_PREFIX: &str = "wasi:http/incoming-handler@0.2";

/// Responses cut short because the guest failed after sending the head.
pub static RESPONSES_TRUNCATED: Counter = Counter::new(
    "omnia_http_responses_truncated_total",
    "Responses cut short because the guest failed after sending the response head.",
);
/// Requests refused as malformed or too large (400, 413).
pub static BAD_REQUESTS: Counter = Counter::new(
    "omnia_http_bad_requests_total",
    "Requests refused as malformed (400) or too large (413).",
);
/// HTTP requests received.
pub static REQUESTS: Counter = Counter::new(
    "omnia_http_requests_total",
    "HTTP requests received by the trigger.",
);
/// Requests refused because their client held its share of the work slots.
pub static CLIENT_SHARE_REFUSALS: Counter = Counter::new(
    "omnia_http_client_share_refusals_total",
    "Requests refused with 503 because their client held OMNIA_HTTP_CLIENT_SHARE slots.",
);

/// Whether `component` exports `wasi:http/incoming-handler` (0.2) or `wasi:http/handler` (0.3).
pub fn exports_handler(engine: &Engine, component: &Component) -> bool {
    omnia::component::exports_interface(engine, component, HANDLER_EXPORT_PREFIX)
        || omnia::component::exports_interface(engine, component, reuse::HANDLER_EXPORT_PREFIX)
}

/// Listens on `config.addr`; the returned future serves until `shutdown`, then stops
/// accepting and waits up to the grace period for in-flight requests.
pub async fn bind<S>(state: S, config: Arc<HttpConfig>, shutdown: Shutdown) -> Result<Serving>
where
    S: State,
    S::StoreCtx: HostView<WasiHttpCtx>,
{
    let instance_pre = state.instance_pre().clone();
    let p3 = omnia::component::exports_interface(
        state.engine(),
        instance_pre.component(),
        reuse::HANDLER_EXPORT_PREFIX,
    );
    let dispatch = if p3 {
        // `handle: async func(request: request) -> result<response, error-code>`.
        omnia::component::check_export_func::<
            _,
            (Resource<wasmtime_wasi_http::p3::Request>,),
            (Result<Resource<wasmtime_wasi_http::p3::Response>, P3ErrorCode>,),
        >(&instance_pre, reuse::HANDLER_EXPORT_PREFIX, "handle")?;
        let pre = ServicePre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .context("the component's wasi:http/handler@0.3 export has an unexpected type")?;
        // A pool per serving thread: a request is served by instances on its own thread.
        let pools = (0..config.threads.max(1))
            .map(|_| reuse::Pool::new(state.clone(), pre.clone(), &config))
            .collect();
        Dispatch::Reuse(pools)
    } else {
        // `handle: func(request: incoming-request, response-out: response-outparam)`.
        omnia::component::check_export_func::<
            _,
            (
                Resource<HostIncomingRequest>,
                Resource<HostResponseOutparam>,
            ),
            (),
        >(&instance_pre, HANDLER_EXPORT_PREFIX, "handle")?;
        let pre = ProxyPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .context(
                "the component's wasi:http/incoming-handler@0.2 export has an unexpected type",
            )?;
        Dispatch::PerRequest(pre)
    };
    let policy = ConnectionPolicy {
        header_timeout: state.config().header_timeout,
        idle_timeout: state.config().idle_timeout,
        max_connections: config.max_connections,
    };
    let listener = Listener::bind(config.addr, "OMNIA_HTTP_ADDR", "http", policy)
        .await?
        .threads(config.threads)?;
    tracing::info!(
        "http: listening on http://{} (try: curl http://{}/)",
        listener.local_addr(),
        listener.reachable_addr()
    );
    for metric in [
        &REQUESTS,
        &BAD_REQUESTS,
        &RESPONSES_TRUNCATED,
        &CLIENT_SHARE_REFUSALS,
        &BODY_WAITS_CUT,
    ] {
        metrics::register(Metric::Counter(metric));
    }
    let share = config
        .client_share
        .unwrap_or(state.config().max_concurrency / 2)
        .max(1);
    let handler = Arc::new(Handler {
        dispatch,
        shares: ClientShares::new(share),
        waiters: Arc::default(),
        state,
        config,
    });
    Ok(Box::pin(listener.serve(
        move |conn| {
            let handler = Arc::clone(&handler);
            hyper::service::service_fn(move |req| {
                let handler = Arc::clone(&handler);
                async move { Ok::<_, Infallible>(handler.handle(req, conn).await) }
            })
        },
        shutdown,
    )))
}

struct Handler<S: State>
where
    S::StoreCtx: HostView<WasiHttpCtx>,
{
    dispatch: Dispatch<S>,
    /// The work slots each client holds (`OMNIA_HTTP_CLIENT_SHARE`).
    shares: Arc<ClientShares>,
    /// The requests waiting for their body, to be cut first when every slot is taken.
    waiters: Arc<BodyWaiters>,
    state: S,
    config: Arc<HttpConfig>,
}

/// How requests reach the guest.
enum Dispatch<S: State>
where
    S::StoreCtx: HostView<WasiHttpCtx>,
{
    /// WASI 0.2: a fresh instance per request.
    PerRequest(ProxyPre<S::StoreCtx>),
    /// WASI 0.3: instances serve many requests, concurrently; one pool per serving thread.
    Reuse(Vec<reuse::Pool<S>>),
}

/// Why a guest call ended without a (complete) response.
#[derive(Debug)]
enum Failure {
    /// It ran past the deadline.
    Timeout,
    /// It trapped.
    Trap(wasmtime::Error),
    /// It could not get the memory it needed from the process-wide budget.
    OutOfBudget,
    /// It returned without setting a response.
    NoResponse,
    /// It set (0.2) or returned (0.3) an error code instead of a response.
    ErrorCode(String),
}

/// What the guest task tells the request handler once the response head is known.
type Head = Result<Response<HyperOutgoingBody>, Failure>;

/// Rate limits of the failure log lines.
static TRAP_LOG: LogLimit = LogLimit::new(10, Duration::from_secs(10));
static TIMEOUT_LOG: LogLimit = LogLimit::new(10, Duration::from_secs(10));
static CLIENT_ERROR_LOG: LogLimit = LogLimit::new(10, Duration::from_secs(10));
static OVERLOAD_LOG: LogLimit = LogLimit::new(1, Duration::from_secs(10));

/// How long a request that found every slot taken waits for the slot of a request it had cut
/// (see [`request_body::BodyWaiters`]); its guest only has to see the failed read and return.
const CUT_GRACE: Duration = Duration::from_secs(1);

impl<S> Handler<S>
where
    S: State,
    S::StoreCtx: HostView<WasiHttpCtx>,
{
    async fn handle(&self, req: Request<Incoming>, conn: ConnInfo) -> Response<GuestBody> {
        REQUESTS.inc();
        let admission = match self.admit(&req, conn).await {
            Ok(admission) => admission,
            Err(busy) => return unavailable(busy),
        };
        let req = match with_authority(req, conn) {
            Ok(req) => req,
            Err(reason) => return client_error(StatusCode::BAD_REQUEST, reason),
        };
        let max_body = self.config.max_body;
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max_body as u64) {
            return client_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body larger than {max_body} bytes (OMNIA_HTTP_MAX_BODY)\n"),
            );
        }
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let started = Instant::now();
        let work = request_span(&req, conn);
        let span = work.span.clone();
        let fault = Arc::new(OnceLock::new());
        let req = req.map(|body| {
            LimitedBody::new(
                body,
                max_body,
                BodyPace::new(self.config.body_timeout, self.config.body_min_rate),
                Arc::clone(&self.waiters),
                Arc::clone(&fault),
            )
        });

        let (head, guest) = match &self.dispatch {
            Dispatch::PerRequest(pre) => {
                let (head, mut guest) =
                    match self.spawn_guest(pre, req, admission, work, &method, &path) {
                        Ok(started) => started,
                        Err(err) => {
                            return client_error(StatusCode::BAD_REQUEST, &format!("{err}\n"));
                        }
                    };
                // Dropped with this future if the client goes away before the head is ready:
                // the guest call is cancelled and its slot freed.
                let cancel = CancelOnDrop(guest.task.take());
                let head = head.await.unwrap_or_else(|_| {
                    Err(Failure::Trap(wasmtime::Error::msg("guest task ended")))
                });
                guest.task = cancel.into_inner();
                (head, guest)
            }
            Dispatch::Reuse(pools) => {
                let pool = &pools[conn.thread % pools.len()];
                let req = match absolute_uri(req) {
                    Ok(req) => req.map(BodyExt::boxed_unsync),
                    Err(reason) => return client_error(StatusCode::BAD_REQUEST, reason),
                };
                let (head, failed_after_head) = pool.call(req).instrument(span.clone()).await;
                let guest = Guest {
                    task: None,
                    failed_after_head,
                    admission: Some(admission),
                };
                (head, guest)
            }
        };
        let response = match head {
            Ok(response) => response.map(|body| GuestBody::guest(body, guest)),
            Err(failure) => self.failure_response(failure, fault.get(), &method, &path),
        };
        metrics::WORK_DURATION.record(started.elapsed());
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
        response
    }

    /// A work slot for `req`, within its client's share (see [`clients`]); or the body of the
    /// 503 to answer when the client has its share or the runtime is full.
    async fn admit(
        &self,
        req: &Request<Incoming>,
        conn: ConnInfo,
    ) -> Result<Admission, &'static str> {
        let client = self
            .config
            .trusted_proxies
            .client(conn.peer.ip(), req.headers());
        let Some(share) = self.shares.take(client) else {
            CLIENT_SHARE_REFUSALS.inc();
            if let Some(suppressed) = OVERLOAD_LOG.check() {
                tracing::warn!(
                    "http: client {client} has {} requests in flight, refusing with 503{}",
                    self.shares.limit(),
                    suppressed_note(suppressed)
                );
            }
            return Err("server busy: too many requests in flight from this client \
                        (OMNIA_HTTP_CLIENT_SHARE)\n");
        };
        // A request that has a body to come could itself trickle: it may not cut another.
        let may_cut = req.body().is_end_stream();
        let Some(admission) = self.admit_cutting_a_waiter(may_cut).await else {
            if let Some(suppressed) = OVERLOAD_LOG.check() {
                tracing::warn!(
                    "http: {} requests and messages in flight, refusing with 503{}",
                    self.state.config().max_concurrency,
                    suppressed_note(suppressed)
                );
            }
            return Err("server busy: too many requests in flight (OMNIA_MAX_CONCURRENCY)\n");
        };
        Ok(admission.holding(share))
    }

    /// A free slot, or else (if `may_cut`) the slot of the request that has waited longest for
    /// its body (see [`request_body`]): that one is cut, and this waits up to [`CUT_GRACE`] for
    /// its guest to give the slot back. `None` if no slot is free and no request can be cut.
    async fn admit_cutting_a_waiter(&self, may_cut: bool) -> Option<Admission> {
        let slots = self.state.slots();
        if let Some(admission) = slots.try_admit() {
            return Some(admission);
        }
        if !may_cut || !self.waiters.cut_longest() {
            return None;
        }
        tokio::time::timeout(CUT_GRACE, slots.admit()).await.ok()
    }

    /// Starts the guest for one request in its own task. The returned channel gives the
    /// response head as soon as the guest sets it (the body keeps streaming from the task).
    fn spawn_guest<B>(
        &self,
        pre: &ProxyPre<S::StoreCtx>,
        req: Request<B>,
        admission: Admission,
        work: Work,
        method: &http::Method,
        path: &str,
    ) -> Result<(oneshot::Receiver<Head>, Guest)>
    where
        B: hyper::body::Body<Data = Bytes, Error = HttpError> + Send + 'static,
    {
        let span = work.span.clone();
        let mut store = self.state.new_store(work);
        let (out_tx, mut out_rx) = oneshot::channel();
        let (req, out) = {
            let mut view = http_view(store.data_mut());
            let req = view.new_incoming_request(Scheme::Http, req)?;
            let out = view.new_response_outparam(out_tx)?;
            (req, out)
        };
        let pre = pre.clone();
        let timeout = self.state.config().request_timeout;
        let (head_tx, head_rx) = oneshot::channel::<Head>();
        let label = format!("{method} {path}");
        let failed_after_head = Arc::new(AtomicBool::new(false));
        let failed = Arc::clone(&failed_after_head);
        let task = tokio::spawn(
            async move {
                let _admission = admission; // the slot is held until the store is gone
                // Forward the head as soon as the guest sets it, while the call goes on writing the
                // body. Both happen in this task, so a guest that sets a head and then fails before
                // yielding still gets an error status instead of a broken response.
                let mut head_tx = Some(head_tx);
                let ended = {
                    let call = async {
                        let instantiating = Instant::now();
                        let proxy = pre.instantiate_async(&mut store).await?;
                        metrics::INSTANTIATION_DURATION.record(instantiating.elapsed());
                        proxy
                            .wasi_http_incoming_handler()
                            .call_handle(&mut store, req, out)
                            .await
                    };
                    let call = tokio::time::timeout(timeout, call);
                    tokio::pin!(call);
                    loop {
                        tokio::select! {
                            biased;
                            ended = &mut call => break ended,
                            set = &mut out_rx, if head_tx.is_some() => {
                                let head = match set {
                                    Ok(Ok(response)) => Ok(response),
                                    Ok(Err(code)) => Err(Failure::ErrorCode(format!("{code:?}"))),
                                    Err(_) => Err(Failure::NoResponse),
                                };
                                if let Some(tx) = head_tx.take() {
                                    let _ = tx.send(head);
                                }
                            }
                        }
                    }
                };
                let failure = match ended {
                    Ok(Ok(())) => None,
                    Ok(Err(_)) if store.data_mut().core().limits.budget_exhausted() => {
                        Some(Failure::OutOfBudget)
                    }
                    Ok(Err(err)) => Some(Failure::Trap(err)),
                    Err(_) => Some(Failure::Timeout),
                };
                match (head_tx, failure) {
                    // The head was sent: only the body can still tell the client (see GuestBody).
                    (None, Some(failure)) => {
                        failed.store(true, Ordering::Release);
                        RESPONSES_TRUNCATED.inc();
                        count(&failure);
                        if let Some(suppressed) = TRAP_LOG.check() {
                            tracing::error!(
                                "http: {label}: guest failed after sending the response head, the \
                             response was cut short: {}{}",
                                describe(&failure),
                                suppressed_note(suppressed)
                            );
                        }
                    }
                    (None, None) => {}
                    (Some(tx), failure) => {
                        let head = match (out_rx.try_recv(), failure) {
                            (_, Some(failure)) => Err(failure),
                            (Ok(Ok(response)), None) => Ok(response),
                            (Ok(Err(code)), None) => Err(Failure::ErrorCode(format!("{code:?}"))),
                            (Err(_), None) => Err(Failure::NoResponse),
                        };
                        let _ = tx.send(head);
                    }
                }
                // The store (and with it the body's sender) is dropped only now, after the outcome
                // is known, so a body cut short is reported as such.
                drop(store);
            }
            .instrument(span),
        );
        let guest = Guest {
            task: Some(task),
            failed_after_head,
            admission: None,
        };
        Ok((head_rx, guest))
    }

    /// The runtime's own answer when the guest gave none.
    fn failure_response(
        &self,
        failure: Failure,
        fault: Option<&BodyFault>,
        method: &http::Method,
        path: &str,
    ) -> Response<GuestBody> {
        // A guest that failed while reading a bad body failed because of the client.
        match fault {
            Some(BodyFault::TooLarge) => {
                let max = self.config.max_body;
                return client_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("request body larger than {max} bytes (OMNIA_HTTP_MAX_BODY)\n"),
                );
            }
            Some(BodyFault::Malformed) => {
                return client_error(StatusCode::BAD_REQUEST, "malformed request body\n");
            }
            Some(BodyFault::TooSlow) => {
                return client_error(
                    StatusCode::REQUEST_TIMEOUT,
                    "request body sent too slowly (OMNIA_HTTP_BODY_TIMEOUT, \
                     OMNIA_HTTP_BODY_MIN_RATE)\n",
                );
            }
            Some(BodyFault::CutForRoom) => {
                return client_error(
                    StatusCode::REQUEST_TIMEOUT,
                    "request body not arriving while the server is full: cut to serve \
                     another request\n",
                );
            }
            Some(BodyFault::ClientGone) | None => {}
        }
        count(&failure);
        match failure {
            Failure::Timeout => {
                if let Some(suppressed) = TIMEOUT_LOG.check() {
                    tracing::warn!(
                        "http: {method} {path}: guest ran past OMNIA_REQUEST_TIMEOUT ({:?}){}",
                        self.state.config().request_timeout,
                        suppressed_note(suppressed)
                    );
                }
                plain(StatusCode::GATEWAY_TIMEOUT, "guest timed out\n")
            }
            Failure::OutOfBudget => {
                if let Some(suppressed) = OVERLOAD_LOG.check() {
                    tracing::warn!(
                        "http: {method} {path}: guest memory of all instances reached \
                         OMNIA_MEMORY_BUDGET, refusing with 503{}",
                        suppressed_note(suppressed)
                    );
                }
                unavailable("server busy: out of guest memory (OMNIA_MEMORY_BUDGET)\n")
            }
            failure => {
                if let Some(suppressed) = TRAP_LOG.check() {
                    tracing::error!(
                        "http: {method} {path}: guest failed: {}{}",
                        describe(&failure),
                        suppressed_note(suppressed)
                    );
                }
                let body = match failure {
                    Failure::NoResponse => "guest sent no response\n".to_owned(),
                    Failure::ErrorCode(code) => format!("guest answered with an error: {code}\n"),
                    _ => "guest failed\n".to_owned(),
                };
                plain(StatusCode::INTERNAL_SERVER_ERROR, &body)
            }
        }
    }
}

/// Counts a failure in the core metrics.
fn count(failure: &Failure) {
    match failure {
        Failure::Timeout => metrics::GUEST_TIMEOUTS.inc(),
        Failure::Trap(_) => metrics::GUEST_TRAPS.inc(),
        Failure::OutOfBudget | Failure::NoResponse | Failure::ErrorCode(_) => {}
    }
}

fn describe(failure: &Failure) -> String {
    match failure {
        Failure::Timeout => "it ran past OMNIA_REQUEST_TIMEOUT".to_owned(),
        Failure::Trap(err) => format!("{err:#}"),
        Failure::OutOfBudget => "out of guest memory (OMNIA_MEMORY_BUDGET)".to_owned(),
        Failure::NoResponse => "it returned without setting a response".to_owned(),
        Failure::ErrorCode(code) => format!("it answered with the error {code}"),
    }
}

/// The request's span (OpenTelemetry HTTP server conventions), its parent the client's
/// `traceparent`, if any.
fn request_span<B>(req: &Request<B>, conn: ConnInfo) -> Work {
    let method = req.method().as_str();
    let parent = req
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse);
    let span = tracing::debug_span!(
        target: SPAN_TARGET,
        "HTTP request",
        otel.name = method,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.response.status_code = tracing::field::Empty,
        url.path = req.uri().path(),
        url.scheme = "http",
        network.protocol.version = ?req.version(),
        server.address = %conn.local.ip(),
        server.port = conn.local.port(),
        client.address = %conn.peer.ip(),
    );
    omnia::trace::start_span(span, parent)
}

/// The request with an absolute URI (`http://host/path`), which is how a 0.3 guest learns the
/// scheme and authority (0.2 guests get them from the runtime when their request is made).
fn absolute_uri<B>(mut req: Request<B>) -> Result<Request<B>, &'static str> {
    if req.uri().authority().is_some() {
        return Ok(req);
    }
    let host = req
        .headers()
        .get(http::header::HOST)
        .ok_or("missing Host header\n")?
        .to_str()
        .map_err(|_| "the Host header is not valid\n")?;
    let authority: http::uri::Authority =
        host.parse().map_err(|_| "the Host header is not valid\n")?;
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    *req.uri_mut() = http::Uri::from_parts(parts).map_err(|_| "the request URI is not valid\n")?;
    Ok(req)
}

/// Checks `Host` and the authority of an absolute-form target (RFC 9112 §3.2, RFC 3986 §3.2,
/// see [`authority`]), and gives a request without an authority the listener's address as its
/// `Host`, as an HTTP/1.0 client may omit it.
fn with_authority<B>(mut req: Request<B>, conn: ConnInfo) -> Result<Request<B>, &'static str> {
    let hosts = req.headers().get_all(http::header::HOST).iter().count();
    if hosts > 1 {
        return Err("more than one Host header\n");
    }
    if let Some(host) = req.headers().get(http::header::HOST) {
        authority::check(
            host.to_str()
                .map_err(|_| "the Host header is not valid\n")?,
        )?;
    }
    if let Some(target) = req.uri().authority() {
        authority::check(target.as_str())?;
    }
    if hosts == 0 && req.uri().authority().is_none() {
        if req.version() == http::Version::HTTP_11 {
            return Err("missing Host header (HTTP/1.1 requires one)\n");
        }
        let host = http::HeaderValue::from_str(&conn.local.to_string())
            .map_err(|_| "the listener's address is not a valid Host\n")?;
        req.headers_mut().insert(http::header::HOST, host);
    }
    Ok(req)
}

/// The guest call of one request: the task running it (0.2), and the request's slot when no
/// task holds it (0.3, where the instance outlives the request).
struct Guest {
    task: Option<JoinHandle<()>>,
    /// Set when the guest failed after its response head was sent.
    failed_after_head: Arc<AtomicBool>,
    admission: Option<Admission>,
}

/// Aborts the guest task when dropped while still holding it.
struct CancelOnDrop(Option<JoinHandle<()>>);

impl CancelOnDrop {
    fn take(&mut self) -> Option<JoinHandle<()>> {
        self.0.take()
    }

    fn into_inner(mut self) -> Option<JoinHandle<()>> {
        self.0.take()
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take()
            && !task.is_finished()
        {
            task.abort();
            metrics::GUEST_CANCELLED.inc();
        }
    }
}

/// A response body: the guest's (streamed from its task) or one the runtime made.
///
/// Dropped before its end (the client went away), it cancels the guest call. At its end, it
/// checks that the guest finished well: a guest that failed mid-body ends the body with an
/// error, so the client sees an incomplete response, not a short one. Empty data frames (a
/// guest's empty writes) are dropped, so that they cannot pile up in hyper's HTTP/2 send queue.
pub struct GuestBody {
    inner: HyperOutgoingBody,
    guest: CancelOnDrop,
    failed: Arc<AtomicBool>,
    /// The request's slot, held until the body is sent (0.3; a 0.2 guest's task holds it).
    /// Its presence also means that a cut-off body is reported here, as no task of this
    /// request's own is there to report it.
    admission: Option<Admission>,
    done: bool,
}

impl GuestBody {
    fn guest(inner: HyperOutgoingBody, guest: Guest) -> Self {
        Self {
            inner,
            guest: CancelOnDrop(guest.task),
            failed: guest.failed_after_head,
            admission: guest.admission,
            done: false,
        }
    }

    fn runtime(text: &str) -> Self {
        Self {
            inner: Full::new(Bytes::from(text.to_owned()))
                .map_err(|never: Infallible| match never {})
                .boxed_unsync(),
            guest: CancelOnDrop(None),
            failed: Arc::default(),
            admission: None,
            done: false,
        }
    }
}

impl GuestBody {
    /// Counts and logs a response of a reused (0.3) instance that its instance's failure cut
    /// short (a 0.2 guest's task reports its own), once.
    fn report_truncation(&mut self) {
        if self.admission.take().is_none() {
            return;
        }
        RESPONSES_TRUNCATED.inc();
        metrics::GUEST_TRAPS.inc();
        if let Some(suppressed) = TRAP_LOG.check() {
            tracing::error!(
                "http: a guest instance failed after sending the response head, the response \
                 was cut short{}",
                suppressed_note(suppressed)
            );
        }
    }
}

/// Empty data frames a response body may skip in one poll before it yields to the connection's
/// other work (and is woken at once to go on).
const EMPTY_FRAMES_PER_POLL: usize = 64;

impl Body for GuestBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        // A guest's empty writes are dropped here, never passed on: over HTTP/2 an empty DATA
        // frame needs no flow-control window, so hyper queues one per write for as long as the
        // client does not read, without bound (GHSA-f8mm-ggr3-89wh). They carry nothing; the
        // body's end is signalled by its last frame, not by an empty one.
        let mut skipped = 0;
        let polled = loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) if frame.data_ref().is_some_and(Bytes::is_empty) => {
                    skipped += 1;
                    if skipped == EMPTY_FRAMES_PER_POLL {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                polled => break polled,
            }
        };
        match &polled {
            Poll::Ready(None) => {
                this.done = true;
                // The guest task records a failure before it drops the body's sender, so a body
                // that ended because the guest failed is known here. A guest that is still
                // running finished its body properly, and may go on working after the response.
                drop(this.guest.take());
                if this.failed.load(Ordering::Acquire) {
                    this.report_truncation();
                    return Poll::Ready(Some(Err(HttpError::InternalError(Some(
                        "the guest failed while sending the response body".into(),
                    )))));
                }
                drop(this.admission.take());
            }
            Poll::Ready(Some(Err(_))) if this.failed.load(Ordering::Acquire) => {
                this.report_truncation();
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A plain-text response made by the runtime itself.
fn plain(status: StatusCode, body: &str) -> Response<GuestBody> {
    let mut response = Response::new(GuestBody::runtime(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// 503 with `Retry-After`, for a runtime that is full right now.
fn unavailable(body: &str) -> Response<GuestBody> {
    let mut response = plain(StatusCode::SERVICE_UNAVAILABLE, body);
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    response
}

/// A 4xx answer to a request the client got wrong (logged at a limited rate, counted).
fn client_error(status: StatusCode, body: &str) -> Response<GuestBody> {
    BAD_REQUESTS.inc();
    if let Some(suppressed) = CLIENT_ERROR_LOG.check() {
        tracing::info!(
            "http: answering {status}: {}{}",
            body.trim_end(),
            suppressed_note(suppressed)
        );
    }
    plain(status, body)
}
