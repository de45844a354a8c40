//! `runtime_run`: what `omnia run` and `omnia compile` do, for any set of capabilities.
//!
//! `omnia run` reads what to run (a [`RunPlan`]), checks every setting and grant, compiles and
//! links every guest, connects the capabilities they use, and starts the triggers; on `SIGHUP`
//! it does the same again for a new generation of the application (see [`reload`]).

mod reload;

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tokio::task::JoinSet;
use wasmtime::Engine;

use wasmtime::component::{Component, InstancePre, Linker};

use crate::admin::{self, Readiness};
use crate::cli::{Command, RunArgs};
use crate::config::{FromEnv, RuntimeConfig};
use crate::engine::Engines;
use crate::grants::Grants;
use crate::lifecycle::{Shutdown, TerminationSignals};
use crate::manifest::{self, Manifest, PlannedGuest, RunPlan};
use crate::traits::{Capabilities, State};
use crate::{
    AppGuest, Application, Runtime, Shared, command, component, engine, link_error, telemetry,
};

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
    let plan = plan::<C>(&args)?;
    let config = RuntimeConfig::from_env()?;
    let options = C::options()?;
    let grants = grants(&plan)?;
    telemetry::init(C::tracing_layers(&options)?);
    let engines = Engines::new(&plan.engine_config(&config));
    let build = crate::cli::build_summary(C::profile(), &C::describe());
    let loaded = load(&plan, &engines)?;

    // A component on its own may be a command (or a WASI 0.1 module), run once.
    if let ([guest], [(engine, loaded)]) = (&plan.guests[..], &loaded[..]) {
        let file = &guest.args.component;
        let config = guest.config(&config);
        let component = match loaded {
            component::Guest::Component(component) => component,
            component::Guest::Module(module) => {
                let code =
                    command::run_module(engine, module, &guest.args, &grants[0], &config).await?;
                exit_flushed(code)
            }
        };
        let triggers = C::exported_triggers(engine, component);
        if triggers.is_empty() && command::is_command(engine, component) {
            let pre = instantiate_pre(&linker::<C>(engine, component)?, component, &build)
                .with_context(|| format!("cannot link {}", file.display()))?;
            let capabilities = C::connect(options, std::slice::from_ref(component)).await?;
            let capabilities = guest.context(capabilities.for_guest(
                &guest.id,
                &guest.capability_grants,
                false,
            ))?;
            let code = command::run(pre, &guest.args, &grants[0], &config, |core| {
                capabilities.store_ctx(core)
            })
            .await?;
            exit_flushed(code)
        }
        if !triggers.is_empty() && !guest.args.args.is_empty() {
            bail!(
                "arguments after the component ({}) are only for wasi:cli/run components; {} \
                 is served by: {}",
                guest.args.args.join(" "),
                file.display(),
                triggers.join(", ")
            );
        }
    }
    // Every guest is linked and checked against its routes before anything connects or
    // listens: a mistake in the tenth guest is reported before the first serves a request.
    let http_routes = plan.http_routes.clone();
    let linked = link::<C>(plan, grants, loaded, &build)?;
    let components: Vec<Component> = linked
        .iter()
        .map(|(_, _, pre)| pre.component().clone())
        .collect();
    let capabilities = C::connect(options, &components).await?;
    let shared = Shared::new(&config);
    let guests = guests(linked, &capabilities, &shared, &config)?;
    let app = Application::new(guests, http_routes, config, shared.slots().clone());
    let reloader = reload::Reloader {
        args,
        engines: Arc::new(engines),
        build,
        shared,
    };
    serve::<C>(capabilities, app, reloader).await
}

/// What `omnia run` runs for `args`: the manifest's guests, or the component on its own.
fn plan<C: Capabilities>(args: &RunArgs) -> Result<RunPlan> {
    match manifest::manifest_path(args)? {
        Some(path) => RunPlan::from_manifest(&Manifest::load(&path, &C::names())?, args),
        None => Ok(RunPlan::single(args.clone())),
    }
}

/// Each guest's component, compiled (or loaded precompiled) into the engine of its kind.
fn load(plan: &RunPlan, engines: &Engines) -> Result<Vec<(Engine, component::Guest)>> {
    plan.guests
        .iter()
        .map(|guest| guest.context(component::load(engines, &guest.args.component)))
        .collect()
}

/// Each guest's grants (`--env`, `--dir`, the network), read and checked.
fn grants(plan: &RunPlan) -> Result<Vec<Grants>> {
    plan.guests
        .iter()
        .map(|guest| guest.context(Grants::from_args(&guest.args)))
        .collect()
}

/// A guest, linked and checked (see [`check_guest`]), with its grants.
type Linked<T> = (PlannedGuest, Grants, InstancePre<T>);

/// Links and checks every guest of `plan` (`loaded`: their components, in order).
fn link<C: Capabilities>(
    plan: RunPlan,
    grants: Vec<Grants>,
    loaded: Vec<(Engine, component::Guest)>,
    build: &str,
) -> Result<Vec<Linked<C::StoreCtx>>> {
    let count = plan.guests.len();
    plan.guests
        .into_iter()
        .zip(grants)
        .zip(loaded)
        .map(|((guest, grants), (engine, loaded))| {
            let pre = check_guest::<C>(&engine, loaded, &guest, count, build)?;
            Ok((guest, grants, pre))
        })
        .collect()
}

