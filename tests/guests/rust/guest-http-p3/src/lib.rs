//! Bindings for the WASIp3 HTTP test guests (`omnia:guests-p3/http-service`: wasi:http/service
//! @0.3.0) and the few helpers they use. A guest crate implements `Guest` (an `async fn handle`)
//! and calls `guest_http_p3::export!(Component);`.

wit_bindgen::generate!({
    path: "../../wit/p3",
    world: "omnia:guests-p3/http-service",
    pub_export_macro: true,
    default_bindings_module: "guest_http_p3",
    generate_all,
});

use std::sync::atomic::{AtomicU64, Ordering};

pub use exports::wasi::http::handler::Guest;
pub use wasi::cli::stdout;
pub use wasi::clocks::monotonic_clock;
pub use wasi::http::types::{ErrorCode, Fields, Method, Request, Response, Trailers};
pub use wit_bindgen::{spawn_local, FutureWriter, StreamReader, StreamResult, StreamWriter};

/// What the host granted, for the grant tests, through the 0.3 interfaces: `/env/NAME` (the
/// variable's value), `/file/PATH` (the file's text), `/write/PATH` (opens it for writing),
/// `/connect/IP:PORT` (an IPv4 TCP connection). `Some((200, result))` when allowed,
/// `Some((403, the error))` when not, `None` for any other path.
pub async fn probe(path: &str) -> Option<(u16, String)> {
    let result = if let Some(name) = path.strip_prefix("/env/") {
        wasi::cli::environment::get_environment()
            .into_iter()
            .find_map(|(k, v)| (k == name).then_some(v))
            .ok_or_else(|| format!("{name} is not set"))
    } else if let Some(file) = path.strip_prefix("/file") {
        read_file(file).await
    } else if let Some(file) = path.strip_prefix("/write") {
        open(file, true).await.map(|_| "writable".to_string())
    } else if let Some(addr) = path.strip_prefix("/connect/") {
        connect(addr).await.map(|()| "connected".to_string())
    } else {
        return None;
    };
    Some(match result {
        Ok(text) => (200, format!("{text}\n")),
        Err(err) => (403, format!("{err}\n")),
    })
}

/// Opens `path` (absolute) under the preopened directory it lies in.
async fn open(path: &str, write: bool) -> Result<wasi::filesystem::types::Descriptor, String> {
    use wasi::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
    let (dir, rest) = wasi::filesystem::preopens::get_directories()
        .into_iter()
        .find_map(|(dir, name)| {
            let rest = path.strip_prefix(name.trim_end_matches('/'))?.strip_prefix('/')?;
            Some((dir, rest.to_string()))
        })
        .ok_or_else(|| format!("no preopened directory holds {path}"))?;
    let (open, flags) = if write {
        (OpenFlags::CREATE | OpenFlags::TRUNCATE, DescriptorFlags::WRITE)
    } else {
        (OpenFlags::empty(), DescriptorFlags::READ)
    };
    dir.open_at(PathFlags::empty(), rest, open, flags)
        .await
        .map_err(|e| format!("{e:?}"))
}

async fn read_file(path: &str) -> Result<String, String> {
    let file = open(path, false).await?;
    let (mut stream, done) = file.read_via_stream(0);
    let mut data = Vec::new();
    loop {
        let (status, chunk) = stream.read(Vec::with_capacity(4096)).await;
        data.extend_from_slice(&chunk);
        if !matches!(status, StreamResult::Complete(_)) {
            break;
        }
    }
    drop(stream);
    done.await.map_err(|e| format!("{e:?}"))?;
    String::from_utf8(data).map_err(|e| e.to_string())
}

async fn connect(addr: &str) -> Result<(), String> {
    use wasi::sockets::types::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, TcpSocket};
    let addr: std::net::SocketAddrV4 = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let [a, b, c, d] = addr.ip().octets();
    let socket = TcpSocket::create(IpAddressFamily::Ipv4).map_err(|e| format!("{e:?}"))?;
    socket
        .connect(IpSocketAddress::Ipv4(Ipv4SocketAddress {
            port: addr.port(),
            address: (a, b, c, d),
        }))
        .await
        .map_err(|e| format!("{e:?}"))
}

