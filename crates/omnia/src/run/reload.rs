//! Live reload: on `SIGHUP` (or `POST /reload` on the admin endpoint), the application is read, compiled, linked and checked again, as at
//! start-up; if every check passes, its new generation serves new work while work in flight
//! finishes on the old one (see [`Application::replace`]). If any check fails, the running
//! application keeps serving, the error is logged, `/readyz` says so (still 200: the old
//! generation serves) and `omnia_reloads_total{result="failed"}` counts it.
//!
//! What a process set up at start-up stays: the triggers it started and the backends it
//! connected. A new generation that needs another trigger (the first message handler) or
//! capability (the first key-value guest), or a larger memory limit than the engine's instance
//! slots were sized for, is refused with a message saying to restart. Message topics may
//! change: the messaging trigger subscribes and unsubscribes to follow. Digests are checked
//! again, so a file replaced by one the manifest does not pin is refused too.

use std::sync::Arc;

use anyhow::{Result, bail};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::admin::Readiness;
use crate::cli::RunArgs;
use crate::engine::Engines;
use crate::metrics::{self, CounterFamily, Metric};
use crate::traits::Capabilities;
use crate::{Application, Runtime, Shared};

/// Reloads by outcome.
pub static RELOADS: CounterFamily = CounterFamily::new(
    "omnia_reloads_total",
    "Reloads of the application (SIGHUP) by result: ok, or failed (the old one keeps serving).",
    &["result"],
);

/// What a reload needs from start-up: what to read, the engines, the shared limits.
pub(super) struct Reloader {
    /// `omnia run`'s arguments: the manifest (or component) to read again.
    pub(super) args: RunArgs,
    pub(super) engines: Arc<Engines>,
    /// The build's summary, for link errors.
    pub(super) build: String,
    pub(super) shared: Shared,
}

/// A running application and how to reload it.
pub(super) struct Reloads<C: Capabilities> {
    pub(super) reloader: Arc<Reloader>,
    pub(super) capabilities: C,
    pub(super) app: Application<Runtime<C::StoreCtx>>,
    /// The triggers started at start-up.
    pub(super) bound: Vec<&'static str>,
    pub(super) readiness: Readiness,
}

/// Requests to reload: a message each time the process gets `SIGHUP`, and each time the
/// returned sender is used (the admin endpoint's `POST /reload`).
pub(super) fn requests() -> Result<(mpsc::Sender<()>, mpsc::Receiver<()>)> {
    use anyhow::Context as _;
    metrics::register(Metric::CounterFamily(&RELOADS));
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    // One pending reload is enough: it reads the newest files.
    let (tx, rx) = mpsc::channel(1);
    let hangups = tx.clone();
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let _ = hangups.try_send(());
        }
    });
    Ok((tx, rx))
}

impl<C: Capabilities> Reloads<C> {
    /// Reloads the application (compiling off the async threads), and reports how it went.
    pub(super) async fn run(&self) {
        tracing::info!("reloading the application");
        let reloader = Arc::clone(&self.reloader);
        let capabilities = self.capabilities.clone();
        let app = self.app.newest();
        let bound = self.bound.clone();
        let built = tokio::task::spawn_blocking(move || {
            reload::<C>(&reloader, &capabilities, &app, &bound)
        })
        .await;
        match built.map_err(anyhow::Error::from).and_then(|built| built) {
            Ok(guests) => {
                RELOADS.inc(&["ok"]);
                self.readiness.set_detail(None);
                tracing::info!("reloaded: {guests} guest(s); new work goes to them");
            }
            Err(err) => {
                RELOADS.inc(&["failed"]);
                let detail =
                    format!("the last reload failed, the application before it serves: {err:#}");
                tracing::error!("{detail}");
                self.readiness.set_detail(Some(detail));
            }
        }
    }
}

/// Reads, compiles, links and checks the application again and, if all is well, makes it
/// `app`'s next generation; the number of its guests.
fn reload<C: Capabilities>(
    reloader: &Reloader,
    capabilities: &C,
    app: &Application<Runtime<C::StoreCtx>>,
    bound: &[&'static str],
) -> Result<usize> {
    let plan = super::plan::<C>(&reloader.args)?;
    let sized = reloader.engines.config().max_memory;
    if plan.engine_config(app.config()).max_memory > sized {
        bail!(
            "a guest's limits.memory is above the {sized} bytes the instance pool was sized for \
             at start-up: restart omnia to resize it"
        );
    }
    let grants = super::grants(&plan)?;
    let loaded = super::load(&plan, &reloader.engines)?;
    let http_routes = plan.http_routes.clone();
    let linked = super::link::<C>(plan, grants, loaded, &reloader.build)?;
    for (guest, _, pre) in &linked {
        let component = pre.component();
        let at = guest.prefix();
        let triggers = C::exported_triggers(component.engine(), component);
        if let Some(trigger) = triggers.iter().find(|t| !bound.contains(t)) {
            bail!(
                "{at}it serves {trigger}, which this process did not start: restart omnia to \
                 start it"
            );
        }
        let unconnected = capabilities.unconnected(component);
        if !unconnected.is_empty() {
            bail!(
                "{at}it uses {}, which this process did not connect (no guest used it at \
                 start-up): restart omnia to connect it",
                unconnected.join(", ")
            );
        }
    }
    let config = app.config().clone();
    let guests = super::guests(linked, capabilities, &reloader.shared, &config)?;
    let count = guests.len();
    app.replace(guests, http_routes);
    Ok(count)
}
