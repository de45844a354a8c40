//! # NATS for Omnia
//!
//! [`NatsKeyValue`] is a `"keyvalue"` entry for [`omnia::runtime!`]: `wasi:keyvalue` stored in
//! NATS JetStream key-value buckets. [`NatsKvStore`] is the [`KeyValueStore`] behind it, for
//! runtimes that choose their backend at start-up.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `NATS_URL` | required | `nats://[user:password@ \| token@]host[:port]`, several separated by commas |
//! | `OMNIA_NATS_KV_CREATE` | `false` | create a missing bucket on first `open` (history 1, file storage) instead of answering `no-such-store` |
//!
//! See [`keyvalue`] for how `wasi:keyvalue` maps onto JetStream KV.
//!
//! [`KeyValueStore`]: omnia_wasi_keyvalue::KeyValueStore

pub mod keyvalue;

use std::time::Duration;

use anyhow::{Context, Result};
use omnia::FromEnv;
use omnia::config::{redact_url, url_var, var};

pub use keyvalue::{NatsKeyValue, NatsKvStore};

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a request (a read, or the acknowledgement of a write) may wait for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of the NATS connection and its key-value use.
#[derive(Clone)]
pub struct NatsOptions {
    /// `NATS_URL`: the server(s) to connect to.
    pub url: String,
    /// `OMNIA_NATS_KV_CREATE`: create missing key-value buckets on demand.
    pub create_buckets: bool,
}

impl std::fmt::Debug for NatsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsOptions")
            .field("url", &redact_url(&self.url))
            .field("create_buckets", &self.create_buckets)
            .finish()
    }
}

impl FromEnv for NatsOptions {
    fn from_env() -> Result<Self> {
        let url = url_var("NATS_URL", |s| {
            for server in s.split(',') {
                server
                    .trim()
                    .parse::<async_nats::ServerAddr>()
                    .map_err(|err| anyhow::anyhow!("{err}: expected nats://host:port"))?;
            }
            Ok(s.to_owned())
        })?
        .context(
            "NATS_URL is not set: set it to the NATS server to use, e.g. nats://127.0.0.1:4222",
        )?;
        let create_buckets = var("OMNIA_NATS_KV_CREATE", parse_bool)?.unwrap_or(false);
        Ok(Self {
            url,
            create_buckets,
        })
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`).
fn parse_bool(s: &str) -> Result<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => anyhow::bail!("expected true or false, got {s:?}"),
    }
}

/// Connects to `options.url`, failing at once if no server answers. Once connected, the client
/// reconnects by itself for as long as the process runs.
pub async fn connect(options: &NatsOptions) -> Result<async_nats::Client> {
    let url = redact_url(&options.url);
    let servers: Vec<async_nats::ServerAddr> = options
        .url
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()
        .with_context(|| format!("NATS_URL={url:?} is not valid"))?;
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(CONNECT_TIMEOUT)
        .request_timeout(Some(REQUEST_TIMEOUT))
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Disconnected => {
                    tracing::warn!("nats: disconnected, reconnecting");
                }
                async_nats::Event::Connected => tracing::info!("nats: connected"),
                other => tracing::debug!(event = %other, "nats: event"),
            }
        })
        .connect(servers)
        .await
        .with_context(|| {
            format!("cannot connect to NATS at {url} (NATS_URL): is it running and reachable?")
        })?;
    tracing::debug!(url = %url, "nats: first connection made");
    Ok(client)
}
