//! The messaging trigger: the runtime subscribes, and calls the guest's
//! `wasi:messaging/incoming-handler.handle` once per message, each in a fresh instance.
//!
//! What happens to a message:
//!
//! | the guest... | the message is |
//! |---|---|
//! | returned `ok` | acknowledged: never delivered again |
//! | returned an `error`, trapped, or ran past `OMNIA_REQUEST_TIMEOUT` | delivered again after the subscription's backoff, up to `max_deliver` times; then published to `dead_letter` (if set) and dropped |
//! | could not start: `OMNIA_MEMORY_BUDGET` spent | delivered again after the backoff (not counted against the guest) |
//!
//! Where the backend cannot deliver again (NATS core subjects), a failed message goes to the
//! dead-letter topic at once. Each dead-lettered message carries `omnia-dead-letter-reason`,
//! `omnia-dead-letter-topic` and `omnia-dead-letter-attempts` metadata.
//!
//! In-flight messages are bounded twice: by each subscription's `concurrency`, and by the
//! runtime's work slots shared with every other trigger (`OMNIA_MAX_CONCURRENCY`). When either
//! is full the trigger stops taking messages (back-pressure), it never refuses or queues
//! without bound. On shutdown it stops taking messages and lets those in flight finish within
//! the grace period; unsettled ones are redelivered by the backend (JetStream) after
//! `ack_wait`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use omnia::invoke::{Call, Failure, Outcome};
use omnia::metrics::{self, Counter, Metric};
use omnia::telemetry::{LogLimit, suppressed_note};
use omnia::trace::{SPAN_TARGET, TRACEPARENT, TraceContext, Work};
use omnia::{Application, HostView, Serving, Shutdown, ShutdownTrigger, State, StoreView};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument as _;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::WasiMessaging;
use crate::backend::{Broker, DELIVERY_ATTEMPT, Delivery, Inbox, Message};
use crate::config::Subscription;
use crate::host::{bindings, from_wit};

/// The export this trigger calls (any 0.2 version).
pub const HANDLER_EXPORT_PREFIX: &str = "wasi:messaging/incoming-handler@0.2";

/// Metadata of a dead-lettered message: why it was given up on.
pub const DEAD_LETTER_REASON: &str = "omnia-dead-letter-reason";
/// Metadata of a dead-lettered message: the topic it was received on.
pub const DEAD_LETTER_TOPIC: &str = "omnia-dead-letter-topic";
/// Metadata of a dead-lettered message: how many times it was delivered.
pub const DEAD_LETTER_ATTEMPTS: &str = "omnia-dead-letter-attempts";

/// Messages handled by the guest (acknowledged).
pub static MESSAGES_HANDLED: Counter = Counter::new(
    "omnia_messages_handled_total",
    "Messages the guest handled (acknowledged).",
);
/// Messages the guest failed on (each failed delivery).
pub static MESSAGES_FAILED: Counter = Counter::new(
    "omnia_messages_failed_total",
    "Deliveries the guest failed on (error, trap, deadline).",
);
/// Messages given up on.
pub static MESSAGES_DEAD_LETTERED: Counter = Counter::new(
    "omnia_messages_dead_lettered_total",
    "Messages given up on after max_deliver failures (sent to the dead-letter topic if set).",
);

static FAILURE_LOG: LogLimit = LogLimit::new(10, Duration::from_secs(10));

/// `text` on one line of at most 500 bytes, as metadata (NATS headers) can hold it.
fn one_line(text: &str) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() > 500 {
        let mut end = 500;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    line
}

/// Whether `component` exports `wasi:messaging/incoming-handler`.
pub fn exports_handler(engine: &Engine, component: &Component) -> bool {
    omnia::component::exports_interface(engine, component, HANDLER_EXPORT_PREFIX)
}

