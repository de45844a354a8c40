//! The WASIp3 twin of `http-echo`: exports wasi:http/handler@0.3.0 (an `async` handler, so one
//! instance can serve several requests at once) with the same routes and answers. It echoes the
//! request back, so tests can check what the guest saw:
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
//! (200, `content-type: application/octet-stream`, `x-echo: 1`). A few paths misbehave on
//! purpose, so one process can serve good and bad requests at once:
//!
//! * `/sleep/<ms>`: answer `slept <ms> ms` after that many milliseconds. It waits with
//!   `wasi:clocks/monotonic-clock@0.3.0.wait-for`, which suspends only this request's task:
//!   other requests on the same instance are answered meanwhile;
//! * `/status/<code>`: answer with that status and an empty body (400 if `<code>` is no number);
//! * `/trap`: trap (a Rust panic, which aborts: `unreachable` in wasm);
//! * `/loop`: spin forever without answering (the runtime's deadline must stop it; this blocks
//!   the whole instance, as it never yields);
//! * `/alloc/<mib>` or `/alloc/<mib>/<ms>`: allocate and touch that many MiB, hold them for that
//!   many milliseconds (`wait-for`), then answer `allocated <mib> MiB` (the memory limits must
//!   stop it when it asks for too much);
//! * `/partial`: send the response head and part of the body (`the first part`), wait 100 ms,
//!   then trap (the runtime must cut the response off visibly);
//! * `/empty-writes/<n>`: write `n` empty chunks to the response body, then `wrote <n> empty
//!   chunks` (the host must not queue a frame per empty write: GHSA-f8mm-ggr3-89wh);
//! * `/stdout-empty-writes/<n>`: write `n` empty chunks to stdout, then answer `wrote <n> empty
//!   chunks to stdout` (the host must not queue anything per empty write: GHSA-5m8g-xhq4-4h93);
//! * `/cancel-wrong-end/read` and `/cancel-wrong-end/write`: start a write (a read) on a new
//!   stream that blocks, then call `stream.cancel-read` (`stream.cancel-write`) on the *other*
//!   end, a misuse the host must answer with a trap, never a panic (GHSA-xrvr-8678-5wp8); with
//!   `/forget` after either, the pending operation is leaked rather than cancelled, and the
//!   stream's ends are dropped as they are.
//! * `/env/<name>`, `/file/<path>`, `/write/<path>`, `/connect/<ip:port>`: what the host granted
//!   (200 and the result, or 403 and the error; see `guest_http_p3::probe`).
//! * `/setters`: what the request setters answer for a table of values (see `setters`).
use std::future::Future;
use std::task::Poll;

use guest_http_p3::wit_stream::{self, StreamPayload};
use guest_http_p3::{
    method_name, probe, read_body, respond, setters, sleep_ms, spawn_local, stdout, streaming_response,
    ErrorCode, Guest, Request, Response, StreamResult,
};

struct Component;

