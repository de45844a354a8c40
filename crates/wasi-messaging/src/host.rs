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
use crate::memory::subject_matches;

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "omnia:wasi-messaging/messaging-host",
        // The functions that wait for the broker are async on the host (the guest blocks);
        // the resources' accessors, which do not, are plain.
        imports: {
            "wasi:messaging/types.[static]client.connect": async | trappable,
            "wasi:messaging/producer": async | trappable,
            "wasi:messaging/request-reply.request": async | trappable,
            "wasi:messaging/request-reply.reply": async | trappable,
            default: trappable,
        },
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
    /// The topics (subject patterns) the guest may publish to and send requests on; `None`:
    /// any. Replies go wherever the request asked.
    pub publish: Option<&'a [String]>,
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

    /// `client.connect`: a client is only a name (the runtime has one connection).
    fn connect(&mut self, name: String) -> HostResult<Resource<ClientHandle>> {
        Ok(self.table.push(ClientHandle { name })?)
    }

    /// Whether the guest may publish to `topic` (see [`MessagingView::publish`]); the
    /// error a guest sees if not.
    fn may_publish(&self, topic: &str) -> HostResult<()> {
        let Some(granted) = self.publish else {
            return Ok(());
        };
        if granted
            .iter()
            .any(|pattern| subject_matches(pattern, topic))
        {
            return Ok(());
        }
        if let Some(suppressed) = DENIED_LOG.check() {
            tracing::warn!(
                topic,
                "messaging: a guest published to {topic:?}, which it is not granted (its \
                 manifest's [guest.grants] messaging = {{ publish = [...] }}){}",
                omnia::telemetry::suppressed_note(suppressed)
            );
        }
        Err(HostError::Guest(backend::Error::other(format!(
            "publishing to {topic:?} is not granted to this guest"
        ))))
    }

    /// What `producer.send` to `topic` needs once it leaves the store: the broker, and the
    /// message (taken out of the table: sending consumes it) with the work's trace context.
    fn outgoing(
        &mut self,
        topic: &str,
        message: Resource<Message>,
    ) -> HostResult<(Arc<dyn Broker>, Message)> {
        self.may_publish(topic)?;
        let message = self.table.delete(message)?;
        Ok((Arc::clone(self.broker), self.traced(message)))
    }

    /// What `request-reply.request` needs once it leaves the store: the broker, a copy of the
    /// message (the guest keeps it) with the work's trace context, and the options (consumed).
    fn request_parts(
        &mut self,
        topic: &str,
        message: &Resource<Message>,
        options: Option<Resource<RequestOptions>>,
    ) -> HostResult<(Arc<dyn Broker>, Message, RequestOptions)> {
        self.may_publish(topic)?;
        let message = self.traced(self.table.get(message)?.clone());
        let options = match options {
            Some(options) => self.table.delete(options)?,
            None => RequestOptions::default(),
        };
        Ok((Arc::clone(self.broker), message, options))
    }

    /// What `request-reply.reply` needs once it leaves the store: the broker, where the
    /// request asked for replies, and the reply (consumed) with the work's trace context.
    fn reply_parts(
        &mut self,
        reply_to: &Resource<Message>,
        message: Resource<Message>,
    ) -> HostResult<(Arc<dyn Broker>, Option<String>, Message)> {
        let to = self.table.get(reply_to)?.reply_to.clone();
        let message = self.table.delete(message)?;
        Ok((Arc::clone(self.broker), to, self.traced(message)))
    }

    /// Hands `messages` (the replies to a request) to the guest.
    fn push_all(&mut self, messages: Vec<Message>) -> HostResult<Vec<Resource<Message>>> {
        messages
            .into_iter()
            .map(|message| Ok(self.table.push(message)?))
            .collect()
    }
}

/// `producer.send`, once out of the store.
async fn send(broker: &Arc<dyn Broker>, topic: &str, message: Message) -> HostResult<()> {
    publish_topic(topic)?;
    logged(broker.publish(topic, message).await, "send", topic)
}

/// `request-reply.request`, once out of the store: the replies.
async fn request(
    broker: &Arc<dyn Broker>,
    topic: &str,
    message: Message,
    options: RequestOptions,
) -> HostResult<Vec<Message>> {
    publish_topic(topic)?;
    let expected = usize::try_from(options.expected.unwrap_or(1)).unwrap_or(usize::MAX);
    logged(
        broker
            .request(topic, message, options.timeout, expected)
            .await,
        "request",
        topic,
    )
}

/// `request-reply.reply`, once out of the store: `to` is the request's reply-to, if it was one.
async fn reply(broker: &Arc<dyn Broker>, to: Option<&str>, message: Message) -> HostResult<()> {
    let Some(to) = to else {
        return Err(HostError::Guest(backend::Error::other(
            "this message was not sent as a request: it has no reply-to",
        )));
    };
    logged(broker.publish(to, message).await, "reply", to)
}

/// Rate limit of the log line of a topic a guest is not granted.
static DENIED_LOG: omnia::telemetry::LogLimit =
    omnia::telemetry::LogLimit::new(1, std::time::Duration::from_secs(10));

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

