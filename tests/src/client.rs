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

/// Raw HTTP/1 over TCP, for requests a well-behaved client library will not send (missing or
/// doubled `Host`, broken chunked bodies, half-sent headers).
pub mod raw {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    /// Connects to `addr`.
    pub fn connect(addr: &str) -> TcpStream {
        let stream = TcpStream::connect(addr).unwrap_or_else(|err| panic!("connect {addr}: {err}"));
        stream.set_nodelay(true).expect("nodelay");
        stream
    }

    /// Sends `request` on a new connection and returns everything the server sent until it
    /// closed the connection or `timeout` passed.
    pub fn exchange(addr: &str, request: &[u8], timeout: Duration) -> String {
        let mut stream = connect(addr);
        stream.write_all(request).expect("send");
        read_until_closed(&mut stream, timeout).0
    }

    /// Reads until the peer closes (returns the text and `true`) or `timeout` passes (`false`).
    pub fn read_until_closed(stream: &mut TcpStream, timeout: Duration) -> (String, bool) {
        let started = Instant::now();
        let mut received = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return (String::from_utf8_lossy(&received).into_owned(), false);
            }
            stream.set_read_timeout(Some(left)).expect("read timeout");
            match stream.read(&mut buf) {
                Ok(0) => return (String::from_utf8_lossy(&received).into_owned(), true),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                // A reset is a close too.
                Err(_) => return (String::from_utf8_lossy(&received).into_owned(), true),
            }
        }
    }

    /// The status code of the first response in `text` (`HTTP/1.1 200 OK` gives 200).
    pub fn status(text: &str) -> u16 {
        text.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"))
    }
}
