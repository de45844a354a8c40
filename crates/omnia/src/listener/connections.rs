//! The connection cap of a listener: the registry of its open connections, the shedding of the
//! one idle the longest to make room for a newcomer (or a file descriptor when `accept`
//! fails), and the default cap derived from the process's open-file limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;

use super::activity::{Activity, SharedActivity};
use crate::metrics;

/// The default connection cap is never above this.
const MAX_DEFAULT_CONNECTIONS: u64 = 16_384;

/// The open connections of a listener.
#[derive(Default)]
pub(super) struct Registry {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Entry>>,
}

struct Entry {
    activity: SharedActivity,
    close: CancellationToken,
}

/// What a connection's task holds of its registry entry.
pub(super) struct ConnHandle {
    pub(super) id: u64,
    pub(super) activity: SharedActivity,
    pub(super) close: CancellationToken,
}

impl Registry {
    pub(super) fn open(&self, close: CancellationToken) -> ConnHandle {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = SharedActivity::new();
        self.lock().insert(
            id,
            Entry {
                activity: activity.clone(),
                close: close.clone(),
            },
        );
        ConnHandle {
            id,
            activity,
            close,
        }
    }

    pub(super) fn close(&self, id: u64) {
        self.lock().remove(&id);
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Closes the connection that has been without a request the longest; false if every
    /// connection has a request in flight.
    pub(super) fn shed_one(&self) -> bool {
        let mut open = self.lock();
        let oldest = open
            .iter()
            .filter_map(|(id, entry)| match entry.activity.get() {
                Activity::Idle(since) | Activity::Head(since) => Some((since, *id)),
                Activity::Busy(_) => None,
            })
            .min();
        let Some((_, id)) = oldest else {
            return false;
        };
        if let Some(entry) = open.remove(&id) {
            entry.close.cancel();
            metrics::CONNECTIONS_SHED.inc();
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Raises this process's soft limit of open files to the hard one (as Go and most servers do
/// at start-up) and returns the limit now in force. `omnia run` calls it once, before any
/// setting is read, so the default connection cap ([`default_max_connections`]) and the check
/// of `OMNIA_HTTP_MAX_CONNECTIONS` see the raised limit; nothing else changes the limit.
pub fn raise_open_file_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = match (limit.current, limit.maximum) {
        (Some(current), maximum) if maximum.is_none_or(|max| max > current) => {
            let wanted = Rlimit {
                current: maximum.or(Some(1 << 20)),
                maximum,
            };
            setrlimit(Resource::Nofile, wanted).is_ok()
        }
        _ => false,
    };
    let now = open_file_limit();
    if raised {
        tracing::debug!("open file limit raised to {now}");
    }
    now
}

/// The largest number of open files this process may have now (its soft limit; unlimited
/// counts as `u64::MAX`). Reads the limit, never changes it (see [`raise_open_file_limit`]).
pub fn open_file_limit() -> u64 {
    use rustix::process::{Resource, getrlimit};
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The default connection cap: three quarters of the open-file limit (the rest is for
/// backends, outgoing requests and files), at most 16384.
pub fn default_max_connections() -> usize {
    let fds = open_file_limit();
    let cap = (fds / 4 * 3).clamp(16, MAX_DEFAULT_CONNECTIONS);
    usize::try_from(cap).unwrap_or(16)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::activity::InFlight;
    use super::*;

    #[tokio::test]
    async fn sheds_the_longest_idle_connection() {
        let registry = Registry::default();
        let busy = registry.open(CancellationToken::new());
        let _req = InFlight::start(busy.activity.clone());
        let old = registry.open(CancellationToken::new());
        tokio::time::sleep(Duration::from_millis(5)).await;
        let young = registry.open(CancellationToken::new());
        assert!(registry.shed_one());
        assert!(old.close.is_cancelled(), "the oldest idle one goes first");
        assert!(!young.close.is_cancelled() && !busy.close.is_cancelled());
        assert!(registry.shed_one());
        assert!(young.close.is_cancelled());
        assert!(!registry.shed_one(), "a busy connection is never shed");
    }
}
