//! The serving threads a listener can hand its connections to (see [`Listener::threads`]), each
//! running a single-threaded tokio runtime, and the move of an accepted socket onto the runtime
//! that serves it.
//!
//! [`Listener::threads`]: super::Listener::threads

use anyhow::{Context as _, Result};
use tokio::net::TcpStream;

/// The serving threads of a listener, each running a single-threaded runtime.
///
/// They live as long as the process, as the main runtime does: what runs on them past the
/// drain (a connection still open when the grace period ends, a client connection to a backend
/// that a guest call opened there and other triggers share) goes on until the process exits.
#[derive(Default)]
pub(super) struct ServingThreads {
    runtimes: Vec<tokio::runtime::Handle>,
    next: usize,
}

impl ServingThreads {
    /// Starts `count` threads named after the listener (none for 0).
    pub(super) fn start(name: &str, count: usize) -> Result<Self> {
        let mut runtimes = Vec::with_capacity(count);
        for index in 0..count {
            let (runtime_tx, runtime_rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("omnia-{name}-{index}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(err) => {
                            let _ = runtime_tx.send(Err(err));
                            return;
                        }
                    };
                    let _ = runtime_tx.send(Ok(runtime.handle().clone()));
                    runtime.block_on(std::future::pending::<()>());
                })
                .with_context(|| format!("cannot start {name} serving thread {index}"))?;
            let runtime = runtime_rx
                .recv()
                .map_err(anyhow::Error::from)
                .and_then(|built| built.map_err(anyhow::Error::from))
                .with_context(|| {
                    format!("cannot start the runtime of {name} serving thread {index}")
                })?;
            runtimes.push(runtime);
        }
        Ok(Self { runtimes, next: 0 })
    }

    /// The thread for the next connection, in turn: its index and runtime (`None`: the caller's).
    pub(super) fn next(&mut self) -> (usize, Option<&tokio::runtime::Handle>) {
        if self.runtimes.is_empty() {
            return (0, None);
        }
        let index = self.next % self.runtimes.len();
        self.next = self.next.wrapping_add(1);
        (index, self.runtimes.get(index))
    }
}

/// Moves an accepted socket to the I/O driver of the runtime polling this future, so its
/// readiness wakes this thread directly, not through the thread that accepted it.
pub(super) fn on_this_runtime(stream: TcpStream) -> std::io::Result<TcpStream> {
    TcpStream::from_std(stream.into_std()?)
}
