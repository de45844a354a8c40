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
//! A few paths misbehave on purpose, so one process can serve good and bad requests at once:
//!
//! * `/sleep/<ms>`: answer after that many milliseconds (drain and deadline tests);
//! * `/status/<code>`: answer with that status and an empty body;
//! * `/trap`: trap (a Rust panic, which aborts: `unreachable` in wasm);
//! * `/loop`: spin forever without answering (the runtime's deadline must stop it);
//! * `/alloc`: allocate and touch memory without bound (the memory limit must stop it).
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
        match path.as_str() {
            "/trap" => panic!("this request traps on purpose"),
            "/loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "/alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![7u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            _ => {}
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
