//! [`MemoryBroker`]: the embedded default, a message broker inside the process.
//!
//! A guest can publish to topics the same runtime consumes, with no external service. Topics
//! follow NATS subject rules (`*` matches one token, `>` the rest), so a configuration moves to
//! NATS unchanged. Every matching subscription gets a copy of a message; subscriptions in the
//! same queue group share them (one copy for the group, round robin).
//!
//! Delivery is at-least-once within the process: a message the guest fails on is delivered
//! again after the subscription's backoff, up to `max_deliver` times, then goes to the
//! dead-letter topic. Nothing survives the process. Each subscription buffers at most
//! [`QUEUE_CAPACITY`] messages; publishing to a full one fails with `error::other`, so a fast
//! producer gets back-pressure instead of unbounded memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::bail;
use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::backend::{Broker, DELIVERY_ATTEMPT, Delivery, Error, Inbox, Message, Result};
use crate::config::Subscription;

/// Messages one subscription buffers before publishing to it fails.
pub const QUEUE_CAPACITY: usize = 10_000;

/// The in-process broker. Clones share the same topics.
#[derive(Clone, Default)]
pub struct MemoryBroker {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    subscribers: Mutex<Vec<Subscriber>>,
    next_inbox: AtomicU64,
}

/// One subscription's queue.
struct Subscriber {
    pattern: String,
    group: Option<String>,
    queue: mpsc::Sender<Pending>,
}

/// A message waiting in a subscription's queue.
struct Pending {
    message: Message,
    attempt: u64,
}

impl MemoryBroker {
    /// An empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.inner
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The queues `topic` goes to: every matching subscription without a group, and one per
    /// group (chosen by `turn`, for round robin).
    fn route(&self, topic: &str, turn: u64) -> Vec<mpsc::Sender<Pending>> {
        let mut subscribers = self.lock();
        subscribers.retain(|s| !s.queue.is_closed());
        let matching: Vec<&Subscriber> = subscribers
            .iter()
            .filter(|s| subject_matches(&s.pattern, topic))
            .collect();
        let mut queues: Vec<mpsc::Sender<Pending>> = matching
            .iter()
            .filter(|s| s.group.is_none())
            .map(|s| s.queue.clone())
            .collect();
        let mut groups: Vec<&str> = matching.iter().filter_map(|s| s.group.as_deref()).collect();
        groups.sort_unstable();
        groups.dedup();
        for group in groups {
            let members: Vec<&&Subscriber> = matching
                .iter()
                .filter(|s| s.group.as_deref() == Some(group))
                .collect();
            let index = usize::try_from(turn % members.len() as u64).unwrap_or(0);
            queues.push(members[index].queue.clone());
        }
        queues
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn publish(&self, topic: &str, mut message: Message) -> Result<()> {
        message.topic = Some(topic.to_owned());
        let turn = self.inner.next_inbox.fetch_add(1, Ordering::Relaxed);
        for queue in self.route(topic, turn) {
            let pending = Pending {
                message: message.clone(),
                attempt: 1,
            };
            if queue.try_send(pending).is_err() && !queue.is_closed() {
                return Err(Error::other(format!(
                    "in-process broker: the subscription to {topic:?} has {QUEUE_CAPACITY} \
                     messages waiting; try again later"
                )));
            }
        }
        Ok(())
    }

    async fn request(
        &self,
        topic: &str,
        mut message: Message,
        timeout: Option<Duration>,
        expected: usize,
    ) -> Result<Vec<Message>> {
        let inbox = format!(
            "_INBOX.{}",
            self.inner.next_inbox.fetch_add(1, Ordering::Relaxed)
        );
        let (tx, mut rx) = mpsc::channel(QUEUE_CAPACITY);
        self.lock().push(Subscriber {
            pattern: inbox.clone(),
            group: None,
            queue: tx,
        });
        message.reply_to = Some(inbox);
        if self.route(topic, 0).is_empty() {
            return Err(Error::other(format!(
                "no one answers requests on {topic:?}"
            )));
        }
        self.publish(topic, message).await?;
        let mut replies = Vec::new();
        let collect = async {
            while replies.len() < expected.max(1) {
                match rx.recv().await {
                    Some(pending) => replies.push(pending.message),
                    None => break,
                }
            }
        };
        match timeout {
            Some(limit) => {
                let _ = tokio::time::timeout(limit, collect).await;
            }
            None => collect.await,
        }
        rx.close(); // the inbox subscription is dropped on the next route
        if replies.is_empty() {
            return Err(Error::Timeout);
        }
        Ok(replies)
    }

    async fn subscribe(&self, subscription: &Subscription) -> anyhow::Result<Box<dyn Inbox>> {
        if let Some(js) = &subscription.jetstream {
            bail!(
                "subscription to {:?}: JetStream (stream {:?}) needs the NATS messaging backend \
                 (OMNIA_MESSAGING=nats, NATS_URL)",
                subscription.topic,
                js.stream
            );
        }
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        self.lock().push(Subscriber {
            pattern: subscription.topic.clone(),
            group: subscription.queue_group.clone(),
            queue: tx.clone(),
        });
        Ok(Box::new(MemoryInbox { rx, requeue: tx }))
    }

    fn guarantee(&self, _: &Subscription) -> &'static str {
        "at-least-once within this process (nothing survives a restart)"
    }
}

