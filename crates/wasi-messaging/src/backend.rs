//! The traits a messaging backend implements: a [`Broker`] publishes, requests and
//! subscribes; a subscription is an [`Inbox`] of [`Delivery`]s, each acknowledged or handed
//! back once the guest has handled it.
//!
//! This crate knows nothing about NATS: `omnia-nats` implements these traits, and
//! [`MemoryBroker`](crate::MemoryBroker) is the in-process default.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::Subscription;

/// A message: what a guest sends and receives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The topic (subject) it was received on; `None` for one the guest made.
    pub topic: Option<String>,
    /// The payload.
    pub data: Vec<u8>,
    /// The format of `data`, if known (carried as the `content-type` header).
    pub content_type: Option<String>,
    /// Metadata (headers), in order; keys are unique.
    pub metadata: Vec<(String, String)>,
    /// Where replies go, for a message sent as a request.
    pub reply_to: Option<String>,
}

impl Message {
    /// A message with `data` and nothing else.
    pub fn new(data: impl Into<Vec<u8>>) -> Self {
        Self {
            data: data.into(),
            ..Self::default()
        }
    }

    /// The value of metadata `key`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets metadata `key` (replacing an existing value).
    pub fn set_metadata(&mut self, key: &str, value: &str) {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => value.clone_into(&mut entry.1),
            None => self.metadata.push((key.to_owned(), value.to_owned())),
        }
    }
}

/// Metadata the runtime adds to each delivered message: how many times it has been delivered
/// (1 for the first time), so a guest (and a test) can tell a redelivery.
pub const DELIVERY_ATTEMPT: &str = "omnia-delivery-attempt";

/// A failure of the backend, as the guest sees it (`wasi:messaging/types.error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The operation (a request) timed out.
    Timeout,
    /// The backend cannot be reached.
    Connection(String),
    /// The backend refused the operation.
    PermissionDenied(String),
    /// Anything else, with a message for the guest.
    Other(String),
}

impl Error {
    /// [`Error::Other`] with `message`.
    pub fn other(message: impl fmt::Display) -> Self {
        Self::Other(message.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("timed out"),
            Self::Connection(m) => write!(f, "connection: {m}"),
            Self::PermissionDenied(m) => write!(f, "permission denied: {m}"),
            Self::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// The result of a backend operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A messaging backend, shared by every instance of the process.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Publishes `message` on `topic`. Returns once the backend took it (for a stream, once it
    /// is stored).
    async fn publish(&self, topic: &str, message: Message) -> Result<()>;

    /// Sends `message` as a request on `topic` and collects replies: until `expected` arrived,
    /// or `timeout` passed (then what arrived, or [`Error::Timeout`] if nothing did). Without a
    /// timeout it waits for `expected` replies (the guest's own deadline still applies).
    async fn request(
        &self,
        topic: &str,
        message: Message,
        timeout: Option<Duration>,
        expected: usize,
    ) -> Result<Vec<Message>>;

    /// Subscribes as `subscription` says. Fails with a message naming what is wrong (an
    /// unknown stream, a bad subject) at start-up.
    async fn subscribe(&self, subscription: &Subscription) -> anyhow::Result<Box<dyn Inbox>>;

    /// What kind of delivery a subscription gets, for logs and docs, e.g. `"at-least-once"`.
    fn guarantee(&self, subscription: &Subscription) -> &'static str;
}

/// The messages of one subscription.
#[async_trait]
pub trait Inbox: Send {
    /// The next delivery; `None` once the subscription has ended for good.
    async fn next(&mut self) -> Option<Box<dyn Delivery>>;
}

/// One delivered message, to settle once the guest has handled it.
#[async_trait]
pub trait Delivery: Send + Sync {
    /// The message, with [`DELIVERY_ATTEMPT`] set.
    fn message(&self) -> &Message;

    /// How many times it has been delivered, this time included.
    fn attempt(&self) -> u64;

    /// Whether [`Delivery::nak`] delivers it again (false for NATS core subjects, which are
    /// at-most-once: a failed message goes to the dead-letter topic at once).
    fn redeliverable(&self) -> bool {
        true
    }

    /// Handled: never deliver it again.
    async fn ack(self: Box<Self>) -> Result<()>;

    /// Not handled: deliver it again after `delay` (a no-op where the backend cannot, such as
    /// NATS core subjects).
    async fn nak(self: Box<Self>, delay: Duration) -> Result<()>;

    /// Given up on: never deliver it again (after it was sent to the dead-letter topic).
    async fn term(self: Box<Self>) -> Result<()>;
}
