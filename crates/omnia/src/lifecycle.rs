//! Start-up and shutdown.
//!
//! A runtime runs its triggers until SIGTERM or SIGINT. Then it stops accepting new work, lets
//! in-flight work finish for up to the grace period (`OMNIA_SHUTDOWN_GRACE`), and exits 0. A
//! second signal during the drain exits at once, with the shell's code for that signal (130
//! for SIGINT, 143 for SIGTERM), as an impatient operator expects. [`Shutdown`] is how a
//! trigger learns that the drain has begun.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{Signal, SignalKind, signal};
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

    /// A signal of its own that also fires when this one does, with the same grace period: for
    /// work that may be stopped alone (a subscription a reload removes) or with everything
    /// else. Dropping the returned trigger without firing it leaves the child to the parent.
    pub fn child(&self) -> (ShutdownTrigger, Shutdown) {
        let (trigger, child) = Shutdown::new(self.grace);
        let tx = trigger.tx.clone();
        let mut parent = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = parent.requested() => { tx.send_replace(true); }
                // Every child receiver is gone: nothing is left to tell.
                () = tx.closed() => {}
            }
        });
        (trigger, child)
    }
}

impl ShutdownTrigger {
    /// Fires the signal: every [`Shutdown`] clone's [`Shutdown::requested`] completes.
    pub fn fire(&self) {
        self.tx.send_replace(true);
    }
}

/// A termination signal received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminationSignal {
    /// SIGTERM (orchestrators, `kill`).
    Term,
    /// SIGINT (Ctrl-C).
    Int,
}

impl TerminationSignal {
    /// `"SIGTERM"` or `"SIGINT"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Term => "SIGTERM",
            Self::Int => "SIGINT",
        }
    }

    /// The exit code of a process killed by this signal: 128 + its number.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Term => 128 + 15,
            Self::Int => 128 + 2,
        }
    }
}

/// SIGTERM and SIGINT, listened to from start-up so that none is missed between the first and
/// the second.
pub struct TerminationSignals {
    term: Signal,
    int: Signal,
}

impl TerminationSignals {
    /// Starts listening (from now on, these signals no longer kill the process by default).
    pub fn listen() -> Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    /// Completes on the next SIGTERM or SIGINT.
    pub async fn recv(&mut self) -> TerminationSignal {
        tokio::select! {
            _ = self.term.recv() => TerminationSignal::Term,
            _ = self.int.recv() => TerminationSignal::Int,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_fires_alone_or_with_its_parent() {
        let (parent_trigger, parent) = Shutdown::new(Duration::from_secs(3));
        let (first_trigger, mut first) = parent.child();
        let (_second_trigger, mut second) = parent.child();
        assert_eq!(first.grace(), Duration::from_secs(3));

        first_trigger.fire();
        first.requested().await;
        assert!(!parent.is_requested(), "a child's trigger fired its parent");
        assert!(
            !second.is_requested(),
            "a child's trigger fired its sibling"
        );

        parent_trigger.fire();
        tokio::time::timeout(Duration::from_secs(5), second.requested())
            .await
            .expect("the parent's signal did not reach its child");
    }
}
