//! Logging bootstrap: `tracing` to stderr, filtered by `RUST_LOG`.
//!
//! The default filter shows Omnia's own start-up lines (the address it listens on, the drain on
//! shutdown) and warnings from everything else. In command mode nothing of Omnia's is logged at
//! that level, so a `wasi:cli/run` guest's stderr stays its own.

use tracing_subscriber::EnvFilter;

/// The filter used when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str =
    "warn,omnia=info,omnia_wasi_http=info,omnia_redis=info,omnia_nats=info";

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|err| {
        if std::env::var_os("RUST_LOG").is_some() {
            eprintln!("omnia: RUST_LOG is not a valid filter ({err}); using {DEFAULT_FILTER:?}");
        }
        EnvFilter::new(DEFAULT_FILTER)
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
