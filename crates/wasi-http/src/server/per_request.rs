//! WASI 0.2 HTTP guests: a fresh instance per request, in a task of its own.
//!
//! Each request gets a new store and instance made from the one `ProxyPre` built at start-up,
//! and `wasi:http/incoming-handler.handle` runs in its own task, under an
//! [`omnia::invoke::Call`] that holds the request's deadline and records its outcome. The
//! response head reaches the request handler as soon as the guest sets it, while the task goes
//! on streaming the body; the task decides the outcome, so a guest that sets a head and then
//! fails before yielding still gets an error status, and one that fails later has its response
//! cut short (see [`super::response_body`]).
//!
//! The task is aborted when the request's handler or response body is dropped (the client went
//! away), which cancels the guest call and frees its slot.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::Result;
use bytes::Bytes;
use hyper::{Request, Response};
use omnia::invoke::{Call, Outcome};
use omnia::trace::Work;
use omnia::{Admission, HostView, State};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument as _;
use wasmtime_wasi_http::Error as HttpError;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::RESPONSES_TRUNCATED;
use super::answers::{self, NoAnswer};
use super::request_body::BodyFault;
use super::response_body::CUT_SHORT;
use crate::{WasiHttpCtx, http_view};

/// What the guest task tells the request handler once the response head is known.
pub(super) type Head = Result<Response<HyperOutgoingBody>, NoAnswer>;

/// The task running one request's guest: aborted when dropped while it still runs.
pub(super) struct GuestTask {
    task: Option<JoinHandle<()>>,
    /// Raised by the task when the guest failed after its response head was sent.
    failed_after_head: Arc<AtomicBool>,
}

impl GuestTask {
    /// Whether the guest failed after its response head was sent (set before the task drops
    /// the body's sender, so known when the body ends).
    pub(super) fn failed_after_head(&self) -> bool {
        self.failed_after_head.load(Ordering::Acquire)
    }
}

impl Drop for GuestTask {
    fn drop(&mut self) {
        // Aborting drops the task's call, which records it as cancelled.
        if let Some(task) = self.task.take()
            && !task.is_finished()
        {
            task.abort();
        }
    }
}

/// Starts the guest for one request (`what`: its method and path) in its own task. The
/// returned channel gives the response head as soon as the guest sets it (the body keeps
/// streaming from the task). `fault` is where the request's body records why reading it
/// failed, which decides whether a failing guest is to blame.
pub(super) fn spawn<S, B>(
    state: &S,
    pre: &ProxyPre<S::StoreCtx>,
    req: Request<B>,
    admission: Admission,
    work: Work,
    what: String,
    fault: Arc<OnceLock<BodyFault>>,
) -> Result<(oneshot::Receiver<Head>, GuestTask)>
where
    S: State,
    S::StoreCtx: HostView<WasiHttpCtx>,
    B: hyper::body::Body<Data = Bytes, Error = HttpError> + Send + 'static,
{
    let span = work.span.clone();
    let mut store = state.new_store(work);
    let (out_tx, mut out_rx) = oneshot::channel();
    let (req, out) = {
        let mut view = http_view(store.data_mut());
        let req = view.new_incoming_request(Scheme::Http, req)?;
        let out = view.new_response_outparam(out_tx)?;
        (req, out)
    };
    let pre = pre.clone();
    let mut call = Call::new(
        "http",
        state.id(),
        what,
        span.clone(),
        state.config().request_timeout,
    )
    .watching(&mut store);
    let (head_tx, head_rx) = oneshot::channel::<Head>();
    let failed_after_head = Arc::new(AtomicBool::new(false));
    let failed = Arc::clone(&failed_after_head);
    let task = tokio::spawn(
        async move {
            let _admission = admission; // the slot is held until the store is gone
            // Forward the head as soon as the guest sets it, while the call goes on writing the
            // body. Both happen in this task, so a guest that sets a head and then fails before
            // yielding still gets an error status instead of a broken response.
            let mut head_tx = Some(head_tx);
            let mut answered_error = false;
            let outcome = call
                .run(async {
                    let guest = async {
                        let instantiating = Instant::now();
                        let proxy = pre.instantiate_async(&mut store).await?;
                        omnia::metrics::INSTANTIATION_DURATION.record(instantiating.elapsed());
                        proxy
                            .wasi_http_incoming_handler()
                            .call_handle(&mut store, req, out)
                            .await
                            .map(Ok::<(), Infallible>)
                    };
                    tokio::pin!(guest);
                    loop {
                        tokio::select! {
                            biased;
                            ended = &mut guest => break ended,
                            set = &mut out_rx, if head_tx.is_some() => {
                                let head = head_of(set);
                                answered_error = head.is_err();
                                if let Some(tx) = head_tx.take() {
                                    let _ = tx.send(head);
                                }
                            }
                        }
                    }
                })
                .await;
            match (head_tx, outcome) {
                // The head was sent: only the body can still tell the client (see GuestBody).
                (None, Outcome::Failed(failure)) => {
                    failed.store(true, Ordering::Release);
                    RESPONSES_TRUNCATED.inc();
                    call.note(CUT_SHORT);
                    call.finish(&Outcome::<(), Infallible>::Failed(failure));
                }
                (None, _) if answered_error => {
                    call.finish(&Outcome::<(), _>::GuestError("an error code"));
                }
                (None, outcome) => call.finish(&outcome),
                (Some(tx), outcome) => {
                    let head = match outcome {
                        Outcome::Failed(failure) => Err(NoAnswer::Failed(failure)),
                        Outcome::Ok(()) => head_of(out_rx.try_recv()),
                        Outcome::GuestError(never) => match never {},
                    };
                    match &head {
                        Ok(_) => call.finish(&Outcome::<(), Infallible>::Ok(())),
                        Err(no_answer) => answers::finish_unanswered(call, no_answer, fault.get()),
                    }
                    let _ = tx.send(head);
                }
            }
            // The store (and with it the body's sender) is dropped only now, after the outcome
            // is known, so a body cut short is reported as such.
            drop(store);
        }
        .instrument(span),
    );
    let task = GuestTask {
        task: Some(task),
        failed_after_head,
    };
    Ok((head_rx, task))
}

/// The head the guest set with `response-outparam.set` (or never set: the sender is gone).
fn head_of<E>(set: Result<Result<Response<HyperOutgoingBody>, impl std::fmt::Debug>, E>) -> Head {
    match set {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(code)) => Err(NoAnswer::ErrorCode(format!("{code:?}"))),
        Err(_) => Err(NoAnswer::NoResponse),
    }
}
