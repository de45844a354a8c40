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
//! not have is a start-up error naming the cargo feature that has it.

use std::sync::Arc;

use anyhow::{Result, bail};
use async_trait::async_trait;
use omnia::config::var;
use omnia::{Backend, FromEnv};
use omnia_wasi_keyvalue::backend::{self, Bucket, KeyValueStore};
use omnia_wasi_keyvalue::{MemoryStore, WasiKeyValue};

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

/// The chosen backend with its settings.
pub enum Choice {
    /// In memory.
    Memory,
    /// Redis.
    #[cfg(feature = "keyvalue-redis")]
    Redis(omnia_redis::RedisOptions),
    /// NATS JetStream KV.
    #[cfg(feature = "keyvalue-nats")]
    Nats(omnia_nats::NatsOptions),
}

impl FromEnv for Choice {
    fn from_env() -> Result<Self> {
        let kind = match var("OMNIA_KEYVALUE", parse_kind)? {
            Some(kind) => kind,
            // Set as `RedisOptions` reads it (blank counts as unset); it validates the value.
            None if var("REDIS_URL", |_| Ok(()))?.is_some() => Kind::Redis,
            None => Kind::Memory,
        };
        match kind {
            Kind::Memory => Ok(Self::Memory),
            #[cfg(feature = "keyvalue-redis")]
            Kind::Redis => Ok(Self::Redis(omnia_redis::RedisOptions::from_env()?)),
            #[cfg(not(feature = "keyvalue-redis"))]
            Kind::Redis => bail!(
                "the Redis key-value backend was chosen (OMNIA_KEYVALUE=redis, or REDIS_URL is set), \
                 but this omnia was built without it: rebuild with the cargo feature \
                 `keyvalue-redis`, or unset REDIS_URL to keep data in memory"
            ),
            #[cfg(feature = "keyvalue-nats")]
            Kind::Nats => Ok(Self::Nats(omnia_nats::NatsOptions::from_env()?)),
            #[cfg(not(feature = "keyvalue-nats"))]
            Kind::Nats => bail!(
                "OMNIA_KEYVALUE=nats, but this omnia was built without the NATS key-value \
                 backend: rebuild with the cargo feature `keyvalue-nats`"
            ),
        }
    }
}

/// The store `OMNIA_KEYVALUE` chose.
#[derive(Clone)]
pub struct SelectedStore(Arc<dyn KeyValueStore>);

impl Backend for SelectedStore {
    type Options = Choice;

    async fn connect_with(choice: Choice) -> Result<Self> {
        let store: Arc<dyn KeyValueStore> = match choice {
            Choice::Memory => {
                tracing::debug!("keyvalue: in memory (set OMNIA_KEYVALUE or REDIS_URL to persist)");
                Arc::new(MemoryStore::new())
            }
            #[cfg(feature = "keyvalue-redis")]
            Choice::Redis(options) => Arc::new(omnia_redis::RedisStore::connect(options).await?),
            #[cfg(feature = "keyvalue-nats")]
            Choice::Nats(options) => Arc::new(omnia_nats::NatsKvStore::connect(options).await?),
        };
        Ok(Self(store))
    }
}

#[async_trait]
impl KeyValueStore for SelectedStore {
    async fn open(&self, name: &str) -> backend::Result<Arc<dyn Bucket>> {
        self.0.open(name).await
    }
}
