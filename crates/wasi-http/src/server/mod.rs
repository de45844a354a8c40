//! The HTTP trigger: hyper in front, guest instances behind.
//!
//! Connections are accepted and policed by [`omnia::listener`] (header-read and idle timeouts, a
//! cap on open connections, drain on shutdown) and served with HTTP/1.1 or HTTP/2 (detected from
//! the first bytes, so `h2c` prior knowledge works). Each request passes the checks of
//! `request` and gets a body limited by `request_body`; then, for a WASI 0.2 guest, a new
//! instance in a task of its own (see `per_request`); a WASI 0.3 guest's
//! `wasi:http/handler.handle` is called many times per instance, concurrently (see [`reuse`]).
//! Either way the guest runs under an [`omnia::invoke::Call`], which holds its deadline and
//! records its outcome, and when the guest does not answer itself, the outcome maps to a status
//! code (see `answers`):
//!
//! | what happened | status |
//! |---|---|
//! | `OMNIA_MAX_CONCURRENCY` requests and messages already in flight, none of them waiting for its body | 503, at once |
//! | (the other side of that) a request that waited for its body for a second or more, when a new request without a body finds every slot taken (see `request_body`) | 408 |
//! | the client already has `OMNIA_HTTP_CLIENT_SHARE` requests in flight (see [`clients`]) | 503, at once |
//! | the guest needed memory past `OMNIA_MEMORY_BUDGET` (all instances together) | 503 |
//! | `Content-Length` above `OMNIA_HTTP_MAX_BODY` | 413, before the guest runs |
//! | the body arrived too slowly (see `request_body`) | 408 |
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
//! fails after sending its response head has its response cut short (see `response_body`).
//!
//! A failing request never affects another on the 0.2 path: stores share nothing but the
//! engine (for 0.3 guests, see [`reuse`] for what a failing request may take with it). Failure
//! log lines are rate-limited (see [`omnia::telemetry::LogLimit`]); the metrics count every one.

mod answers;
mod authority;
pub mod clients;
mod per_request;
mod request;
mod request_body;
mod response_body;
pub mod reuse;

use std::convert::Infallible;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::{Request, Response, StatusCode};
use omnia::invoke::{Call, Failure};
use omnia::listener::{ConnInfo, ConnectionPolicy, Listener};
use omnia::manifest::routes::{HttpRoutes, MATCHED_ROUTE_HEADER, PATH_INFO_HEADER};
use omnia::metrics::{self, Counter, Metric};
use omnia::telemetry::{LogLimit, suppressed_note};
use omnia::trace::Work;
use omnia::{Admission, Application, HostView, Serving, Shutdown, State};
use tracing::Instrument as _;
use wasmtime::Engine;
use wasmtime::component::{Component, Resource};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode as P3ErrorCode;

use crate::{HttpConfig, WasiHttpCtx, local};
use answers::NoAnswer;
use clients::ClientShares;
use request_body::{BodyFault, BodyPace, BodyWaiters, LimitedBody};

