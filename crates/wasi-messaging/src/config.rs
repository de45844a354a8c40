//! What the messaging trigger subscribes to, from the environment or a TOML file.
//!
//! For simple cases, variables:
//!
//! | variable | meaning |
//! |---|---|
//! | `OMNIA_MESSAGING_TOPICS` | topics (NATS subjects, wildcards allowed) to subscribe to, comma-separated |
//! | `OMNIA_MESSAGING_QUEUE_GROUP` | a queue group for all of them: replicas share the messages |
//! | `OMNIA_MESSAGING_CONCURRENCY` | messages of one subscription handled at once (default 16) |
//!
//! For everything else, `OMNIA_MESSAGING_CONFIG` names a TOML file of subscriptions (then the
//! variables above must be unset):
//!
//! ```toml
//! [[subscription]]
//! topic = "orders.>"            # required: the subject (for JetStream: the filter subject)
//! queue_group = "workers"       # optional (core NATS): share the messages among replicas
//! concurrency = 32              # optional: messages handled at once (default 16)
//! max_deliver = 5               # optional: deliveries before a message is dead-lettered (default 5)
//! backoff = ["1s", "5s", "30s"] # optional: wait before redelivery n (the last repeats)
//! dead_letter = "orders.dead"   # optional: where a message goes after max_deliver failures
//! ack_wait = "30s"              # optional (JetStream): redeliver if not settled by then
//!
//! [subscription.jetstream]      # optional: a durable JetStream consumer (at-least-once)
//! stream = "ORDERS"
//! consumer = "omnia-orders"     # durable name; replicas with the same name share the messages
//! ```
//!
//! Everything is checked at start-up; an error names the file (or variable), the subscription
//! and the key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use omnia::FromEnv;
use omnia::config::{Setting, parse_duration, parse_positive_count, var};
use toml::{Table, Value};

/// Messages of one subscription handled at once, unless configured.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Deliveries of a failing message before it is dead-lettered, unless configured.
pub const DEFAULT_MAX_DELIVER: u32 = 5;
/// Waits before redeliveries, unless configured.
pub const DEFAULT_BACKOFF: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
];
/// How long JetStream waits for a message to be settled before redelivering it.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

/// A durable JetStream consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStream {
    /// The stream (it must exist).
    pub stream: String,
    /// The durable consumer's name (created if missing).
    pub consumer: String,
}

/// One subscription of the trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The subject, wildcards allowed.
    pub topic: String,
    /// Core NATS queue group: replicas in the same group share the messages.
    pub queue_group: Option<String>,
    /// A durable JetStream consumer instead of a core subscription.
    pub jetstream: Option<JetStream>,
    /// Messages handled at once.
    pub concurrency: usize,
    /// Deliveries before a failing message is dead-lettered.
    pub max_deliver: u32,
    /// Wait before redelivery `n` (the last one repeats).
    pub backoff: Vec<Duration>,
    /// Where a message goes after `max_deliver` failed deliveries.
    pub dead_letter: Option<String>,
    /// JetStream: how long an unsettled message waits before it is delivered again (to
    /// another replica, after a crash).
    pub ack_wait: Duration,
}

impl Subscription {
    /// A subscription to `topic` with every default.
    pub fn topic(topic: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            queue_group: None,
            jetstream: None,
            concurrency: DEFAULT_CONCURRENCY,
            max_deliver: DEFAULT_MAX_DELIVER,
            backoff: DEFAULT_BACKOFF.to_vec(),
            dead_letter: None,
            ack_wait: DEFAULT_ACK_WAIT,
        }
    }

    /// The wait before the redelivery that follows failed delivery `attempt` (1-based).
    pub fn backoff_after(&self, attempt: u64) -> Duration {
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        self.backoff
            .get(index)
            .or(self.backoff.last())
            .copied()
            .unwrap_or(Duration::ZERO)
    }
}

/// The subscriptions of the messaging trigger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscriptions {
    /// The subscriptions configured (`OMNIA_MESSAGING_TOPICS` or `OMNIA_MESSAGING_CONFIG`):
    /// what a guest run on its own is subscribed to, and the settings of their topics when an
    /// application's guest is routed one.
    pub listed: Vec<Subscription>,
    /// The queue group of a topic not listed (`OMNIA_MESSAGING_QUEUE_GROUP`).
    pub queue_group: Option<String>,
    /// Messages of a topic not listed handled at once (`OMNIA_MESSAGING_CONCURRENCY`).
    pub concurrency: Option<usize>,
}

impl Subscriptions {
    /// The subscription of `topic` (a guest's `routes.messaging` in an application): the
    /// listed one of that topic, if any, else the defaults.
    pub fn for_topic(&self, topic: &str) -> Subscription {
        self.listed
            .iter()
            .find(|s| s.topic == topic)
            .cloned()
            .unwrap_or_else(|| Subscription {
                queue_group: self.queue_group.clone(),
                concurrency: self.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
                ..Subscription::topic(topic)
            })
    }
}

