//! Regression tests for the wasmtime security advisories that a guest or a client can reach
//! through Omnia, each doing what its advisory describes:
//!
//! * GHSA-f8mm-ggr3-89wh, unbounded heap from empty body writes over HTTP/2: a guest writes
//!   many empty chunks to its response body for a client that does not read (over HTTP/2 a
//!   zero-length DATA frame needs no flow-control window, so nothing else holds it back); and a
//!   client sends many empty DATA frames in a request body;
//! * GHSA-5m8g-xhq4-4h93, unbounded host memory from empty writes to an output stream: a WASI
//!   0.3 guest writes many empty chunks to stdout;
//! * GHSA-xrvr-8678-5wp8, a host panic when a stream copy is cancelled from the wrong end: a
//!   WASI 0.3 guest calls `stream.cancel-read` on a writable end and `stream.cancel-write` on a
//!   readable one.
//!
//! Each checks that the process's memory stays bounded (its peak resident size, `VmHWM`, grows
//! by less than [`BOUND_KIB`]), that nothing panics, and that the server goes on answering.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use http::StatusCode;
use omnia_tests::{Omnia, get, guests, omnia, p2_and_p3};

p2_and_p3!(
    empty_response_body_writes_over_http2_stay_bounded,
    empty_data_frames_from_an_http2_client_stay_bounded,
);

/// How much the peak resident size may grow during one attack. Each attack sends a million
/// empty writes or frames: a host that kept as little as 64 bytes for each would grow by 61 MiB.
const BOUND_KIB: u64 = 24 * 1024;

/// Empty writes or frames per attack.
const EMPTY: u64 = 1_000_000;

/// A server for `guest` with a deadline long enough for a million empty writes.
fn serve(guest: &str) -> Omnia {
    Omnia::serve(
        &omnia(),
        &guests::rust(guest),
        &[("OMNIA_REQUEST_TIMEOUT", "120s")],
    )
}

/// The peak resident size of `server` after a first request (instances, pools and buffers
/// warmed up), so that what follows measures only the attack.
async fn warm_peak(server: &Omnia) -> u64 {
    let response = get(&server.url("/")).await.expect("a first request");
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    server.status_kib("VmHWM")
}

/// Checks that `server`'s peak grew by less than [`BOUND_KIB`] since `before`, that it
/// logged no panic, and that it still answers.
async fn assert_unharmed(server: &mut Omnia, before: u64, attack: &str) {
    let grown = server.status_kib("VmHWM").saturating_sub(before);
    assert!(
        grown < BOUND_KIB,
        "{attack}: the peak resident size grew by {grown} KiB (bound {BOUND_KIB} KiB)"
    );
    assert!(
        server.is_running(),
        "{attack}: omnia exited:\n{}",
        server.log()
    );
    let log = server.log();
    assert!(
        !log.contains("panicked"),
        "{attack}: omnia panicked:\n{log}"
    );
    let response = get(&server.url("/after")).await.expect("a request after");
    assert_eq!(
        response.status,
        StatusCode::OK,
        "{attack}: {}",
        response.text()
    );
    eprintln!("{attack}: peak resident size grew by {grown} KiB");
}

/// Waits until `server` has stopped working (its CPU time still for half a second), up to
/// two minutes.
fn wait_until_idle(server: &Omnia) {
    let started = Instant::now();
    let mut last = server.cpu_time();
    while started.elapsed() < Duration::from_mins(2) {
        std::thread::sleep(Duration::from_millis(500));
        let now = server.cpu_time();
        if now.saturating_sub(last) < Duration::from_millis(20) {
            return;
        }
        last = now;
    }
    panic!("omnia was still busy after two minutes");
}

/// GHSA-f8mm-ggr3-89wh: a guest writes a million empty chunks to its response body, for an
/// HTTP/2 client that reads nothing until the guest is done.
async fn empty_response_body_writes_over_http2_stay_bounded(guest: &str) {
    let mut server = serve(guest);
    let before = warm_peak(&server).await;
    let mut client = h2::Client::connect(server.addr());
    client.request(1, "GET", &format!("/empty-writes/{EMPTY}"), true);
    wait_until_idle(&server);
    let attack = format!("{guest}: {EMPTY} empty body writes over HTTP/2");
    // Measured before the client reads, while anything queued for it is still held.
    let grown = server.status_kib("VmHWM").saturating_sub(before);
    let response = client.read_response(1).expect("an answer");
    assert_eq!(response.status, 200, "{attack}");
    assert_eq!(
        String::from_utf8_lossy(&response.body),
        format!("wrote {EMPTY} empty chunks\n"),
        "{attack}"
    );
    eprintln!(
        "{attack}: {} empty DATA frames reached the client, peak grew by {grown} KiB",
        response.empty_data_frames
    );
    assert_unharmed(&mut server, before, &attack).await;
}