pub use request_body::BODY_WAITS_CUT;
pub use response_body::GuestBody;

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
/// Calls between guests (see [`crate::local`]).
pub static LOCAL_CALLS: Counter = Counter::new(
    "omnia_http_local_calls_total",
    "Requests from one guest to another (http://<id>.omnia.local), served in-process.",
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

/// Listens on `config.addr` for the guests of `app` that serve HTTP; the returned future
/// serves until `shutdown`, then stops accepting and waits up to the grace period for
/// in-flight requests.
pub async fn bind<S>(
    app: Application<S>,
    config: Arc<HttpConfig>,
    shutdown: Shutdown,
) -> Result<Serving>
where
    S: State,
    S::StoreCtx: HostView<WasiHttpCtx>,
{
    let served = Served::new(&app, &config)?;
    let policy = ConnectionPolicy {
        header_timeout: app.config().header_timeout,
        idle_timeout: app.config().idle_timeout,
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
        &LOCAL_CALLS,
        &BAD_REQUESTS,
        &RESPONSES_TRUNCATED,
        &CLIENT_SHARE_REFUSALS,
        &BODY_WAITS_CUT,
    ] {
        metrics::register(Metric::Counter(metric));
    }
    let share = config
        .client_share
        .unwrap_or(app.config().max_concurrency / 2)
        .max(1);
    let mut reloads = app.reloads();
    let handler = Arc::new(Handler {
        served: RwLock::new(Arc::new(served)),
        shares: ClientShares::new(share),
        waiters: Arc::default(),
        app,
        config,
    });
    local::serve_with(Arc::new(LocalServer(Arc::clone(&handler))));
    // A reload's generation serves the requests that arrive after it; those in flight finish
    // on the one they started on (each holds it).
    let mut stop = shutdown.clone();
    let reloaded = Arc::clone(&handler);
    tokio::spawn(async move {
        while let Some(app) = reloads.next(&mut stop).await {
            reloaded.reload(&app);
        }
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

/// How `state` is called: a fresh instance per request (0.2), or pools of reused instances
/// (0.3, one pool per serving thread).
fn dispatch<S>(state: &S, config: &HttpConfig) -> Result<Dispatch<S>>
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
    if p3 {
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
            .map(|_| reuse::Pool::new(state.clone(), pre.clone(), config))
            .collect();
        return Ok(Dispatch::Reuse(pools));
    }
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
        .context("the component's wasi:http/incoming-handler@0.2 export has an unexpected type")?;
    Ok(Dispatch::PerRequest(pre))
}

struct Handler<S: State>
where
    S::StoreCtx: HostView<WasiHttpCtx>,
{
    /// The generation of the application new requests go to.
    served: RwLock<Arc<Served<S>>>,
    /// The work slots each client holds (`OMNIA_HTTP_CLIENT_SHARE`).
    shares: Arc<ClientShares>,
    /// The requests waiting for their body, to be cut first when every slot is taken.
    waiters: Arc<BodyWaiters>,
    app: Application<S>,
    config: Arc<HttpConfig>,
}

/// The HTTP trigger as the server of local calls.
struct LocalServer<S: State>(Arc<Handler<S>>)
where
    S::StoreCtx: HostView<WasiHttpCtx>;

impl<S> local::LocalCalls for LocalServer<S>
where
    S: State,
    S::StoreCtx: HostView<WasiHttpCtx>,
{
    fn call(&self, id: &str, request: Request<local::Body>, depth: u32) -> local::Answer {
        let handler = Arc::clone(&self.0);
        let id = id.to_owned();
        Box::pin(async move { handler.local(&id, request, depth).await })
    }
}

/// What a request brings to its guest besides itself.
struct Arrived {
    /// Its work slot, held until the guest is done.
    admission: Admission,
    /// Its span and trace context.
    work: Work,
    /// Its method and path, for log lines.
    what: String,
    /// What went wrong with its body, if anything (see [`request_body`]).
    fault: Arc<OnceLock<BodyFault>>,
    /// The serving thread it arrived on.
    thread: usize,
}

/// One generation of the application as this trigger serves it: how each guest is called,
/// and which takes a request.
struct Served<S: State>
where
    S::StoreCtx: HostView<WasiHttpCtx>,
{
    /// The guests, by their index in the application; `None` for one that does not serve HTTP.
    guests: Vec<Option<Guest<S>>>,
    routes: Routing,
}

impl<S> Served<S>
where
    S: State,
    S::StoreCtx: HostView<WasiHttpCtx>,
{
    /// The guests of `app` that serve HTTP, each ready to be called, and the routes.
    fn new(app: &Application<S>, config: &HttpConfig) -> Result<Self> {
        let mut guests = Vec::with_capacity(app.guests().len());
        for state in app.guests() {
            let serves = exports_handler(state.engine(), state.instance_pre().component());
            let guest = if serves {
                let dispatch = app.named(state, dispatch(state, config))?;
                Some(Guest {
                    state: state.clone(),
                    dispatch,
                })
            } else {
                None
            };
            guests.push(guest);
        }
        let routes = match (app.http_routes(), guests.iter().position(Option::is_some)) {
            (Some(table), _) => Routing::Table(table.clone()),
            (None, Some(sole)) => Routing::Sole(sole),
            // A generation without an HTTP guest (after a reload): no request has a route.
            (None, None) => Routing::Table(HttpRoutes::new(Vec::new())?),
        };
        Ok(Self { guests, routes })
    }

    /// The guest that takes `req` and the request as it is given to it (see
    /// [`request::routed`]); `None` if no route takes it.
    fn route<B>(&self, req: Request<B>) -> Option<(&Guest<S>, Request<B>)> {
        let (index, req) = match &self.routes {
            Routing::Table(table) => request::routed(req, table)?,
            Routing::Sole(index) => (*index, req),
        };
        // A route goes to a guest that serves HTTP: checked at start-up.
        Some((self.guests.get(index)?.as_ref()?, req))
    }
}

/// One guest that serves HTTP, and how it is called.
struct Guest<S: State>
where
    S::StoreCtx: HostView<WasiHttpCtx>,
{
    state: S,
    dispatch: Dispatch<S>,
}

/// Which guest takes a request.
enum Routing {
    /// The manifest's route table, by guest index (see [`omnia::manifest::routes`]).
    Table(HttpRoutes<usize>),
    /// Every request goes to this guest, the one that serves HTTP (no manifest, or no guest
    /// with `routes.http`).
    Sole(usize),
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

/// The 413 for a request whose `Content-Length` is above `max_body`, before the guest runs.
fn too_large<B>(req: &Request<B>, max_body: usize) -> Option<Response<GuestBody>> {
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())?;
    (declared > max_body as u64).then(|| {
        answers::client_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body larger than {max_body} bytes (OMNIA_HTTP_MAX_BODY)\n"),
        )
    })
}

/// Rate limit of the overload log lines.
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
            Err(busy) => return answers::unavailable(busy),
        };
        let req = match request::with_authority(req, conn) {
            Ok(req) => req,
            Err(reason) => return answers::client_error(StatusCode::BAD_REQUEST, reason),
        };
        let served = self.served();
        let Some((guest, mut req)) = served.route(req) else {
            return answers::plain(StatusCode::NOT_FOUND, "no route\n");
        };
        let Some(place) = guest.state.cap().try_take() else {
            return answers::unavailable(
                "server busy: this route's guest has its limits.concurrency requests in flight\n",
            );
        };
        let admission = admission.holding(place);
        let max_body = self.config.max_body;
        if let Some(too_large) = too_large(&req, max_body) {
            return too_large;
        }
        let what = format!("{} {}", req.method(), req.uri().path());
        let work = request::span(&mut req, Some(conn));
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

        let arrived = Arrived {
            admission,
            work,
            what,
            fault,
            thread: conn.thread,
        };
        self.call_guest(guest, req, arrived).await
    }

    /// Serves `req` with `guest` (0.2: a fresh instance in a task of its own; 0.3: an instance
    /// of the pool of the serving thread it arrived on): the response, or the status its
    /// outcome maps to.
    async fn call_guest<B>(
        &self,
        guest: &Guest<S>,
        req: Request<B>,
        arrived: Arrived,
    ) -> Response<GuestBody>
    where
        B: Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Send + 'static,
    {
        let Arrived {
            admission,
            work,
            what,
            fault,
            thread,
        } = arrived;
        let max_body = self.config.max_body;
        let span = work.span.clone();
        span.record("omnia.component", guest.state.id());
        let head = match &guest.dispatch {
            Dispatch::PerRequest(pre) => {
                let started = per_request::spawn(
                    &guest.state,
                    pre,
                    req,
                    admission,
                    work,
                    what.clone(),
                    Arc::clone(&fault),
                );
                let (head, task) = match started {
                    Ok(started) => started,
                    Err(err) => {
                        return answers::client_error(StatusCode::BAD_REQUEST, &format!("{err}\n"));
                    }
                };
                // `task` is dropped with this future if the client goes away before the head
                // is ready: the guest call is cancelled and its slot freed.
                let head = head.await.unwrap_or_else(|_| {
                    Err(NoAnswer::Failed(Failure::Trap(Arc::new(
                        wasmtime::Error::msg("guest task ended"),
                    ))))
                });
                head.map(|response| response.map(|body| GuestBody::from_task(body, task)))
            }
            Dispatch::Reuse(pools) => {
                let pool = &pools[thread % pools.len()];
                let req = match request::absolute_uri(req) {
                    Ok(req) => req.map(BodyExt::boxed_unsync),
                    Err(reason) => return answers::client_error(StatusCode::BAD_REQUEST, reason),
                };
                let timeout = guest.state.config().request_timeout;
                let call = Call::new(
                    "http",
                    guest.state.id(),
                    what.clone(),
                    span.clone(),
                    timeout,
                );
                match pool
                    .call(req, &call, work.trace)
                    .instrument(span.clone())
                    .await
                {
                    Ok((response, stub)) => {
                        Ok(response
                            .map(|body| GuestBody::from_instance(body, call, stub, admission)))
                    }
                    Err(no_answer) => {
                        answers::finish_unanswered(call, &no_answer, fault.get());
                        Err(no_answer)
                    }
                }
            }
        };
        let response = head.unwrap_or_else(|no_answer| {
            answers::unanswered(no_answer, fault.get(), max_body, &what)
        });
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
        response
    }

    /// Serves a local call (see [`crate::local`]): `req` to the guest `id`, the `depth`-th call
    /// of its chain.
    async fn local(
        &self,
        id: &str,
        mut req: Request<local::Body>,
        depth: u32,
    ) -> Result<Response<local::Body>, wasmtime_wasi_http::Error> {
        let served = self.served();
        let Some(guest) = served.guests.iter().flatten().find(|g| g.state.id() == id) else {
            tracing::warn!(
                "http: local call to {id}{}: no guest {id:?} serves HTTP",
                local::LOCAL_DOMAIN
            );
            return Err(wasmtime_wasi_http::Error::DestinationNotFound);
        };
        let (Some(place), Some(admission)) =
            (guest.state.cap().try_take(), self.app.slots().try_admit())
        else {
            return Err(wasmtime_wasi_http::Error::ConnectionLimitReached);
        };
        let admission = admission.holding(place);
        LOCAL_CALLS.inc();
        // No route matched it: what the caller wrote in these headers is not the runtime's.
        req.headers_mut().remove(MATCHED_ROUTE_HEADER);
        req.headers_mut().remove(PATH_INFO_HEADER);
        let what = format!("{} {}{}", req.method(), id, req.uri().path());
        let mut work = request::span(&mut req, None);
        work.depth = depth;
        let arrived = Arrived {
            admission,
            work,
            what,
            fault: Arc::new(OnceLock::new()),
            thread: 0,
        };
        let response = self.call_guest(guest, req, arrived).await;
        Ok(response.map(BodyExt::boxed_unsync))
    }

    /// The generation new requests go to.
    fn served(&self) -> Arc<Served<S>> {
        Arc::clone(&self.served.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Serves new requests from `app`'s generation; if it cannot be served (a guest's export
    /// has an unexpected type), keeps the one it has and says why.
    fn reload(&self, app: &Application<S>) {
        match Served::new(app, &self.config) {
            Ok(served) => {
                *self.served.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(served);
            }
            Err(err) => tracing::error!("http: the reloaded application is not served: {err:#}"),
        }
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
                    self.app.config().max_concurrency,
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
        let slots = self.app.slots();
        if let Some(admission) = slots.try_admit() {
            return Some(admission);
        }
        if !may_cut || !self.waiters.cut_longest() {
            return None;
        }
        tokio::time::timeout(CUT_GRACE, slots.admit()).await.ok()
    }
}
