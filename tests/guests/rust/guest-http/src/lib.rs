//! Bindings for the HTTP test guests and the few helpers they all use. A guest crate implements
//! `Guest` and calls `guest_http::export!(Component);`.
//!
//! The bindings are for the widest world the HTTP guests need, `omnia:guests/guest-http`
//! (wasi:http/proxy plus wasi:keyvalue, wasi:config and wasi:sql): a component imports only the
//! interfaces its code calls, so a plain HTTP guest still imports no wasi:keyvalue.

wit_bindgen::generate!({
    path: "../../wit",
    world: "omnia:guests/guest-http",
    pub_export_macro: true,
    default_bindings_module: "guest_http",
    generate_all,
});

pub use exports::wasi::http::incoming_handler::Guest;
pub use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse,
    ResponseOutparam,
};
pub use wasi::io::streams::StreamError;

/// Percent-decodes `text` (`%XX` is a byte); `None` if an escape is malformed or the result is
/// not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = text.bytes();
    let mut decoded = Vec::with_capacity(text.len());
    while let Some(byte) = bytes.next() {
        if byte == b'%' {
            let high = (bytes.next()? as char).to_digit(16)?;
            let low = (bytes.next()? as char).to_digit(16)?;
            decoded.push((high << 4 | low) as u8);
        } else {
            decoded.push(byte);
        }
    }
    String::from_utf8(decoded).ok()
}

/// Sends a complete response: status, headers, body.
pub fn respond(out: ResponseOutparam, status: u16, headers: &[(&str, &[u8])], body: &[u8]) {
    let list: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_vec()))
        .collect();
    let fields = Fields::from_list(&list).expect("valid headers");
    let response = OutgoingResponse::new(fields);
    response.set_status_code(status).expect("valid status");
    let body_handle = response.body().expect("body once");
    ResponseOutparam::set(out, Ok(response));
    let stream = body_handle.write().expect("stream once");
    for chunk in body.chunks(4096) {
        stream.blocking_write_and_flush(chunk).expect("write body");
    }
    drop(stream);
    OutgoingBody::finish(body_handle, None).expect("finish body");
}

/// What the host granted, for the grant tests: `/env/NAME` (the variable's value), `/file/PATH`
/// (the file's text), `/write/PATH` (writes `written` to it), `/connect/ADDR` (opens a TCP
/// connection). `Some((200, result))` when allowed, `Some((403, the error))` when not, `None`
/// for any other path.
pub fn probe(path: &str) -> Option<(u16, String)> {
    let result = if let Some(name) = path.strip_prefix("/env/") {
        std::env::var(name).map_err(|e| e.to_string())
    } else if let Some(file) = path.strip_prefix("/file") {
        std::fs::read_to_string(file).map_err(|e| e.to_string())
    } else if let Some(file) = path.strip_prefix("/write") {
        std::fs::write(file, "written")
            .map(|()| "written".into())
            .map_err(|e| e.to_string())
    } else if let Some(addr) = path.strip_prefix("/connect/") {
        connect(addr).map(|()| "connected".into())
    } else {
        return None;
    };
    Some(match result {
        Ok(text) => (200, format!("{text}\n")),
        Err(err) => (403, format!("{err}\n")),
    })
}

/// Opens an IPv4 TCP connection with wasi:sockets (std's `TcpStream` needs socket support that
/// Debian's wasi-libc lacks).
fn connect(addr: &str) -> Result<(), String> {
    use wasi::sockets::network::{IpSocketAddress, Ipv4SocketAddress, IpAddressFamily};
    let addr: std::net::SocketAddrV4 = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let [a, b, c, d] = addr.ip().octets();
    let network = wasi::sockets::instance_network::instance_network();
    let socket = wasi::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4)
        .map_err(|e| format!("{e:?}"))?;
    let remote = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port: addr.port(),
        address: (a, b, c, d),
    });
    socket
        .start_connect(&network, remote)
        .map_err(|e| format!("{e:?}"))?;
    loop {
        match socket.finish_connect() {
            Ok(_streams) => return Ok(()),
            Err(wasi::sockets::network::ErrorCode::WouldBlock) => socket.subscribe().block(),
            Err(e) => return Err(format!("{e:?}")),
        }
    }
}

/// What the outgoing-request setters answer for each of `setter_cases`' values: a line
/// `setter "value": ok` or `... err` each.
pub fn setters() -> String {
    use setter_cases::Setter;
    use wasi::http::types::{OutgoingRequest, Scheme};
    setter_cases::table(|setter, v| {
        let request = OutgoingRequest::new(Fields::new());
        match setter {
            Setter::PathWithQuery => request.set_path_with_query(Some(v)).is_ok(),
            Setter::Authority => request.set_authority(Some(v)).is_ok(),
            Setter::Scheme => request.set_scheme(Some(&Scheme::Other(v.into()))).is_ok(),
            Setter::Method => request.set_method(&Method::Other(v.into())).is_ok(),
        }
    })
}

/// Reads a request's whole body.
pub fn read_body(request: &IncomingRequest) -> Vec<u8> {
    let body = request.consume().expect("body once");
    let stream = body.stream().expect("stream once");
    let mut data = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(err)) => panic!("reading body: {}", err.to_debug_string()),
        }
    }
    drop(stream);
    let _ = IncomingBody::finish(body);
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
