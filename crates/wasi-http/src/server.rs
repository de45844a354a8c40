//! The HTTP trigger: hyper in front, one fresh guest instance per request behind.
//!
//! Each connection is served with HTTP/1.1 or HTTP/2 (detected from the first bytes, so
//! `h2c` prior knowledge works). Each request gets a new store and instance made from the one
//! `ProxyPre` built at start-up, and the guest's `wasi:http/incoming-handler.handle` runs in its
//! own task. The outcome maps to a status code when the guest did not answer itself:
//!
//! | what happened | status |
//! |---|---|
//! | more than `OMNIA_MAX_CONCURRENCY` requests in flight | 503, at once |
//! | `Content-Length` above `OMNIA_HTTP_MAX_BODY` | 413, before the guest runs |
//! | the guest trapped (panic, `unreachable`, out of memory) | 500 |
//! | the guest ran past `OMNIA_REQUEST_TIMEOUT` | 504 |
//!
//! A failing request never affects another: stores share nothing but the engine.

use std::convert::Infallible;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use omnia::{HostView, Shutdown, State};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime_wasi_http::Error as HttpError;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::{HttpConfig, WasiHttpCtx, http_view};

/// The export this trigger calls (any 0.2.x version).
pub const HANDLER_EXPORT_PREFIX: &str = "wasi:http/incoming-handler@0.2";

/// Whether `component` exports `wasi:http/incoming-handler`.
pub fn exports_handler(engine: &Engine, component: &Component) -> bool {
    omnia::component::exports_interface(engine, component, HANDLER_EXPORT_PREFIX)
}

/// Listens on `config.addr` and serves until `shutdown`, then stops accepting and waits up to
/// the grace period for in-flight requests.
pub async fn serve<S>(state: S, config: Arc<HttpConfig>, mut shutdown: Shutdown) -> Result<()>
where
    S: State,
    S::StoreCtx: HostView<WasiHttpCtx>,
{
    let pre = ProxyPre::new(state.instance_pre().clone())
        .map_err(anyhow::Error::from)
        .context("the component's wasi:http/incoming-handler export has an unexpected type")?;
    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on OMNIA_HTTP_ADDR={}", config.addr))?;
    let local = listener.local_addr()?;
    let reachable = match local.ip() {
        ip if ip.is_unspecified() => std::net::SocketAddr::new([127, 0, 0, 1].into(), local.port()),
        _ => local,
    };
    tracing::info!("http: listening on http://{local} (try: curl http://{reachable}/)");

    let permits = Arc::new(Semaphore::new(state.config().max_concurrency));
    let handler = Arc::new(Handler {
        pre,
        state,
        config,
        permits,
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!("http: accept failed: {err}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.requested() => break,
        };
        let _ = stream.set_nodelay(true);
        let handler = Arc::clone(&handler);
        let service = hyper::service::service_fn(move |req| {
            let handler = Arc::clone(&handler);
            async move { Ok::<_, Infallible>(handler.handle(req).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!("http: connection closed with an error: {err}");
            }
        });
    }

    drop(listener); // new connections are refused from here on
    let open = graceful.count();
    let grace = shutdown.grace();
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("http: drained {open} connection(s)"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!("http: grace period of {grace:?} over; closing connections still open");
        }
    }
    Ok(())
}

struct Handler<S: State> {
    pre: ProxyPre<S::StoreCtx>,
    state: S,
    config: Arc<HttpConfig>,
    permits: Arc<Semaphore>,
}

/// Why a guest call ended without a response.
enum Failure {
    Timeout,
    Trap(wasmtime::Error),
    NoResponse,
}

impl<S> Handler<S>
where
    S: State,
    S::StoreCtx: HostView<WasiHttpCtx>,
{
    async fn handle(&self, req: Request<Incoming>) -> Response<HyperOutgoingBody> {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            tracing::warn!(
                "http: {} requests in flight, refusing with 503",
                self.state.config().max_concurrency
            );
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "server busy: too many requests in flight (OMNIA_MAX_CONCURRENCY)\n",
            );
        };
        let max_body = self.config.max_body;
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max_body as u64) {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body larger than {max_body} bytes (OMNIA_HTTP_MAX_BODY)\n"),
            );
        }
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let req = req.map(move |body| {
            Limited::new(body, max_body).map_err(move |err| match err.downcast::<hyper::Error>() {
                Ok(err) => HttpError::from(*err),
                Err(_) => HttpError::HttpRequestBodySize(Some(max_body as u64)),
            })
        });

        match self.call_guest(req, permit).await {
            Ok(response) => response,
            Err(Failure::Timeout) => {
                let timeout = self.state.config().request_timeout;
                tracing::warn!(
                    "http: {method} {path}: guest ran past OMNIA_REQUEST_TIMEOUT ({timeout:?})"
                );
                plain(StatusCode::GATEWAY_TIMEOUT, "guest timed out\n")
            }
            Err(Failure::Trap(err)) => {
                tracing::error!("http: {method} {path}: guest failed: {err:#}");
                plain(StatusCode::INTERNAL_SERVER_ERROR, "guest failed\n")
            }
            Err(Failure::NoResponse) => {
                tracing::error!("http: {method} {path}: guest returned without setting a response");
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "guest sent no response\n",
                )
            }
        }
    }

    /// Runs the guest for one request in its own task; returns the response head as soon as the
    /// guest sets it (the body keeps streaming from the task).
    async fn call_guest<B>(
        &self,
        req: Request<B>,
        permit: OwnedSemaphorePermit,
    ) -> Result<Response<HyperOutgoingBody>, Failure>
    where
        B: hyper::body::Body<Data = Bytes, Error = HttpError> + Send + 'static,
    {
        let mut store = self.state.new_store();
        let (tx, rx) = oneshot::channel();
        let (req, out) = {
            let mut view = http_view(store.data_mut());
            let req = match view.new_incoming_request(Scheme::Http, req) {
                Ok(req) => req,
                Err(err) => return Ok(plain(StatusCode::BAD_REQUEST, &format!("{err}\n"))),
            };
            let out = view.new_response_outparam(tx).map_err(Failure::Trap)?;
            (req, out)
        };
        let pre = self.pre.clone();
        let timeout = self.state.config().request_timeout;
        let task = tokio::spawn(async move {
            let _permit = permit;
            let call = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            };
            match tokio::time::timeout(timeout, call).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(Failure::Trap(err)),
                Err(_) => Err(Failure::Timeout),
            }
        });

        match rx.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Ok(plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("guest answered with an error: {code:?}\n"),
            )),
            Err(_) => match task.await {
                Ok(Ok(())) => Err(Failure::NoResponse),
                Ok(Err(failure)) => Err(failure),
                Err(join) => Err(Failure::Trap(wasmtime::Error::msg(format!(
                    "guest task failed: {join}"
                )))),
            },
        }
    }
}

/// A plain-text response made by the runtime itself.
fn plain(status: StatusCode, body: &str) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(body.to_owned()))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
