//! Serving HTTP connections: the accept loop every Omnia listener shares (the HTTP trigger and
//! the admin endpoint), with the defences a server facing the open internet needs.
//!
//! | defence | setting | what happens |
//! |---|---|---|
//! | header-read timeout | `OMNIA_HTTP_HEADER_TIMEOUT` (10 s) | an HTTP/1 client that started sending a request must finish its headers in time, or the connection is closed (slowloris) |
//! | idle timeout | `OMNIA_HTTP_IDLE_TIMEOUT` (60 s) | a connection with no request in flight and nothing sent for this long is closed |
//! | connection cap | per listener (`OMNIA_HTTP_MAX_CONNECTIONS` for HTTP) | at the cap, the connection idle the longest is closed to make room, so new clients are still served; only if every connection has a request in flight is the newcomer closed |
//! | accept back-off | — | when `accept` fails (usually: out of file descriptors), an idle connection is closed and the loop waits before retrying, instead of spinning |
//! | drain | `OMNIA_SHUTDOWN_GRACE` | on shutdown: stop accepting, close idle and header-pending connections at once, let requests in flight finish within the grace period |
//!
//! Each connection's activity (idle since, receiving headers since, or the number of requests
//! in flight) is tracked by wrapping its socket (what was read) and its service (when a request
//! starts, and when its response body is done or dropped). A per-connection watchdog turns that
//! into the timeouts, and the same activity picks the connection to shed at the cap.
//!
//! The watchdog is not told of each change: a request would otherwise wake it three times
//! (headers started, request in flight, response done), each time re-arming its timer, a cost
//! every request paid for timeouts measured in seconds. It reads the activity when its timer
//! fires instead, and never sleeps longer than the header timeout, so a change it was not told
//! of is seen before any deadline that change starts can pass: timeouts stay exact.
//!
//! **Serving threads.** A listener can hand its connections to threads of their own
//! ([`Listener::threads`]), each running a single-threaded tokio runtime, in turn. A connection
//! and the work its requests start (a WASI 0.3 guest's instances, for one) then stay on one
//! thread: no wake-up crosses threads, nothing is stolen between them, and the scheduler takes
//! no locks. Measured against the multi-threaded runtime on the same machine, the HTTP trigger
//! served about a quarter more requests per second (see `bench/RESULTS.md`). The accept loop,
//! the connection cap and the drain stay where [`Listener::serve`] runs.
//!
//! HTTP/2 connections (prior knowledge) get the idle timeout and the cap; header timing is left
//! to the `h2` protocol (a request is only dispatched once its headers are complete, so a
//! connection trickling headers stays "idle" and meets the idle timeout), and hyper pings
//! HTTP/2 clients to notice ones that vanished.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::lifecycle::Shutdown;
use crate::metrics;
use crate::telemetry::{LogLimit, suppressed_note};

/// How long a connection being closed while idle may take to flush and close by itself before
/// it is dropped.
const LINGER: Duration = Duration::from_secs(1);
/// How often hyper pings an HTTP/2 client, and how long it waits for the answer.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);
/// The default connection cap is never above this.
const MAX_DEFAULT_CONNECTIONS: u64 = 16_384;

/// The timeouts and the cap of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionPolicy {
    /// How long an HTTP/1 client may take to send a request's headers once it started.
    pub header_timeout: Duration,
    /// How long a connection may stay without a request in flight.
    pub idle_timeout: Duration,
    /// How many connections may be open at once.
    pub max_connections: usize,
}

/// What a service learns about the connection it serves.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The address the client connected to (this listener's).
    pub local: SocketAddr,
    /// The client's address.
    pub peer: SocketAddr,
    /// The serving thread the connection runs on (below [`Listener::threads`]' count; 0 when
    /// connections run on the runtime that calls [`Listener::serve`]).
    pub thread: usize,
}

/// A bound TCP listener that serves HTTP/1.1 and HTTP/2 connections under a
/// [`ConnectionPolicy`].
pub struct Listener {
    tcp: TcpListener,
    local: SocketAddr,
    name: &'static str,
    policy: ConnectionPolicy,
    threads: ServingThreads,
}

