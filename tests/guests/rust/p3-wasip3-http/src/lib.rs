//! A WASI 0.3 HTTP handler written the way upstream omnia writes its guests: with the crates.io
//! `wasip3` 0.7.0 bindings and their `http-compat` feature, and no WIT or bindings of its own.
//! It exports `wasi:http/handler@0.3.0` with `wasip3::http::service::export!` and implements
//! `wasip3::exports::http::handler::Guest`; every request goes through
//! `http_from_wasi_request` into an `http::Request`, is routed, and its `http::Response` goes
//! back through `http_into_wasi_response`, as upstream's `omnia_wasi_http::serve` does (minus
//! axum). So it proves that such guests run unchanged on Omnia.
//!
//! * `GET /hello`: 200 `hello from wasip3`, `content-type: text/plain`;
//! * `POST /echo`: 200 with the request body (read to its end with `http-body-util`), the header
//!   `x-echo-method: POST`, and each request header `x-<name>: <value>` echoed as
//!   `echo-x-<name>: <value>`;
//! * `GET /stream?n=<N>`: 200 with N lines `line 0\n` .. `line <N-1>\n`, one body frame per
//!   line: `http_into_wasi_response` writes them to the response's body stream from a task it
//!   spawns, which goes on writing after the handler has returned the response (400 if `n` is
//!   missing or no number);
//! * anything else: 404 `no route`.
//!
//! Built with the `release-p3` profile, it imports and exports `wasi:*@0.3.0` only.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Either, Full};
use wasip3::http::types::{self as p3, ErrorCode};
use wasip3::http_compat::{http_from_wasi_request, http_into_wasi_response, IncomingRequestBody};

struct Http;
wasip3::http::service::export!(Http);

impl wasip3::exports::http::handler::Guest for Http {
    async fn handle(request: p3::Request) -> Result<p3::Response, ErrorCode> {
        let request = http_from_wasi_request(request)?;
        let response = serve(request).await?;
        http_into_wasi_response(response)
    }
}

/// A whole body, or the streamed lines of `/stream`.
type ResponseBody = Either<Full<Bytes>, Lines>;

async fn serve(request: Request<IncomingRequestBody>) -> Result<Response<ResponseBody>, ErrorCode> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/hello") => text(StatusCode::OK, "hello from wasip3"),
        (&Method::POST, "/echo") => echo(request).await,
        (&Method::GET, "/stream") => {
            let n = request
                .uri()
                .query()
                .unwrap_or_default()
                .split('&')
                .find_map(|pair| pair.strip_prefix("n="))
                .and_then(|n| n.parse().ok());
            match n {
                Some(n) => Response::builder()
                    .header(http::header::CONTENT_TYPE, "text/plain")
                    .body(Either::Right(Lines { next: 0, n }))
                    .map_err(internal),
                None => text(StatusCode::BAD_REQUEST, "stream needs ?n=<count>"),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "no route"),
    }
}

/// The request's body and its `x-*` headers, back.
async fn echo(request: Request<IncomingRequestBody>) -> Result<Response<ResponseBody>, ErrorCode> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let mut response = Response::builder().header("x-echo-method", parts.method.as_str());
    for (name, value) in &parts.headers {
        if name.as_str().starts_with("x-") {
            response = response.header(format!("echo-{name}"), value);
        }
    }
    response
        .body(Either::Left(Full::new(body)))
        .map_err(internal)
}

fn text(status: StatusCode, text: &'static str) -> Result<Response<ResponseBody>, ErrorCode> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(Either::Left(Full::new(Bytes::from_static(text.as_bytes()))))
        .map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> ErrorCode {
    ErrorCode::InternalError(Some(e.to_string()))
}

/// `line {next}\n` .. `line {n-1}\n`, a frame each.
struct Lines {
    next: u64,
    n: u64,
}

impl Body for Lines {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.next >= self.n {
            return Poll::Ready(None);
        }
        let line = format!("line {}\n", self.next);
        self.next += 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(line)))))
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.n
    }
}