/// What the request setters answer for each of `setter_cases`' values: a line
/// `setter "value": ok` or `... err` each.
pub fn setters() -> String {
    use setter_cases::Setter;
    use wasi::http::types::Scheme;
    setter_cases::table(|setter, v| {
        let (_, trailers) = wit_future::new::<Result<Option<Trailers>, ErrorCode>>(|| Ok(None));
        let request = Request::new(Fields::new(), None, trailers, None).0;
        match setter {
            Setter::PathWithQuery => request.set_path_with_query(Some(v)).is_ok(),
            Setter::Authority => request.set_authority(Some(v)).is_ok(),
            Setter::Scheme => request.set_scheme(Some(&Scheme::Other(v.into()))).is_ok(),
            Setter::Method => request.set_method(&Method::Other(v.into())).is_ok(),
        }
    })
}

/// A new id of `digits` hex digits (a trace or span id), never all zero: the monotonic clock
/// mixed with a counter, so that ids differ (they are not secret).
pub fn new_id(digits: usize) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let now = monotonic_clock::now();
    let mut out = String::new();
    while out.len() < digits {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mixed =
            now.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n.wrapping_mul(0xbf58_476d_1ce4_e5b9) | 1;
        out.push_str(&format!("{mixed:016x}"));
    }
    out.truncate(digits);
    out
}

/// Waits `ms` milliseconds with `wasi:clocks/monotonic-clock@0.3.0.wait-for`: only this task
/// waits, so other requests on the same instance go on.
pub async fn sleep_ms(ms: u64) {
    monotonic_clock::wait_for(ms.saturating_mul(1_000_000)).await;
}

/// The writing end of a response body: `body` takes the bytes; dropping the whole `Body` ends
/// the body stream first and then sends the trailers (none: the future's default, `Ok(None)`).
pub struct Body {
    pub body: StreamWriter<u8>,
    _trailers: FutureWriter<Result<Option<Trailers>, ErrorCode>>,
}

/// A response with this status and headers whose body is the reading end of a new stream;
/// returns the writing end, which the caller fills (from a spawned task: the response must be
/// returned before the body can flow) and drops to end the body.
pub fn streaming_response(status: u16, headers: &[(&str, &[u8])]) -> (Response, Body) {
    let list: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_vec()))
        .collect();
    let fields = Fields::from_list(&list).expect("valid headers");
    let (body_tx, body_rx) = wit_stream::new::<u8>();
    let (trailers_tx, trailers_rx) =
        wit_future::new::<Result<Option<Trailers>, ErrorCode>>(|| Ok(None));
    let (response, _sent) = Response::new(fields, Some(body_rx), trailers_rx);
    response.set_status_code(status).expect("valid status");
    (response, Body { body: body_tx, _trailers: trailers_tx })
}

/// A complete response: status, headers, body (written by a spawned task after the response is
/// returned).
pub fn respond(status: u16, headers: &[(&str, &[u8])], body: Vec<u8>) -> Response {
    let (response, mut writer) = streaming_response(status, headers);
    spawn_local(async move {
        if !body.is_empty() {
            let _unsent = writer.body.write_all(body).await;
        }
        drop(writer);
    });
    response
}

/// Reads a request's whole body (and its trailers, which it ignores).
pub async fn read_body(request: Request) -> Vec<u8> {
    // `res` tells the host how handling the body went: dropping the writer sends `Ok(())`.
    let (res_tx, res_rx) = wit_future::new::<Result<(), ErrorCode>>(|| Ok(()));
    let (mut stream, trailers) = Request::consume_body(request, res_rx);
    let mut data = Vec::new();
    loop {
        let (status, chunk) = stream.read(Vec::with_capacity(64 * 1024)).await;
        data.extend_from_slice(&chunk);
        match status {
            StreamResult::Complete(_) => {}
            StreamResult::Dropped | StreamResult::Cancelled => break,
        }
    }
    drop(stream);
    // A body that could not be read in full (too large, malformed, the client went away) ends
    // the stream early and fails the trailers: the guest fails, as its 0.2 twin does.
    if let Err(code) = trailers.await {
        panic!("reading body: {code:?}");
    }
    drop(res_tx);
    data
}

/// The method as text.
pub fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(other) => other.clone(),
    }
}