impl Listener {
    /// Binds `addr`. `name` prefixes log lines (`"http"`, `"admin"`); `setting` is the variable
    /// the address came from, named in the error if it cannot be bound.
    pub async fn bind(
        addr: SocketAddr,
        setting: &str,
        name: &'static str,
        policy: ConnectionPolicy,
    ) -> Result<Self> {
        let tcp = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {setting}={addr}"))?;
        let local = tcp
            .local_addr()
            .with_context(|| format!("cannot read the address bound for {setting}={addr}"))?;
        Ok(Self {
            tcp,
            local,
            name,
            policy,
            threads: ServingThreads::default(),
        })
    }

    /// Serves connections on `threads` threads of their own, each with a single-threaded
    /// runtime, handing them out in turn (see the module documentation); 0, the default, serves
    /// them on the runtime that calls [`serve`](Self::serve).
    ///
    /// The threads start here, not in [`serve`](Self::serve), so a listener that reports
    /// itself ready has all it needs to serve: a runtime that cannot start (out of file
    /// descriptors, say) fails start-up, not the first connection.
    pub fn threads(mut self, threads: usize) -> Result<Self> {
        self.threads = ServingThreads::start(self.name, threads)?;
        Ok(self)
    }

    /// The address it listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// An address clients on this machine can use: the loopback address when bound to all
    /// interfaces.
    pub fn reachable_addr(&self) -> SocketAddr {
        if self.local.ip().is_unspecified() {
            let loopback: std::net::IpAddr = if self.local.is_ipv6() {
                std::net::Ipv6Addr::LOCALHOST.into()
            } else {
                std::net::Ipv4Addr::LOCALHOST.into()
            };
            SocketAddr::new(loopback, self.local.port())
        } else {
            self.local
        }
    }

    /// Accepts and serves connections with the services `make_service` makes (one per
    /// connection) until `shutdown` fires; then drains (see the module documentation) for up to
    /// the grace period and returns.
    pub async fn serve<M, S, B>(self, make_service: M, mut shutdown: Shutdown) -> Result<()>
    where
        M: Fn(ConnInfo) -> S,
        S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        B: Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Self {
            tcp,
            local,
            name,
            policy,
            mut threads,
        } = self;
        let builder = Arc::new(connection_builder());
        let registry = Arc::new(Registry::default());
        let closing = CancellationToken::new();
        let tasks = TaskTracker::new();
        let mut backoff = Backoff::default();

        loop {
            let (stream, peer) = tokio::select! {
                accepted = tcp.accept() => match accepted {
                    Ok(accepted) => {
                        backoff.reset();
                        accepted
                    }
                    Err(err) => {
                        // Usually out of file descriptors: free one and wait, never spin.
                        registry.shed_one();
                        let delay = backoff.next();
                        if let Some(suppressed) = ACCEPT_FAILURES.check() {
                            tracing::warn!(
                                "{name}: accept failed: {err}; retrying in {delay:?}{}",
                                suppressed_note(suppressed)
                            );
                        }
                        tokio::select! {
                            () = tokio::time::sleep(delay) => continue,
                            () = shutdown.requested() => break,
                        }
                    }
                },
                () = shutdown.requested() => break,
            };
            if registry.len() >= policy.max_connections && !registry.shed_one() {
                metrics::CONNECTIONS_REFUSED.inc();
                if let Some(suppressed) = REFUSED.check() {
                    tracing::warn!(
                        "{name}: {} connections open, all with requests in flight: closing the \
                         connection from {peer}{}",
                        policy.max_connections,
                        suppressed_note(suppressed)
                    );
                }
                drop(stream);
                continue;
            }
            let _ = stream.set_nodelay(true);
            let (thread, runtime) = threads.next();
            let info = ConnInfo {
                local,
                peer,
                thread,
            };
            let conn = registry.open(closing.child_token());
            let service = Tracked {
                inner: make_service(info),
                activity: conn.activity.clone(),
            };
            let builder = Arc::clone(&builder);
            let registry = Arc::clone(&registry);
            let serve = async move {
                metrics::CONNECTIONS_OPEN.add(1);
                match on_this_runtime(stream) {
                    Ok(stream) => {
                        let io = TokioIo::new(TrackedIo::new(stream, conn.activity.clone()));
                        let served = builder.serve_connection(io, service);
                        serve_one(served, &conn, policy).await;
                    }
                    Err(err) => {
                        tracing::warn!("{name}: dropping the connection from {peer}: {err}");
                    }
                }
                registry.close(conn.id);
                metrics::CONNECTIONS_OPEN.add(-1);
            };
            match runtime {
                Some(runtime) => tasks.spawn_on(serve, runtime),
                None => tasks.spawn(serve),
            };
        }