/// Subscribes each guest of `app` that exports the handler to its topics (a manifest's
/// `routes.messaging`, or for a guest run on its own, every configured subscription); the
/// returned future handles messages until `shutdown`, then drains. A subscription that cannot
/// be made (an unknown stream, a bad subject) fails here, at start-up.
///
/// A reload's generation of a guest takes the messages delivered after it; those in flight
/// finish on the generation they started on. A reload that routes a topic anew subscribes to
/// it (before a topic that moved to another guest is let go, so nothing published meanwhile
/// is missed) and one that drops a topic stops taking its messages and lets those in flight
/// finish, as at shutdown.
pub async fn bind<S, B>(
    app: Application<S>,
    entry: WasiMessaging<B>,
    shutdown: Shutdown,
) -> Result<Serving>
where
    S: State,
    S::StoreCtx: HostView<WasiMessaging<B>>,
    B: 'static,
{
    for metric in [&MESSAGES_HANDLED, &MESSAGES_FAILED, &MESSAGES_DEAD_LETTERED] {
        metrics::register(Metric::Counter(metric));
    }
    let mut subscribed = Subscribed {
        broker: Arc::clone(entry.broker()),
        consumers: HashMap::new(),
        running: HashMap::new(),
        tasks: JoinSet::new(),
        shutdown: shutdown.clone(),
    };
    subscribed.start(&app, &entry).await?;
    let mut reloads = app.reloads();
    Ok(Box::pin(async move {
        let mut stop = shutdown.clone();
        while let Some(app) = reloads.next(&mut stop).await {
            subscribed.reload(&app, &entry).await;
        }
        while subscribed.tasks.join_next().await.is_some() {}
        tracing::info!("messaging: drained");
        Ok(())
    }))
}

/// What the trigger is subscribed to, and for which guest.
struct Subscribed<S: State> {
    broker: Arc<dyn Broker>,
    /// Each handling guest's consumer, by guest id.
    consumers: HashMap<String, Arc<Consumer<S>>>,
    /// Each subscription's own stop signal, by guest id and topic.
    running: HashMap<(String, String), ShutdownTrigger>,
    /// Each subscription's consumer loop.
    tasks: JoinSet<()>,
    shutdown: Shutdown,
}

impl<S: State> Subscribed<S> {
    /// Subscribes each handling guest of `app` to its topics; the first failure is returned.
    async fn start<B>(&mut self, app: &Application<S>, entry: &WasiMessaging<B>) -> Result<()> {
        let several = app.guests().len() > 1;
        for (state, subscriptions) in handlers(app, entry) {
            let consumer = app.named(
                state,
                consumer(state, Arc::clone(&self.broker), &subscriptions),
            )?;
            self.consumers
                .insert(state.id().to_owned(), Arc::clone(&consumer));
            for subscription in subscriptions {
                let inbox = self
                    .broker
                    .subscribe(&subscription)
                    .await
                    .with_context(|| format!("cannot subscribe to {:?}", subscription.topic))?;
                log_subscribed(&*self.broker, &subscription, several.then(|| state.id()));
                self.spawn(&consumer, state.id(), subscription, Some(inbox));
            }
        }
        Ok(())
    }

    /// Follows a reload: new generations of the guests take new messages, topics routed anew
    /// are subscribed to, and those no longer routed (or whose guest is gone) are stopped. What
    /// cannot be done is logged; the rest still is.
    async fn reload<B>(&mut self, app: &Application<S>, entry: &WasiMessaging<B>) {
        let mut wanted = HashSet::new();
        for (state, subscriptions) in handlers(app, entry) {
            let id = state.id();
            let consumer = match self.consumers.get(id) {
                Some(consumer) => {
                    if let Err(err) = consumer.reload(state) {
                        tracing::error!("messaging: guest {id:?} is not reloaded: {err:#}");
                    }
                    Arc::clone(consumer)
                }
                None => match consumer(state, Arc::clone(&self.broker), &subscriptions) {
                    Ok(consumer) => {
                        self.consumers.insert(id.to_owned(), Arc::clone(&consumer));
                        consumer
                    }
                    Err(err) => {
                        tracing::error!("messaging: guest {id:?} takes no messages: {err:#}");
                        continue;
                    }
                },
            };
            for subscription in subscriptions {
                let key = (id.to_owned(), subscription.topic.clone());
                if !self.running.contains_key(&key) {
                    tracing::info!(
                        topic = %subscription.topic,
                        "messaging: reload routes {} to guest {id:?}", subscription.topic
                    );
                    // Subscribed before any old subscription is let go below; if it cannot be
                    // made now, the consumer's task keeps trying.
                    let inbox = self.broker.subscribe(&subscription).await.ok();
                    if inbox.is_some() {
                        log_subscribed(&*self.broker, &subscription, Some(id));
                    }
                    self.spawn(&consumer, id, subscription, inbox);
                }
                wanted.insert(key);
            }
        }
        self.running.retain(|(id, topic), stop| {
            let keep = wanted.contains(&(id.clone(), topic.clone()));
            if !keep {
                tracing::info!(topic, "messaging: reload no longer routes {topic} to guest {id:?}: unsubscribing once its messages in flight are handled");
                stop.fire();
            }
            keep
        });
        let ids: HashSet<&str> = wanted.iter().map(|(id, _)| id.as_str()).collect();
        self.consumers.retain(|id, _| ids.contains(id.as_str()));
    }

