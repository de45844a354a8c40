//! `wasi:messaging` on NATS: [`NatsBroker`] (and the entry [`NatsMessaging`]).
//!
//! | subscription | NATS | delivery |
//! |---|---|---|
//! | `topic` (and `queue_group`) | a core subscription (queue subscription): replicas in one group share the messages | at-most-once: a message the guest fails on goes to the dead-letter subject at once, if one is set |
//! | `[subscription.jetstream]` | a durable pull consumer on an existing stream, filtered by `topic`, explicit acks; replicas with the same consumer name share the messages | at-least-once: acknowledged only after the guest returned `ok`; a failure is naked with the backoff, redelivered up to `max_deliver` times, then dead-lettered; a crash redelivers after `ack_wait` |
//!
//! Metadata travels as NATS headers (`content-type` as the header of that name); headers the
//! server adds (`Nats-*`) are not shown to guests. `request-reply` uses NATS inboxes: a reply
//! goes to the request's reply subject. Publishing while the connection is down fails at once
//! with `error::connection` (the client reconnects by itself), never a trap.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::{self, AckKind};
use async_nats::{HeaderMap, connection::State};
use async_trait::async_trait;
use futures::StreamExt;
use omnia::config::redact_url;
use omnia_wasi_messaging::backend::{self, Broker, DELIVERY_ATTEMPT, Delivery, Inbox, Message};
use omnia_wasi_messaging::{Subscription, WasiMessaging};

use crate::{NatsOptions, REQUEST_TIMEOUT};

/// The `"messaging"` entry backed by NATS.
pub type NatsMessaging = WasiMessaging<NatsBroker>;

/// Headers the server adds, not shown to guests.
const SERVER_HEADER_PREFIX: &str = "Nats-";

/// A NATS connection used for messaging (the process's one connection, shared with key-value).
#[derive(Clone)]
pub struct NatsBroker {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    url: Arc<str>,
}

impl NatsBroker {
    /// Connects (or reuses the process's connection, see [`crate::shared_client`]).
    pub async fn connect(options: NatsOptions) -> Result<Self> {
        let client = crate::shared_client(&options).await?;
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(REQUEST_TIMEOUT);
        Ok(Self {
            client,
            jetstream,
            url: redact_url(&options.url).into(),
        })
    }

    fn connected(&self) -> backend::Result<()> {
        match self.client.connection_state() {
            State::Connected => Ok(()),
            _ => Err(backend::Error::Connection(format!(
                "NATS at {} is unreachable (reconnecting)",
                self.url
            ))),
        }
    }
}

impl omnia::Backend for NatsBroker {
    type Options = NatsOptions;

    async fn connect_with(options: NatsOptions) -> Result<Self> {
        Self::connect(options).await
    }
}

/// NATS headers for a message's metadata and content type.
fn headers(message: &Message) -> backend::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for (key, value) in &message.metadata {
        let name: async_nats::header::HeaderName = key.parse().map_err(|_| {
            backend::Error::other(format!(
                "metadata key {key:?} is not a valid NATS header name"
            ))
        })?;
        let value: async_nats::header::HeaderValue = value.parse().map_err(|_| {
            backend::Error::other(format!(
                "metadata value of {key:?} is not a valid NATS header value"
            ))
        })?;
        headers.insert(name, value);
    }
    if let Some(content_type) = &message.content_type {
        headers.insert("content-type", content_type.as_str());
    }
    Ok(headers)
}

/// A guest's view of a NATS message.
fn from_nats(message: &async_nats::Message, reply_to: Option<String>) -> Message {
    let mut out = Message::new(message.payload.to_vec());
    out.topic = Some(message.subject.to_string());
    out.reply_to = reply_to;
    if let Some(headers) = &message.headers {
        for (name, values) in headers.iter() {
            let name = name.to_string();
            let Some(value) = values.last() else { continue };
            if name.eq_ignore_ascii_case("content-type") {
                out.content_type = Some(value.to_string());
            } else if !name.starts_with(SERVER_HEADER_PREFIX) {
                out.set_metadata(&name, value.as_str());
            }
        }
    }
    out
}

