//! Traps on every request (a Rust panic, which aborts: `unreachable` in wasm).
use guest_http::{Guest, IncomingRequest, ResponseOutparam};

struct Component;

impl Guest for Component {
    fn handle(_request: IncomingRequest, _out: ResponseOutparam) {
        panic!("this guest traps on purpose");
    }
}

guest_http::export!(Component);
