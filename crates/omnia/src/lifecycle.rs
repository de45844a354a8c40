//! Start-up and shutdown.
//!
//! A runtime runs its triggers until SIGTERM or SIGINT. Then it stops accepting new work, lets
//! in-flight work finish for up to the grace period (`OMNIA_SHUTDOWN_GRACE`), and exits 0.
//! [`Shutdown`] is how a trigger learns that the drain has begun.

use std::time::Duration;

use tokio::sync::watch;

/// A cloneable signal that fires once, when the runtime starts shutting down.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
    grace: Duration,
}

/// The sending half of a [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    /// A new signal and the trigger that fires it. `grace` is how long in-flight work may take
    /// once it fires.
    pub fn new(grace: Duration) -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx }, Shutdown { rx, grace })
    }

    /// Completes when shutdown has begun (at once if it already has).
    pub async fn requested(&mut self) {
        // An error means the trigger is gone, which also means shutdown.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }

    /// Whether shutdown has begun.
    pub fn is_requested(&self) -> bool {
        *self.rx.borrow()
    }

    /// How long in-flight work may take after shutdown begins.
    pub fn grace(&self) -> Duration {
        self.grace
    }
}

impl ShutdownTrigger {
    /// Fires the signal: every [`Shutdown`] clone's [`Shutdown::requested`] completes.
    pub fn fire(&self) {
        self.tx.send_replace(true);
    }
}

/// Completes on the first SIGTERM or SIGINT (Ctrl-C).
pub async fn termination_signal() -> anyhow::Result<&'static str> {
    use anyhow::Context;
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