impl FromEnv for Subscriptions {
    fn from_env() -> Result<Self> {
        let file = var("OMNIA_MESSAGING_CONFIG", |s| Ok(PathBuf::from(s)))?;
        let topics = var("OMNIA_MESSAGING_TOPICS", |s| {
            s.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| check_subject(t, true).map(|()| t.to_owned()))
                .collect::<Result<Vec<_>>>()
        })?;
        let group = var("OMNIA_MESSAGING_QUEUE_GROUP", |s| {
            check_token(s).map(|()| s.to_owned())
        })?;
        let concurrency = var("OMNIA_MESSAGING_CONCURRENCY", parse_positive_count)?;
        match file {
            Some(path) => {
                if topics.is_some() || group.is_some() || concurrency.is_some() {
                    bail!(
                        "OMNIA_MESSAGING_CONFIG={} is set: put the subscriptions in that file and \
                         unset OMNIA_MESSAGING_TOPICS, OMNIA_MESSAGING_QUEUE_GROUP and \
                         OMNIA_MESSAGING_CONCURRENCY",
                        path.display()
                    );
                }
                load_file(&path)
            }
            None => Ok(Self {
                listed: topics
                    .unwrap_or_default()
                    .iter()
                    .map(|t| Subscription {
                        queue_group: group.clone(),
                        concurrency: concurrency.unwrap_or(DEFAULT_CONCURRENCY),
                        ..Subscription::topic(t)
                    })
                    .collect(),
                queue_group: group,
                concurrency,
            }),
        }
    }

    fn settings() -> Vec<Setting> {
        let setting = Setting::env_only;
        vec![
            setting(
                "OMNIA_MESSAGING_TOPICS",
                "TOPICS",
                "none",
                "topics the messaging trigger subscribes to, comma-separated (wildcards allowed)",
            ),
            setting(
                "OMNIA_MESSAGING_QUEUE_GROUP",
                "NAME",
                "none",
                "queue group of those subscriptions: replicas share the messages",
            ),
            setting(
                "OMNIA_MESSAGING_CONCURRENCY",
                "N",
                "16",
                "messages of one subscription handled at once",
            ),
            setting(
                "OMNIA_MESSAGING_CONFIG",
                "FILE",
                "unset",
                "a TOML file of subscriptions (JetStream consumers, retries, dead letters)",
            ),
        ]
    }
}

/// Reads a subscriptions file.
pub fn load_file(path: &Path) -> Result<Subscriptions> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("OMNIA_MESSAGING_CONFIG: cannot read {shown}"))?;
    let table: Table = toml::from_str(&text).map_err(|err| {
        anyhow::anyhow!("OMNIA_MESSAGING_CONFIG: {shown} is not valid TOML: {err}")
    })?;
    parse_file(&table).map_err(|err| anyhow::anyhow!("OMNIA_MESSAGING_CONFIG: {shown}: {err:#}"))
}

fn parse_file(table: &Table) -> Result<Subscriptions> {
    if let Some(key) = table.keys().find(|k| k.as_str() != "subscription") {
        bail!("unknown key {key:?} (expected [[subscription]] tables)");
    }
    let Some(Value::Array(items)) = table.get("subscription") else {
        bail!("no [[subscription]]: subscribe to at least one topic");
    };
    let subscriptions = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Table(t) = item else {
                bail!("subscription {}: expected a table", i + 1);
            };
            parse_subscription(t).with_context(|| format!("subscription {}", i + 1))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Subscriptions {
        listed: subscriptions,
        ..Subscriptions::default()
    })
}

const KEYS: &[&str] = &[
    "topic",
    "queue_group",
    "concurrency",
    "max_deliver",
    "backoff",
    "dead_letter",
    "ack_wait",
    "jetstream",
];