/// GHSA-f8mm-ggr3-89wh, from the other side: an HTTP/2 client sends a million empty DATA
/// frames in a request body, to a guest that reads the body. The server ends the connection
/// with `GOAWAY` `ENHANCE_YOUR_CALM` (hyper's HTTP/2 layer counts small DATA frames), and a
/// request body with a few empty frames among its data still arrives whole.
async fn empty_data_frames_from_an_http2_client_stay_bounded(guest: &str) {
    let mut server = serve(guest);
    let before = warm_peak(&server).await;
    let attack = format!("{guest}: {EMPTY} empty DATA frames from an HTTP/2 client");
    let mut client = h2::Client::connect(server.addr());
    client.request(1, "POST", "/", false);
    let batch: Vec<u8> = h2::frame(h2::DATA, 0, 1, &[]).repeat(10_000);
    // The server may close the connection before all are sent.
    let sent = (0..EMPTY / 10_000)
        .take_while(|_| client.try_send(&batch))
        .count();
    let _ = client.try_send(&h2::frame(h2::DATA, h2::END_STREAM, 1, b"abc"));
    match client.read_response(1) {
        Err(refused) => assert!(refused.contains("ENHANCE_YOUR_CALM"), "{attack}: {refused}"),
        Ok(response) => panic!(
            "{attack}: answered {} after {} frames; expected the flood to be refused",
            response.status,
            sent * 10_000
        ),
    }
    assert_unharmed(&mut server, before, &attack).await;

    // A few empty frames among real data are harmless and change nothing.
    let mut client = h2::Client::connect(server.addr());
    client.request(1, "POST", "/", false);
    for chunk in [&b"ab"[..], b"", b"c", b"", b""] {
        client.send(&h2::frame(h2::DATA, 0, 1, chunk));
    }
    client.send(&h2::frame(h2::DATA, h2::END_STREAM, 1, b"d"));
    let response = client.read_response(1).expect("an answer");
    let text = String::from_utf8_lossy(&response.body).into_owned();
    assert!(text.ends_with("body-length: 4\n\nabcd"), "{guest}: {text}");
}

/// GHSA-5m8g-xhq4-4h93: a WASI 0.3 guest writes a million empty chunks to stdout.
#[tokio::test]
async fn empty_writes_to_stdout_stay_bounded() {
    let mut server = serve("p3-http-echo");
    let before = warm_peak(&server).await;
    let response = get(&server.url(&format!("/stdout-empty-writes/{EMPTY}")))
        .await
        .expect("an answer");
    let attack = format!("p3-http-echo: {EMPTY} empty writes to stdout");
    assert_eq!(
        response.status,
        StatusCode::OK,
        "{attack}: {}",
        response.text()
    );
    assert_eq!(
        response.text(),
        format!("wrote {EMPTY} empty chunks to stdout\n")
    );
    assert_unharmed(&mut server, before, &attack).await;
}

/// GHSA-xrvr-8678-5wp8: cancelling a stream operation from the wrong end traps the guest (a
/// 500 for its request), and the host neither panics nor stops serving; also when the guest
/// leaks the pending operation and drops the stream's ends as they are.
#[tokio::test]
async fn cancelling_a_stream_from_the_wrong_end_fails_only_its_request() {
    let mut server = serve("p3-http-echo");
    let before = warm_peak(&server).await;
    for case in ["read", "write", "read/forget", "write/forget"] {
        let response = get(&server.url(&format!("/cancel-wrong-end/{case}")))
            .await
            .expect("an answer");
        let attack = format!("p3-http-echo: cancel on the other end ({case})");
        assert_eq!(
            response.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{attack}: {}",
            response.text()
        );
        assert_unharmed(&mut server, before, &attack).await;
    }
    // The lines reach the test through a reader thread, maybe after the responses.
    for misuse in [
        "passed read end to `{stream|future}.cancel-write`",
        "passed write end to `{stream|future}.cancel-read`",
    ] {
        let log = server.log_with(misuse);
        assert!(
            log.contains(misuse),
            "the traps should name the misuse:\n{log}"
        );
    }
}

/// A raw HTTP/2 (h2c, prior knowledge) client: just enough to send the frames a client
/// library will not (a million empty DATA frames) and to stop reading when a test says so.
mod h2 {
    use super::{Duration, Read, TcpStream, Write};

    pub const DATA: u8 = 0x0;
    const HEADERS: u8 = 0x1;
    const SETTINGS: u8 = 0x4;
    const WINDOW_UPDATE: u8 = 0x8;
    const RST_STREAM: u8 = 0x3;
    const GOAWAY: u8 = 0x7;
    pub const END_STREAM: u8 = 0x1;
    const END_HEADERS: u8 = 0x4;
    const ACK: u8 = 0x1;