impl NatsBroker {
    fn failure(&self, op: &str, err: &dyn std::fmt::Display) -> backend::Error {
        if self.client.connection_state() != State::Connected {
            return backend::Error::Connection(format!("NATS at {}: {op}: {err}", self.url));
        }
        backend::Error::other(format!("NATS at {}: {op}: {err}", self.url))
    }
}

#[async_trait]
impl Broker for NatsBroker {
    async fn publish(&self, topic: &str, message: Message) -> backend::Result<()> {
        self.connected()?;
        let headers = headers(&message)?;
        let publish =
            self.client
                .publish_with_headers(topic.to_owned(), headers, message.data.into());
        // Handed to the connection, which sends it at once: core NATS is at-most-once, and
        // waiting for a round trip per message would cost most of the throughput. A stream
        // that captures the subject stores it as it arrives.
        publish.await.map_err(|err| {
            if err.kind() == async_nats::client::PublishErrorKind::MaxPayloadExceeded {
                backend::Error::other(format!(
                    "the message is larger than the NATS server at {} accepts (its max_payload)",
                    self.url
                ))
            } else {
                self.failure("publish", &err)
            }
        })
    }

    async fn request(
        &self,
        topic: &str,
        message: Message,
        timeout: Option<Duration>,
        expected: usize,
    ) -> backend::Result<Vec<Message>> {
        self.connected()?;
        let inbox = self.client.new_inbox();
        let mut replies = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|err| self.failure("request", &err))?;
        let headers = headers(&message)?;
        self.client
            .publish_with_reply_and_headers(topic.to_owned(), inbox, headers, message.data.into())
            .await
            .map_err(|err| self.failure("request", &err))?;
        let mut received = Vec::new();
        let collect = async {
            while received.len() < expected.max(1) {
                let Some(reply) = replies.next().await else {
                    break;
                };
                if reply.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
                    return Err(backend::Error::other(format!(
                        "no one answers requests on {topic:?}"
                    )));
                }
                received.push(from_nats(&reply, None));
            }
            Ok(())
        };
        match timeout {
            Some(limit) => {
                if let Ok(outcome) = tokio::time::timeout(limit, collect).await {
                    outcome?;
                }
            }
            None => collect.await?,
        }
        let _ = replies.unsubscribe().await;
        if received.is_empty() {
            return Err(backend::Error::Timeout);
        }
        Ok(received)
    }

    async fn subscribe(&self, subscription: &Subscription) -> Result<Box<dyn Inbox>> {
        let Some(js) = &subscription.jetstream else {
            let subscriber = match &subscription.queue_group {
                Some(group) => {
                    self.client
                        .queue_subscribe(subscription.topic.clone(), group.clone())
                        .await
                }
                None => self.client.subscribe(subscription.topic.clone()).await,
            }
            .with_context(|| format!("NATS at {}: cannot subscribe", self.url))?;
            return Ok(Box::new(CoreInbox(subscriber)));
        };
        let stream = self.jetstream.get_stream(&js.stream).await.map_err(|err| {
            anyhow::anyhow!(
                "JetStream stream {:?} at NATS {}: {err} (create the stream first; omnia only \
                 makes consumers)",
                js.stream,
                self.url
            )
        })?;
        let config = pull::Config {
            durable_name: Some(js.consumer.clone()),
            filter_subject: subscription.topic.clone(),
            ack_policy: AckPolicy::Explicit,
            ack_wait: subscription.ack_wait,
            // Omnia counts deliveries itself and dead-letters after max_deliver, so the server
            // never drops a message on its own.
            max_deliver: -1,
            max_ack_pending: i64::try_from(subscription.concurrency.saturating_mul(4))
                .unwrap_or(i64::MAX),
            ..Default::default()
        };
        let consumer: jetstream::consumer::Consumer<pull::Config> = stream
            .get_or_create_consumer(&js.consumer, config)
            .await
            .map_err(|err| {
                anyhow::anyhow!(
                    "JetStream consumer {:?} on stream {:?} (filter {:?}): {err}",
                    js.consumer,
                    js.stream,
                    subscription.topic
                )
            })?;
        let messages = consumer.messages().await.map_err(|err| {
            anyhow::anyhow!("JetStream consumer {:?}: cannot pull: {err}", js.consumer)
        })?;
        Ok(Box::new(JetStreamInbox {
            messages,
            consumer: js.consumer.clone(),
        }))
    }

    fn guarantee(&self, subscription: &Subscription) -> &'static str {
        if subscription.jetstream.is_some() {
            "at-least-once, JetStream consumer"
        } else if subscription.queue_group.is_some() {
            "at-most-once, NATS queue group"
        } else {
            "at-most-once, NATS subject"
        }
    }
}

