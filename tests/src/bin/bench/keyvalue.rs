//! Key-value through a guest against a native Redis client.
//!
//! The guest is `kv-http` (and `p3-kv-http`, the same routes through upstream omnia's async
//! key-value, compared with it): `PUT /kv/bench/k` (set, 64-byte value), `GET /kv/bench/k` (get) and
//! `POST /incr/bench/hits` (increment), loaded by wrk over HTTP. omnia serves it twice: with
//! the in-memory store and with Redis. Two native contenders: `native-kv`, a hyper service
//! answering the same routes on Redis (what the guest's logic costs as an ordinary native
//! service), and the bare `redis` crate doing the same command (`SET bench:k`, `GET bench:k`,
//! `INCRBY bench:hits 1`, the keys omnia's Redis backend uses) from as many concurrent tasks
//! as wrk has connections, with no HTTP at all. Both native contenders use one multiplexed
//! connection, like omnia. Redis is a `redis-server` the test harness owns, on a free loopback port.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use omnia_tests::services::RedisServer;
use redis::AsyncCommands;

use crate::{Load, Server, free_addr, omnia_run, start, wrk_request};

/// A 64-byte value.
const VALUE: &[u8; 64] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The contenders of the key-value table, by their index in its results: omnia with kv-http
/// in memory and on Redis, the native HTTP service, omnia with p3-kv-http (upstream omnia's
/// async key-value) in memory and on Redis, the native client, and the baseline omnia if any.
pub const MEMORY: usize = 0;
/// See [`MEMORY`].
pub const REDIS: usize = 1;
/// See [`MEMORY`].
pub const SERVICE: usize = 2;
/// See [`MEMORY`].
pub const UPSTREAM_MEMORY: usize = 3;
/// See [`MEMORY`].
pub const UPSTREAM_REDIS: usize = 4;
/// See [`MEMORY`].
pub const NATIVE: usize = 5;
/// See [`MEMORY`].
pub const BASELINE: usize = 6;

/// The concurrency levels of the key-value table.
pub const CONCURRENCY: [u32; 2] = [8, 64];

/// One key-value operation.
#[derive(Clone, Copy)]
pub enum Op {
    Set,
    Get,
    Incr,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Set, Op::Get, Op::Incr];

    pub fn name(self) -> &'static str {
        match self {
            Op::Set => "set",
            Op::Get => "get",
            Op::Incr => "incr",
        }
    }

    /// The guest path and the wrk script body for this operation.
    fn http(self) -> (&'static str, String) {
        let body = String::from_utf8_lossy(VALUE);
        match self {
            Op::Set => (
                "/kv/bench/k",
                format!("wrk.method = \"PUT\"\nwrk.body = \"{body}\"\n"),
            ),
            Op::Get => ("/kv/bench/k", String::new()),
            Op::Incr => ("/incr/bench/hits", "wrk.method = \"POST\"\n".to_owned()),
        }
    }
}

/// `omnia run kv-http.wasm` with `env`, serving on a free port.
pub fn serve(omnia: &Path, guest: &Path, env: &[(&str, &str)]) -> Result<Server> {
    let addr = free_addr();
    let mut cmd = omnia_run(omnia, guest, &addr, None);
    cmd.envs(env.iter().copied());
    start(cmd, addr, "/exists/bench/k")
}

/// The native HTTP service (`native-kv`) on `redis`, serving on a free port.
pub fn serve_native(native_kv: &Path, redis: &RedisServer) -> Result<Server> {
    let addr = free_addr();
    let mut cmd = Command::new(native_kv);
    cmd.arg(&addr).arg(redis.url());
    start(cmd, addr, "/exists/bench/k")
}

/// Loads `op` through the guest served at `server` (its wrk script is written to `scripts`).
pub fn through_guest(
    wrk: &Path,
    scripts: &Path,
    server: &Server,
    op: Op,
    connections: u32,
    seconds: u32,
) -> Result<Load> {
    let (path, script) = op.http();
    let script_file = scripts.join(format!("kv-{}.lua", op.name()));
    std::fs::write(&script_file, script)
        .with_context(|| format!("writing {}", script_file.display()))?;
    wrk_request(
        wrk,
        &format!("http://{}{path}", server.addr),
        Some(&script_file),
        connections,
        seconds,
    )
}

/// The native client: `concurrency` tasks issuing `op` for `seconds` over one connection.
pub fn native(redis: &RedisServer, op: Op, concurrency: u32, seconds: u32) -> Result<Load> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = redis::Client::open(redis.url())?;
        let conn = redis::aio::ConnectionManager::new(client).await?;
        let until = Instant::now() + Duration::from_secs(u64::from(seconds));
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let mut conn = conn.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    while Instant::now() < until {
                        let begun = Instant::now();
                        match op {
                            Op::Set => conn.set::<_, _, ()>("bench:k", &VALUE[..]).await?,
                            Op::Get => {
                                conn.get::<_, Option<Vec<u8>>>("bench:k").await?;
                            }
                            Op::Incr => {
                                conn.incr::<_, _, i64>("bench:hits", 1).await?;
                            }
                        }
                        latencies.push(begun.elapsed().as_secs_f64() * 1000.0);
                    }
                    Ok::<_, redis::RedisError>(latencies)
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await??);
        }
        all.sort_by(f64::total_cmp);
        let at = |q: f64| {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let i = ((all.len() as f64 - 1.0) * q).round() as usize;
            all.get(i).copied().unwrap_or(f64::NAN)
        };
        #[allow(clippy::cast_precision_loss)]
        let requests = all.len() as f64;
        Ok(Load {
            rps: requests / f64::from(seconds),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            requests,
            cpu_us: 0.0,
        })
    })
}
