use omnia_wasi_http::WasiHttpCtx;

omnia::runtime!({
    "http": WasiHttpCtx,
    "database": WasiHttpCtx,
});

fn main() {}
