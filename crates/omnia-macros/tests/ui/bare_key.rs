#[allow(dead_code)]
struct WasiHttpCtx;

omnia_macros::runtime!({
    http: WasiHttpCtx,
});

fn main() {}
