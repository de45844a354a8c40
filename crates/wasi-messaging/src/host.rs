//! The `wasi:messaging` host functions (types, producer, request-reply), over any [`Broker`].
//!
//! Guest-visible resources are [`ClientHandle`] (a client: the runtime's one connection, the
//! name is ignored), [`Message`] (a message the guest made or received) and
//! [`RequestOptions`]. A failing broker is the WIT `error` variant for the guest; only a broken
//! resource handle, which a correct guest cannot produce, traps.

use omnia::trace::{TRACEPARENT, TraceContext};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasData, Resource, ResourceTable};

use crate::backend::{self, Broker, Message};
use crate::config::check_subject;

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "omnia:wasi-messaging/messaging-host",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "wasi:messaging/types.client": super::ClientHandle,
            "wasi:messaging/types.message": crate::backend::Message,
            "wasi:messaging/request-reply.request-options": super::RequestOptions,
        },
        trappable_error_type: {
            "wasi:messaging/types.error" => super::HostError,
        },
    });
}

use bindings::wasi::messaging::{producer, request_reply, types};

/// A client, as held in a store's resource table.
#[derive(Debug)]
pub struct ClientHandle {
    /// The name the guest connected with (informational).
    pub name: String,
}

/// Options of one request.
#[derive(Debug, Default)]
pub struct RequestOptions {
    timeout: Option<Duration>,
    expected: Option<u32>,
}

/// An error of a host function: `wasi:messaging/types.error` for the guest, or a trap.
pub type HostError = omnia::HostError<backend::Error>;

type HostResult<T> = omnia::HostResult<T, backend::Error>;

impl omnia::host_error::GuestError for backend::Error {}

/// The WIT form of a backend error.
pub(crate) fn to_wit(err: backend::Error) -> types::Error {
    match err {
        backend::Error::Timeout => types::Error::Timeout,
        backend::Error::Connection(m) => types::Error::Connection(m),
        backend::Error::PermissionDenied(m) => types::Error::PermissionDenied(m),
        backend::Error::Other(m) => types::Error::Other(m),
    }
}

/// The backend form of a guest's WIT error.
pub(crate) fn from_wit(err: types::Error) -> backend::Error {
    match err {
        types::Error::Timeout => backend::Error::Timeout,
        types::Error::Connection(m) => backend::Error::Connection(m),
        types::Error::PermissionDenied(m) => backend::Error::PermissionDenied(m),
        types::Error::Other(m) => backend::Error::Other(m),
    }
}

/// The per-call view of a store's data that the host functions work on.
pub struct MessagingView<'a> {
    /// The configured broker.
    pub broker: &'a Arc<dyn Broker>,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
    /// The trace context of the store's work, given to the messages the guest publishes that
    /// carry none (metadata `traceparent`), so their handlers join the trace.
    pub trace: Option<TraceContext>,
}

impl MessagingView<'_> {
    /// `message`, with the work's `traceparent` if it has none.
    fn traced(&self, mut message: Message) -> Message {
        if let Some(trace) = &self.trace
            && !message
                .metadata
                .iter()
                .any(|(key, _)| key.eq_ignore_ascii_case(TRACEPARENT))
        {
            message
                .metadata
                .push((TRACEPARENT.to_owned(), trace.traceparent()));
        }
        message
    }
}

/// A topic a guest publishes to must be a subject without wildcards.
fn publish_topic(topic: &str) -> HostResult<()> {
    check_subject(topic, false).map_err(|err| HostError::Guest(backend::Error::other(err)))
}

/// Logs a broker failure, naming the operation and the topic, and passes it on.
fn logged<T>(result: backend::Result<T>, op: &str, topic: &str) -> HostResult<T> {
    result.map_err(|err| {
        if matches!(
            err,
            backend::Error::Connection(_) | backend::Error::Other(_)
        ) {
            omnia::metrics::BACKEND_ERRORS.inc();
        }
        tracing::warn!(topic, op, error = %err, "messaging: operation failed");
        HostError::Guest(err)
    })
}

impl types::Host for MessagingView<'_> {
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<types::Error> {
        err.convert(to_wit)
    }
}

impl types::HostClient for MessagingView<'_> {
    async fn connect(&mut self, name: String) -> HostResult<Resource<ClientHandle>> {
        Ok(self.table.push(ClientHandle { name })?)
    }

    async fn disconnect(&mut self, _client: Resource<ClientHandle>) -> HostResult<()> {
        Ok(())
    }

    async fn drop(&mut self, client: Resource<ClientHandle>) -> wasmtime::Result<()> {
        self.table.delete(client)?;
        Ok(())
    }
}

