//! Allocates (and touches) memory without bound until the runtime's memory limit stops it.
use guest_http::{Guest, IncomingRequest, ResponseOutparam};

struct Component;

impl Guest for Component {
    fn handle(_request: IncomingRequest, _out: ResponseOutparam) {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![7u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

guest_http::export!(Component);
