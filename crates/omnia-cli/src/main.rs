//! `omnia`: run WebAssembly components with host services.
//!
//! `omnia run app.wasm` serves the component's triggers (HTTP) or runs it as a command;
//! `omnia compile app.wasm -o app.bin` precompiles it for builds without the `jit` feature.
//! Key-value storage and messaging are in memory unless configured otherwise (see
//! [`keyvalue`] and [`messaging`]); configuration is what the operator grants (`OMNIA_CONFIG_*`).
//! Capabilities are cargo features, so a profile picks exactly what a binary can do.

#[cfg(feature = "keyvalue")]
mod keyvalue;
#[cfg(feature = "messaging")]
mod messaging;

#[cfg(feature = "keyvalue")]
use keyvalue::KeyValue;
#[cfg(feature = "messaging")]
use messaging::Messaging;
#[cfg(feature = "config")]
use omnia_wasi_config::ConfigDefault;
#[cfg(feature = "http")]
use omnia_wasi_http::WasiHttpCtx;
#[cfg(feature = "otel")]
use omnia_wasi_otel::DefaultOtel;
#[cfg(feature = "sql")]
use omnia_wasi_sql::SqlDefault;

omnia::runtime!({
    #[cfg(feature = "http")]
    "http": WasiHttpCtx,
    #[cfg(feature = "keyvalue")]
    "keyvalue": KeyValue,
    #[cfg(feature = "messaging")]
    "messaging": Messaging,
    #[cfg(feature = "config")]
    "config": ConfigDefault,
    #[cfg(feature = "otel")]
    "otel": DefaultOtel,
    #[cfg(feature = "sql")]
    "sql": SqlDefault,
});

#[tokio::main]
async fn main() -> std::process::ExitCode {
    omnia::exit_code(runtime_run(Cli::parse()).await)
}