/// A core NATS subscription.
struct CoreInbox(async_nats::Subscriber);

#[async_trait]
impl Inbox for CoreInbox {
    async fn next(&mut self) -> Option<Box<dyn Delivery>> {
        let message = self.0.next().await?;
        let reply = message.reply.as_ref().map(ToString::to_string);
        let mut message = from_nats(&message, reply);
        message.set_metadata(DELIVERY_ATTEMPT, "1");
        Some(Box::new(CoreDelivery(message)))
    }
}

struct CoreDelivery(Message);

#[async_trait]
impl Delivery for CoreDelivery {
    fn message(&self) -> &Message {
        &self.0
    }

    fn attempt(&self) -> u64 {
        1
    }

    fn redeliverable(&self) -> bool {
        false
    }

    async fn ack(self: Box<Self>) -> backend::Result<()> {
        Ok(())
    }

    async fn nak(self: Box<Self>, _delay: Duration) -> backend::Result<()> {
        Ok(())
    }

    async fn term(self: Box<Self>) -> backend::Result<()> {
        Ok(())
    }
}

/// The messages of a durable JetStream pull consumer.
struct JetStreamInbox {
    messages: pull::Stream,
    consumer: String,
}

#[async_trait]
impl Inbox for JetStreamInbox {
    async fn next(&mut self) -> Option<Box<dyn Delivery>> {
        loop {
            match self.messages.next().await? {
                Ok(message) => {
                    let attempt = message
                        .info()
                        .ok()
                        .and_then(|info| u64::try_from(info.delivered).ok())
                        .unwrap_or(1);
                    // A JetStream message's reply subject is its ack subject, not a requester.
                    let mut guest = from_nats(&message, None);
                    guest.set_metadata(DELIVERY_ATTEMPT, &attempt.to_string());
                    return Some(Box::new(JetStreamDelivery {
                        message,
                        guest,
                        attempt,
                    }));
                }
                Err(err) => {
                    // Heartbeats missed while the server is away and the like: the consumer
                    // resumes by itself once NATS is back.
                    tracing::warn!(consumer = %self.consumer, "messaging: JetStream pull: {err}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

struct JetStreamDelivery {
    message: jetstream::Message,
    guest: Message,
    attempt: u64,
}

impl JetStreamDelivery {
    async fn settle(&self, kind: AckKind) -> backend::Result<()> {
        self.message
            .ack_with(kind)
            .await
            .map_err(|err| backend::Error::Connection(format!("JetStream acknowledgement: {err}")))
    }
}

#[async_trait]
impl Delivery for JetStreamDelivery {
    fn message(&self) -> &Message {
        &self.guest
    }

    fn attempt(&self) -> u64 {
        self.attempt
    }

    async fn ack(self: Box<Self>) -> backend::Result<()> {
        // A double ack: the server confirms, so a crash right after cannot redeliver it.
        self.message
            .double_ack()
            .await
            .map_err(|err| backend::Error::Connection(format!("JetStream acknowledgement: {err}")))
    }

    async fn nak(self: Box<Self>, delay: Duration) -> backend::Result<()> {
        self.settle(AckKind::Nak(Some(delay))).await
    }

    async fn term(self: Box<Self>) -> backend::Result<()> {
        self.settle(AckKind::Term).await
    }
}
