//! Answers every request with a fixed greeting.
use guest_http::{respond, Guest, IncomingRequest, ResponseOutparam};

struct Component;

impl Guest for Component {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        respond(out, 200, &[("content-type", b"text/plain")], b"hello from Rust http guest\n");
    }
}

guest_http::export!(Component);
