#[allow(dead_code)]
struct WasiHttpCtx;

omnia_macros::runtime!({
    "http": WasiHttpCtx,
    "database": WasiHttpCtx,
});

fn main() {}
