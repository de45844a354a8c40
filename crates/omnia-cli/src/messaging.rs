//! The messaging backend of the `omnia` binary, chosen at start-up.
//!
//! | `OMNIA_MESSAGING` | backend | needs feature |
//! |---|---|---|
//! | `memory` | in the process ([`MemoryBroker`]) | `messaging` |
//! | `nats` | NATS subjects and JetStream at `NATS_URL` | `messaging-nats` |
//!
//! Unset, it is `nats` when `NATS_URL` is set and `memory` otherwise. Choosing a backend this
//! build does not have is a start-up error naming the cargo feature that has it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use async_trait::async_trait;
use omnia::config::{Setting, var};
use omnia::{Backend, FromEnv};
use omnia_wasi_messaging::backend::{self, Broker, Inbox, Message};
use omnia_wasi_messaging::{MemoryBroker, Subscription, WasiMessaging};

/// The `"messaging"` entry of the `omnia` binary.
pub type Messaging = WasiMessaging<SelectedBroker>;

/// The backends `OMNIA_MESSAGING` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memory,
    Nats,
}

/// The chosen backend, with its checked settings.
pub struct Choice {
    kind: Kind,
    #[cfg(feature = "messaging-nats")]
    nats: Option<omnia_nats::NatsOptions>,
}

impl FromEnv for Choice {
    fn from_env() -> Result<Self> {
        let kind = match var("OMNIA_MESSAGING", |s| {
            match s.to_ascii_lowercase().as_str() {
                "memory" => Ok(Kind::Memory),
                "nats" => Ok(Kind::Nats),
                _ => bail!("expected memory or nats, got {s:?}"),
            }
        })? {
            Some(kind) => kind,
            None if cfg!(feature = "messaging-nats") && var("NATS_URL", |_| Ok(()))?.is_some() => {
                Kind::Nats
            }
            None => Kind::Memory,
        };
        #[cfg(not(feature = "messaging-nats"))]
        if kind == Kind::Nats {
            bail!(
                "OMNIA_MESSAGING=nats, but this omnia was built without the NATS messaging \
                 backend: rebuild with the cargo feature `messaging-nats`"
            );
        }
        Ok(Self {
            kind,
            #[cfg(feature = "messaging-nats")]
            nats: if kind == Kind::Nats {
                Some(omnia_nats::NatsOptions::from_env()?)
            } else {
                None
            },
        })
    }

    fn settings() -> Vec<Setting> {
        let mut settings = vec![Setting {
            env: "OMNIA_MESSAGING",
            flag: Some("messaging"),
            value: "BACKEND",
            default: "nats if NATS_URL is set, else memory",
            help: "messaging backend: memory or nats",
        }];
        #[cfg(feature = "messaging-nats")]
        settings.extend(omnia_nats::NatsOptions::settings());
        settings
    }
}

/// The broker `OMNIA_MESSAGING` chose.
#[derive(Clone)]
pub struct SelectedBroker(Arc<dyn Broker>);

impl Backend for SelectedBroker {
    type Options = Choice;

    async fn connect_with(choice: Choice) -> Result<Self> {
        let broker: Arc<dyn Broker> = match choice.kind {
            Kind::Memory => Arc::new(MemoryBroker::new()),
            #[cfg(feature = "messaging-nats")]
            Kind::Nats => match choice.nats {
                Some(options) => Arc::new(omnia_nats::NatsBroker::connect(options).await?),
                None => bail!("NATS_URL is not set"),
            },
            #[allow(unreachable_patterns)]
            other => bail!("the {other:?} messaging backend is not in this build"),
        };
        Ok(Self(broker))
    }

    fn backends() -> Vec<&'static str> {
        let mut backends = vec!["memory"];
        #[cfg(feature = "messaging-nats")]
        backends.push("nats");
        backends
    }
}

#[async_trait]
impl Broker for SelectedBroker {
    async fn publish(&self, topic: &str, message: Message) -> backend::Result<()> {
        self.0.publish(topic, message).await
    }

    async fn request(
        &self,
        topic: &str,
        message: Message,
        timeout: Option<Duration>,
        expected: usize,
    ) -> backend::Result<Vec<Message>> {
        self.0.request(topic, message, timeout, expected).await
    }

    async fn subscribe(&self, subscription: &Subscription) -> Result<Box<dyn Inbox>> {
        self.0.subscribe(subscription).await
    }

    fn guarantee(&self, subscription: &Subscription) -> &'static str {
        self.0.guarantee(subscription)
    }
}
