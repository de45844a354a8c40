//! `omnia`: run WebAssembly components with host services.
//!
//! `omnia run app.wasm` serves the component's triggers (HTTP) or runs it as a command;
//! `omnia compile app.wasm -o app.bin` precompiles it for builds without the `jit` feature.
//! Key-value storage and messaging are in memory unless configured otherwise (see
//! [`keyvalue`] and [`messaging`]).
//! Capabilities are cargo features, so a profile picks exactly what a binary can do.

#[cfg(feature = "keyvalue")]
mod keyvalue;
#[cfg(feature = "messaging")]
mod messaging;

#[cfg(feature = "keyvalue")]
use keyvalue::KeyValue;
#[cfg(feature = "messaging")]
use messaging::Messaging;
#[cfg(feature = "http")]
use omnia_wasi_http::WasiHttpCtx;

omnia::runtime!({
    #[cfg(feature = "http")]
    "http": WasiHttpCtx,
    #[cfg(feature = "keyvalue")]
    "keyvalue": KeyValue,
    #[cfg(feature = "messaging")]
    "messaging": Messaging,
});

#[tokio::main]
async fn main() -> std::process::ExitCode {
    omnia::exit_code(runtime_run(Cli::parse()).await)
}