        drop(tcp); // new connections are refused from here on
        let open = registry.len();
        closing.cancel();
        tasks.close();
        let grace = shutdown.grace();
        tokio::select! {
            () = tasks.wait() => tracing::info!("{name}: closed {open} connection(s)"),
            () = tokio::time::sleep(grace) => tracing::warn!(
                "{name}: grace period of {grace:?} over; closing {} connection(s) still open",
                registry.len()
            ),
        }
        Ok(())
    }
}

/// The HTTP/1.1 and HTTP/2 connection settings every listener uses.
fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The watchdog times headers (starting at their first byte, not at the end of the
        // previous response as hyper's own timer would).
        .header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEP_ALIVE)
        .keep_alive_timeout(H2_KEEP_ALIVE);
    builder
}

/// The serving threads of a listener, each running a single-threaded runtime.
///
/// They live as long as the process, as the main runtime does: what runs on them past the
/// drain (a connection still open when the grace period ends, a client connection to a backend
/// that a guest call opened there and other triggers share) goes on until the process exits.
#[derive(Default)]
struct ServingThreads {
    runtimes: Vec<tokio::runtime::Handle>,
    next: usize,
}

impl ServingThreads {
    /// Starts `count` threads named after the listener (none for 0).
    fn start(name: &str, count: usize) -> Result<Self> {
        let mut runtimes = Vec::with_capacity(count);
        for index in 0..count {
            let (runtime_tx, runtime_rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("omnia-{name}-{index}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(err) => {
                            let _ = runtime_tx.send(Err(err));
                            return;
                        }
                    };
                    let _ = runtime_tx.send(Ok(runtime.handle().clone()));
                    runtime.block_on(std::future::pending::<()>());
                })
                .with_context(|| format!("cannot start {name} serving thread {index}"))?;
            let runtime = runtime_rx
                .recv()
                .map_err(anyhow::Error::from)
                .and_then(|built| built.map_err(anyhow::Error::from))
                .with_context(|| {
                    format!("cannot start the runtime of {name} serving thread {index}")
                })?;
            runtimes.push(runtime);
        }
        Ok(Self { runtimes, next: 0 })
    }

    /// The thread for the next connection, in turn: its index and runtime (`None`: the caller's).
    fn next(&mut self) -> (usize, Option<&tokio::runtime::Handle>) {
        if self.runtimes.is_empty() {
            return (0, None);
        }
        let index = self.next % self.runtimes.len();
        self.next = self.next.wrapping_add(1);
        (index, self.runtimes.get(index))
    }
}

/// Moves an accepted socket to the I/O driver of the runtime polling this future, so its
/// readiness wakes this thread directly, not through the thread that accepted it.
fn on_this_runtime(stream: TcpStream) -> std::io::Result<TcpStream> {
    TcpStream::from_std(stream.into_std()?)
}

/// Rate limits of the listener's warnings.
static ACCEPT_FAILURES: LogLimit = LogLimit::new(5, Duration::from_secs(10));
static REFUSED: LogLimit = LogLimit::new(5, Duration::from_secs(10));

/// The largest number of open files this process may have, after raising the soft limit to the
/// hard one (as Go and most servers do at start-up).
pub fn raise_open_file_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = match (limit.current, limit.maximum) {
        (Some(current), maximum) if maximum.is_none_or(|max| max > current) => {
            let wanted = Rlimit {
                current: maximum.or(Some(1 << 20)),
                maximum,
            };
            setrlimit(Resource::Nofile, wanted).is_ok()
        }
        _ => false,
    };
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    if raised {
        tracing::debug!("open file limit raised to {now}");
    }
    now
}

/// The default connection cap: three quarters of the open-file limit (the rest is for
/// backends, outgoing requests and files), at most 16384.
pub fn default_max_connections() -> usize {
    let fds = raise_open_file_limit();
    let cap = (fds / 4 * 3).clamp(16, MAX_DEFAULT_CONNECTIONS);
    usize::try_from(cap).unwrap_or(16)
}