    /// Runs `consumer` on one subscription until shutdown or until a reload stops it. Without
    /// an `inbox` (a reload), it subscribes first, and tries again while it cannot.
    fn spawn(
        &mut self,
        consumer: &Arc<Consumer<S>>,
        guest: &str,
        subscription: Subscription,
        inbox: Option<Box<dyn Inbox>>,
    ) {
        let (stop, mut shutdown) = self.shutdown.child();
        self.running
            .insert((guest.to_owned(), subscription.topic.clone()), stop);
        let consumer = Arc::clone(consumer);
        let broker = Arc::clone(&self.broker);
        let guest = guest.to_owned();
        self.tasks.spawn(async move {
            let inbox = if let Some(inbox) = inbox {
                inbox
            } else {
                let subscribing = subscribe_until_done(&*broker, &subscription, &guest);
                tokio::select! {
                    inbox = subscribing => inbox,
                    () = shutdown.requested() => return,
                }
            };
            consumer.run(subscription, inbox, shutdown).await;
        });
    }
}

/// Each guest of `app` that exports the handler, with its subscriptions.
fn handlers<'a, S: State, B>(
    app: &'a Application<S>,
    entry: &WasiMessaging<B>,
) -> Vec<(&'a S, Vec<Subscription>)> {
    app.guests()
        .iter()
        .enumerate()
        .filter(|(_, state)| exports_handler(state.engine(), state.instance_pre().component()))
        .map(|(index, state)| (state, subscriptions(app.topics(index), entry)))
        .collect()
}

