//! The command line every Omnia runtime shares: `run` and (with `jit`) `compile`.
//!
//! [`runtime!`](crate::runtime) wraps [`Command`] in the runtime's own `Cli`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a component: serve its triggers (e.g. HTTP), or, if it only exports `wasi:cli/run`,
    /// run it as a command.
    Run(RunArgs),
    /// Precompile a .wasm component into a .bin that loads without a compiler.
    #[cfg(feature = "jit")]
    Compile(CompileArgs),
}

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The component: a .wasm (needs the `jit` feature) or a .bin from `omnia compile`.
    pub component: PathBuf,

    /// Arguments passed to a command component (after the component, or after `--`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,

    /// Grant an environment variable to the guest: `KEY=VALUE`, or `KEY` to pass omnia's own
    /// value. Repeatable. Nothing is granted by default.
    #[arg(long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,

    /// Grant a host directory to the guest: `HOST` (seen as the same path) or `HOST::GUEST`.
    /// Repeatable. Nothing is granted by default.
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    pub dirs: Vec<String>,
}

/// Arguments of `compile`.
#[cfg(feature = "jit")]
#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The .wasm component to compile.
    pub component: PathBuf,

    /// Where to write the precompiled component (default: the input with a .bin extension).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// `omnia --version` text: the crate version, whether the build has a compiler, and the
/// capabilities compiled in.
pub fn version(capabilities: &[&str]) -> String {
    let mut features = vec![if crate::JIT_ENABLED {
        "jit"
    } else {
        "aot-only"
    }];
    features.extend_from_slice(capabilities);
    format!(
        "{} (features: {})",
        env!("CARGO_PKG_VERSION"),
        features.join(", ")
    )
}