/// Serves one connection until it ends, applying the timeouts and the close signal.
async fn serve_one<C>(served: C, conn: &ConnHandle, policy: ConnectionPolicy)
where
    C: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + GracefulShutdown,
{
    tokio::pin!(served);
    let mut closing_since: Option<Instant> = None;
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    loop {
        let now = Instant::now();
        let activity = conn.activity.get();
        let deadline = deadline(activity, closing_since, policy);
        if deadline.is_some_and(|at| at <= now) {
            if closing_since.is_some() {
                return; // dropping the connection closes it
            }
            metrics::CONNECTIONS_TIMED_OUT.inc();
            let which = if matches!(activity, Activity::Head(_)) {
                "header-read (OMNIA_HTTP_HEADER_TIMEOUT)"
            } else {
                "idle (OMNIA_HTTP_IDLE_TIMEOUT)"
            };
            tracing::debug!("closing a connection at its {which} timeout");
            served.as_mut().graceful_shutdown();
            closing_since = Some(now);
            continue;
        }
        // Look again by the header timeout (the linger, once closing) at the latest: a change
        // since (a request that started or ended) may have started an earlier deadline.
        let recheck = now
            + match closing_since {
                Some(_) => LINGER,
                None => policy.header_timeout.min(policy.idle_timeout),
            };
        timer
            .as_mut()
            .reset(deadline.map_or(recheck, |at| at.min(recheck)));
        tokio::select! {
            ended = served.as_mut() => {
                if let Err(err) = ended {
                    tracing::debug!("connection closed with an error: {err}");
                }
                return;
            }
            () = timer.as_mut() => {}
            () = conn.close.cancelled(), if closing_since.is_none() => {
                served.as_mut().graceful_shutdown();
                closing_since = Some(Instant::now());
            }
        }
    }
}

/// When a connection doing `activity` is to be closed (`None` while a request is in flight):
/// at its idle or header timeout, or, once closing, a short linger after that began.
fn deadline(
    activity: Activity,
    closing_since: Option<Instant>,
    policy: ConnectionPolicy,
) -> Option<Instant> {
    match (activity, closing_since) {
        (Activity::Busy(_), _) => None,
        (Activity::Idle(since) | Activity::Head(since), Some(closing)) => {
            Some(closing.max(since) + LINGER)
        }
        (Activity::Idle(since), None) => Some(since + policy.idle_timeout),
        (Activity::Head(since), None) => Some(since + policy.header_timeout),
    }
}

/// A connection future that can be asked to finish what it is doing and close.
trait GracefulShutdown {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, E, B> GracefulShutdown for auto::Connection<'_, I, S, E>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: 'static,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: auto::HttpServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        auto::Connection::graceful_shutdown(self);
    }
}

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    /// No request in flight, nothing received since.
    Idle(Instant),
    /// No request in flight, but the client has started sending one (HTTP/1 headers).
    Head(Instant),
    /// This many requests in flight (their responses not yet fully sent).
    Busy(usize),
}

/// A connection's [`Activity`], shared by its socket, its service, its watchdog and the
/// registry. Updating it takes an uncontended lock and wakes nobody.
#[derive(Clone)]
struct SharedActivity(Arc<Mutex<Activity>>);

impl SharedActivity {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(Activity::Idle(Instant::now()))))
    }

    fn get(&self) -> Activity {
        *self.lock()
    }

    fn update(&self, change: impl FnOnce(Activity) -> Activity) {
        let mut activity = self.lock();
        *activity = change(*activity);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Activity> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The open connections of a listener.
#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Entry>>,
}

struct Entry {
    activity: SharedActivity,
    close: CancellationToken,
}

/// What a connection's task holds of its registry entry.
struct ConnHandle {
    id: u64,
    activity: SharedActivity,
    close: CancellationToken,
}

impl Registry {
    fn open(&self, close: CancellationToken) -> ConnHandle {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = SharedActivity::new();
        self.lock().insert(
            id,
            Entry {
                activity: activity.clone(),
                close: close.clone(),
            },
        );
        ConnHandle {
            id,
            activity,
            close,
        }
    }

