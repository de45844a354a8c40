//! The per-connection watchdog: turns a connection's activity into the header-read and idle
//! timeouts, and closes the connection gracefully (then drops it after a short linger) when
//! one passes or when the listener drains.
//!
//! The watchdog is not told of each change: a request would otherwise wake it three times
//! (headers started, request in flight, response done), each time re-arming its timer, a cost
//! every request paid for timeouts measured in seconds. It reads the activity when its timer
//! fires instead, and never sleeps longer than the header timeout, so a change it was not told
//! of is seen before any deadline that change starts can pass: timeouts stay exact.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::server::conn::auto;
use tokio::time::Instant;

use super::ConnectionPolicy;
use super::activity::Activity;
use super::connections::ConnHandle;
use crate::metrics;

/// How long a connection being closed while idle may take to flush and close by itself before
/// it is dropped.
const LINGER: Duration = Duration::from_secs(1);

/// Serves one connection until it ends, applying the timeouts and the close signal.
pub(super) async fn serve_one<C>(served: C, conn: &ConnHandle, policy: ConnectionPolicy)
where
    C: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + GracefulShutdown,
{
    tokio::pin!(served);
    let mut closing_since: Option<Instant> = None;
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    loop {
        let now = Instant::now();
        let activity = conn.activity.get();
        let deadline = deadline(activity, closing_since, policy);
        if deadline.is_some_and(|at| at <= now) {
            if closing_since.is_some() {
                return; // dropping the connection closes it
            }
            metrics::CONNECTIONS_TIMED_OUT.inc();
            let which = if matches!(activity, Activity::Head(_)) {
                "header-read (OMNIA_HTTP_HEADER_TIMEOUT)"
            } else {
                "idle (OMNIA_HTTP_IDLE_TIMEOUT)"
            };
            tracing::debug!("closing a connection at its {which} timeout");
            served.as_mut().graceful_shutdown();
            closing_since = Some(now);
            continue;
        }
        // Look again by the header timeout (the linger, once closing) at the latest: a change
        // since (a request that started or ended) may have started an earlier deadline.
        let recheck = now
            + match closing_since {
                Some(_) => LINGER,
                None => policy.header_timeout.min(policy.idle_timeout),
            };
        timer
            .as_mut()
            .reset(deadline.map_or(recheck, |at| at.min(recheck)));
        tokio::select! {
            ended = served.as_mut() => {
                if let Err(err) = ended {
                    tracing::debug!("connection closed with an error: {err}");
                }
                return;
            }
            () = timer.as_mut() => {}
            () = conn.close.cancelled(), if closing_since.is_none() => {
                served.as_mut().graceful_shutdown();
                closing_since = Some(Instant::now());
            }
        }
    }
}

/// When a connection doing `activity` is to be closed (`None` while a request is in flight):
/// at its idle or header timeout, or, once closing, a short linger after that began.
fn deadline(
    activity: Activity,
    closing_since: Option<Instant>,
    policy: ConnectionPolicy,
) -> Option<Instant> {
    match (activity, closing_since) {
        (Activity::Busy(_), _) => None,
        (Activity::Idle(since) | Activity::Head(since), Some(closing)) => {
            Some(closing.max(since) + LINGER)
        }
        (Activity::Idle(since), None) => Some(since + policy.idle_timeout),
        (Activity::Head(since), None) => Some(since + policy.header_timeout),
    }
}

/// A connection future that can be asked to finish what it is doing and close.
pub(super) trait GracefulShutdown {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, E, B> GracefulShutdown for auto::Connection<'_, I, S, E>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: 'static,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: auto::HttpServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        auto::Connection::graceful_shutdown(self);
    }
}
