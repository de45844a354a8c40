//! What each connection is doing (idle since, receiving headers since, or the number of
//! requests in flight), and the wrappers that record it: around its socket (what was read) and
//! around its service (when a request starts, and when its response body is done or dropped).
//! The watchdog turns this activity into the timeouts, and the registry uses it to pick the
//! connection to shed at the cap.
//!
//! Recording a change takes an uncontended lock and wakes nobody: the watchdog reads the
//! activity when its timer fires (see the watchdog module).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::Service;
use hyper::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Activity {
    /// No request in flight, nothing received since.
    Idle(Instant),
    /// No request in flight, but the client has started sending one (HTTP/1 headers).
    Head(Instant),
    /// This many requests in flight (their responses not yet fully sent).
    Busy(usize),
}

/// A connection's [`Activity`], shared by its socket, its service, its watchdog and the
/// registry. Updating it takes an uncontended lock and wakes nobody.
#[derive(Clone)]
pub(super) struct SharedActivity(Arc<Mutex<Activity>>);

impl SharedActivity {
    pub(super) fn new() -> Self {
        Self(Arc::new(Mutex::new(Activity::Idle(Instant::now()))))
    }

    pub(super) fn get(&self) -> Activity {
        *self.lock()
    }

    pub(super) fn update(&self, change: impl FnOnce(Activity) -> Activity) {
        let mut activity = self.lock();
        *activity = change(*activity);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Activity> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The HTTP/2 connection preface's first bytes.
const H2_PREFACE_START: &[u8; 4] = b"PRI ";

/// A socket that reports reads to the connection's [`Activity`]: the first bytes received while
/// idle start the header timer (HTTP/1 only).
pub(super) struct TrackedIo {
    stream: TcpStream,
    activity: SharedActivity,
    /// The first bytes of the connection, until there are enough to tell HTTP/2 from HTTP/1.
    preface: Vec<u8>,
    http2: Option<bool>,
}

impl TrackedIo {
    pub(super) fn new(stream: TcpStream, activity: SharedActivity) -> Self {
        Self {
            stream,
            activity,
            preface: Vec::new(),
            http2: None,
        }
    }

    fn received(&mut self, bytes: &[u8]) {
        if self.http2.is_none() {
            let want = H2_PREFACE_START.len() - self.preface.len();
            self.preface
                .extend_from_slice(&bytes[..bytes.len().min(want)]);
            if self.preface.len() == H2_PREFACE_START.len() {
                self.http2 = Some(self.preface == H2_PREFACE_START);
            }
        }
        if self.http2 == Some(true) {
            return;
        }
        self.activity.update(|activity| match activity {
            Activity::Idle(_) => Activity::Head(Instant::now()),
            busy_or_head => busy_or_head,
        });
    }
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.received(&buf.filled()[before..]);
        }
        polled
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A service that marks the connection busy from the start of each request until its
/// response body is done (or dropped because the client went away).
pub(super) struct Tracked<S> {
    pub(super) inner: S,
    pub(super) activity: SharedActivity,
}

impl<S, B> Service<Request<Incoming>> for Tracked<S>
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
    B: Body + Unpin,
{
    type Response = Response<TrackedBody<B>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let guard = InFlight::start(self.activity.clone());
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| TrackedBody {
                body,
                _in_flight: guard,
            }))
        })
    }
}

/// One request in flight on a connection; dropping it ends the request.
pub(super) struct InFlight(SharedActivity);

impl InFlight {
    pub(super) fn start(activity: SharedActivity) -> Self {
        activity.update(|a| match a {
            Activity::Busy(n) => Activity::Busy(n + 1),
            Activity::Idle(_) | Activity::Head(_) => Activity::Busy(1),
        });
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.update(|a| match a {
            Activity::Busy(n) if n > 1 => Activity::Busy(n - 1),
            _ => Activity::Idle(Instant::now()),
        });
    }
}

/// A response body that keeps its request in flight until it is done.
pub struct TrackedBody<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
