//! The admin endpoint (`OMNIA_ADMIN_ADDR`): health checks and metrics on an address separate
//! from the triggers, so orchestrators can probe a runtime that is saturated with traffic.
//!
//! * `GET /livez`: 200 while the process runs.
//! * `GET /readyz`: 200 once backends are connected, the component is pre-instantiated and
//!   every trigger is listening; 503 before that and again once shutdown has begun (so load
//!   balancers stop routing here). The endpoint keeps answering until the drain is over.
//! * `GET /metrics`: the [`metrics`](crate::metrics), in the Prometheus text format.
//!
//! It is served by the same [`Listener`] as the HTTP trigger: the same timeouts, a cap of
//! [`MAX_CONNECTIONS`] connections, and back-off when accepting fails.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};

use crate::config::RuntimeConfig;
use crate::lifecycle::Shutdown;
use crate::listener::{ConnectionPolicy, Listener};

/// How many connections the admin endpoint keeps open at once (probes and scrapers).
pub const MAX_CONNECTIONS: usize = 64;

/// Whether the runtime is ready to serve; shared with the admin server.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the runtime ready (or not).
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Whether the runtime is ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Binds `addr`; the returned future serves the admin endpoint until `shutdown` fires (which
/// the runtime does only after the triggers have drained, so probes see `/readyz` answer 503
/// during the drain).
pub async fn bind(
    addr: SocketAddr,
    config: &RuntimeConfig,
    readiness: Readiness,
    shutdown: Shutdown,
) -> Result<impl std::future::Future<Output = Result<()>> + use<>> {
    let policy = ConnectionPolicy {
        header_timeout: config.header_timeout,
        idle_timeout: config.idle_timeout,
        max_connections: MAX_CONNECTIONS,
    };
    let listener = Listener::bind(addr, "OMNIA_ADMIN_ADDR", "admin", policy).await?;
    tracing::info!(
        "admin: health checks on http://{}/livez and /readyz, metrics on /metrics",
        listener.local_addr()
    );
    Ok(listener.serve(
        move |_| {
            let readiness = readiness.clone();
            hyper::service::service_fn(move |req| {
                let ready = readiness.get();
                async move { Ok::<_, Infallible>(respond(&req, ready)) }
            })
        },
        shutdown,
    ))
}

fn respond(req: &Request<hyper::body::Incoming>, ready: bool) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        "/livez" => (StatusCode::OK, Bytes::from_static(b"ok\n")),
        "/readyz" if ready => (StatusCode::OK, Bytes::from_static(b"ready\n")),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            Bytes::from_static(b"not ready\n"),
        ),
        "/metrics" => (StatusCode::OK, Bytes::from(crate::metrics::render())),
        _ => (
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"not found: try /livez, /readyz or /metrics\n"),
        ),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}
