//! # Omnia core
//!
//! Omnia runs WebAssembly components (WASI 0.2 and 0.3) and WASI 0.1 modules with real host
//! services. This crate is the part every Omnia runtime shares, whatever capabilities it links:
//!
//! * the **extension traits** a capability crate implements ([`Host`], [`Server`], [`Backend`],
//!   [`State`], [`FromEnv`]),
//! * the **engine**: a [`wasmtime::Engine`] configured for serving untrusted guests (pooling
//!   allocator, epoch interruption, memory limits), of the kind the guest needs (component-model
//!   async for WASI 0.3 only), see [`engine`],
//! * **component loading**: `.wasm` compiled with Cranelift (feature `jit`) or precompiled `.bin`
//!   files, see [`component`],
//! * the **lifecycle**: start the triggers, serve health checks, drain on SIGTERM/SIGINT, see
//!   [`lifecycle`] and [`admin`],
//! * the **command mode** that runs a `wasi:cli/run` component (0.2 or 0.3) or a WASI 0.1 module
//!   like `wasmtime run`, see [`command`].
//!
//! Most users never name these pieces: they write [`runtime!`] and get a `Cli` and a
//! `runtime_run(cli)` that wire everything together.
//!
//! ```ignore
//! // The README quick start is compiled as a doc test of `omnia-wasi-keyvalue`.
//! use omnia_wasi_http::WasiHttpCtx;
//!
//! omnia::runtime!({
//!     "http": WasiHttpCtx,
//! });
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     let cli = Cli::parse();
//!     runtime_run(cli).await
//! }
//! ```

pub mod admin;
mod application;
pub mod artifact;
pub mod cli;
pub mod command;
pub mod component;
pub mod config;
pub mod engine;
pub mod grants;
pub mod guest_output;
pub mod host_error;
pub mod invoke;
pub mod lifecycle;
pub mod limits;
mod link_error;
pub mod listener;
pub mod manifest;
pub mod metrics;
mod run;
mod runtime;
pub mod secrets;
mod store;
pub mod telemetry;
pub mod trace;
mod traits;

pub use application::{AppGuest, Application, GuestScope, Reloads};
pub use cli::{Command, exit_code};
pub use config::{FromEnv, RuntimeConfig, Setting, SettingGroup};
pub use host_error::{HostError, HostResult};
pub use lifecycle::{Shutdown, ShutdownTrigger};
pub use limits::{Admission, WorkSlots};
pub use run::run;
pub use runtime::{Runtime, Shared};
pub use store::{HostView, StoreCore, StoreView};
pub use traits::{Backend, Capabilities, Host, Server, Serving, State, Trigger};

/// The `runtime!` macro: declare the capabilities of a runtime and get its `Cli` and
/// `runtime_run`. See the crate documentation for an example.
pub use omnia_macros::runtime;

/// Whether this build can compile `.wasm` components (the `jit` feature).
pub const JIT_ENABLED: bool = cfg!(feature = "jit");

/// Re-exports used by the code that [`runtime!`] generates. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use anyhow;
    pub use clap;
    pub use toml;
    pub use wasmtime;
    pub use wasmtime_wasi;
}