impl Guest for Component {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path = request.get_path_with_query().unwrap_or_default();
        if let Some(ms) = path.strip_prefix("/sleep/") {
            let ms: u64 = ms.parse().unwrap_or(0);
            sleep_ms(ms).await;
            return Ok(respond(200, &[], format!("slept {ms} ms\n").into_bytes()));
        }
        if let Some(spec) = path.strip_prefix("/alloc/") {
            let (mib, hold) = spec.split_once('/').unwrap_or((spec, "0"));
            let mib: usize = mib.parse().unwrap_or(0);
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            for _ in 0..mib {
                hoard.push(vec![7u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
            sleep_ms(hold.parse().unwrap_or(0)).await;
            drop(std::hint::black_box(hoard));
            return Ok(respond(200, &[], format!("allocated {mib} MiB\n").into_bytes()));
        }
        if let Some(code) = path.strip_prefix("/status/") {
            return Ok(respond(code.parse().unwrap_or(400), &[], Vec::new()));
        }
        if path == "/setters" {
            return Ok(respond(200, &[], setters().into_bytes()));
        }
        if let Some((status, text)) = probe(&path).await {
            return Ok(respond(status, &[], text.into_bytes()));
        }
        if let Some(n) = path.strip_prefix("/empty-writes/") {
            let n: u64 = n.parse().unwrap_or(0);
            let (response, mut writer) = streaming_response(200, &[]);
            spawn_local(async move {
                for _ in 0..n {
                    if let (StreamResult::Dropped, _) = writer.body.write(Vec::new()).await {
                        return;
                    }
                }
                let done = format!("wrote {n} empty chunks\n").into_bytes();
                let _unsent = writer.body.write_all(done).await;
            });
            return Ok(response);
        }
        if let Some(n) = path.strip_prefix("/stdout-empty-writes/") {
            let n: u64 = n.parse().unwrap_or(0);
            let (mut tx, rx) = wit_stream::new::<u8>();
            let written = stdout::write_via_stream(rx);
            for _ in 0..n {
                if let (StreamResult::Dropped, _) = tx.write(Vec::new()).await {
                    break;
                }
            }
            drop(tx);
            let _ = written.await;
            let text = format!("wrote {n} empty chunks to stdout\n");
            return Ok(respond(200, &[], text.into_bytes()));
        }
        if let Some(spec) = path.strip_prefix("/cancel-wrong-end/") {
            let (end, then) = spec.split_once('/').unwrap_or((spec, ""));
            let vtable = <u8 as StreamPayload>::VTABLE;
            let (mut tx, mut rx) = wit_stream::new::<u8>();
            let (tx_handle, rx_handle) = (tx.handle(), rx.handle());
            // Start an operation that cannot complete (nothing is on the other end yet), so
            // its end is busy, then cancel on the other end. With `/forget`, the pending
            // operation is leaked instead of cancelled, so the guest goes on with the handle.
            let code = if end == "read" {
                let mut write = Box::pin(tx.write(vec![1, 2, 3]));
                poll_once(write.as_mut()).await;
                // SAFETY: a raw canonical ABI call on a handle this instance owns.
                let code = unsafe { (vtable.cancel_read)(tx_handle) };
                if then == "forget" {
                    std::mem::forget(write);
                }
                code
            } else {
                let mut read = Box::pin(rx.read(Vec::with_capacity(3)));
                poll_once(read.as_mut()).await;
                // SAFETY: as above.
                let code = unsafe { (vtable.cancel_write)(rx_handle) };
                if then == "forget" {
                    std::mem::forget(read);
                }
                code
            };
            let text = format!("cancel on the wrong end returned {code:#x}\n");
            return Ok(respond(200, &[], text.into_bytes()));
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
                let (response, mut writer) = streaming_response(200, &[]);
                spawn_local(async move {
                    let _unsent = writer.body.write_all(b"the first part".to_vec()).await;
                    sleep_ms(100).await;
                    // Trap with the body still open: the host never sees its end.
                    let _open = &writer;
                    panic!("this response is cut short on purpose");
                });
                return Ok(response);
            }
            _ => {}
        }
        let mut text = format!(
            "method: {}\npath: {path}\nauthority: {}\n",
            method_name(&request.get_method()),
            request.get_authority().unwrap_or_default()
        );
        let headers = request.get_headers();
        for (name, value) in headers.copy_all() {
            text.push_str(&format!("header: {name}: {}\n", String::from_utf8_lossy(&value)));
        }
        drop(headers);
        let body = read_body(request).await;
        text.push_str(&format!("body-length: {}\n\n", body.len()));
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(&body);
        Ok(respond(200, &[("content-type", b"application/octet-stream"), ("x-echo", b"1")], bytes))
    }
}

/// Polls `future` once, with this task's context, and goes on whether it finished or not.
async fn poll_once<F: Future>(mut future: std::pin::Pin<&mut F>) {
    std::future::poll_fn(|cx| {
        let _ = future.as_mut().poll(cx);
        Poll::Ready(())
    })
    .await;
}

guest_http_p3::export!(Component);
