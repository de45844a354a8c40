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
//! The pieces live in sub-modules: `accept` (the back-off of a failing accept), `connections`
//! (the cap: registry, shedding, default cap), `activity` (what each connection is doing, and
//! the wrappers that record it), `watchdog` (the timeouts and the drain of one connection) and
//! `threads` (the serving threads). This module binds and runs the accept loop.
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

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::lifecycle::Shutdown;
use crate::metrics;
use crate::telemetry::{LogLimit, suppressed_note};

mod accept;
mod activity;
mod connections;
mod threads;
mod watchdog;

pub use activity::TrackedBody;
pub use connections::{default_max_connections, open_file_limit, raise_open_file_limit};

use accept::Backoff;
use activity::{Tracked, TrackedIo};
use connections::Registry;
use threads::{ServingThreads, on_this_runtime};
use watchdog::serve_one;

/// How often hyper pings an HTTP/2 client, and how long it waits for the answer.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);

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

/// Rate limits of the listener's warnings.
static ACCEPT_FAILURES: LogLimit = LogLimit::new(5, Duration::from_secs(10));
static REFUSED: LogLimit = LogLimit::new(5, Duration::from_secs(10));
