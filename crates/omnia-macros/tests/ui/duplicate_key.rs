use omnia_wasi_http::WasiHttpCtx;

omnia::runtime!({
    "http": WasiHttpCtx,
    "http": WasiHttpCtx,
});

fn main() {}