struct MemoryInbox {
    rx: mpsc::Receiver<Pending>,
    requeue: mpsc::Sender<Pending>,
}

#[async_trait]
impl Inbox for MemoryInbox {
    async fn next(&mut self) -> Option<Box<dyn Delivery>> {
        let Pending {
            mut message,
            attempt,
        } = self.rx.recv().await?;
        message.set_metadata(DELIVERY_ATTEMPT, &attempt.to_string());
        Some(Box::new(MemoryDelivery {
            message,
            attempt,
            requeue: self.requeue.clone(),
        }))
    }
}

struct MemoryDelivery {
    message: Message,
    attempt: u64,
    requeue: mpsc::Sender<Pending>,
}

#[async_trait]
impl Delivery for MemoryDelivery {
    fn message(&self) -> &Message {
        &self.message
    }

    fn attempt(&self) -> u64 {
        self.attempt
    }

    async fn ack(self: Box<Self>) -> Result<()> {
        Ok(())
    }

    async fn nak(self: Box<Self>, delay: Duration) -> Result<()> {
        let Self {
            message,
            attempt,
            requeue,
        } = *self;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = requeue
                .send(Pending {
                    message,
                    attempt: attempt + 1,
                })
                .await;
        });
        Ok(())
    }

    async fn term(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

/// Whether `subject` matches `pattern` (`*` one token, `>` one or more at the end).
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for token in pattern.split('.') {
        match (token, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (t, Some(s)) if t == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(subject_matches("a.*.c", "a.b.c"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(subject_matches("a", "a"));
        assert!(!subject_matches("a.b", "a"));
    }

    #[tokio::test]
    async fn fan_out_queue_groups_and_redelivery() {
        let broker = MemoryBroker::new();
        let mut all = broker.subscribe(&Subscription::topic("t.*")).await.unwrap();
        let grouped = |group: &str| Subscription {
            queue_group: Some(group.to_owned()),
            ..Subscription::topic("t.x")
        };
        let mut g1 = broker.subscribe(&grouped("g")).await.unwrap();
        let mut g2 = broker.subscribe(&grouped("g")).await.unwrap();
        for i in 0..4 {
            broker.publish("t.x", Message::new(vec![i])).await.unwrap();
        }
        let mut group_got = 0;
        for _ in 0..4 {
            assert!(all.next().await.is_some());
        }
        for inbox in [&mut g1, &mut g2] {
            while let Ok(Some(_)) =
                tokio::time::timeout(Duration::from_millis(50), inbox.next()).await
            {
                group_got += 1;
            }
        }
        assert_eq!(group_got, 4, "the group got each message once");

        broker.publish("t.y", Message::new("again")).await.unwrap();
        let first = all.next().await.unwrap();
        assert_eq!(first.attempt(), 1);
        assert_eq!(first.message().metadata(DELIVERY_ATTEMPT), Some("1"));
        first.nak(Duration::from_millis(10)).await.unwrap();
        let second = all.next().await.unwrap();
        assert_eq!(second.attempt(), 2);
        assert_eq!(second.message().data, b"again");
    }

    #[tokio::test]
    async fn request_reply_and_timeout() {
        let broker = MemoryBroker::new();
        let mut service = broker.subscribe(&Subscription::topic("svc")).await.unwrap();
        let responder = broker.clone();
        tokio::spawn(async move {
            let request = service.next().await.unwrap();
            let to = request.message().reply_to.clone().unwrap();
            responder.publish(&to, Message::new("pong")).await.unwrap();
        });
        let replies = broker
            .request("svc", Message::new("ping"), Some(Duration::from_secs(5)), 1)
            .await
            .unwrap();
        assert_eq!(replies[0].data, b"pong");
        let nobody = broker
            .request(
                "nobody",
                Message::new("x"),
                Some(Duration::from_millis(50)),
                1,
            )
            .await;
        assert!(matches!(nobody, Err(Error::Other(m)) if m.contains("no one answers")));
    }
}
