//! The key-value backend of the `omnia` binary, chosen at start-up.
//!
//! | `OMNIA_KEYVALUE` | backend | needs feature |
//! |---|---|---|
//! | `memory` | in the process ([`MemoryStore`]) | `keyvalue` |
//! | `redis` | Redis at `REDIS_URL` | `keyvalue-redis` |
//! | `nats` | NATS JetStream KV at `NATS_URL` | `keyvalue-nats` |
//!
//! Unset, it is `redis` when `REDIS_URL` is set and `memory` otherwise. NATS is only chosen
//! explicitly, because `NATS_URL` also configures messaging. Choosing a backend this build does
//! not have is a start-up error naming the cargo feature that has it. The settings of every
//! backend compiled in are checked whether or not it is chosen, so a malformed `REDIS_URL` is
//! reported even while the data stays in memory.

use std::sync::Arc;

use anyhow::{Result, bail};
use async_trait::async_trait;
use omnia::config::{Setting, var};
use omnia::{Backend, FromEnv};
use omnia_wasi_keyvalue::backend::{self, Bucket, KeyValueStore};
use omnia_wasi_keyvalue::{MemoryOptions, MemoryStore, WasiKeyValue};

/// The `"keyvalue"` entry of the `omnia` binary.
pub type KeyValue = WasiKeyValue<SelectedStore>;

/// The backends `OMNIA_KEYVALUE` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memory,
    Redis,
    Nats,
}

fn parse_kind(s: &str) -> Result<Kind> {
    match s.to_ascii_lowercase().as_str() {
        "memory" => Ok(Kind::Memory),
        "redis" => Ok(Kind::Redis),
        "nats" => Ok(Kind::Nats),
        _ => bail!("expected memory, redis or nats, got {s:?}"),
    }
}

/// The chosen backend, with the checked settings of every backend compiled in.
pub struct Choice {
    kind: Kind,
    memory: MemoryOptions,
    #[cfg(feature = "keyvalue-redis")]
    redis: Option<omnia_redis::RedisOptions>,
    #[cfg(feature = "keyvalue-nats")]
    nats: Option<omnia_nats::NatsOptions>,
}

/// Whether `name` is set (to anything but blanks).
fn is_set(name: &str) -> Result<bool> {
    Ok(var(name, |_| Ok(()))?.is_some())
}

impl FromEnv for Choice {
    fn from_env() -> Result<Self> {
        let kind = match var("OMNIA_KEYVALUE", parse_kind)? {
            Some(kind) => kind,
            None if is_set("REDIS_URL")? => Kind::Redis,
            None => Kind::Memory,
        };
        #[cfg(not(feature = "keyvalue-redis"))]
        if kind == Kind::Redis {
            bail!(
                "the Redis key-value backend was chosen (OMNIA_KEYVALUE=redis, or REDIS_URL is \
                 set), but this omnia was built without it: rebuild with the cargo feature \
                 `keyvalue-redis`, or unset REDIS_URL to keep data in memory"
            );
        }
        #[cfg(not(feature = "keyvalue-nats"))]
        if kind == Kind::Nats {
            bail!(
                "OMNIA_KEYVALUE=nats, but this omnia was built without the NATS key-value \
                 backend: rebuild with the cargo feature `keyvalue-nats`"
            );
        }
        Ok(Self {
            kind,
            memory: MemoryOptions::from_env()?,
            #[cfg(feature = "keyvalue-redis")]
            redis: if kind == Kind::Redis || is_set("REDIS_URL")? {
                Some(omnia_redis::RedisOptions::from_env()?)
            } else {
                None
            },
            #[cfg(feature = "keyvalue-nats")]
            nats: if kind == Kind::Nats || is_set("NATS_URL")? {
                Some(omnia_nats::NatsOptions::from_env()?)
            } else {
                None
            },
        })
    }

    fn settings() -> Vec<Setting> {
        let mut settings = vec![Setting {
            env: "OMNIA_KEYVALUE",
            flag: Some("keyvalue"),
            value: "BACKEND",
            default: "redis if REDIS_URL is set, else memory",
            help: "key-value backend: memory, redis or nats",
        }];
        settings.extend(MemoryOptions::settings());
        #[cfg(feature = "keyvalue-redis")]
        settings.extend(omnia_redis::RedisOptions::settings());
        #[cfg(feature = "keyvalue-nats")]
        settings.extend(omnia_nats::NatsOptions::settings());
        settings
    }
}

/// The store `OMNIA_KEYVALUE` chose.
#[derive(Clone)]
pub struct SelectedStore(Arc<dyn KeyValueStore>);

impl Backend for SelectedStore {
    type Options = Choice;

    async fn connect_with(choice: Choice) -> Result<Self> {
        let store: Arc<dyn KeyValueStore> = match choice.kind {
            Kind::Memory => {
                tracing::debug!("keyvalue: in memory (set OMNIA_KEYVALUE or REDIS_URL to persist)");
                Arc::new(MemoryStore::with_options(choice.memory))
            }
            #[cfg(feature = "keyvalue-redis")]
            Kind::Redis => match choice.redis {
                Some(options) => Arc::new(omnia_redis::RedisStore::connect(options).await?),
                None => bail!("REDIS_URL is not set"),
            },
            #[cfg(feature = "keyvalue-nats")]
            Kind::Nats => match choice.nats {
                Some(options) => Arc::new(omnia_nats::NatsKvStore::connect(options).await?),
                None => bail!("NATS_URL is not set"),
            },
            #[allow(unreachable_patterns)]
            other => bail!("the {other:?} key-value backend is not in this build"),
        };
        Ok(Self(store))
    }

    fn backends() -> Vec<&'static str> {
        let mut backends = vec!["memory"];
        #[cfg(feature = "keyvalue-redis")]
        backends.push("redis");
        #[cfg(feature = "keyvalue-nats")]
        backends.push("nats");
        backends
    }
}

#[async_trait]
impl KeyValueStore for SelectedStore {
    async fn open(&self, name: &str) -> backend::Result<Arc<dyn Bucket>> {
        self.0.open(name).await
    }
}