fn parse_subscription(t: &Table) -> Result<Subscription> {
    if let Some(key) = t.keys().find(|k| !KEYS.contains(&k.as_str())) {
        bail!("unknown key {key:?} (expected one of {})", KEYS.join(", "));
    }
    let string = |key: &str| -> Result<Option<String>> {
        match t.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => bail!("{key}: expected a string"),
        }
    };
    let topic = string("topic")?.context("topic: missing (the subject to subscribe to)")?;
    check_subject(&topic, true).context("topic")?;
    let mut sub = Subscription::topic(&topic);
    if let Some(group) = string("queue_group")? {
        check_token(&group).context("queue_group")?;
        sub.queue_group = Some(group);
    }
    if let Some(dead) = string("dead_letter")? {
        check_subject(&dead, false).context("dead_letter")?;
        sub.dead_letter = Some(dead);
    }
    match t.get("concurrency") {
        None => {}
        Some(Value::Integer(n)) if *n > 0 => sub.concurrency = usize::try_from(*n)?,
        Some(_) => bail!("concurrency: expected a number above zero"),
    }
    match t.get("max_deliver") {
        None => {}
        Some(Value::Integer(n)) if *n > 0 => sub.max_deliver = u32::try_from(*n)?,
        Some(_) => bail!("max_deliver: expected a number above zero"),
    }
    if let Some(wait) = string("ack_wait")? {
        sub.ack_wait = parse_duration(&wait).context("ack_wait")?;
        if sub.ack_wait.is_zero() {
            bail!("ack_wait: expected a duration above zero");
        }
    }
    match t.get("backoff") {
        None => {}
        Some(Value::Array(items)) if !items.is_empty() => {
            sub.backoff = items
                .iter()
                .map(|v| match v {
                    Value::String(s) => parse_duration(s).context("backoff"),
                    _ => bail!("backoff: expected durations such as \"1s\""),
                })
                .collect::<Result<_>>()?;
        }
        Some(_) => bail!("backoff: expected a list of durations such as [\"1s\", \"5s\"]"),
    }
    match t.get("jetstream") {
        None => {}
        Some(Value::Table(js)) => {
            if let Some(key) = js
                .keys()
                .find(|k| !["stream", "consumer"].contains(&k.as_str()))
            {
                bail!("jetstream: unknown key {key:?} (expected stream, consumer)");
            }
            let field = |key: &str| -> Result<String> {
                match js.get(key) {
                    Some(Value::String(s)) => {
                        check_token(s).with_context(|| format!("jetstream.{key}"))?;
                        Ok(s.clone())
                    }
                    _ => bail!("jetstream.{key}: missing (a name)"),
                }
            };
            if sub.queue_group.is_some() {
                bail!(
                    "queue_group and jetstream: replicas share a JetStream consumer by its \
                     name, drop queue_group"
                );
            }
            sub.jetstream = Some(JetStream {
                stream: field("stream")?,
                consumer: field("consumer")?,
            });
        }
        Some(_) => bail!("jetstream: expected a table with stream and consumer"),
    }
    Ok(sub)
}

/// Checks a subject: dot-separated tokens of visible characters; `*` and `>` (the last token)
/// only when `wildcards` are allowed.
pub fn check_subject(subject: &str, wildcards: bool) -> Result<()> {
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        let wildcard = *token == "*" || (*token == ">" && i == tokens.len() - 1);
        if token.is_empty()
            || token.chars().any(|c| c.is_whitespace() || c.is_control())
            || (!wildcards && (token.contains('*') || token.contains('>')))
            || (!wildcard && (token.contains('*') || token.contains('>')))
        {
            bail!(
                "{subject:?} is not a valid subject: dot-separated tokens without spaces{}",
                if wildcards {
                    ", `*` for one token, `>` for the rest"
                } else {
                    ", no wildcards"
                }
            );
        }
    }
    Ok(())
}

/// Checks a name (stream, consumer, queue group): letters, digits, `-` and `_`.
fn check_token(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("{name:?} is not a valid name: use letters, digits, - and _");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Subscriptions> {
        parse_file(&toml::from_str(text).unwrap())
    }

    #[test]
    fn a_full_file() {
        let subs = parse(
            r#"
            [[subscription]]
            topic = "orders.>"
            concurrency = 4
            max_deliver = 3
            backoff = ["100ms", "1s"]
            dead_letter = "orders.dead"
            ack_wait = "2s"
            [subscription.jetstream]
            stream = "ORDERS"
            consumer = "omnia"

            [[subscription]]
            topic = "events.*"
            queue_group = "workers"
            "#,
        )
        .unwrap();
        let orders = &subs.listed[0];
        assert_eq!(orders.jetstream.as_ref().unwrap().stream, "ORDERS");
        assert_eq!(orders.backoff_after(1), Duration::from_millis(100));
        assert_eq!(orders.backoff_after(7), Duration::from_secs(1));
        assert_eq!(subs.listed[1].queue_group.as_deref(), Some("workers"));
        assert_eq!(subs.listed[1].max_deliver, DEFAULT_MAX_DELIVER);
    }

    #[test]
    fn errors_name_the_subscription_and_key() {
        for (text, needle) in [
            ("[[subscription]]\ntopic = \"a b\"", "subscription 1: topic"),
            (
                "[[subscription]]\ntopic = \"a\"\ncolour = 1",
                "unknown key \"colour\"",
            ),
            (
                "[[subscription]]\ntopic = \"a\"\nconcurrency = 0",
                "concurrency",
            ),
            ("[[subscription]]\ntopic = \"a.>.b\"", "not a valid subject"),
            (
                "[[subscription]]\ntopic = \"a\"\ndead_letter = \"d.*\"",
                "dead_letter",
            ),
            (
                "[[subscription]]\ntopic = \"a\"\n[subscription.jetstream]\nstream = \"S\"",
                "jetstream.consumer: missing",
            ),
            ("other = 1", "unknown key \"other\""),
            ("", "no [[subscription]]"),
        ] {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn subjects() {
        assert!(check_subject("a.b.c", false).is_ok());
        assert!(check_subject("a.*.>", true).is_ok());
        assert!(check_subject("a.*", false).is_err());
        assert!(check_subject("a..b", true).is_err());
        assert!(check_subject("", true).is_err());
    }
}
