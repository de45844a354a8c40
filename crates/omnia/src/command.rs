//! Command mode: a guest that exports `wasi:cli/run` (WASI 0.2 or 0.3) and no trigger, or a
//! WASI 0.1 core module with `_start`, runs once, like a program. Arguments, stdio, and exit code
//! behave as with `wasmtime run`, so WASI test suites can drive `omnia run`; environment
//! variables, directories and the network are visible only when granted (see
//! [`grants`](crate::grants)), as for served guests.
//!
//! Exit codes, as `wasmtime run` gives them:
//!
//! | the guest | exit code |
//! |---|---|
//! | returns from `run` / `_start`, or exits with success | 0 |
//! | `wasi:cli/exit.exit(err)`, or `run` returns `err` | 1 |
//! | `exit-with-code(n)` (0.2.x, 0.3), `proc_exit(n)` (0.1), `n` below 126 | `n` |
//! | traps (the message is printed to stderr) | 134, as a process killed by `SIGABRT` |

use anyhow::{Context, Result};
use wasmtime::component::{Component, InstancePre};
use wasmtime::{Engine, Linker, Module, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

use crate::cli::RunArgs;
use crate::config::RuntimeConfig;
use crate::grants::Grants;
use crate::limits::{GuestLimits, MemoryBudget};
use crate::runtime::{serving_store, yield_on_epoch};
use crate::store::{StoreCore, StoreView};

/// The export that makes a component a WASI 0.2 command.
pub const RUN_EXPORT_PREFIX: &str = "wasi:cli/run@0.2";
/// The export that makes a component a WASI 0.3 command.
pub const RUN_P3_EXPORT_PREFIX: &str = "wasi:cli/run@0.3";

/// The exit code of a guest that trapped: that of a process killed by `SIGABRT` (128 + 6), as
/// `wasmtime run` exits.
pub const TRAP_EXIT_CODE: i32 = 134;

/// Whether `component` exports `wasi:cli/run` (0.2 or 0.3).
pub fn is_command(engine: &Engine, component: &Component) -> bool {
    crate::component::exports_interface(engine, component, RUN_EXPORT_PREFIX)
        || crate::component::exports_interface(engine, component, RUN_P3_EXPORT_PREFIX)
}

/// Runs the command component and returns its exit code.
pub async fn run<T: StoreView>(
    pre: InstancePre<T>,
    args: &RunArgs,
    grants: &Grants,
    config: &RuntimeConfig,
    make_ctx: impl FnOnce(StoreCore) -> T,
) -> Result<i32> {
    let p3 =
        crate::component::exports_interface(pre.engine(), pre.component(), RUN_P3_EXPORT_PREFIX);
    let wasi = wasi_builder(args, grants)?.build();
    let core = StoreCore::new(wasi, limits(config), crate::trace::Work::default());
    let mut store = serving_store(pre.engine(), make_ctx(core));
    let instance = pre
        .instantiate_async(&mut store)
        .await
        .map_err(anyhow::Error::from)
        .context("cannot instantiate the component")?;
    let ended = if p3 {
        let command = wasmtime_wasi::p3::bindings::Command::new(&mut store, &instance)
            .map_err(anyhow::Error::from)
            .context("the component's wasi:cli/run@0.3 export has an unexpected type")?;
        store
            .run_concurrent(async move |store| command.wasi_cli_run().call_run(store).await)
            .await
            .and_then(|ran| ran)
    } else {
        let command = wasmtime_wasi::p2::bindings::Command::new(&mut store, &instance)
            .map_err(anyhow::Error::from)
            .context("the component's wasi:cli/run@0.2 export has an unexpected type")?;
        command.wasi_cli_run().call_run(&mut store).await
    };
    Ok(exit_code(
        ended
            .map(|ran| i32::from(ran.is_err()))
            .map_err(anyhow::Error::from),
    ))
}

/// Runs a WASI 0.1 core module's `_start` and returns its exit code.
pub async fn run_module(
    engine: &Engine,
    module: &Module,
    args: &RunArgs,
    grants: &Grants,
    config: &RuntimeConfig,
) -> Result<i32> {
    /// The store data of a core module: its WASI 0.1 context and its memory limits.
    struct P1 {
        wasi: WasiP1Ctx,
        limits: GuestLimits,
    }
    let mut linker = Linker::<P1>::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |p1| &mut p1.wasi)
        .map_err(anyhow::Error::from)
        .context("linking WASI 0.1")?;
    let shown = args.component.display();
    let pre = linker
        .instantiate_pre(module)
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "cannot link {shown}: a core module may import only WASI 0.1 \
                 (wasi_snapshot_preview1); build a component for other interfaces"
            )
        })?;
    let p1 = P1 {
        wasi: wasi_builder(args, grants)?.build_p1(),
        limits: limits(config),
    };
    let mut store = Store::new(engine, p1);
    store.limiter(|p1| &mut p1.limits);
    yield_on_epoch(&mut store);
    let instance = pre
        .instantiate_async(&mut store)
        .await
        .map_err(anyhow::Error::from)
        .context("cannot instantiate the module")?;
    let start = instance
        .get_typed_func::<(), ()>(&mut store, "_start")
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!("{shown} has no `_start` export: it is a library (reactor), not a command")
        })?;
    let ended = start.call_async(&mut store, ()).await;
    Ok(exit_code(ended.map(|()| 0).map_err(anyhow::Error::from)))
}

/// The exit code for how a guest ended: its own code, the one it exited with, or, if it
/// trapped, [`TRAP_EXIT_CODE`] after printing why.
fn exit_code(ended: Result<i32>) -> i32 {
    let err = match ended {
        Ok(code) => return code,
        Err(err) => err,
    };
    if let Some(exit) = err.chain().find_map(|e| e.downcast_ref::<I32Exit>()) {
        return exit.0;
    }
    crate::cli::print_error(&err.context("the guest failed"));
    TRAP_EXIT_CODE
}

fn limits(config: &RuntimeConfig) -> GuestLimits {
    GuestLimits::new(config.max_memory, MemoryBudget::new(config.memory_budget))
}

/// The WASI context of a command: argv (program name first), inherited stdio, and `grants`.
fn wasi_builder(args: &RunArgs, grants: &Grants) -> Result<WasiCtxBuilder> {
    let mut builder = WasiCtxBuilder::new();
    builder.inherit_stdio();
    let program = args
        .component
        .file_name()
        .map_or_else(|| "main.wasm".into(), |n| n.to_string_lossy().into_owned());
    builder.arg(program);
    builder.args(&args.args);
    grants.apply(&mut builder)?;
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_wasmtime() {
        assert_eq!(exit_code(Ok(0)), 0);
        assert_eq!(exit_code(Ok(1)), 1);
        assert_eq!(exit_code(Err(anyhow::Error::from(I32Exit(33)))), 33);
        let through_wasmtime = anyhow::Error::from(wasmtime::Error::new(I32Exit(5)));
        assert_eq!(exit_code(Err(through_wasmtime.context("running"))), 5);
        assert_eq!(exit_code(Err(anyhow::anyhow!("trap"))), TRAP_EXIT_CODE);
    }
}
