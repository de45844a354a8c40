//! The WASIp3 twin of `http-hello`: exports wasi:http/handler@0.3.0 and answers every request
//! with the same fixed greeting (200, `content-type: text/plain`).
use guest_http_p3::{respond, ErrorCode, Guest, Request, Response};

struct Component;

impl Guest for Component {
    async fn handle(_request: Request) -> Result<Response, ErrorCode> {
        Ok(respond(200, &[("content-type", b"text/plain")], b"hello from Rust http guest\n".to_vec()))
    }
}

guest_http_p3::export!(Component);
