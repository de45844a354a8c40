//! A small HTTP client for tests: HTTP/1.1, or HTTP/2 with prior knowledge, over loopback.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A complete response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// HTTP version the server answered with.
    pub version: http::Version,
}

impl Response {
    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Starts `n` concurrent `GET url` requests, each on its own connection.
pub fn spawn_gets(url: &str, n: usize) -> Vec<tokio::task::JoinHandle<Result<Response, String>>> {
    (0..n)
        .map(|_| {
            let url = url.to_string();
            tokio::spawn(async move { get(&url).await })
        })
        .collect()
}

/// `GET url` over HTTP/1.1.
pub async fn get(url: &str) -> Result<Response, String> {
    request(Method::GET, url, &[], Bytes::new(), false).await
}

/// Sends one request; `http2` uses HTTP/2 with prior knowledge. Times out after 60 s.
pub async fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    http2: bool,
) -> Result<Response, String> {
    let mut builder = Client::builder(TokioExecutor::new());
    builder.http2_only(http2).pool_max_idle_per_host(0);
    let client = builder.build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    let send = async {
        let response = client.request(req).await.map_err(|e| format!("{e:?}"))?;
        let status = response.status();
        let version = response.version();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Response {
            status,
            headers,
            body,
            version,
        })
    };
    tokio::time::timeout(Duration::from_mins(1), send)
        .await
        .map_err(|_| format!("{url}: no response within 60 s"))?
}
