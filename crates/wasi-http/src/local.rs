//! Calls between the guests of an application, without a socket.
//!
//! A guest's outgoing request to `http://<id>.omnia.local/...` (any scheme and port) is served
//! in-process by the guest `<id>`'s HTTP handler, as if it had come in through the listener:
//! the same dispatch (a fresh 0.2 instance, or a 0.3 instance of the pool), the callee's own
//! limits and grants, a work slot of its own (none free: `connection-limit-reached`), a span
//! whose parent is the caller's (the `traceparent` the caller's request carries), and the
//! callee's generation of a reload. What the callee sees: the full URL's path, the host
//! `<id>.omnia.local`, no `omnia-matched-route` (none is matched). Like any outgoing request,
//! a local call must be granted: the caller's `http = { hosts = ["<id>.omnia.local"] }` (or
//! `OMNIA_HTTP_ALLOWED_HOSTS` for a guest on its own). No such guest, or one that does not
//! serve HTTP: `destination-not-found`. Calls lead to calls at most [`MAX_DEPTH`] deep
//! (`loop-detected` past it); a WASI 0.3 caller's depth is its instance's, not its request's,
//! so its chains are bounded by the work slots instead.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use http_body_util::combinators::UnsyncBoxBody;
use wasmtime_wasi_http::Error;

/// The domain of local calls: `<id>.omnia.local` names the guest `<id>`.
pub const LOCAL_DOMAIN: &str = ".omnia.local";

/// How many local calls may lead to one another.
pub const MAX_DEPTH: u32 = 8;

/// The body of an outgoing request or its response.
pub(crate) type Body = UnsyncBoxBody<bytes::Bytes, Error>;

/// What a local call comes to.
pub(crate) type Answer = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Error>> + Send>>;

/// What serves local calls: the HTTP trigger, once bound.
pub(crate) trait LocalCalls: Send + Sync {
    /// Serves `request` with the guest `id`, as the `depth`-th call of a chain.
    fn call(&self, id: &str, request: http::Request<Body>, depth: u32) -> Answer;
}

/// The process's HTTP trigger, which serves every local call.
static SERVER: OnceLock<Arc<dyn LocalCalls>> = OnceLock::new();

/// Makes `server` the one that serves local calls (the HTTP trigger, when it binds; one per
/// process).
pub(crate) fn serve_with(server: Arc<dyn LocalCalls>) {
    let _ = SERVER.set(server);
}

/// The guest `host` names, if it is a local call's (`<id>.omnia.local`, any case).
pub(crate) fn guest_of(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    let id = host.strip_suffix(LOCAL_DOMAIN)?;
    (!id.is_empty() && !id.contains('.')).then(|| id.to_owned())
}

/// Sends `request` to the guest `id`, from work `depth` calls deep.
pub(crate) fn call(id: &str, request: http::Request<Body>, depth: u32) -> Answer {
    if depth >= MAX_DEPTH {
        tracing::warn!(
            "http: local call to {id}{LOCAL_DOMAIN} refused: {MAX_DEPTH} calls lead to it \
             (loop-detected)"
        );
        return Box::pin(async { Err(Error::LoopDetected) });
    }
    if let Some(server) = SERVER.get() {
        return server.call(id, request, depth + 1);
    }
    tracing::warn!("http: local call to {id}{LOCAL_DOMAIN}: no guest of this process serves HTTP");
    Box::pin(async { Err(Error::DestinationNotFound) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_host_names_one_guest() {
        assert_eq!(guest_of("api.omnia.local").as_deref(), Some("api"));
        assert_eq!(guest_of("API.Omnia.Local").as_deref(), Some("api"));
        for host in [
            "omnia.local",
            ".omnia.local",
            "a.b.omnia.local",
            "api.omnia.localx",
            "api",
        ] {
            assert_eq!(guest_of(host), None, "{host}");
        }
    }
}
