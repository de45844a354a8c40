//! Command mode: a component that exports `wasi:cli/run` and no trigger runs once, like a
//! program. Arguments, stdio, and exit code behave as in any WASI runtime, so WASI test suites
//! can drive `omnia run`; environment variables and directories are visible only when granted
//! (`--env`, `--dir`).

use std::path::Path;

use anyhow::{Context, Result, bail};
use wasmtime::component::{Component, InstancePre};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder};

use crate::cli::RunArgs;
use crate::config::RuntimeConfig;
use crate::limits::{GuestLimits, MemoryBudget};
use crate::runtime::serving_store;
use crate::store::{StoreCore, StoreView};

/// The export that makes a component a command.
pub const RUN_EXPORT_PREFIX: &str = "wasi:cli/run@0.2";

/// Whether `component` exports `wasi:cli/run`.
pub fn is_command(engine: &wasmtime::Engine, component: &Component) -> bool {
    crate::component::exports_interface(engine, component, RUN_EXPORT_PREFIX)
}

/// Runs the command and returns its exit code (0 on success).
pub async fn run<T: StoreView>(
    pre: InstancePre<T>,
    args: &RunArgs,
    config: &RuntimeConfig,
    make_ctx: impl FnOnce(StoreCore) -> T,
) -> Result<i32> {
    let wasi = wasi_ctx(args)?;
    let limits = GuestLimits::new(config.max_memory, MemoryBudget::new(config.memory_budget));
    let core = StoreCore::new(wasi, limits, crate::trace::Work::default());
    let mut store = serving_store(pre.engine(), make_ctx(core));
    let command = CommandPre::new(pre)
        .map_err(anyhow::Error::from)
        .context("the component's wasi:cli/run export has an unexpected type")?
        .instantiate_async(&mut store)
        .await
        .map_err(anyhow::Error::from)
        .context("cannot instantiate the component")?;
    match command.wasi_cli_run().call_run(&mut store).await {
        Ok(Ok(())) => Ok(0),
        Ok(Err(())) => Ok(1),
        Err(err) => match err.downcast_ref::<I32Exit>() {
            Some(exit) => Ok(exit.0),
            None => Err(anyhow::Error::from(err).context("the guest trapped")),
        },
    }
}

/// The WASI context of a command: argv (program name first), inherited stdio, and only the
/// granted env vars and directories.
fn wasi_ctx(args: &RunArgs) -> Result<WasiCtx> {
    let mut builder = WasiCtxBuilder::new();
    builder.inherit_stdio();
    let program = args
        .component
        .file_name()
        .map_or_else(|| "main.wasm".into(), |n| n.to_string_lossy().into_owned());
    builder.arg(program);
    builder.args(&args.args);
    for grant in &args.env {
        let (key, value) = parse_env_grant(grant)?;
        builder.env(key, value);
    }
    for grant in &args.dirs {
        let (host, guest) = parse_dir_grant(grant);
        if !Path::new(host).is_dir() {
            bail!("--dir {grant}: {host} is not a directory on this machine");
        }
        builder
            .preopened_dir(host, guest, FsPerms::ReadWrite)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("--dir {grant}: cannot open {host}"))?;
    }
    Ok(builder.build())
}

/// `KEY=VALUE`, or `KEY` to pass omnia's own value of `KEY`.
fn parse_env_grant(grant: &str) -> Result<(String, String)> {
    if let Some((key, value)) = grant.split_once('=') {
        if key.is_empty() {
            bail!("--env {grant:?}: the variable name is empty; expected KEY=VALUE or KEY");
        }
        return Ok((key.into(), value.into()));
    }
    if grant.is_empty() {
        bail!("--env needs KEY=VALUE or KEY");
    }
    let value = std::env::var(grant).with_context(|| {
        format!(
            "--env {grant}: {grant} is not set in omnia's environment; pass --env {grant}=VALUE"
        )
    })?;
    Ok((grant.into(), value))
}

/// `HOST` (the guest sees the same path) or `HOST::GUEST`.
fn parse_dir_grant(grant: &str) -> (&str, &str) {
    grant.split_once("::").unwrap_or((grant, grant))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_grants() {
        assert_eq!(parse_dir_grant("/tmp/a::/data"), ("/tmp/a", "/data"));
        assert_eq!(parse_dir_grant("/tmp/a"), ("/tmp/a", "/tmp/a"));
    }

    #[test]
    fn env_grants() {
        assert_eq!(
            parse_env_grant("A=b=c").unwrap(),
            ("A".to_string(), "b=c".to_string())
        );
        assert!(parse_env_grant("=x").is_err());
        let err = parse_env_grant("OMNIA_TEST_SURELY_UNSET_VAR").unwrap_err();
        assert!(format!("{err:#}").contains("OMNIA_TEST_SURELY_UNSET_VAR"));
    }
}
