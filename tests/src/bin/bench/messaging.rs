//! Messages through a guest against a native NATS subscriber doing the same work.
//!
//! The guest is `msg-echo`: for each message it records it (an increment and a set in the
//! in-memory key-value store), tries to reply, and publishes `echo: <data>` with the same
//! headers to `<topic>.out`. The native contender does the same in the driver process with
//! `async-nats`: record in a map, publish the echo with the headers, and (JetStream) acknowledge
//! after publishing. Both handle up to 64 messages at once over one connection.
//!
//! Two modes: core NATS subjects (at-most-once), and a JetStream stream with a durable pull
//! consumer and explicit acks (at-least-once). A run publishes `count` messages as fast as the
//! publisher can and measures from the first publish to the last echo received: messages/s
//! end to end, on a `nats-server` the harness owns.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use async_nats::jetstream;
use futures::StreamExt;
use omnia_tests::services::NatsServer;
use tokio::sync::Mutex;

/// Messages in flight per contender.
pub const CONCURRENCY: usize = 64;

/// How a contender gets its messages.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Core subjects.
    Core,
    /// A JetStream stream, durable pull consumer, explicit acks.
    JetStream,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Core, Mode::JetStream];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Core => "core NATS",
            Mode::JetStream => "JetStream, acked",
        }
    }

    /// The subject a contender `who` consumes in this mode.
    pub fn subject(self, who: &str) -> String {
        match self {
            Mode::Core => format!("bench.core.{who}"),
            Mode::JetStream => format!("bench.js.{who}"),
        }
    }
}

/// The subscriptions file of the omnia contender.
pub fn omnia_config() -> String {
    format!(
        "[[subscription]]\ntopic = \"{}\"\nconcurrency = {CONCURRENCY}\n\n\
         [[subscription]]\ntopic = \"{}\"\nconcurrency = {CONCURRENCY}\n\
         [subscription.jetstream]\nstream = \"BENCH\"\nconsumer = \"omnia\"\n",
        Mode::Core.subject("omnia"),
        Mode::JetStream.subject("omnia"),
    )
}

/// The JetStream stream both contenders consume from.
pub async fn create_stream(nats: &NatsServer) -> Result<()> {
    jetstream::new(nats.client().await)
        .create_stream(jetstream::stream::Config {
            name: "BENCH".into(),
            subjects: vec!["bench.js.*".into()],
            ..Default::default()
        })
        .await
        .context("creating the BENCH stream")?;
    Ok(())
}

/// Starts the native contender: it serves both modes until the returned tasks are aborted.
pub async fn start_native(nats: &NatsServer) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let client = nats.client().await;
    let recorded: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
    let mut tasks = Vec::new();

    // Core: one subscription, up to CONCURRENCY handlers at once.
    let mut sub = client.subscribe(Mode::Core.subject("native")).await?;
    let (c, r) = (client.clone(), Arc::clone(&recorded));
    tasks.push(tokio::spawn(async move {
        let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        while let Some(message) = sub.next().await {
            let permit = Arc::clone(&limit).acquire_owned().await;
            let (c, r) = (c.clone(), Arc::clone(&r));
            tokio::spawn(async move {
                let _permit = permit;
                echo(&c, &r, &message).await;
            });
        }
    }));

    // JetStream: a durable pull consumer, ack after the echo is published.
    let js = jetstream::new(client.clone());
    let stream = js.get_stream("BENCH").await?;
    let consumer: jetstream::consumer::Consumer<jetstream::consumer::pull::Config> = stream
        .get_or_create_consumer(
            "native",
            jetstream::consumer::pull::Config {
                durable_name: Some("native".into()),
                filter_subject: Mode::JetStream.subject("native"),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                max_ack_pending: i64::try_from(CONCURRENCY * 4).unwrap_or(i64::MAX),
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    let (c, r) = (client.clone(), Arc::clone(&recorded));
    tasks.push(tokio::spawn(async move {
        let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        while let Some(Ok(message)) = messages.next().await {
            let permit = Arc::clone(&limit).acquire_owned().await;
            let (c, r) = (c.clone(), Arc::clone(&r));
            tokio::spawn(async move {
                let _permit = permit;
                echo(&c, &r, &message.message).await;
                let _ = message.double_ack().await;
            });
        }
    }));
    Ok(tasks)
}

/// The native contender's work for one message.
async fn echo(
    client: &async_nats::Client,
    recorded: &Mutex<HashMap<String, Vec<u8>>>,
    message: &async_nats::Message,
) {
    {
        let mut recorded = recorded.lock().await;
        let count = recorded.len();
        recorded.insert(
            format!("{}#{count}", message.subject),
            message.payload.to_vec(),
        );
    }
    let mut data = b"echo: ".to_vec();
    data.extend_from_slice(&message.payload);
    let headers = message.headers.clone().unwrap_or_default();
    let _ = client
        .publish_with_headers(format!("{}.out", message.subject), headers, data.into())
        .await;
}

/// Publishes `count` messages to `mode.subject(who)` and returns messages/s from the first
/// publish to the last `.out` echo.
pub async fn run(nats: &NatsServer, mode: Mode, who: &str, count: usize) -> Result<f64> {
    let client = nats.client().await;
    let subject = mode.subject(who);
    let mut out = client.subscribe(format!("{subject}.out")).await?;
    client.flush().await?;
    let started = Instant::now();
    let publisher = {
        let client = client.clone();
        let subject = subject.clone();
        tokio::spawn(async move {
            let js = jetstream::new(client.clone());
            let mut acks = Vec::new();
            for i in 0..count {
                let payload = bytes::Bytes::from(format!("m{i}"));
                match mode {
                    Mode::Core => client
                        .publish(subject.clone(), payload)
                        .await
                        .map_err(anyhow::Error::from)?,
                    Mode::JetStream => acks.push(js.publish(subject.clone(), payload).await?),
                }
                if acks.len() >= 256 {
                    for ack in acks.drain(..) {
                        ack.await?;
                    }
                }
            }
            for ack in acks {
                ack.await?;
            }
            client.flush().await?;
            anyhow::Ok(())
        })
    };
    let mut received = 0;
    while received < count {
        match tokio::time::timeout(Duration::from_secs(30), out.next()).await {
            Ok(Some(_)) => received += 1,
            Ok(None) => bail!("{who}: the echo subscription ended"),
            Err(_) => bail!(
                "{who} ({}): {received} of {count} echoes after 30 s of silence",
                mode.name()
            ),
        }
    }
    publisher.await??;
    let count = u32::try_from(count).context("too many messages")?;
    Ok(f64::from(count) / started.elapsed().as_secs_f64())
}

/// `omnia run msg-echo.wasm` subscribed as [`omnia_config`] (the file is written to `dir`),
/// serving; `url` is the `NATS_URL` (shown as given in the command line).
pub fn omnia_command(
    omnia: &Path,
    guest: &Path,
    url: &str,
    dir: &Path,
    addr: &str,
) -> Result<std::process::Command> {
    let config = dir.join("bench-subscriptions.toml");
    std::fs::write(&config, omnia_config())?;
    let mut cmd = crate::omnia_run(omnia, guest, addr, None);
    cmd.env("NATS_URL", url)
        .env("OMNIA_MESSAGING_CONFIG", &config);
    Ok(cmd)
}