impl types::HostMessage for MessagingView<'_> {
    async fn new(&mut self, data: Vec<u8>) -> wasmtime::Result<Resource<Message>> {
        Ok(self.table.push(Message::new(data))?)
    }

    async fn topic(&mut self, m: Resource<Message>) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&m)?.topic.clone())
    }

    async fn content_type(&mut self, m: Resource<Message>) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&m)?.content_type.clone())
    }

    async fn set_content_type(
        &mut self,
        m: Resource<Message>,
        content_type: String,
    ) -> wasmtime::Result<()> {
        self.table.get_mut(&m)?.content_type = Some(content_type);
        Ok(())
    }

    async fn data(&mut self, m: Resource<Message>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.table.get(&m)?.data.clone())
    }

    async fn set_data(&mut self, m: Resource<Message>, data: Vec<u8>) -> wasmtime::Result<()> {
        self.table.get_mut(&m)?.data = data;
        Ok(())
    }

    async fn metadata(
        &mut self,
        m: Resource<Message>,
    ) -> wasmtime::Result<Option<Vec<(String, String)>>> {
        let metadata = &self.table.get(&m)?.metadata;
        Ok((!metadata.is_empty()).then(|| metadata.clone()))
    }

    async fn add_metadata(
        &mut self,
        m: Resource<Message>,
        key: String,
        value: String,
    ) -> wasmtime::Result<()> {
        self.table.get_mut(&m)?.set_metadata(&key, &value);
        Ok(())
    }

    async fn set_metadata(
        &mut self,
        m: Resource<Message>,
        meta: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let message = self.table.get_mut(&m)?;
        message.metadata.clear();
        for (key, value) in meta {
            message.set_metadata(&key, &value);
        }
        Ok(())
    }

    async fn remove_metadata(&mut self, m: Resource<Message>, key: String) -> wasmtime::Result<()> {
        self.table.get_mut(&m)?.metadata.retain(|(k, _)| *k != key);
        Ok(())
    }

    async fn drop(&mut self, m: Resource<Message>) -> wasmtime::Result<()> {
        self.table.delete(m)?;
        Ok(())
    }
}

impl producer::Host for MessagingView<'_> {
    async fn send(
        &mut self,
        _client: Resource<ClientHandle>,
        topic: String,
        message: Resource<Message>,
    ) -> HostResult<()> {
        let message = self.table.delete(message)?;
        let message = self.traced(message);
        publish_topic(&topic)?;
        logged(self.broker.publish(&topic, message).await, "send", &topic)
    }
}

impl request_reply::HostRequestOptions for MessagingView<'_> {
    async fn new(&mut self) -> wasmtime::Result<Resource<RequestOptions>> {
        Ok(self.table.push(RequestOptions::default())?)
    }

    async fn set_timeout_ms(
        &mut self,
        options: Resource<RequestOptions>,
        timeout_ms: u32,
    ) -> wasmtime::Result<()> {
        self.table.get_mut(&options)?.timeout = Some(Duration::from_millis(timeout_ms.into()));
        Ok(())
    }

    async fn set_expected_replies(
        &mut self,
        options: Resource<RequestOptions>,
        expected: u32,
    ) -> wasmtime::Result<()> {
        self.table.get_mut(&options)?.expected = Some(expected);
        Ok(())
    }

    async fn drop(&mut self, options: Resource<RequestOptions>) -> wasmtime::Result<()> {
        self.table.delete(options)?;
        Ok(())
    }
}

impl request_reply::Host for MessagingView<'_> {
    async fn request(
        &mut self,
        _client: Resource<ClientHandle>,
        topic: String,
        message: Resource<Message>,
        options: Option<Resource<RequestOptions>>,
    ) -> HostResult<Vec<Resource<Message>>> {
        let message = self.traced(self.table.get(&message)?.clone());
        let options = match options {
            Some(options) => self.table.delete(options)?,
            None => RequestOptions::default(),
        };
        publish_topic(&topic)?;
        let expected = usize::try_from(options.expected.unwrap_or(1)).unwrap_or(usize::MAX);
        let replies = logged(
            self.broker
                .request(&topic, message, options.timeout, expected)
                .await,
            "request",
            &topic,
        )?;
        replies
            .into_iter()
            .map(|reply| Ok(self.table.push(reply)?))
            .collect()
    }

    async fn reply(
        &mut self,
        reply_to: Resource<Message>,
        message: Resource<Message>,
    ) -> HostResult<()> {
        let to = self.table.get(&reply_to)?.reply_to.clone();
        let message = self.table.delete(message)?;
        let message = self.traced(message);
        let Some(to) = to else {
            return Err(HostError::Guest(backend::Error::other(
                "this message was not sent as a request: it has no reply-to",
            )));
        };
        logged(self.broker.publish(&to, message).await, "reply", &to)
    }
}

/// Marks [`MessagingView`] as the data the generated `add_to_linker` functions hand out.
struct HasMessaging;

impl HasData for HasMessaging {
    type Data<'a> = MessagingView<'a>;
}

/// Links `wasi:messaging/{types, producer, request-reply}` into `linker`, reading each store's
/// data through `view`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> MessagingView<'_>,
) -> anyhow::Result<()> {
    types::add_to_linker::<_, HasMessaging>(linker, view)?;
    producer::add_to_linker::<_, HasMessaging>(linker, view)?;
    request_reply::add_to_linker::<_, HasMessaging>(linker, view)?;
    Ok(())
}
