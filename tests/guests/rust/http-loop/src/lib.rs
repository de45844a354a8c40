//! Never answers: spins forever (the runtime's deadline must stop it).
use guest_http::{Guest, IncomingRequest, ResponseOutparam};

struct Component;

impl Guest for Component {
    fn handle(_request: IncomingRequest, _out: ResponseOutparam) {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

guest_http::export!(Component);
