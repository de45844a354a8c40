//! The response body: the guest's, streamed to the client, or one the runtime made.
//!
//! A guest that fails after sending its response head cannot change the status any more: the
//! body is cut off so that the client sees an incomplete response (HTTP/1.1 without the final
//! chunk, HTTP/2 with a stream reset) rather than a short one that looks whole, and the failure
//! is logged and counted (`omnia_http_responses_truncated_total`). Dropped before its end (the
//! client went away), the body cancels the guest call.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use omnia::Admission;
use omnia::invoke::{Call, Outcome};
use wasmtime_wasi_http::Error as HttpError;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::RESPONSES_TRUNCATED;
use super::per_request::GuestTask;
use super::reuse::Stub;

/// Said of a guest call that failed after its response head was sent (see
/// [`Call::note`]).
pub(super) const CUT_SHORT: &str = " after sending the response head, the response was cut short";

/// Empty data frames a response body may skip in one poll before it yields to the connection's
/// other work (and is woken at once to go on).
const EMPTY_FRAMES_PER_POLL: usize = 64;

/// A response body: the guest's (streamed from its task or instance) or one the runtime made.
///
/// At its end, it checks that the guest finished well: a guest that failed mid-body ends the
/// body with an error. Empty data frames (a guest's empty writes) are dropped, so that they
/// cannot pile up in hyper's HTTP/2 send queue.
pub struct GuestBody {
    inner: HyperOutgoingBody,
    source: Source,
    done: bool,
}

/// Where a response body comes from, and who records its guest call.
enum Source {
    /// A 0.2 guest's task, which records its call itself.
    Task(GuestTask),
    /// A reused (0.3) instance: the call is recorded here when the body ends (dropped before,
    /// it records a cancelled call), the stub tells whether the instance failed, and the
    /// request's slot is held until the body is sent.
    Instance {
        call: Call,
        stub: Stub,
        admission: Admission,
    },
    /// The runtime's own answer.
    Runtime,
}

impl GuestBody {
    /// The body a 0.2 guest streams from its task.
    pub(super) fn from_task(inner: HyperOutgoingBody, task: GuestTask) -> Self {
        Self::new(inner, Source::Task(task))
    }

    /// The body a reused (0.3) instance streams for the request that `call` serves.
    pub(super) fn from_instance(
        inner: HyperOutgoingBody,
        call: Call,
        stub: Stub,
        admission: Admission,
    ) -> Self {
        Self::new(
            inner,
            Source::Instance {
                call,
                stub,
                admission,
            },
        )
    }

    /// A body of the runtime's own.
    pub(super) fn runtime(text: Bytes) -> Self {
        let inner = Full::new(text)
            .map_err(|never: Infallible| match never {})
            .boxed_unsync();
        Self::new(inner, Source::Runtime)
    }

    fn new(inner: HyperOutgoingBody, source: Source) -> Self {
        Self {
            inner,
            source,
            done: false,
        }
    }

    /// Ends the guest's part at the body's end (`error`: the body ended with an error):
    /// `true` if the guest failed after sending the head, so that the body must end as an
    /// error.
    fn end(&mut self, error: bool) -> bool {
        match std::mem::replace(&mut self.source, Source::Runtime) {
            // The guest task records a failure before it drops the body's sender, so a body
            // that ended because the guest failed is known here. A guest that is still running
            // finished its body properly, and may go on working after the response: dropping
            // the task cancels it.
            Source::Task(task) => task.failed_after_head(),
            Source::Instance {
                mut call,
                stub,
                admission,
            } => {
                let failed = if let Some(failure) = stub.failure() {
                    RESPONSES_TRUNCATED.inc();
                    call.note(CUT_SHORT);
                    call.finish(&Outcome::<(), Infallible>::Failed(failure));
                    true
                } else if error {
                    call.finish(&Outcome::<(), _>::GuestError(
                        "the response body ended with an error",
                    ));
                    false
                } else {
                    call.finish(&Outcome::<(), Infallible>::Ok(()));
                    false
                };
                drop(admission);
                failed
            }
            Source::Runtime => false,
        }
    }
}

impl Body for GuestBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        // A guest's empty writes are dropped here, never passed on: over HTTP/2 an empty DATA
        // frame needs no flow-control window, so hyper queues one per write for as long as the
        // client does not read, without bound (GHSA-f8mm-ggr3-89wh). They carry nothing; the
        // body's end is signalled by its last frame, not by an empty one.
        let mut skipped = 0;
        let polled = loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) if frame.data_ref().is_some_and(Bytes::is_empty) => {
                    skipped += 1;
                    if skipped == EMPTY_FRAMES_PER_POLL {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                polled => break polled,
            }
        };
        match &polled {
            Poll::Ready(None) => {
                this.done = true;
                if this.end(false) {
                    return Poll::Ready(Some(Err(HttpError::InternalError(Some(
                        "the guest failed while sending the response body".into(),
                    )))));
                }
            }
            Poll::Ready(Some(Err(_))) => {
                this.end(true);
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
