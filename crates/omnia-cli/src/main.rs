//! `omnia`: run WebAssembly components with host services.
//!
//! `omnia run app.wasm` serves the component's triggers (HTTP) or runs it as a command;
//! `omnia compile app.wasm -o app.bin` precompiles it for builds without the `jit` feature.
//! Capabilities are cargo features, so a profile picks exactly what a binary can do.

#[cfg(feature = "http")]
use omnia_wasi_http::WasiHttpCtx;

omnia::runtime!({
    #[cfg(feature = "http")]
    "http": WasiHttpCtx,
});

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    runtime_run(cli).await
}
