//! The checks a request passes before a guest sees it, and the span it is served in.
//!
//! `Host` and an absolute-form target must carry a valid authority (RFC 9112 §3.2, RFC 3986
//! §3.2, see [`super::authority`]); an HTTP/1.1 request must have exactly one `Host`, an
//! HTTP/1.0 request without one is served with the listener's address as its authority. A 0.3
//! guest learns the scheme and authority from the request's URI, so its requests are given an
//! absolute one. (The body's limits are in [`super::request_body`].)

use hyper::Request;
use omnia::listener::ConnInfo;
use omnia::manifest::routes::{HttpRoutes, MATCHED_ROUTE_HEADER, PATH_INFO_HEADER, request_host};
use omnia::trace::{SPAN_TARGET, TRACEPARENT, TraceContext, Work};

use super::authority;

/// The request's span (OpenTelemetry HTTP server conventions), its parent the client's
/// `traceparent`, if any; `conn` is the connection it came on (none for a local call).
///
/// When the runtime records a span for the request, the request's `traceparent` is rewritten
/// to name that span (the client's span is its parent), as a tracing proxy forwards a request.
/// A guest that reads the header, which is how a WASI 0.3 guest learns its request's trace (its
/// instance serves many requests), then makes its spans children of the request's span, and a
/// guest that forwards the header propagates the trace through it. When nothing records spans
/// the header is left as the client sent it.
pub(super) fn span<B>(req: &mut Request<B>, conn: Option<ConnInfo>) -> Work {
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
        server.address = tracing::field::Empty,
        server.port = tracing::field::Empty,
        client.address = tracing::field::Empty,
        omnia.component = tracing::field::Empty,
    );
    // A local call (see `crate::local`) comes through no connection.
    if let Some(conn) = conn {
        span.record("server.address", tracing::field::display(conn.local.ip()));
        span.record("server.port", conn.local.port());
        span.record("client.address", tracing::field::display(conn.peer.ip()));
    }
    let work = omnia::trace::start_span(span, parent);
    if let Some(trace) = work.trace
        && Some(trace) != parent
        && let Ok(value) = http::HeaderValue::from_str(&trace.traceparent())
    {
        req.headers_mut().insert(TRACEPARENT, value);
    }
    work
}

/// The guest (by its index in `routes`) whose route takes the request, and the request with
/// that route named in `omnia-matched-route` and `omnia-path-info` (any the client sent are
/// removed first); `None` if no route does: see [`omnia::manifest::routes`].
pub(super) fn routed<B>(
    mut req: Request<B>,
    routes: &HttpRoutes<usize>,
) -> Option<(usize, Request<B>)> {
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let matched = routes.route(request_host(&req), target)?;
    let guest = *matched.component;
    let prefix = http::HeaderValue::from_str(matched.prefix).ok();
    let path_info = http::HeaderValue::from_str(&matched.path_info).ok();
    let headers = req.headers_mut();
    headers.remove(MATCHED_ROUTE_HEADER);
    headers.remove(PATH_INFO_HEADER);
    if let Some(prefix) = prefix {
        headers.insert(MATCHED_ROUTE_HEADER, prefix);
    }
    if let Some(path_info) = path_info {
        headers.insert(PATH_INFO_HEADER, path_info);
    }
    Some((guest, req))
}

/// Checks `Host` and the authority of an absolute-form target (RFC 9112 §3.2, RFC 3986 §3.2,
/// see [`authority`]), and gives a request without an authority the listener's address as its
/// `Host`, as an HTTP/1.0 client may omit it.
pub(super) fn with_authority<B>(
    mut req: Request<B>,
    conn: ConnInfo,
) -> Result<Request<B>, &'static str> {
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

/// The request with an absolute URI (`http://host/path`), which is how a 0.3 guest learns the
/// scheme and authority (0.2 guests get them from the runtime when their request is made).
pub(super) fn absolute_uri<B>(mut req: Request<B>) -> Result<Request<B>, &'static str> {
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
