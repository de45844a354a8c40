//! Echoes the request back, so tests can check what the guest saw:
//!
//! ```text
//! method: POST
//! path: /a/b?x=1
//! authority: 127.0.0.1:8080
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
//! * `/alloc/<mib>` or `/alloc/<mib>/<ms>`: allocate and touch that many MiB, hold them for that
//!   many milliseconds, then answer `allocated <mib> MiB` (the memory limits must stop it when
//!   it asks for too much);
//! * `/partial`: send the response head and part of the body, then trap (the runtime must cut
//!   the response off visibly);
//! * `/empty-writes/<n>`: write `n` empty chunks to the response body, then `wrote <n> empty
//!   chunks` (the host must not queue a frame per empty write: GHSA-f8mm-ggr3-89wh).
//! * `/env/<name>`, `/file/<path>`, `/write/<path>`, `/connect/<addr>`: what the host granted
//!   (200 and the result, or 403 and the error; see `guest_http::probe`).
//! * `/setters`: what the request setters answer for a table of values (see `setters`).
use guest_http::{
    method_name, probe, read_body, respond, setters, Fields, Guest, IncomingRequest, OutgoingBody,
    OutgoingResponse, ResponseOutparam,
};

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
        if let Some(spec) = path.strip_prefix("/alloc/") {
            let (mib, hold) = spec.split_once('/').unwrap_or((spec, "0"));
            let mib: usize = mib.parse().unwrap_or(0);
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            for _ in 0..mib {
                hoard.push(vec![7u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
            std::thread::sleep(std::time::Duration::from_millis(hold.parse().unwrap_or(0)));
            respond(out, 200, &[], format!("allocated {mib} MiB\n").as_bytes());
            return;
        }
        if let Some(code) = path.strip_prefix("/status/") {
            respond(out, code.parse().unwrap_or(400), &[], b"");
            return;
        }
        if path == "/setters" {
            respond(out, 200, &[], setters().as_bytes());
            return;
        }
        if let Some((status, text)) = probe(&path) {
            respond(out, status, &[], text.as_bytes());
            return;
        }
        if let Some(n) = path.strip_prefix("/empty-writes/") {
            empty_writes(out, n.parse().unwrap_or(0));
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
            "/partial" => {
                let response = OutgoingResponse::new(Fields::new());
                let body = response.body().expect("body once");
                ResponseOutparam::set(out, Ok(response));
                let stream = body.write().expect("stream once");
                stream.blocking_write_and_flush(b"the first part").expect("write body");
                std::thread::sleep(std::time::Duration::from_millis(100));
                panic!("this response is cut short on purpose");
            }
            _ => {}
        }
        let mut text = format!(
            "method: {}\npath: {path}\nauthority: {}\n",
            method_name(&request.method()),
            request.authority().unwrap_or_default()
        );
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

/// Answers with `n` empty writes to the body, then `wrote <n> empty chunks`; stops early if
/// the client goes away.
fn empty_writes(out: ResponseOutparam, n: u64) {
    let response = OutgoingResponse::new(Fields::new());
    let body = response.body().expect("body once");
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().expect("stream once");
    let ready = stream.subscribe();
    let mut written = 0;
    while written < n {
        match stream.check_write() {
            Ok(0) => ready.block(),
            Ok(_) if stream.write(&[]).is_ok() => written += 1,
            _ => return,
        }
    }
    drop(ready);
    let done = format!("wrote {n} empty chunks\n");
    if stream.blocking_write_and_flush(done.as_bytes()).is_ok() {
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}

guest_http::export!(Component);
