//! Bindings for the HTTP test guests and the few helpers they all use. A guest crate implements
//! `Guest` and calls `guest_http::export!(Component);`.
//!
//! The bindings are for the widest world the HTTP guests need, `omnia:guests/guest-http`
//! (wasi:http/proxy plus wasi:keyvalue and wasi:config): a component imports only the
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