/// The functions of the `message` resource, plain `func`s in both shapes of the interface
/// (and with the same signatures): one body, implementing each shape's generated trait.
macro_rules! message_methods {
    ($trait:path) => {
        impl $trait for $crate::host::MessagingView<'_> {
            fn new(
                &mut self,
                data: Vec<u8>,
            ) -> wasmtime::Result<::wasmtime::component::Resource<$crate::backend::Message>> {
                Ok(self.table.push($crate::backend::Message::new(data))?)
            }

            fn topic(
                &mut self,
                m: ::wasmtime::component::Resource<$crate::backend::Message>,
            ) -> wasmtime::Result<Option<String>> {
                Ok(self.table.get(&m)?.topic.clone())
            }

            fn content_type(
                &mut self,
                m: ::wasmtime::component::Resource<$crate::backend::Message>,
            ) -> wasmtime::Result<Option<String>> {
                Ok(self.table.get(&m)?.content_type.clone())
            }

            fn set_content_type(
                &mut self,
                m: ::wasmtime::component::Resource<$crate::backend::Message>,
                content_type: String,
            ) -> wasmtime::Result<()> {
                self.table.get_mut(&m)?.content_type = Some(content_type);
                Ok(())
            }

            fn data(
                &mut self,
                m: ::wasmtime::component::Resource<$crate::backend::Message>,
            ) -> wasmtime::Result<Vec<u8>> {
                Ok(self.table.get(&m)?.data.clone())
            }

            fn set_data(
                &mut self,
                m: ::wasmtime::component::Resource<$crate::backend::Message>,
                data: Vec<u8>,
            ) -> wasmtime::Result<()> {
                self.table.get_mut(&m)?.data = data;
                Ok(())
            }

            fn metadata(
                &mut self,
                m: ::wasmtime::component::Resource<$crate::backend::Message>,
            ) -> wasmtime::Result<Option<Vec<(String, String)>>> {
                let metadata = &self.table.get(&m)?.metadata;
                Ok((!metadata.is_empty()).then(|| metadata.clone()))
            }

            fn add_metadata(
                &mut self,
                m: ::wasmtime::component::Resource<$crate::backend::Message>,
                key: String,
                value: String,
            ) -> wasmtime::Result<()> {
                self.table.get_mut(&m)?.set_metadata(&key, &value);
                Ok(())
            }

            fn set_metadata(
                &mut self,
                m: ::wasmtime::component::Resource<$crate::backend::Message>,
                meta: Vec<(String, String)>,
            ) -> wasmtime::Result<()> {
                let message = self.table.get_mut(&m)?;
                message.metadata.clear();
                for (key, value) in meta {
                    message.set_metadata(&key, &value);
                }
                Ok(())
            }

            fn remove_metadata(
                &mut self,
                m: ::wasmtime::component::Resource<$crate::backend::Message>,
                key: String,
            ) -> wasmtime::Result<()> {
                self.table.get_mut(&m)?.metadata.retain(|(k, _)| *k != key);
                Ok(())
            }

            fn drop(
                &mut self,
                m: ::wasmtime::component::Resource<$crate::backend::Message>,
            ) -> wasmtime::Result<()> {
                self.table.delete(m)?;
                Ok(())
            }
        }
    };
}

/// The functions of the `request-options` resource, plain `func`s in both shapes: one body,
/// implementing each shape's generated trait.
macro_rules! request_options_methods {
    ($trait:path) => {
        impl $trait for $crate::host::MessagingView<'_> {
            fn new(
                &mut self,
            ) -> wasmtime::Result<::wasmtime::component::Resource<$crate::host::RequestOptions>>
            {
                Ok(self.table.push($crate::host::RequestOptions::default())?)
            }

            fn set_timeout_ms(
                &mut self,
                options: ::wasmtime::component::Resource<$crate::host::RequestOptions>,
                timeout_ms: u32,
            ) -> wasmtime::Result<()> {
                self.table.get_mut(&options)?.timeout =
                    Some(::std::time::Duration::from_millis(timeout_ms.into()));
                Ok(())
            }

            fn set_expected_replies(
                &mut self,
                options: ::wasmtime::component::Resource<$crate::host::RequestOptions>,
                expected: u32,
            ) -> wasmtime::Result<()> {
                self.table.get_mut(&options)?.expected = Some(expected);
                Ok(())
            }

            fn drop(
                &mut self,
                options: ::wasmtime::component::Resource<$crate::host::RequestOptions>,
            ) -> wasmtime::Result<()> {
                self.table.delete(options)?;
                Ok(())
            }
        }
    };
}

pub mod p3;

impl types::Host for MessagingView<'_> {
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<types::Error> {
        err.convert(to_wit)
    }
}

impl types::HostClient for MessagingView<'_> {
    async fn connect(&mut self, name: String) -> HostResult<Resource<ClientHandle>> {
        self.connect(name)
    }

    fn disconnect(&mut self, _client: Resource<ClientHandle>) -> HostResult<()> {
        Ok(())
    }

    fn drop(&mut self, client: Resource<ClientHandle>) -> wasmtime::Result<()> {
        self.table.delete(client)?;
        Ok(())
    }
}

message_methods!(types::HostMessage);
request_options_methods!(request_reply::HostRequestOptions);

impl producer::Host for MessagingView<'_> {
    async fn send(
        &mut self,
        _client: Resource<ClientHandle>,
        topic: String,
        message: Resource<Message>,
    ) -> HostResult<()> {
        let (broker, message) = self.outgoing(&topic, message)?;
        send(&broker, &topic, message).await
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
        let (broker, message, options) = self.request_parts(&topic, &message, options)?;
        let replies = request(&broker, &topic, message, options).await?;
        self.push_all(replies)
    }

    async fn reply(
        &mut self,
        reply_to: Resource<Message>,
        message: Resource<Message>,
    ) -> HostResult<()> {
        let (broker, to, message) = self.reply_parts(&reply_to, message)?;
        reply(&broker, to.as_deref(), message).await
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
