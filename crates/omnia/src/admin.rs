//! The admin endpoint (`OMNIA_ADMIN_ADDR`): health checks and metrics on an address separate
//! from the triggers, so orchestrators can probe a runtime that is saturated with traffic.
//!
//! * `GET /livez`: 200 while the process runs.
//! * `GET /readyz`: 200 once backends are connected, the component is pre-instantiated and
//!   every trigger is listening; 503 before that and again once shutdown has begun (so load
//!   balancers stop routing here). The endpoint keeps answering until the drain is over. When
//!   the last reload failed, a second line says why (the application before it still serves).
//! * `GET /metrics`: the [`metrics`](crate::metrics), in the Prometheus text format.
//! * `POST /reload`: reloads the application, as `SIGHUP` does (202; the outcome is logged, on
//!   `/readyz` and in `omnia_reloads_total`).
//!
//! It is served by the same [`Listener`] as the HTTP trigger: the same timeouts, a cap of
//! [`MAX_CONNECTIONS`] connections, and back-off when accepting fails.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use tokio::sync::mpsc;

use crate::config::RuntimeConfig;
use crate::lifecycle::Shutdown;
use crate::listener::{ConnectionPolicy, Listener};

/// How many connections the admin endpoint keeps open at once (probes and scrapers).
pub const MAX_CONNECTIONS: usize = 64;

/// Whether the runtime is ready to serve, and what `/readyz` says besides; shared with the
/// admin server.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    ready: Arc<AtomicBool>,
    detail: Arc<Mutex<Option<String>>>,
}

impl Readiness {
    /// Marks the runtime ready (or not).
    pub fn set(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Whether the runtime is ready.
    pub fn get(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// A line `/readyz` adds to its answer (why the last reload failed), or none.
    pub fn set_detail(&self, detail: Option<String>) {
        *self.detail.lock().unwrap_or_else(PoisonError::into_inner) = detail;
    }

    /// The `/readyz` body: `ready` or `not ready`, and the detail, if any.
    fn body(&self) -> String {
        let state = if self.get() { "ready" } else { "not ready" };
        match &*self.detail.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(detail) => format!("{state}\n{detail}\n"),
            None => format!("{state}\n"),
        }
    }
}

/// Binds `addr`; the returned future serves the admin endpoint until `shutdown` fires (which
/// the runtime does only after the triggers have drained, so probes see `/readyz` answer 503
/// during the drain).
pub async fn bind(
    addr: SocketAddr,
    config: &RuntimeConfig,
    readiness: Readiness,
    reload: mpsc::Sender<()>,
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
            let reload = reload.clone();
            hyper::service::service_fn(move |req| {
                let response = respond(&req, &readiness, &reload);
                async move { Ok::<_, Infallible>(response) }
            })
        },
        shutdown,
    ))
}

fn respond(
    req: &Request<hyper::body::Incoming>,
    readiness: &Readiness,
    reload: &mpsc::Sender<()>,
) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        "/reload" if req.method() == hyper::Method::POST => {
            // A reload already pending reads the same files.
            let _ = reload.try_send(());
            (
                StatusCode::ACCEPTED,
                Bytes::from_static(b"reloading: see /readyz and the log for the outcome\n"),
            )
        }
        "/reload" => (
            StatusCode::METHOD_NOT_ALLOWED,
            Bytes::from_static(b"POST /reload reloads the application\n"),
        ),
        "/livez" => (StatusCode::OK, Bytes::from_static(b"ok\n")),
        "/readyz" if readiness.get() => (StatusCode::OK, Bytes::from(readiness.body())),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            Bytes::from(readiness.body()),
        ),
        "/metrics" => (StatusCode::OK, Bytes::from(crate::metrics::render())),
        _ => (
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"not found: try /livez, /readyz, /metrics or POST /reload\n"),
        ),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}
