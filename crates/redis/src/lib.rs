//! # Redis for Omnia
//!
//! [`Redis`] is a `"keyvalue"` entry for [`omnia::runtime!`]: `wasi:keyvalue` stored in Redis.
//! [`RedisStore`] is the [`KeyValueStore`] behind it, for runtimes that choose their backend at
//! start-up.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `REDIS_URL` | required | `redis://[user:password@]host[:port][/db]` |
//! | `OMNIA_REDIS_PREFIX` | empty | prepended to every key, so several apps can share one Redis |
//!
//! ## Layout
//!
//! A bucket is a key prefix: key `k` of bucket `b` is the Redis string
//! `{OMNIA_REDIS_PREFIX}b:k`, so `redis-cli GET app1:default:k` reads what a guest wrote to key
//! `k` of bucket `default` with `OMNIA_REDIS_PREFIX=app1:`. Counters (`increment`) are `INCRBY`,
//! i.e. decimal text.
//!
//! ## Behaviour
//!
//! * One multiplexed connection per process ([`ConnectionManager`]), shared by every instance.
//!   It reconnects by itself; while Redis is down, operations fail after at most
//!   [`CONNECT_TIMEOUT`] per reconnect attempt (or [`RESPONSE_TIMEOUT`] for an unanswered
//!   command), and the guest gets `error::other("Redis ...")`: the runtime keeps serving and
//!   recovers when Redis is back.
//! * At start-up, Redis must be reachable: an unreachable server is a start-up error naming the
//!   URL (without its password), so a misconfiguration is seen at once. Orchestrators restart
//!   the process; there is no start-up retry loop.
//! * Compare-and-swap is one Lua script (`GET`, compare, `SET`) run atomically by the server;
//!   it compares values, so a change back to the same value is not seen as a change.
//! * `get-many` is one `MGET`, `set-many` one `MSET`, `delete-many` one `DEL`; `list-keys` is
//!   `SCAN ... MATCH prefix*` (never `KEYS`), its cursor is Redis's.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use omnia::FromEnv;
use omnia::config::{Secrets, Setting, redact_url, url_var, var};
use omnia_wasi_keyvalue::WasiKeyValue;
use omnia_wasi_keyvalue::backend::{self, Bucket, KeyPage, KeyValueStore, PAGE_SIZE, Versioned};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a command may wait for its answer.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The `"keyvalue"` entry backed by Redis.
pub type Redis = WasiKeyValue<RedisStore>;

/// Settings of the Redis backend.
#[derive(Clone)]
pub struct RedisOptions {
    /// `REDIS_URL`: where Redis is.
    pub url: String,
    /// `OMNIA_REDIS_PREFIX`: prepended to every key.
    pub prefix: String,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl FromEnv for RedisOptions {
    fn from_env() -> Result<Self> {
        let url = url_var("REDIS_URL", |s| {
            redis::Client::open(s)
                .map_err(anyhow::Error::from)
                .context("expected redis://[user:password@]host[:port][/db]")?;
            Ok(s.to_owned())
        })?
        .context("REDIS_URL is not set: set it to the Redis to use, e.g. redis://127.0.0.1:6379")?;
        let prefix = var("OMNIA_REDIS_PREFIX", |s| Ok(s.to_owned()))?.unwrap_or_default();
        Ok(Self { url, prefix })
    }

    fn settings() -> Vec<Setting> {
        vec![
            Setting {
                env: "REDIS_URL",
                flag: None,
                value: "URL",
                default: "unset",
                help: "redis://[user:password@]host[:port][/db] (or redis+unix:///path.sock?pass=...); setting it selects Redis",
            },
            Setting {
                env: "OMNIA_REDIS_PREFIX",
                flag: None,
                value: "PREFIX",
                default: "empty",
                help: "prepended to every Redis key, so apps can share one Redis (e.g. app1:)",
            },
        ]
    }
}

/// A Redis key-value store: a connection plus the key prefix of this app.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
    url: Arc<str>,
}

impl RedisStore {
    /// Connects to `options.url`, failing if Redis does not answer.
    pub async fn connect(options: RedisOptions) -> Result<Self> {
        let url = redact_url(&options.url);
        let secrets = Secrets::of_url(&options.url);
        let client = redis::Client::open(options.url.as_str())
            .map_err(|err| secrets.scrub_error(&err.into()))
            .with_context(|| format!("REDIS_URL={url:?} is not valid"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|err| secrets.scrub_error(&err.into()))
            .with_context(|| {
                format!(
                    "cannot connect to Redis at {url} (REDIS_URL): is it running and reachable?"
                )
            })?;
        tracing::info!(url = %url, prefix = %options.prefix, "keyvalue: connected to Redis");
        Ok(Self {
            conn,
            prefix: options.prefix.into(),
            url: url.into(),
        })
    }
}

impl omnia::Backend for RedisStore {
    type Options = RedisOptions;

