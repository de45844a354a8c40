//! Echoes the request back, so tests can check what the guest saw:
//!
//! ```text
//! method: POST
//! path: /a/b?x=1
//! header: content-type: text/plain      (one line per header, in arrival order)
//! body-length: 5
//!
//! <the body, byte for byte>
//! ```
//!
//! `GET /sleep/<ms>` waits that long before answering (for drain and deadline tests), and
//! `GET /status/<code>` answers with that status.
use guest_http::{method_name, read_body, respond, Guest, IncomingRequest, ResponseOutparam};

struct Component;

impl Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        if let Some(ms) = path.strip_prefix("/sleep/") {
            let ms: u64 = ms.parse().unwrap_or(0);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            respond(out, 200, &[], format!("slept {ms} ms\n").as_bytes());
            return;
        }
        if let Some(code) = path.strip_prefix("/status/") {
            respond(out, code.parse().unwrap_or(400), &[], b"");
            return;
        }
        let mut text = format!("method: {}\npath: {path}\n", method_name(&request.method()));
        for (name, value) in request.headers().entries() {
            text.push_str(&format!("header: {name}: {}\n", String::from_utf8_lossy(&value)));
        }
        let body = read_body(&request);
        text.push_str(&format!("body-length: {}\n\n", body.len()));
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(&body);
        respond(out, 200, &[("content-type", b"application/octet-stream"), ("x-echo", b"1")], &bytes);
    }
}

guest_http::export!(Component);