/// Subscribes as `subscription` says, trying again (1 s, doubling to 30 s) while the backend
/// refuses: a reload has already been accepted, so a subscription it adds is made as soon as
/// it can be, each failure logged.
async fn subscribe_until_done(
    broker: &dyn Broker,
    subscription: &Subscription,
    guest: &str,
) -> Box<dyn Inbox> {
    let mut wait = Duration::from_secs(1);
    loop {
        match broker.subscribe(subscription).await {
            Ok(inbox) => {
                log_subscribed(broker, subscription, Some(guest));
                return inbox;
            }
            Err(err) => {
                tracing::error!(
                    topic = %subscription.topic,
                    "messaging: cannot subscribe to {:?} for guest {guest:?}: {err:#}; trying \
                     again in {wait:?}",
                    subscription.topic
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

fn log_subscribed(broker: &dyn Broker, subscription: &Subscription, guest: Option<&str>) {
    tracing::info!(
        topic = %subscription.topic,
        "messaging: subscribed to {} ({}, {} at once){}",
        subscription.topic,
        broker.guarantee(subscription),
        subscription.concurrency,
        guest.map(|id| format!(" for guest {id:?}")).unwrap_or_default()
    );
}

/// The subscriptions of a guest routed `topics`, each with the settings configured for its
/// topic (`OMNIA_MESSAGING_CONFIG`) or the defaults (with `OMNIA_MESSAGING_QUEUE_GROUP` and
/// `OMNIA_MESSAGING_CONCURRENCY`); without topics (a guest run on its own), every configured
/// subscription.
fn subscriptions<B>(topics: Option<&[String]>, entry: &WasiMessaging<B>) -> Vec<Subscription> {
    let configured = entry.subscriptions();
    match topics {
        Some(topics) => topics.iter().map(|t| configured.for_topic(t)).collect(),
        None => configured.listed.clone(),
    }
}

/// `state`'s handler, its export checked.
fn handler_pre<S: State>(state: &S) -> Result<bindings::MessagingHostPre<S::StoreCtx>> {
    let pre = bindings::MessagingHostPre::new(state.instance_pre().clone())
        .map_err(anyhow::Error::from)
        .context("the component's wasi:messaging/incoming-handler export has an unexpected type")?;
    // `handle: func(msg: message) -> result<_, error>`, as the bindings call it.
    omnia::component::check_export_func::<
        _,
        (wasmtime::component::Resource<Message>,),
        (Result<(), bindings::wasi::messaging::types::Error>,),
    >(state.instance_pre(), HANDLER_EXPORT_PREFIX, "handle")?;
    Ok(pre)
}

/// The consumer of `state`'s messages, its export checked.
fn consumer<S: State>(
    state: &S,
    broker: Arc<dyn Broker>,
    subscriptions: &[Subscription],
) -> Result<Arc<Consumer<S>>> {
    let pre = handler_pre(state)?;
    if subscriptions.is_empty() {
        anyhow::bail!(
            "the component exports wasi:messaging/incoming-handler but no topic is configured: \
             set OMNIA_MESSAGING_TOPICS or OMNIA_MESSAGING_CONFIG"
        );
    }
    Ok(Arc::new(Consumer {
        guest: RwLock::new(Arc::new(Callee {
            pre,
            state: state.clone(),
        })),
        broker,
    }))
}

struct Consumer<S: State> {
    /// The guest messages go to: replaced when a reload brings a new generation of it.
    guest: RwLock<Arc<Callee<S>>>,
    broker: Arc<dyn Broker>,
}

/// A guest's handler, ready to be called.
struct Callee<S: State> {
    pre: bindings::MessagingHostPre<S::StoreCtx>,
    state: S,
}

impl<S: State> Consumer<S> {
    /// Takes messages of one subscription until shutdown, then waits (within the grace period)
    /// for those in flight.
    async fn run(
        self: Arc<Self>,
        subscription: Subscription,
        mut inbox: Box<dyn Inbox>,
        mut shutdown: Shutdown,
    ) {
        let limit = Arc::new(Semaphore::new(subscription.concurrency));
        let subscription = Arc::new(subscription);
        let mut in_flight = JoinSet::new();
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&limit).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = shutdown.requested() => break,
            };
            let delivery = tokio::select! {
                delivery = inbox.next() => delivery,
                () = shutdown.requested() => break,
            };
            let Some(delivery) = delivery else {
                tracing::warn!(topic = %subscription.topic, "messaging: subscription ended");
                break;
            };
            // Back-pressure: wait for one of the runtime's work slots (shared with HTTP).
            // The guest's own cap first, then the application's work slots.
            let callee = self.callee();
            let place = tokio::select! {
                place = callee.state.cap().take() => place,
                () = shutdown.requested() => {
                    let _ = delivery.nak(Duration::ZERO).await;
                    break;
                }
            };
            let admission = tokio::select! {
                admission = callee.state.slots().admit() => admission.holding(place),
                () = shutdown.requested() => {
                    let _ = delivery.nak(Duration::ZERO).await;
                    break;
                }
            };
            let this = Arc::clone(&self);
            let subscription = Arc::clone(&subscription);
            in_flight.spawn(async move {
                let _slot = (permit, admission);
                this.handle(&subscription, delivery).await;
            });
            // Reap what finished, so the set does not grow with every message.
            while in_flight.try_join_next().is_some() {}
        }
        let grace = shutdown.grace();
        if tokio::time::timeout(grace, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!(
                topic = %subscription.topic,
                "messaging: grace period of {grace:?} over with {} message(s) in flight; they \
                 will be delivered again where the backend keeps them",
                in_flight.len()
            );
        }
    }

    /// The guest messages go to now.
    fn callee(&self) -> Arc<Callee<S>> {
        Arc::clone(&self.guest.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Sends new messages to `state` (the same guest, reloaded).
    fn reload(&self, state: &S) -> Result<()> {
        let pre = handler_pre(state)?;
        *self.guest.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Callee {
            pre,
            state: state.clone(),
        });
        Ok(())
    }

    /// Runs the guest on one message and settles it.
    async fn handle(&self, subscription: &Subscription, delivery: Box<dyn Delivery>) {
        let callee = self.callee();
        let message = delivery.message().clone();
        let work = message_span(subscription, &message, delivery.attempt());
        let span = work.span.clone();
        span.record("omnia.component", callee.state.id());
        let topic = message.topic.as_deref().unwrap_or(&subscription.topic);
        let mut store = callee.state.new_store(work);
        let resource = match store.data_mut().core().table.push(message.clone()) {
            Ok(resource) => resource,
            Err(err) => {
                self.failed(subscription, delivery, &message, format!("{err}"))
                    .await;
                return;
            }
        };
        let timeout = callee.state.config().request_timeout;
        let call = Call::new("messaging", callee.state.id(), topic, span.clone(), timeout)
            .watching(&mut store);
        let outcome = call
            .run(async {
                let guest = callee.pre.instantiate_async(&mut store).await?;
                guest
                    .wasi_messaging_incoming_handler()
                    .call_handle(&mut store, resource)
                    .await
            })
            .instrument(span)
            .await;
        drop(store);
        call.finish(&outcome);
        let reason = match outcome {
            Outcome::Ok(()) => {
                MESSAGES_HANDLED.inc();
                if let Err(err) = delivery.ack().await {
                    tracing::warn!(topic = %subscription.topic, "messaging: cannot acknowledge a handled message ({err}); it may be delivered again");
                }
                return;
            }
            // Not the guest's fault: try again later, without counting it as a failure.
            Outcome::Failed(Failure::OutOfBudget) => {
                let _ = delivery.nak(subscription.backoff_after(1)).await;
                return;
            }
            Outcome::GuestError(err) => {
                format!("the guest returned an error: {}", from_wit(err))
            }
            Outcome::Failed(Failure::Trap(trap)) => {
                let cause = trap
                    .downcast_ref::<wasmtime::Trap>()
                    .map_or_else(|| trap.root_cause().to_string(), ToString::to_string);
                format!("the guest trapped: {cause}")
            }
            Outcome::Failed(Failure::Timeout(limit)) => {
                format!("the guest ran past OMNIA_REQUEST_TIMEOUT ({limit:?})")
            }
            Outcome::Failed(failure) => format!("the guest failed: {failure}"),
        };
        self.failed(subscription, delivery, &message, reason).await;
    }

    /// Delivers a failed message again, or dead-letters it after the last attempt.
    async fn failed(
        &self,
        subscription: &Subscription,
        delivery: Box<dyn Delivery>,
        message: &Message,
        reason: String,
    ) {
        MESSAGES_FAILED.inc();
        let attempt = delivery.attempt();
        let last = attempt >= u64::from(subscription.max_deliver) || !delivery.redeliverable();
        let topic = message.topic.as_deref().unwrap_or(&subscription.topic);
        if let Some(suppressed) = FAILURE_LOG.check() {
            tracing::warn!(
                topic,
                attempt,
                "messaging: {topic}: delivery {attempt} failed: {reason}; {}{}",
                if last {
                    "giving up"
                } else {
                    "it will be delivered again"
                },
                suppressed_note(suppressed)
            );
        }
        if !last {
            let _ = delivery.nak(subscription.backoff_after(attempt)).await;
            return;
        }
        MESSAGES_DEAD_LETTERED.inc();
        if let Some(dead_letter) = &subscription.dead_letter {
            let mut dead = message.clone();
            dead.topic = None;
            dead.reply_to = None;
            dead.set_metadata(DEAD_LETTER_REASON, &one_line(&reason));
            dead.set_metadata(DEAD_LETTER_TOPIC, topic);
            dead.metadata.retain(|(k, _)| k != DELIVERY_ATTEMPT);
            dead.set_metadata(DEAD_LETTER_ATTEMPTS, &attempt.to_string());
            if let Err(err) = self.broker.publish(dead_letter, dead).await {
                // Keep it where the backend can deliver it again rather than lose it.
                tracing::error!(
                    topic,
                    "messaging: cannot publish to the dead-letter topic {dead_letter}: {err}"
                );
                let _ = delivery.nak(subscription.backoff_after(attempt)).await;
                return;
            }
        }
        let _ = delivery.term().await;
    }
}

/// The span of one delivery (OpenTelemetry messaging conventions: a `process` span), its
/// parent the `traceparent` in the message's metadata, if any.
fn message_span(subscription: &Subscription, message: &Message, attempt: u64) -> Work {
    let topic = message.topic.as_deref().unwrap_or(&subscription.topic);
    let parent = message
        .metadata
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(TRACEPARENT))
        .and_then(|(_, value)| TraceContext::parse(value));
    let span = tracing::debug_span!(
        target: SPAN_TARGET,
        "process",
        otel.name = format!("process {topic}"),
        otel.kind = "consumer",
        otel.status_code = tracing::field::Empty,
        messaging.operation.type = "process",
        messaging.destination.name = topic,
        messaging.message.body.size = message.data.len(),
        messaging.delivery.attempt = attempt,
        omnia.component = tracing::field::Empty,
    );
    omnia::trace::start_span(span, parent)
}