    /// One frame: the 9-byte header and `payload`.
    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).expect("a small frame");
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// An HPACK string literal (not Huffman-coded), up to 126 bytes.
    fn literal(out: &mut Vec<u8>, value: &str) {
        out.push(u8::try_from(value.len()).expect("a short value"));
        out.extend_from_slice(value.as_bytes());
    }

    /// A response as read off the connection.
    pub struct Response {
        pub status: u16,
        pub body: Vec<u8>,
        /// DATA frames that carried no byte and did not end the stream.
        pub empty_data_frames: u64,
    }

    pub struct Client {
        stream: TcpStream,
        authority: String,
    }

    impl Client {
        /// Connects and sends the preface and empty SETTINGS, without reading anything.
        pub fn connect(addr: &str) -> Self {
            let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
            let mut client = Self {
                stream,
                authority: addr.to_owned(),
            };
            client.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
            client.send(&frame(SETTINGS, 0, 0, &[]));
            client
        }

        pub fn send(&mut self, bytes: &[u8]) {
            self.stream.write_all(bytes).expect("send to omnia");
        }

        /// Sends `bytes`; `false` if the server has closed the connection.
        pub fn try_send(&mut self, bytes: &[u8]) -> bool {
            self.stream.write_all(bytes).is_ok()
        }

        /// Opens stream `id` with a request; `end` ends it (no body).
        pub fn request(&mut self, id: u32, method: &str, path: &str, end: bool) {
            let mut block = Vec::new();
            block.push(match method {
                "GET" => 0x82,  // :method GET (static table 2)
                "POST" => 0x83, // :method POST (static table 3)
                other => panic!("no HPACK index for {other}"),
            });
            block.push(0x86); // :scheme http (static table 6)
            block.push(0x04); // :path, literal without indexing, name from static table 4
            literal(&mut block, path);
            block.push(0x01); // :authority, literal without indexing, name from static table 1
            let authority = self.authority.clone();
            literal(&mut block, &authority);
            let flags = END_HEADERS | if end { END_STREAM } else { 0 };
            self.send(&frame(HEADERS, flags, id, &block));
        }

        /// Reads frames until stream `id` ends, acknowledging SETTINGS and giving back the
        /// window DATA frames use; `Err` names the error code of a `GOAWAY` or of a reset of
        /// the stream. The status is read from an `:status` the server sends as an indexed
        /// static-table entry (200, 204, 206, 304, 400, 404, 500) or a literal.
        pub fn read_response(&mut self, id: u32) -> Result<Response, String> {
            self.stream
                .set_read_timeout(Some(Duration::from_mins(2)))
                .expect("read timeout");
            let mut response = Response {
                status: 0,
                body: Vec::new(),
                empty_data_frames: 0,
            };
            loop {
                let mut head = [0u8; 9];
                if let Err(err) = self.stream.read_exact(&mut head) {
                    return Err(format!("connection ended without GOAWAY: {err}"));
                }
                let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                let (kind, flags) = (head[3], head[4]);
                let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                let mut payload = vec![0u8; len];
                self.stream
                    .read_exact(&mut payload)
                    .expect("a frame payload");
                match kind {
                    // The server may have closed already; what it sent before is still read.
                    SETTINGS if flags & ACK == 0 => {
                        self.try_send(&frame(SETTINGS, ACK, 0, &[]));
                    }
                    HEADERS if stream == id => response.status = status(&payload),
                    DATA if stream == id => {
                        if payload.is_empty() && flags & END_STREAM == 0 {
                            response.empty_data_frames += 1;
                        }
                        response.body.extend_from_slice(&payload);
                        if len > 0 {
                            let increment = u32::try_from(len).expect("a frame").to_be_bytes();
                            self.try_send(&frame(WINDOW_UPDATE, 0, 0, &increment));
                            self.try_send(&frame(WINDOW_UPDATE, 0, id, &increment));
                        }
                    }
                    RST_STREAM if stream == id => {
                        return Err(format!("stream {id} reset: {}", reason(&payload[..4])));
                    }
                    GOAWAY => {
                        let debug = String::from_utf8_lossy(&payload[8..]);
                        return Err(format!("GOAWAY {} ({debug})", reason(&payload[4..8])));
                    }
                    _ => {}
                }
                if stream == id && flags & END_STREAM != 0 && matches!(kind, DATA | HEADERS) {
                    return Ok(response);
                }
            }
        }
    }

    /// The name of an HTTP/2 error code (RFC 9113 §7).
    fn reason(code: &[u8]) -> String {
        let code = u32::from_be_bytes([code[0], code[1], code[2], code[3]]);
        match code {
            0x0 => "NO_ERROR".into(),
            0x1 => "PROTOCOL_ERROR".into(),
            0x2 => "INTERNAL_ERROR".into(),
            0x8 => "CANCEL".into(),
            0xb => "ENHANCE_YOUR_CALM".into(),
            other => format!("error code {other:#x}"),
        }
    }

    /// The `:status` of a header block (padding and priority flags are not used by hyper).
    fn status(block: &[u8]) -> u16 {
        match block.first() {
            Some(0x88) => 200,
            Some(0x89) => 204,
            Some(0x8a) => 206,
            Some(0x8b) => 304,
            Some(0x8c) => 400,
            Some(0x8d) => 404,
            Some(0x8e) => 500,
            // Literal with a name from the static table (8 to 14 are :status), any indexing.
            Some(_) if block.len() >= 5 => std::str::from_utf8(&block[2..5])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no :status in {block:?}")),
            _ => panic!("no :status in {block:?}"),
        }
    }
}
