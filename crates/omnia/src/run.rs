//! `runtime_run`: what `omnia run` and `omnia compile` do, for any set of capabilities.

use std::io::Write;

use anyhow::{Context, Result, bail};
use tokio::task::JoinSet;
use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;

use wasmtime::component::{Component, InstancePre, Linker, ResourceType};

use crate::admin::{self, Readiness};
use crate::cli::{Command, RunArgs};
use crate::config::{FromEnv, RuntimeConfig};
use crate::grants::Grants;
use crate::lifecycle::{Shutdown, TerminationSignals};
use crate::traits::Capabilities;
use crate::{Runtime, command, component, engine, telemetry};

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
    // Every setting is read and checked before the (possibly slow) compilation, so a typo is
    // reported in milliseconds.
    let config = RuntimeConfig::from_env()?;
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
    let link = || linker::<C>(&engine);
    let build = crate::cli::build_summary(C::profile(), &C::describe());
    let pre = instantiate_pre(link, &component, &build)
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
    if !grants.is_empty() {
        tracing::info!("granted to the guest: {}", grants.summary());
    }
    let capabilities = C::connect(options, &engine, &component).await?;
    serve::<C>(capabilities, pre, &component, config, grants).await
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
    let state = {
        let capabilities = capabilities.clone();
        Runtime::new(pre, config, grants, move |core| {
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

/// The linker: all of WASI 0.2, and 0.3 in an engine for 0.3 guests (nothing granted unless
/// configured), plus every capability.
fn linker<C: Capabilities>(engine: &Engine) -> Result<Linker<C::StoreCtx>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(anyhow::Error::from)
        .context("linking WASI 0.2")?;
    if engine::kind(engine) == engine::Kind::Async {
        wasmtime_wasi::p3::add_to_linker(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI 0.3")?;
    }
    C::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// Type-checks and links `component` with the linker `build` makes. When imports are missing the
/// error lists all of them, not only the first.
fn instantiate_pre<T: 'static>(
    link: impl Fn() -> Result<Linker<T>>,
    component: &Component,
    build: &str,
) -> Result<InstancePre<T>> {
    let err = match link()?.instantiate_pre(component) {
        Ok(pre) => return Ok(pre),
        Err(err) => err,
    };
    let missing = missing_imports(link, component, &err);
    if missing.is_empty() {
        return Err(err.into());
    }
    bail!(
        "the component imports {} interface(s) this runtime does not provide:\n  - {}\n\
         this omnia is {build}; run the component with an omnia build (profile or cargo \
         features) that has these capabilities",
        missing.len(),
        missing.join("\n  - ")
    )
}

/// Finds every unsatisfied import: take the one the link error names, stand in for it with
/// trapping stubs, link again, until the link succeeds or an error is not about a missing import.
fn missing_imports<T: 'static>(
    build: impl Fn() -> Result<Linker<T>>,
    component: &Component,
    first: &wasmtime::Error,
) -> Vec<String> {
    let Ok(mut probe) = build() else {
        return Vec::new();
    };
    let engine = probe.engine().clone();
    let imports: Vec<(String, ComponentItem)> = component
        .component_type()
        .imports(&engine)
        .map(|(name, item)| (name.to_string(), item.ty))
        .collect();
    let mut missing = Vec::new();
    let mut message = first.to_string();
    for _ in 0..imports.len() {
        let Some(name) = backticked(&message) else {
            break;
        };
        let Some((_, item)) = imports.iter().find(|(n, _)| *n == name) else {
            break;
        };
        if missing.contains(&name) {
            break;
        }
        missing.push(name.clone());
        if stub(&mut probe, &name, item, &engine).is_err() {
            break;
        }
        match probe.instantiate_pre(component) {
            Ok(_) => break,
            Err(err) => message = err.to_string(),
        }
    }
    missing
}

/// The first `quoted` name in a link error.
fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

/// Stands in for the import `name` with functions that trap and placeholder resources.
fn stub<T: 'static>(
    linker: &mut Linker<T>,
    name: &str,
    item: &ComponentItem,
    engine: &Engine,
) -> Result<()> {
    struct Placeholder;
    match item {
        ComponentItem::ComponentInstance(instance) => {
            let mut inst = linker.instance(name).map_err(anyhow::Error::from)?;
            for (export, item) in instance.exports(engine) {
                match item.ty {
                    ComponentItem::ComponentFunc(_) => {
                        inst.func_new(export, |_, _, _, _| {
                            Err(wasmtime::format_err!("not provided"))
                        })
                        .map_err(anyhow::Error::from)?;
                    }
                    ComponentItem::Resource(_) => {
                        inst.resource(export, ResourceType::host::<Placeholder>(), |_, _| Ok(()))
                            .map_err(anyhow::Error::from)?;
                    }
                    _ => {}
                }
            }
        }
        ComponentItem::ComponentFunc(_) => {
            linker
                .root()
                .func_new(name, |_, _, _, _| {
                    Err(wasmtime::format_err!("not provided"))
                })
                .map_err(anyhow::Error::from)?;
        }
        _ => {}
    }
    Ok(())
}