    async fn connect_with(options: RedisOptions) -> Result<Self> {
        Self::connect(options).await
    }
}

#[async_trait]
impl KeyValueStore for RedisStore {
    async fn open(&self, name: &str) -> backend::Result<Arc<dyn Bucket>> {
        Ok(Arc::new(RedisBucket {
            conn: self.conn.clone(),
            prefix: format!("{}{name}:", self.prefix),
            url: Arc::clone(&self.url),
        }))
    }
}

/// One bucket: the keys under `prefix`.
struct RedisBucket {
    conn: ConnectionManager,
    prefix: String,
    url: Arc<str>,
}

/// Sets the key to `ARGV[3]` if it holds `ARGV[2]` (`ARGV[1] == "1"`) or does not exist
/// (`ARGV[1] == "0"`); returns 1 if it did.
const SWAP_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
";

impl RedisBucket {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn keys(&self, keys: &[String]) -> Vec<String> {
        keys.iter().map(|k| self.key(k)).collect()
    }

    /// The guest-facing error for a failed Redis command.
    fn error(&self, err: &redis::RedisError) -> backend::Error {
        let denied = matches!(err.kind(), redis::ErrorKind::AuthenticationFailed)
            || matches!(err.code(), Some("NOAUTH" | "NOPERM" | "WRONGPASS"));
        if denied {
            return backend::Error::AccessDenied;
        }
        if err.is_io_error() || err.is_timeout() || err.is_connection_dropped() {
            return backend::Error::other(format!("Redis at {} is unreachable: {err}", self.url));
        }
        backend::Error::other(format!("Redis: {err}"))
    }

    /// `MATCH` pattern for the keys of this bucket: the prefix with glob characters escaped.
    fn pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.prefix.len() + 1);
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        pattern
    }
}

#[async_trait]
impl Bucket for RedisBucket {
    async fn get(&self, key: &str) -> backend::Result<Option<Vec<u8>>> {
        let mut conn = self.conn.clone();
        conn.get(self.key(key)).await.map_err(|e| self.error(&e))
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> backend::Result<()> {
        let mut conn = self.conn.clone();
        conn.set(self.key(key), value)
            .await
            .map_err(|e| self.error(&e))
    }

    async fn delete(&self, key: &str) -> backend::Result<()> {
        let mut conn = self.conn.clone();
        conn.del(self.key(key)).await.map_err(|e| self.error(&e))
    }

    async fn exists(&self, key: &str) -> backend::Result<bool> {
        let mut conn = self.conn.clone();
        conn.exists(self.key(key)).await.map_err(|e| self.error(&e))
    }

    async fn list_keys(&self, cursor: Option<u64>) -> backend::Result<KeyPage> {
        let mut conn = self.conn.clone();
        let pattern = self.pattern();
        let mut cursor = cursor.unwrap_or(0);
        let mut keys = Vec::new();
        // SCAN may answer with few or no keys; keep going (bounded) so a page is useful.
        for _ in 0..16 {
            let (next, raw): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(PAGE_SIZE)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error(&e))?;
            for key in raw {
                match String::from_utf8(key) {
                    Ok(key) => keys.extend(key.strip_prefix(&self.prefix).map(str::to_owned)),
                    Err(err) => tracing::warn!(
                        key = %String::from_utf8_lossy(err.as_bytes()),
                        "keyvalue: skipping a Redis key that is not UTF-8"
                    ),
                }
            }
            cursor = next;
            if cursor == 0 || !keys.is_empty() {
                break;
            }
        }
        Ok(KeyPage {
            keys,
            cursor: (cursor != 0).then_some(cursor),
        })
    }

    async fn increment(&self, key: &str, delta: i64) -> backend::Result<i64> {
        let mut conn = self.conn.clone();
        conn.incr(self.key(key), delta)
            .await
            .map_err(|e| match e.kind() {
                redis::ErrorKind::Server(_) => {
                    backend::Error::other(format!("cannot increment key {key:?}: {e}"))
                }
                _ => self.error(&e),
            })
    }

    async fn current(&self, key: &str) -> backend::Result<Versioned> {
        Ok(Versioned {
            value: self.get(key).await?,
            revision: 0,
        })
    }

    async fn swap(&self, key: &str, expected: &Versioned, value: Vec<u8>) -> backend::Result<bool> {
        let mut conn = self.conn.clone();
        let (exists, old): (&str, &[u8]) = match &expected.value {
            Some(old) => ("1", old),
            None => ("0", b""),
        };
        let swapped: i64 = Script::new(SWAP_SCRIPT)
            .key(self.key(key))
            .arg(exists)
            .arg(old)
            .arg(value)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.error(&e))?;
        Ok(swapped == 1)
    }

    async fn get_many(&self, keys: Vec<String>) -> backend::Result<Vec<Option<(String, Vec<u8>)>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(self.keys(&keys))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(&e))?;
        Ok(keys
            .into_iter()
            .zip(values)
            .map(|(key, value)| value.map(|value| (key, value)))
            .collect())
    }

    async fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> backend::Result<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let pairs: Vec<(String, Vec<u8>)> =
            pairs.into_iter().map(|(k, v)| (self.key(&k), v)).collect();
        conn.mset(&pairs).await.map_err(|e| self.error(&e))
    }

    async fn delete_many(&self, keys: Vec<String>) -> backend::Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        conn.del(self.keys(&keys)).await.map_err(|e| self.error(&e))
    }
}
