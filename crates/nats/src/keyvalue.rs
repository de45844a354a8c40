//! `wasi:keyvalue` on NATS JetStream KV.
//!
//! * A bucket is a JetStream KV bucket of the same name. Opening a missing bucket answers
//!   `no-such-store`, or creates it (history 1) when `OMNIA_NATS_KV_CREATE=true`. Opened
//!   buckets are remembered, so only the first `open` of a name costs a round trip.
//! * Keys must be valid NATS KV keys (`A-Z a-z 0-9 - / _ = .`, not starting or ending with
//!   `.`); others get `error::other` naming the rule. Values are at most the server's
//!   `max_payload` (1 MiB by default, including headers): raise it on the server for larger
//!   values.
//! * Compare-and-swap uses the key's revision: `swap` is an update that JetStream accepts only
//!   if the key's last revision is still the one read. `increment` is a compare-and-swap loop
//!   over a decimal counter.
//! * `list-keys` lists the bucket's live keys in sorted order; the cursor is an offset into
//!   that order, so keys created or deleted between pages can shift a page.
//! * While NATS is unreachable, every operation fails after at most
//!   [`REQUEST_TIMEOUT`] with `error::other`; the client reconnects by
//!   itself.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use futures::TryStreamExt;
use omnia::config::redact_url;
use omnia_wasi_keyvalue::WasiKeyValue;
use omnia_wasi_keyvalue::backend::{
    self, Bucket, KeyPage, KeyValueStore, PAGE_SIZE, Versioned, add_counter, parse_counter,
};

use crate::{NatsOptions, REQUEST_TIMEOUT};

/// The `"keyvalue"` entry backed by NATS JetStream KV.
pub type NatsKeyValue = WasiKeyValue<NatsKvStore>;

/// How many times `increment` retries a compare-and-swap that lost a race.
const INCREMENT_ATTEMPTS: u32 = 1000;

/// A NATS JetStream key-value store.
#[derive(Clone)]
pub struct NatsKvStore {
    jetstream: jetstream::Context,
    create_buckets: bool,
    url: Arc<str>,
    opened: Arc<Mutex<HashMap<String, Arc<NatsBucket>>>>,
}

impl NatsKvStore {
    /// Connects to NATS (see [`crate::connect`]).
    pub async fn connect(options: NatsOptions) -> Result<Self> {
        let client = crate::shared_client(&options).await?;
        Ok(Self::new(client, &options))
    }

    /// A store over an existing connection.
    pub fn new(client: async_nats::Client, options: &NatsOptions) -> Self {
        let mut jetstream = jetstream::new(client);
        jetstream.set_timeout(REQUEST_TIMEOUT);
        Self {
            jetstream,
            create_buckets: options.create_buckets,
            url: redact_url(&options.url).into(),
            opened: Arc::default(),
        }
    }

    fn failure(&self, op: &str, err: impl Display) -> backend::Error {
        let message = err.to_string();
        if message.contains("permission") || message.contains("authorization") {
            return backend::Error::AccessDenied;
        }
        backend::Error::other(format!("NATS at {}: {op}: {message}", self.url))
    }

    async fn open_bucket(&self, name: &str) -> backend::Result<kv::Store> {
        match self.jetstream.get_key_value(name).await {
            Ok(store) => Ok(store),
            Err(err) if is_not_found(&err) && self.create_buckets => {
                let store = create_bucket(&self.jetstream, name)
                    .await
                    .map_err(|err| self.failure("create bucket", format!("{err:#}")))?;
                tracing::info!(bucket = name, "keyvalue: created NATS KV bucket");
                Ok(store)
            }
            Err(err) if is_not_found(&err) => Err(backend::Error::NoSuchStore),
            Err(err) => Err(self.failure("open bucket", err)),
        }
    }
}

/// Creates KV bucket `name` (history 1, file storage, one replica), or opens it if it exists
/// with the same settings.
///
/// This makes the bucket's stream directly, with the settings `create_key_value` of async-nats
/// would use, because `create_key_value` first reads the account info, and the reply of
/// nats-server 2.9 (still what Debian ships) lacks a field async-nats 0.51 requires.
pub async fn create_bucket(jetstream: &jetstream::Context, name: &str) -> Result<kv::Store> {
    jetstream
        .create_stream(jetstream::stream::Config {
            name: format!("KV_{name}"),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            discard: jetstream::stream::DiscardPolicy::New,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            duplicate_window: Duration::from_mins(2),
            storage: jetstream::stream::StorageType::File,
            num_replicas: 1,
            ..jetstream::stream::Config::default()
        })
        .await
        .with_context(|| format!("cannot create the stream of KV bucket {name:?}"))?;
    jetstream
        .get_key_value(name)
        .await
        .with_context(|| format!("cannot open KV bucket {name:?}"))
}

