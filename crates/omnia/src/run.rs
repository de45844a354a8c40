//! `runtime_run`: what `omnia run` and `omnia compile` do, for any set of capabilities.

use std::io::Write;

use anyhow::{Context, Result, bail};
use tokio::task::JoinSet;
use wasmtime::Engine;

use wasmtime::component::{Component, InstancePre, Linker};

use crate::admin::{self, Readiness};
use crate::cli::{Command, RunArgs};
use crate::config::{FromEnv, RuntimeConfig};
use crate::grants::Grants;
use crate::lifecycle::{Shutdown, TerminationSignals};
use crate::manifest::routes::HttpRoutes;
use crate::manifest::{self, GuestLimits, Manifest, SingleGuest};
use crate::traits::Capabilities;
use crate::{Runtime, command, component, engine, link_error, telemetry};

/// Runs `command` with the capabilities `C` (the code [`runtime!`](crate::runtime) generates
/// calls this). A command component's exit code becomes the process's exit code.
pub async fn run<C: Capabilities>(command: Command) -> Result<()> {
    match command {
        Command::Run(args) => run_component::<C>(args).await,
        #[cfg(feature = "jit")]
        Command::Compile(args) => {
            telemetry::init(Vec::new());
            compile(&args)
        }
    }
}

#[cfg(feature = "jit")]
fn compile(args: &crate::cli::CompileArgs) -> Result<()> {
    let config = RuntimeConfig::from_env()?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| args.component.with_extension("bin"));
    component::precompile(&config, &args.component, &output)?;
    eprintln!("wrote {}", output.display());
    Ok(())
}

async fn run_component<C: Capabilities>(args: RunArgs) -> Result<()> {
    // Once, before any setting is read: the default connection cap and the check of
    // `OMNIA_HTTP_MAX_CONNECTIONS` derive from the raised limit, and reading a setting has no
    // side effects.
    crate::listener::raise_open_file_limit();
    // Every setting is read and checked before the (possibly slow) compilation, so a typo is
    // reported in milliseconds.
    let SingleGuest {
        args,
        limits,
        http_routes,
    } = match manifest::manifest_path(&args.component)? {
        Some(path) => Manifest::load(&path, &C::names())?.single_guest(&args)?,
        None => SingleGuest {
            args,
            limits: GuestLimits::default(),
            http_routes: None,
        },
    };
    let mut config = RuntimeConfig::from_env()?;
    limits.apply(&mut config);
    let options = C::options()?;
    let grants = Grants::from_args(&args)?;
    telemetry::init(C::tracing_layers(&options)?);
    let (engine, guest) = component::load(&config, &args.component)?;
    let component = match guest {
        component::Guest::Component(component) => component,
        component::Guest::Module(module) => {
            let code = command::run_module(&engine, &module, &args, &grants, &config).await?;
            exit_flushed(code)
        }
    };
    let build = crate::cli::build_summary(C::profile(), &C::describe());
    let pre = instantiate_pre(&linker::<C>(&engine, &component)?, &component, &build)
        .with_context(|| format!("cannot link {}", args.component.display()))?;

    let triggers = C::exported_triggers(&engine, &component);
    if triggers.is_empty() {
        if command::is_command(&engine, &component) {
            let capabilities = C::connect(options, &engine, &component).await?;
            let code = command::run(pre, &args, &grants, &config, |core| {
                capabilities.store_ctx(core)
            })
            .await?;
            exit_flushed(code)
        }
        bail!(
            "{} exports nothing this runtime can run: it needs wasi:cli/run or the interface of \
             a trigger compiled into this build ({}); its exports are: [{}]",
            args.component.display(),
            C::names().join(", "),
            component::export_names(&engine, &component).join(", ")
        );
    }
    if !args.args.is_empty() {
        bail!(
            "arguments after the component ({}) are only for wasi:cli/run components; {} is \
             served by: {}",
            args.args.join(" "),
            args.component.display(),
            triggers.join(", ")
        );
    }
    let capabilities = C::connect(options, &engine, &component).await?;
    serve::<C>(capabilities, pre, &component, config, grants, http_routes).await
}