/// The application's guests: each linked guest with the capabilities it is granted.
fn guests<C: Capabilities>(
    linked: Vec<Linked<C::StoreCtx>>,
    capabilities: &C,
    shared: &Shared,
    config: &RuntimeConfig,
) -> Result<Vec<AppGuest<Runtime<C::StoreCtx>>>> {
    let several = linked.len() > 1;
    linked
        .into_iter()
        .map(|(guest, grants, pre)| {
            let scoped = guest.context(capabilities.for_guest(
                &guest.id,
                &guest.capability_grants,
                several,
            ))?;
            Ok(AppGuest {
                state: Runtime::new(
                    &guest.id,
                    pre,
                    guest.config(config),
                    shared,
                    grants,
                    guest.limits,
                    move |core| scoped.store_ctx(core),
                ),
                topics: guest.topics,
            })
        })
        .collect()
}

/// Links one guest of an application (of `guests` guests) and checks it: a component that
/// exports a trigger, the trigger of each of its routes, and (in an application of several)
/// has the routes of each trigger it serves.
fn check_guest<C: Capabilities>(
    engine: &Engine,
    loaded: component::Guest,
    guest: &PlannedGuest,
    guests: usize,
    build: &str,
) -> Result<InstancePre<C::StoreCtx>> {
    let file = &guest.args.component;
    let at = guest.prefix();
    let component::Guest::Component(component) = loaded else {
        bail!(
            "{at}{} is a WASI 0.1 module, which runs as a command on its own (omnia run \
             {}), not as one guest of an application",
            file.display(),
            file.display()
        );
    };
    // Linked first: a component whose imports this build cannot serve says so, whatever it
    // exports.
    let pre = instantiate_pre(&linker::<C>(engine, &component)?, &component, build)
        .with_context(|| format!("{at}cannot link {}", file.display()))?;
    let triggers = C::exported_triggers(engine, &component);
    if triggers.is_empty() {
        let command = if command::is_command(engine, &component) {
            "; a wasi:cli/run command runs on its own (omnia run FILE), not in an application"
        } else {
            ""
        };
        bail!(
            "{at}{} exports nothing this runtime can run: it needs wasi:cli/run or the \
             interface of a trigger compiled into this build ({}); its exports are: [{}]{command}",
            file.display(),
            C::names().join(", "),
            component::export_names(engine, &component).join(", "),
        );
    }
    let check_routes = |trigger: &str, key: &str, example: String, routed: bool| {
        if routed && !triggers.contains(&trigger) {
            bail!(
                "{at}{key}: {} does not serve {trigger} (it is served by: {}); remove \
                 {key}, or give the component that does",
                file.display(),
                triggers.join(", ")
            );
        }
        if !routed && guests > 1 && triggers.contains(&trigger) {
            bail!(
                "{at}{} serves {trigger} but has no {key}: in an application of several \
                 guests each names what it takes, e.g. {key} = [{example}]",
                file.display(),
            );
        }
        Ok(())
    };
    check_routes(
        "http",
        "routes.http",
        format!("\"/{}\"", guest.id),
        guest.has_http_routes,
    )?;
    check_routes(
        "messaging",
        "routes.messaging",
        format!("\"{}.>\"", guest.id),
        guest.topics.as_ref().is_some_and(|t| !t.is_empty()),
    )?;
    Ok(pre)
}

/// Ends the process with a command guest's exit code, once its output is flushed.
fn exit_flushed(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code)
}

async fn serve<C: Capabilities>(
    capabilities: C,
    app: Application<Runtime<C::StoreCtx>>,
    reloader: reload::Reloader,
) -> Result<()> {
    let config = app.config().clone();
    let mut signals = TerminationSignals::listen()?;
    let (stop, shutdown) = Shutdown::new(config.shutdown_grace);
    let readiness = Readiness::default();
    // The admin endpoint outlives the triggers' drain (so `/readyz` answers 503 meanwhile).
    let (stop_admin, admin_shutdown) = Shutdown::new(ADMIN_GRACE);
    let (reload, mut reload_requests) = reload::requests()?;
    let admin = match config.admin_addr {
        Some(addr) => Some(tokio::spawn(
            admin::bind(addr, &config, readiness.clone(), reload, admin_shutdown).await?,
        )),
        None => None,
    };
    let mut servers = JoinSet::new();
    let grace = config.shutdown_grace;

    // Ready only once every trigger listens: a probe that says ready must mean "send traffic".
    let mut bound = Vec::new();
    for trigger in capabilities.triggers(&app, &shutdown) {
        let name = trigger.name;
        bound.push(name);
        let serving = trigger
            .bind
            .await
            .with_context(|| format!("cannot start the {name} trigger"))?;
        servers.spawn(async move { serving.await.with_context(|| format!("{name} trigger")) });
    }
    readiness.set(true);
    // After the triggers' own lines: tools (wasi-testsuite's runner) read the address from the
    // first line, as `wasmtime serve` prints it.
    for guest in app.guests() {
        let granted = guest.grants().summary();
        match (granted.is_empty(), app.guests().len()) {
            (true, _) => {}
            (false, 1) => tracing::info!("granted to the guest: {granted}"),
            (false, _) => tracing::info!("granted to guest {:?}: {granted}", guest.id()),
        }
    }

    let reloads = reload::Reloads {
        reloader: Arc::new(reloader),
        capabilities: capabilities.clone(),
        app: app.clone(),
        bound,
        readiness: readiness.clone(),
    };
    // Serve until a termination signal; reload on SIGHUP (or the admin's POST /reload).
    let signal = loop {
        tokio::select! {
            signal = signals.recv() => break signal,
            Some(()) = reload_requests.recv() => reloads.run().await,
            Some(ended) = servers.join_next() => {
                readiness.set(false);
                stop.fire();
                ended.context("a trigger panicked")??;
                bail!("a trigger stopped on its own");
            }
        }
    };
    readiness.set(false);
    tracing::info!(
        "{}: draining in-flight work for up to {grace:?} (send it again to exit at once)",
        signal.name()
    );
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
