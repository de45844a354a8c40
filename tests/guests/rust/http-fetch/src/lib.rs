//! Calls the URL in the query (`GET /?url=http://127.0.0.1:8081/x`) with
//! `wasi:http/outgoing-handler` and answers `200` with `upstream <status>\n<body>`, or `502` with
//! `error: <wasi:http error code>`.
use guest_http::wasi::http::outgoing_handler;
use guest_http::wasi::http::types::{Fields, OutgoingRequest, Scheme};
use guest_http::{respond, ErrorCode, Guest, IncomingRequest, ResponseOutparam, StreamError};

struct Component;

impl Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let Some(url) = path.split_once("url=").map(|(_, u)| u.to_string()) else {
            respond(out, 400, &[], b"missing ?url=\n");
            return;
        };
        match fetch(&url) {
            Ok((status, body)) => {
                let mut text = format!("upstream {status}\n").into_bytes();
                text.extend_from_slice(&body);
                respond(out, 200, &[], &text);
            }
            Err(code) => respond(out, 502, &[], format!("error: {code:?}\n").as_bytes()),
        }
    }
}

fn fetch(url: &str) -> Result<(u16, Vec<u8>), ErrorCode> {
    let rest = url.strip_prefix("http://").ok_or(ErrorCode::HttpRequestUriInvalid)?;
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request.set_scheme(Some(&Scheme::Http)).map_err(|()| ErrorCode::HttpRequestUriInvalid)?;
    request.set_authority(Some(authority)).map_err(|()| ErrorCode::HttpRequestUriInvalid)?;
    request.set_path_with_query(Some(path)).map_err(|()| ErrorCode::HttpRequestUriInvalid)?;
    let pending = outgoing_handler::handle(request, None)?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or(ErrorCode::InternalError(Some("response not ready".into())))?
        .map_err(|()| ErrorCode::InternalError(Some("response taken twice".into())))??;
    let status = response.status();
    let body = response.consume().map_err(|()| ErrorCode::InternalError(None))?;
    let stream = body.stream().map_err(|()| ErrorCode::InternalError(None))?;
    let mut data = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(_)) => return Err(ErrorCode::HttpProtocolError),
        }
    }
    Ok((status, data))
}

guest_http::export!(Component);
