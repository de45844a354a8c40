//! The admin endpoint (`OMNIA_ADMIN_ADDR`): health checks on an address separate from the
//! triggers, so orchestrators can probe a runtime that is saturated with traffic.
//!
//! * `GET /livez`: 200 while the process runs.
//! * `GET /readyz`: 200 once backends are connected and the component is pre-instantiated;
//!   503 before that and again once shutdown has begun (so load balancers stop routing here).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::lifecycle::Shutdown;

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

/// Binds `addr`; the returned future serves the health endpoints until it is dropped or
/// aborted. Readiness turns false when `shutdown` fires.
pub async fn bind(
    addr: SocketAddr,
    readiness: Readiness,
    mut shutdown: Shutdown,
) -> Result<impl std::future::Future<Output = ()>> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on OMNIA_ADMIN_ADDR={addr}"))?;
    tracing::info!(
        "admin: health checks on http://{}/livez and /readyz",
        listener.local_addr()?
    );
    let unready = readiness.clone();
    tokio::spawn(async move {
        shutdown.requested().await;
        unready.set(false);
    });
    Ok(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!("admin: accept failed: {err}");
                    continue;
                }
            };
            let readiness = readiness.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let ready = readiness.get();
                    async move { Ok::<_, Infallible>(respond(&req, ready)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

fn respond(req: &Request<hyper::body::Incoming>, ready: bool) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        "/livez" => (StatusCode::OK, "ok\n"),
        "/readyz" if ready => (StatusCode::OK, "ready\n"),
        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => (StatusCode::NOT_FOUND, "not found: try /livez or /readyz\n"),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}