/// Ends the process with a command guest's exit code, once its output is flushed.
fn exit_flushed(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code)
}

async fn serve<C: Capabilities>(
    capabilities: C,
    pre: InstancePre<C::StoreCtx>,
    component: &Component,
    config: RuntimeConfig,
    grants: Grants,
    http_routes: Option<HttpRoutes<String>>,
) -> Result<()> {
    let mut signals = TerminationSignals::listen()?;
    let (stop, shutdown) = Shutdown::new(config.shutdown_grace);
    let readiness = Readiness::default();
    // The admin endpoint outlives the triggers' drain (so `/readyz` answers 503 meanwhile).
    let (stop_admin, admin_shutdown) = Shutdown::new(ADMIN_GRACE);
    let admin = match config.admin_addr {
        Some(addr) => Some(tokio::spawn(
            admin::bind(addr, &config, readiness.clone(), admin_shutdown).await?,
        )),
        None => None,
    };
    let mut servers = JoinSet::new();
    let grace = config.shutdown_grace;
    let granted = grants.summary();
    let state = {
        let capabilities = capabilities.clone();
        Runtime::new(pre, config, grants, http_routes, move |core| {
            capabilities.store_ctx(core)
        })
    };

    // Ready only once every trigger listens: a probe that says ready must mean "send traffic".
    for trigger in capabilities.triggers(&state, component, &shutdown) {
        let name = trigger.name;
        let serving = trigger
            .bind
            .await
            .with_context(|| format!("cannot start the {name} trigger"))?;
        servers.spawn(async move { serving.await.with_context(|| format!("{name} trigger")) });
    }
    readiness.set(true);
    // After the triggers' own lines: tools (wasi-testsuite's runner) read the address from the
    // first line, as `wasmtime serve` prints it.
    if !granted.is_empty() {
        tracing::info!("granted to the guest: {granted}");
    }

    tokio::select! {
        signal = signals.recv() => {
            readiness.set(false);
            tracing::info!(
                "{}: draining in-flight work for up to {grace:?} (send it again to exit at once)",
                signal.name()
            );
        }
        Some(ended) = servers.join_next() => {
            readiness.set(false);
            stop.fire();
            ended.context("a trigger panicked")??;
            bail!("a trigger stopped on its own");
        }
    }
    stop.fire();
    let drained = async {
        while let Some(ended) = servers.join_next().await {
            ended.context("a trigger panicked")??;
        }
        anyhow::Ok(())
    };
    tokio::select! {
        drained = drained => drained?,
        signal = signals.recv() => {
            tracing::warn!("{} during the drain: exiting at once", signal.name());
            let _ = std::io::stderr().flush();
            std::process::exit(signal.exit_code());
        }
    }
    // Flush telemetry and close backends, within what is left of the grace period.
    if tokio::time::timeout(grace, capabilities.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("capabilities did not shut down within {grace:?}");
    }
    stop_admin.fire();
    if let Some(admin) = admin {
        admin.await.context("the admin endpoint panicked")??;
    }
    tracing::info!("stopped");
    Ok(())
}

/// How long the admin endpoint's own connections may take to close once the drain is over.
const ADMIN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The linker for `component`: all of WASI 0.2, and 0.3 in an engine for 0.3 guests (nothing
/// granted unless configured), plus every capability in the shapes `component` imports.
fn linker<C: Capabilities>(engine: &Engine, component: &Component) -> Result<Linker<C::StoreCtx>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(anyhow::Error::from)
        .context("linking WASI 0.2")?;
    if engine::kind(engine) == engine::Kind::Async {
        wasmtime_wasi::p3::add_to_linker(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI 0.3")?;
    }
    C::add_to_linker(&mut linker, component)?;
    Ok(linker)
}

/// Type-checks and links `component` with `linker`. When imports are missing or
/// differ, the error lists all of them, each classified (see [`link_error`]).
fn instantiate_pre<T: 'static>(
    linker: &Linker<T>,
    component: &Component,
    build: &str,
) -> Result<InstancePre<T>> {
    linker
        .instantiate_pre(component)
        .map_err(|err| link_error::explain(linker, component, build, err))
}