    fn close(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Closes the connection that has been without a request the longest; false if every
    /// connection has a request in flight.
    fn shed_one(&self) -> bool {
        let mut open = self.lock();
        let oldest = open
            .iter()
            .filter_map(|(id, entry)| match entry.activity.get() {
                Activity::Idle(since) | Activity::Head(since) => Some((since, *id)),
                Activity::Busy(_) => None,
            })
            .min();
        let Some((_, id)) = oldest else {
            return false;
        };
        if let Some(entry) = open.remove(&id) {
            entry.close.cancel();
            metrics::CONNECTIONS_SHED.inc();
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Exponential back-off for a failing accept: 10 ms doubling up to 1 s.
#[derive(Default)]
struct Backoff(u32);

impl Backoff {
    fn next(&mut self) -> Duration {
        let delay = Duration::from_millis(10) * 2u32.pow(self.0.min(7));
        self.0 = self.0.saturating_add(1);
        delay.min(Duration::from_secs(1))
    }

    fn reset(&mut self) {
        self.0 = 0;
    }
}

/// The HTTP/2 connection preface's first bytes.
const H2_PREFACE_START: &[u8; 4] = b"PRI ";

/// A socket that reports reads to the connection's [`Activity`]: the first bytes received while
/// idle start the header timer (HTTP/1 only).
struct TrackedIo {
    stream: TcpStream,
    activity: SharedActivity,
    /// The first bytes of the connection, until there are enough to tell HTTP/2 from HTTP/1.
    preface: Vec<u8>,
    http2: Option<bool>,
}

impl TrackedIo {
    fn new(stream: TcpStream, activity: SharedActivity) -> Self {
        Self {
            stream,
            activity,
            preface: Vec::new(),
            http2: None,
        }
    }

    fn received(&mut self, bytes: &[u8]) {
        if self.http2.is_none() {
            let want = H2_PREFACE_START.len() - self.preface.len();
            self.preface
                .extend_from_slice(&bytes[..bytes.len().min(want)]);
            if self.preface.len() == H2_PREFACE_START.len() {
                self.http2 = Some(self.preface == H2_PREFACE_START);
            }
        }
        if self.http2 == Some(true) {
            return;
        }
        self.activity.update(|activity| match activity {
            Activity::Idle(_) => Activity::Head(Instant::now()),
            busy_or_head => busy_or_head,
        });
    }
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.received(&buf.filled()[before..]);
        }
        polled
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A service that marks the connection busy from the start of each request until its
/// response body is done (or dropped because the client went away).
struct Tracked<S> {
    inner: S,
    activity: SharedActivity,
}

impl<S, B> Service<Request<Incoming>> for Tracked<S>
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
    B: Body + Unpin,
{
    type Response = Response<TrackedBody<B>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let guard = InFlight::start(self.activity.clone());
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| TrackedBody {
                body,
                _in_flight: guard,
            }))
        })
    }
}

/// One request in flight on a connection; dropping it ends the request.
struct InFlight(SharedActivity);

impl InFlight {
    fn start(activity: SharedActivity) -> Self {
        activity.update(|a| match a {
            Activity::Busy(n) => Activity::Busy(n + 1),
            Activity::Idle(_) | Activity::Head(_) => Activity::Busy(1),
        });
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.update(|a| match a {
            Activity::Busy(n) if n > 1 => Activity::Busy(n - 1),
            _ => Activity::Idle(Instant::now()),
        });
    }
}

/// A response body that keeps its request [`InFlight`] until it is done.
pub struct TrackedBody<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let mut b = Backoff::default();
        assert_eq!(b.next(), Duration::from_millis(10));
        assert_eq!(b.next(), Duration::from_millis(20));
        for _ in 0..20 {
            b.next();
        }
        assert_eq!(b.next(), Duration::from_secs(1));
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(10));
    }

    #[tokio::test]
    async fn sheds_the_longest_idle_connection() {
        let registry = Registry::default();
        let busy = registry.open(CancellationToken::new());
        let _req = InFlight::start(busy.activity.clone());
        let old = registry.open(CancellationToken::new());
        tokio::time::sleep(Duration::from_millis(5)).await;
        let young = registry.open(CancellationToken::new());
        assert!(registry.shed_one());
        assert!(old.close.is_cancelled(), "the oldest idle one goes first");
        assert!(!young.close.is_cancelled() && !busy.close.is_cancelled());
        assert!(registry.shed_one());
        assert!(young.close.is_cancelled());
        assert!(!registry.shed_one(), "a busy connection is never shed");
    }
}