/// Whether opening a bucket (`get_key_value`) failed because the bucket does not exist.
pub fn is_not_found(err: &jetstream::context::KeyValueError) -> bool {
    let source = std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<jetstream::context::GetStreamError>());
    matches!(
        source.map(jetstream::context::GetStreamError::kind),
        Some(jetstream::context::GetStreamErrorKind::JetStream(js)) if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

impl omnia::Backend for NatsKvStore {
    type Options = NatsOptions;

    async fn connect_with(options: NatsOptions) -> Result<Self> {
        Self::connect(options).await
    }
}

#[async_trait]
impl KeyValueStore for NatsKvStore {
    async fn open(&self, name: &str) -> backend::Result<Arc<dyn Bucket>> {
        let cached = self
            .opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned();
        if let Some(bucket) = cached {
            return Ok(bucket);
        }
        let bucket = Arc::new(NatsBucket {
            kv: self.open_bucket(name).await?,
            store: self.clone(),
        });
        self.opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), Arc::clone(&bucket));
        Ok(bucket)
    }
}

/// One JetStream KV bucket.
struct NatsBucket {
    kv: kv::Store,
    store: NatsKvStore,
}

impl NatsBucket {
    fn error(&self, op: &str, key: &str, err: impl Display) -> backend::Error {
        let message = err.to_string();
        if message.contains("key cannot be empty") || message.contains("invalid key") {
            return invalid_key(key);
        }
        self.store.failure(op, err)
    }
}

fn invalid_key(key: &str) -> backend::Error {
    backend::Error::other(format!(
        "invalid key {key:?} for NATS KV: use A-Z a-z 0-9 - / _ = . and do not start or end with '.'"
    ))
}

#[async_trait]
impl Bucket for NatsBucket {
    async fn get(&self, key: &str) -> backend::Result<Option<Vec<u8>>> {
        let value = self
            .kv
            .get(key)
            .await
            .map_err(|e| self.error("get", key, e))?;
        Ok(value.map(|v| v.to_vec()))
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> backend::Result<()> {
        self.kv
            .put(key, value.into())
            .await
            .map_err(|e| self.error("put", key, e))?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> backend::Result<()> {
        self.kv
            .delete(key)
            .await
            .map_err(|e| self.error("delete", key, e))
    }

    async fn exists(&self, key: &str) -> backend::Result<bool> {
        Ok(self.get(key).await?.is_some())
    }

    async fn list_keys(&self, cursor: Option<u64>) -> backend::Result<KeyPage> {
        let mut keys: Vec<String> = self
            .kv
            .keys()
            .await
            .map_err(|e| self.store.failure("list keys", e))?
            .try_collect()
            .await
            .map_err(|e| self.store.failure("list keys", e))?;
        keys.sort_unstable();
        let start = usize::try_from(cursor.unwrap_or(0))
            .unwrap_or(usize::MAX)
            .min(keys.len());
        let end = start.saturating_add(PAGE_SIZE).min(keys.len());
        let next = (end < keys.len()).then_some(end as u64);
        keys.truncate(end);
        Ok(KeyPage {
            keys: keys.split_off(start),
            cursor: next,
        })
    }

    async fn increment(&self, key: &str, delta: i64) -> backend::Result<i64> {
        for attempt in 0..INCREMENT_ATTEMPTS {
            let seen = self.current(key).await?;
            let current = match &seen.value {
                Some(value) => parse_counter(key, value)?,
                None => 0,
            };
            let next = add_counter(key, current, delta)?;
            if self.swap(key, &seen, next.to_string().into_bytes()).await? {
                return Ok(next);
            }
            // Lost a race: back off a little, more as contention persists.
            tokio::time::sleep(Duration::from_micros(u64::from(attempt.min(50)) * 200)).await;
        }
        Err(backend::Error::other(format!(
            "cannot increment key {key:?}: {INCREMENT_ATTEMPTS} attempts lost to concurrent writers"
        )))
    }

    async fn current(&self, key: &str) -> backend::Result<Versioned> {
        let entry = self
            .kv
            .entry(key)
            .await
            .map_err(|e| self.error("get", key, e))?;
        Ok(match entry {
            Some(entry) if entry.operation == kv::Operation::Put => Versioned {
                value: Some(entry.value.to_vec()),
                revision: entry.revision,
            },
            // A deleted key keeps a marker whose revision a swap must name.
            Some(entry) => Versioned {
                value: None,
                revision: entry.revision,
            },
            None => Versioned {
                value: None,
                revision: 0,
            },
        })
    }

    async fn swap(&self, key: &str, expected: &Versioned, value: Vec<u8>) -> backend::Result<bool> {
        match self.kv.update(key, value.into(), expected.revision).await {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(err) if err.kind() == kv::UpdateErrorKind::InvalidKey => Err(invalid_key(key)),
            Err(err) => Err(self.error("update", key, err)),
        }
    }
}
