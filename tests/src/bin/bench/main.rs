//! Omnia's benchmark: the same guests under the same load, side by side in one run.
//!
//! Run through `tests/bench/run`, which installs the contenders and builds release binaries,
//! then calls this with their paths. Every figure is the median of `--runs` bounded runs, and
//! runs alternate between contenders so machine noise spreads over all of them. Only loopback
//! addresses are used.
//!
//! ```text
//! bench --omnia P --omnia-aot P --wasmtime P --native P --native-kv P --wrk P [--seconds 2]
//!       [--runs 3] [--out F]
//!       [--baseline P]
//!       [--only http,p3,cold-start,memory,keyvalue,messaging,telemetry,application]
//! ```
//!
//! `--baseline` adds another `omnia` build (say, one from before a change) to the serving, 0.3 and
//! key-value tables, so a before/after comparison runs side by side under the same conditions.
//! `--only` runs the named sections; their tables are printed, and written only to an explicit
//! `--out`, so a partial run never replaces `bench/RESULTS.md`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use omnia_tests::guests;
use omnia_tests::otlp::{OtlpReceiver, Protocol};
use omnia_tests::process::cpu_time;
use omnia_tests::services::{NatsServer, RedisServer};

mod application;
mod keyvalue;
mod messaging;
mod telemetry;

/// The concurrency levels of the HTTP table.
const CONCURRENCY: [u32; 3] = [1, 8, 64];

struct Args {
    omnia: PathBuf,
    omnia_aot: PathBuf,
    wasmtime: PathBuf,
    native: PathBuf,
    native_kv: PathBuf,
    wrk: PathBuf,
    baseline: Option<PathBuf>,
    only: Option<Vec<String>>,
    seconds: u32,
    runs: usize,
    out: Option<PathBuf>,
}

/// The sections of the results, in order; `--only` picks among them.
const SECTIONS: [&str; 8] = [
    "http",
    "p3",
    "cold-start",
    "memory",
    "keyvalue",
    "messaging",
    "telemetry",
    "application",
];

impl Args {
    /// Whether `section` runs (all do without `--only`).
    fn runs_section(&self, section: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|s| s == section))
    }
}

fn parse_args() -> Result<Args> {
    let mut map = BTreeMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(key) = it.next() {
        let value = it.next().with_context(|| format!("{key} needs a value"))?;
        map.insert(key.trim_start_matches("--").to_string(), value);
    }
    let path = |k: &str| -> Result<PathBuf> {
        let p = PathBuf::from(map.get(k).with_context(|| format!("--{k} is required"))?);
        if !p.is_file() {
            bail!("--{k} {}: no such file", p.display());
        }
        Ok(p)
    };
    Ok(Args {
        omnia: path("omnia")?,
        omnia_aot: path("omnia-aot")?,
        wasmtime: path("wasmtime")?,
        native: path("native")?,
        native_kv: path("native-kv")?,
        wrk: path("wrk")?,
        baseline: map.get("baseline").map(|_| path("baseline")).transpose()?,
        only: map
            .get("only")
            .map(|list| {
                list.split(',')
                    .map(|s| {
                        if SECTIONS.contains(&s) {
                            Ok(s.to_owned())
                        } else {
                            bail!("--only {s}: unknown section (expected some of {SECTIONS:?})")
                        }
                    })
                    .collect()
            })
            .transpose()?,
        seconds: map.get("seconds").map_or(Ok(2), |s| s.parse())?,
        runs: map.get("runs").map_or(Ok(3), |s| s.parse())?,
        out: match (map.get("out"), map.contains_key("only")) {
            (Some(out), _) => Some(PathBuf::from(out)),
            (None, false) => Some(PathBuf::from("bench/RESULTS.md")),
            (None, true) => None,
        },
    })
}

/// A server process under test, killed on drop.
struct Server {
    child: Child,
    addr: String,
    started_in: Duration,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").to_string()
}

/// One `GET path` over a fresh connection; the status code if the server answered.
fn probe(addr: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Starts `cmd` (which must listen on `addr`) and waits for the first `200` to `GET path`.
fn start(mut cmd: Command, addr: String, path: &str) -> Result<Server> {
    let started = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let mut server = Server {
        child,
        addr,
        started_in: Duration::ZERO,
    };
    while started.elapsed() < Duration::from_mins(3) {
        if probe(&server.addr, path) == Some(200) {
            server.started_in = started.elapsed();
            return Ok(server);
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            bail!("{cmd:?} exited with {status} before serving");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    bail!("{cmd:?} did not answer 200 within 180 s")
}

/// `omnia run guest` serving on `addr` with nothing but the settings a benchmark needs: warn
/// logs, and the compile cache in `cache` (or off).
fn omnia_run(bin: &Path, guest: &Path, addr: &str, cache: Option<&Path>) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg(guest)
        .env_clear()
        .env("OMNIA_HTTP_ADDR", addr)
        .env("RUST_LOG", "warn")
        .env(
            "OMNIA_COMPILE_CACHE",
            cache.map_or("off".into(), |d| d.display().to_string()),
        );
    cmd
}

/// How to start one contender on one guest.
#[derive(Clone)]
enum Contender {
    /// `omnia run`, with the compile cache in this directory (or off).
    Omnia {
        bin: PathBuf,
        cache: Option<PathBuf>,
    },
    /// `wasmtime serve -S cli`, with or without its compile cache, with its default allocator
    /// or with the pooling allocator keeping 1 MiB of each memory and table resident (the
    /// setting omnia uses).
    Wasmtime {
        bin: PathBuf,
        cache: bool,
        pooling: bool,
        /// `-S p3 -W component-model-async` for a WASI 0.3 guest (reused instances, at
        /// `wasmtime serve`'s default reuse counts).
        p3: bool,
    },
    /// The native hyper server (the guest is ignored).
    Native { bin: PathBuf },
}

/// The pooling settings of the best-configured `wasmtime serve` row.
const WASMTIME_POOLING: [&str; 6] = [
    "-O",
    "pooling-allocator=y",
    "-O",
    "pooling-memory-keep-resident=1048576",
    "-O",
    "pooling-table-keep-resident=1048576",
];

impl Contender {
    fn command(&self, guest: &Path, addr: &str) -> Command {
        match self {
            Self::Omnia { bin, cache } => omnia_run(bin, guest, addr, cache.as_deref()),
            Self::Wasmtime {
                bin,
                cache,
                pooling,
                p3,
            } => {
                let mut cmd = Command::new(bin);
                cmd.arg("serve")
                    .args(["--addr", addr, "-S", "cli"])
                    .arg(if *cache { "-Ccache=y" } else { "-Ccache=n" });
                if *p3 {
                    cmd.args(["-S", "p3", "-W", "component-model-async"]);
                }
                if *pooling {
                    cmd.args(WASMTIME_POOLING);
                }
                cmd.arg(guest);
                cmd
            }
            Self::Native { bin } => {
                let mut cmd = Command::new(bin);
                cmd.arg(addr);
                cmd
            }
        }
    }

    fn start(&self, guest: &Path) -> Result<Server> {
        let addr = free_addr();
        start(self.command(guest, &addr), addr, "/")
    }

    /// The exact command line, with the address as `ADDR` (see [`command_line`]).
    fn command_line(&self, guest: &Path) -> String {
        command_line(&self.command(guest, "ADDR"))
    }
}

/// `cmd` as a shell would take it (environment first), with the program and any `.wasm` /
/// `.bin` argument shown by file name.
fn command_line(cmd: &Command) -> String {
    let name = |p: &std::ffi::OsStr| {
        Path::new(p)
            .file_name()
            .map_or_else(|| p.to_string_lossy(), |n| n.to_string_lossy())
            .into_owned()
    };
    let mut words: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    words.push(name(cmd.get_program()));
    words.extend(cmd.get_args().map(|a| {
        let text = a.to_string_lossy();
        if text.ends_with(".wasm") || text.ends_with(".bin") {
            name(a)
        } else {
            text.into_owned()
        }
    }));
    words.join(" ")
}

/// One wrk measurement.
#[derive(Clone, Copy, Default)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Requests wrk completed.
    requests: f64,
    /// CPU time (user and system) the server used per request, in microseconds (0 when not
    /// measured).
    cpu_us: f64,
}

impl Load {
    /// The median of each field over several runs.
    fn median(runs: &[Load]) -> Load {
        Load {
            rps: median(runs.iter().map(|l| l.rps).collect()),
            p50_ms: median(runs.iter().map(|l| l.p50_ms).collect()),
            p99_ms: median(runs.iter().map(|l| l.p99_ms).collect()),
            requests: median(runs.iter().map(|l| l.requests).collect()),
            cpu_us: median(runs.iter().map(|l| l.cpu_us).collect()),
        }
    }
}

/// `GET /` on `addr` with `connections` connections for `seconds`.
fn wrk(wrk: &Path, addr: &str, connections: u32, seconds: u32) -> Result<Load> {
    wrk_request(wrk, &format!("http://{addr}/"), None, connections, seconds)
}

/// Loads `url` with `connections` connections for `seconds`; `script` (a wrk Lua file) may set
/// the method and body.
fn wrk_request(
    wrk: &Path,
    url: &str,
    script: Option<&Path>,
    connections: u32,
    seconds: u32,
) -> Result<Load> {
    let mut cmd = Command::new(wrk);
    cmd.args([
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    let out = cmd.arg(url).output().context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| -> Option<&str> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
    };
    let ms = |s: &str| -> Option<f64> {
        let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
        let n: f64 = num.parse().ok()?;
        Some(match unit {
            "us" => n / 1000.0,
            "ms" => n,
            "s" => n * 1000.0,
            "m" => n * 60_000.0,
            _ => return None,
        })
    };
    let rps = field("Requests/sec:").and_then(|v| v.parse().ok());
    // "  80123 requests in 2.00s, 9.1MB read"
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok());
    let p50 = field("50%").and_then(ms);
    let p99 = field("99%").and_then(ms);
    if text.contains("Non-2xx") {
        bail!("wrk saw non-2xx answers from {url}:\n{text}");
    }
    match (rps, p50, p99, requests) {
        (Some(rps), Some(p50_ms), Some(p99_ms), Some(requests)) => Ok(Load {
            rps,
            p50_ms,
            p99_ms,
            requests,
            cpu_us: 0.0,
        }),
        _ => bail!("cannot read wrk's output:\n{text}"),
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => f64::midpoint(xs[n / 2 - 1], xs[n / 2]),
    }
}

fn rss_kib(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `omnia compile guest -o <dir>/<name>.bin`.
fn precompile(omnia: &Path, guest: &Path, dir: &Path) -> Result<PathBuf> {
    let name = guest
        .file_stem()
        .context("guest name")?
        .to_string_lossy()
        .into_owned();
    let bin = dir.join(format!("{name}.bin"));
    let out = Command::new(omnia)
        .arg("compile")
        .arg(guest)
        .arg("-o")
        .arg(&bin)
        .env("OMNIA_COMPILE_CACHE", "off")
        .output()?;
    if !out.status.success() {
        bail!(
            "omnia compile {}: {}",
            guest.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(bin)
}

struct Bench {
    args: Args,
    work: PathBuf,
    md: String,
}

impl Bench {
    fn line(&mut self, s: &str) {
        println!("{s}");
        self.md.push_str(s);
        self.md.push('\n');
    }

    /// `wrk` on each server at each concurrency, `--runs` times, servers alternating: the
    /// loads by (server index, concurrency).
    fn load_each(&self, servers: &[Server]) -> Result<BTreeMap<(usize, u32), Vec<Load>>> {
        let mut results: BTreeMap<(usize, u32), Vec<Load>> = BTreeMap::new();
        for _ in 0..self.args.runs {
            for &c in &CONCURRENCY {
                for (i, server) in servers.iter().enumerate() {
                    let pid = server.child.id();
                    let before = cpu_time(pid);
                    let mut load = wrk(&self.args.wrk, &server.addr, c, self.args.seconds)?;
                    if let Some(used) = before.and_then(|b| cpu_time(pid)?.checked_sub(b))
                        && load.requests > 0.0
                    {
                        load.cpu_us = used.as_secs_f64() * 1e6 / load.requests;
                    }
                    results.entry((i, c)).or_default().push(load);
                }
            }
        }
        Ok(results)
    }

    /// HTTP hello: requests/s, p50, p99 per contender and concurrency; ratios.
    fn http(&mut self, guest_name: &str, guest: &Path) -> Result<()> {
        let contenders = self.serving_contenders(guest)?;
        let loads = self.serving_table(&format!("HTTP hello: {guest_name}"), &contenders)?;
        let med = |i: usize, c: u32| loads[&(i, c)];
        // Against the better of the two wasmtime settings at each concurrency.
        self.line("\n| c | best wasmtime setting | omnia JIT / best wasmtime | omnia AOT / best wasmtime | omnia JIT / native |");
        self.line("|---:|---|---:|---:|---:|");
        for &c in &CONCURRENCY {
            let rps = |i| med(i, c).rps;
            let best = if rps(3) > rps(2) { 3 } else { 2 };
            self.line(&format!(
                "| {c} | {} | {:.2}x | {:.2}x | {:.2}x |",
                contenders[best].0,
                rps(0) / rps(best),
                rps(1) / rps(best),
                rps(0) / rps(4)
            ));
        }
        self.command_lines(&contenders);
        Ok(())
    }

    /// Serves each contender, loads them all (see [`Self::load_each`]) and prints their table
    /// under `title`: the median load by (contender index, concurrency).
    fn serving_table(
        &mut self,
        title: &str,
        contenders: &[(&str, Contender, PathBuf)],
    ) -> Result<BTreeMap<(usize, u32), Load>> {
        let servers: Vec<Server> = contenders
            .iter()
            .map(|(_, c, g)| c.start(g))
            .collect::<Result<_>>()?;
        let results = self.load_each(&servers)?;
        drop(servers);
        let loads: BTreeMap<(usize, u32), Load> = results
            .iter()
            .map(|(key, runs)| (*key, Load::median(runs)))
            .collect();
        self.line(&format!("\n### {title}\n"));
        self.line("| contender | c | req/s | p50 ms | p99 ms | server CPU µs/request |");
        self.line("|---|---:|---:|---:|---:|---:|");
        for (i, (name, _, _)) in contenders.iter().enumerate() {
            for &c in &CONCURRENCY {
                let load = loads[&(i, c)];
                self.line(&format!(
                    "| {name} | {c} | {:.0} | {:.2} | {:.2} | {:.1} |",
                    load.rps, load.p50_ms, load.p99_ms, load.cpu_us
                ));
            }
        }
        Ok(loads)
    }

    /// Each contender's exact command line.
    fn command_lines(&mut self, contenders: &[(&str, Contender, PathBuf)]) {
        self.line("\nCommand lines (`ADDR` is a free loopback port; each guest is served the same way):\n");
        for (name, contender, guest) in contenders {
            self.line(&format!("- {name}: `{}`", contender.command_line(guest)));
        }
    }

    /// WASI 0.3 hello with instance reuse against the 0.2 instance-per-request path, against
    /// `wasmtime serve` running the same 0.3 guest (its default allocator and pooling), and
    /// against native hyper.
    fn p3(&mut self) -> Result<()> {
        let p3_guest = guests::rust("p3-http-hello");
        let p2_guest = guests::rust("http-hello");
        let omnia = Contender::Omnia {
            bin: self.args.omnia.clone(),
            cache: None,
        };
        let wasmtime = |pooling| Contender::Wasmtime {
            bin: self.args.wasmtime.clone(),
            cache: true,
            pooling,
            p3: true,
        };
        let mut contenders = vec![
            (
                "omnia, 0.3 guest (reused instances)",
                omnia.clone(),
                p3_guest.clone(),
            ),
            ("omnia, 0.2 guest (instance per request)", omnia, p2_guest),
            (
                "wasmtime serve 48, 0.3 guest",
                wasmtime(false),
                p3_guest.clone(),
            ),
            (
                "wasmtime serve 48, 0.3 guest, pooling",
                wasmtime(true),
                p3_guest.clone(),
            ),
            (
                "native hyper",
                Contender::Native {
                    bin: self.args.native.clone(),
                },
                p3_guest.clone(),
            ),
        ];
        if let Some(baseline) = &self.args.baseline {
            contenders.push((
                "omnia baseline, 0.3 guest",
                Contender::Omnia {
                    bin: baseline.clone(),
                    cache: None,
                },
                p3_guest,
            ));
        }
        let with_baseline = contenders.len() > 5;
        let loads = self.serving_table(
            "HTTP hello: WASI 0.3 (p3-http-hello.wasm) and 0.2 (http-hello.wasm)",
            &contenders,
        )?;
        self.line(&format!(
            "\n| c | omnia 0.3 / native | omnia 0.3 / best wasmtime 0.3 | omnia 0.3 / omnia 0.2 |{}",
            if with_baseline { " omnia 0.3 / baseline 0.3 |" } else { "" }
        ));
        self.line(&format!(
            "|---:|---:|---:|---:|{}",
            if with_baseline { "---:|" } else { "" }
        ));
        for &c in &CONCURRENCY {
            let rps = |i| loads[&(i, c)].rps;
            let versus_baseline = if with_baseline {
                format!(" {:.2}x |", rps(0) / rps(5))
            } else {
                String::new()
            };
            self.line(&format!(
                "| {c} | {:.2}x | {:.2}x | {:.2}x |{versus_baseline}",
                rps(0) / rps(4),
                rps(0) / rps(2).max(rps(3)),
                rps(0) / rps(1)
            ));
        }
        self.command_lines(&contenders);
        Ok(())
    }

    /// Cold start: process start to the first 200.
    fn cold_start(&mut self, guests: &[(&str, PathBuf)]) -> Result<()> {
        self.line("\n### Cold start (process start to first 200, median ms)\n");
        self.line("| guest | omnia .wasm, no cache | omnia .wasm, warm cache | omnia AOT .bin | wasmtime serve, no cache | wasmtime serve, warm cache |");
        self.line("|---|---:|---:|---:|---:|---:|");
        let mut lines = Vec::new();
        for (name, guest) in guests {
            let bin = precompile(&self.args.omnia, guest, &self.work)?;
            let cache = self.work.join(format!("cache-{name}"));
            let contenders = [
                (
                    Contender::Omnia {
                        bin: self.args.omnia.clone(),
                        cache: None,
                    },
                    guest.clone(),
                ),
                (
                    Contender::Omnia {
                        bin: self.args.omnia.clone(),
                        cache: Some(cache),
                    },
                    guest.clone(),
                ),
                (
                    Contender::Omnia {
                        bin: self.args.omnia_aot.clone(),
                        cache: None,
                    },
                    bin,
                ),
                (
                    Contender::Wasmtime {
                        bin: self.args.wasmtime.clone(),
                        cache: false,
                        pooling: false,
                        p3: false,
                    },
                    guest.clone(),
                ),
                (
                    Contender::Wasmtime {
                        bin: self.args.wasmtime.clone(),
                        cache: true,
                        pooling: false,
                        p3: false,
                    },
                    guest.clone(),
                ),
            ];
            // Warm both caches once.
            drop(contenders[1].0.start(&contenders[1].1)?);
            drop(contenders[4].0.start(&contenders[4].1)?);
            let mut times = vec![Vec::new(); contenders.len()];
            for _ in 0..self.args.runs {
                for (i, (c, g)) in contenders.iter().enumerate() {
                    times[i].push(c.start(g)?.started_in.as_secs_f64() * 1000.0);
                }
            }
            let cells: Vec<String> = times
                .into_iter()
                .map(|t| format!("{:.0}", median(t)))
                .collect();
            self.line(&format!("| {name} | {} |", cells.join(" | ")));
            lines = contenders
                .iter()
                .map(|(c, g)| format!("- `{}`", c.command_line(g)))
                .collect();
        }
        self.line(
            "\nCommand lines, in column order (the warm-cache runs follow one warming run):\n",
        );
        for line in lines {
            self.line(&line);
        }
        Ok(())
    }

    /// The four contenders of the serving tables: omnia JIT on the `.wasm`, omnia AOT-only on
    /// its `.bin`, `wasmtime serve`, and the native ceiling.
    fn serving_contenders(&self, guest: &Path) -> Result<Vec<(&'static str, Contender, PathBuf)>> {
        let bin = precompile(&self.args.omnia, guest, &self.work)?;
        let omnia = |bin: &PathBuf| Contender::Omnia {
            bin: bin.clone(),
            cache: None,
        };
        let mut contenders = vec![
            (
                "omnia (JIT, .wasm)",
                omnia(&self.args.omnia),
                guest.to_path_buf(),
            ),
            ("omnia (AOT, .bin)", omnia(&self.args.omnia_aot), bin),
            (
                "wasmtime serve 48",
                Contender::Wasmtime {
                    bin: self.args.wasmtime.clone(),
                    cache: true,
                    pooling: false,
                    p3: false,
                },
                guest.to_path_buf(),
            ),
            (
                "wasmtime serve 48, pooling",
                Contender::Wasmtime {
                    bin: self.args.wasmtime.clone(),
                    cache: true,
                    pooling: true,
                    p3: false,
                },
                guest.to_path_buf(),
            ),
            (
                "native hyper",
                Contender::Native {
                    bin: self.args.native.clone(),
                },
                guest.to_path_buf(),
            ),
        ];
        if let Some(baseline) = &self.args.baseline {
            contenders.push((
                "omnia baseline (JIT, .wasm)",
                omnia(baseline),
                guest.to_path_buf(),
            ));
        }
        Ok(contenders)
    }

    /// Key-value through the guest (in memory, Redis) against a native HTTP service doing the
    /// same on Redis, and against a bare native Redis client.
    fn keyvalue(&mut self) -> Result<()> {
        use keyvalue::{CONCURRENCY, Op};
        let redis = RedisServer::start();
        let guest = guests::rust("kv-http");
        let upstream = guests::rust("p3-kv-http");
        let memory = keyvalue::serve(&self.args.omnia, &guest, &[])?;
        let redis_url = redis.url();
        let on_redis_env = [("REDIS_URL", redis_url.as_str())];
        let on_redis = keyvalue::serve(&self.args.omnia, &guest, &on_redis_env)?;
        let service = keyvalue::serve_native(&self.args.native_kv, &redis)?;
        let upstream_memory = keyvalue::serve(&self.args.omnia, &upstream, &[])?;
        let upstream_redis = keyvalue::serve(&self.args.omnia, &upstream, &on_redis_env)?;
        let baseline = match &self.args.baseline {
            Some(bin) => Some(keyvalue::serve(bin, &guest, &on_redis_env)?),
            None => None,
        };
        // In the order of the contender indices in `keyvalue` (the native client has no server).
        let servers = [
            &memory,
            &on_redis,
            &service,
            &upstream_memory,
            &upstream_redis,
        ];
        let mut names = vec![
            "omnia, in memory",
            "omnia, Redis",
            "native HTTP service (hyper + redis), Redis",
            "omnia, upstream-style 0.3 guest, in memory",
            "omnia, upstream-style 0.3 guest, Redis",
            "native redis client, no HTTP",
        ];
        if baseline.is_some() {
            names.push("omnia baseline, Redis");
        }
        let mut results: BTreeMap<(usize, usize, u32), Vec<Load>> = BTreeMap::new();
        for _ in 0..self.args.runs {
            for (o, &op) in Op::ALL.iter().enumerate() {
                for &c in &CONCURRENCY {
                    let (wrk, scripts, seconds) = (&self.args.wrk, &self.work, self.args.seconds);
                    let mut loads = Vec::new();
                    for server in servers {
                        loads.push(keyvalue::through_guest(
                            wrk, scripts, server, op, c, seconds,
                        )?);
                    }
                    loads.push(keyvalue::native(&redis, op, c, seconds)?);
                    if let Some(baseline) = &baseline {
                        loads.push(keyvalue::through_guest(
                            wrk, scripts, baseline, op, c, seconds,
                        )?);
                    }
                    for (i, load) in loads.into_iter().enumerate() {
                        results.entry((o, i, c)).or_default().push(load);
                    }
                }
            }
        }
        let redis_url_shown = redis_url.replace(&redis.port().to_string(), "PORT");
        drop((memory, on_redis, service, upstream_memory, upstream_redis));
        drop((baseline, redis));
        self.line(
            "\n### Key-value: kv-http guest (get/set/incr over HTTP) vs native, and the same \
             work through p3-kv-http (upstream omnia's async key-value, WASI 0.3)\n",
        );
        self.line("| op | c | contender | ops/s | p50 ms | p99 ms |");
        self.line("|---|---:|---|---:|---:|---:|");
        for (o, op) in Op::ALL.iter().enumerate() {
            for &c in &CONCURRENCY {
                for (i, name) in names.iter().enumerate() {
                    let load = Load::median(&results[&(o, i, c)]);
                    self.line(&format!(
                        "| {} | {c} | {name} | {:.0} | {:.2} | {:.2} |",
                        op.name(),
                        load.rps,
                        load.p50_ms,
                        load.p99_ms
                    ));
                }
            }
        }
        self.keyvalue_ratios(&results, names.len() > keyvalue::BASELINE);
        self.keyvalue_command_lines(&guest, &upstream, &redis_url_shown);
        Ok(())
    }

    /// The key-value ratios, from the medians of `results` (by op, contender, concurrency).
    fn keyvalue_ratios(
        &mut self,
        results: &BTreeMap<(usize, usize, u32), Vec<Load>>,
        with_baseline: bool,
    ) {
        use keyvalue::{
            BASELINE, CONCURRENCY, MEMORY, NATIVE, Op, REDIS, SERVICE, UPSTREAM_MEMORY,
            UPSTREAM_REDIS,
        };
        self.line(&format!(
            "\n| op | c | omnia Redis / native HTTP service | omnia Redis / native client | omnia memory / native client | upstream 0.3 / 0.2 guest, memory | upstream 0.3 / 0.2 guest, Redis |{}",
            if with_baseline { " omnia Redis / baseline |" } else { "" }
        ));
        self.line(&format!(
            "|---|---:|---:|---:|---:|---:|---:|{}",
            if with_baseline { "---:|" } else { "" }
        ));
        for (o, op) in Op::ALL.iter().enumerate() {
            for &c in &CONCURRENCY {
                let rps = |i| Load::median(&results[&(o, i, c)]).rps;
                let versus_baseline = if with_baseline {
                    format!(" {:.2}x |", rps(REDIS) / rps(BASELINE))
                } else {
                    String::new()
                };
                self.line(&format!(
                    "| {} | {c} | {:.2}x | {:.2}x | {:.2}x | {:.2}x | {:.2}x |{versus_baseline}",
                    op.name(),
                    rps(REDIS) / rps(SERVICE),
                    rps(REDIS) / rps(NATIVE),
                    rps(MEMORY) / rps(NATIVE),
                    rps(UPSTREAM_MEMORY) / rps(MEMORY),
                    rps(UPSTREAM_REDIS) / rps(REDIS),
                ));
            }
        }
    }

    /// The command line of every contender of the key-value table.
    fn keyvalue_command_lines(&mut self, guest: &Path, upstream: &Path, redis_url_shown: &str) {
        let omnia_line = |guest: &Path, env: &[(&str, &str)]| {
            let mut cmd = omnia_run(&self.args.omnia, guest, "ADDR", None);
            cmd.envs(env.iter().copied());
            command_line(&cmd)
        };
        let redis = [("REDIS_URL", redis_url_shown)];
        let lines = [
            format!("- omnia, in memory: `{}`", omnia_line(guest, &[])),
            format!("- omnia, Redis: `{}`", omnia_line(guest, &redis)),
            format!(
                "- omnia, upstream-style 0.3 guest: `{}` (and with `REDIS_URL`)",
                omnia_line(upstream, &[])
            ),
            format!(
                "- native HTTP service: `native-kv ADDR {redis_url_shown}` (tests/src/bin/native_kv.rs)"
            ),
            "- native redis client: the `redis` crate in the driver, one multiplexed connection, \
             as many concurrent tasks as wrk has connections"
                .to_owned(),
            "- load: `wrk -t1 -cC -dSs --latency -s <op>.lua http://ADDR/<path>`".to_owned(),
        ];
        self.line("\nCommand lines:\n");
        for line in lines {
            self.line(&line);
        }
    }

    /// HTTP hello with OTLP export off and on, side by side: requests/s, p50, p99; the ratio.
    fn telemetry(&mut self, guest: &Path) -> Result<()> {
        let receiver = OtlpReceiver::start(Protocol::Grpc);
        let endpoint = receiver.endpoint();
        let modes = [
            ("export off", None),
            ("export on (OTLP/gRPC)", Some(endpoint.as_str())),
        ];
        let servers: Vec<Server> = modes
            .iter()
            .map(|(_, endpoint)| {
                let addr = free_addr();
                start(
                    telemetry::command(&self.args.omnia, guest, &addr, *endpoint),
                    addr,
                    "/",
                )
            })
            .collect::<Result<_>>()?;
        let results = self.load_each(&servers)?;
        drop(servers);
        let med = |i: usize, c: u32| Load::median(&results[&(i, c)]);
        self.line("\n### Telemetry: HTTP hello (Rust) with OTLP export off and on\n");
        self.line("| omnia JIT | c | req/s | p50 ms | p99 ms | on / off |");
        self.line("|---|---:|---:|---:|---:|---:|");
        for (i, (name, _)) in modes.iter().enumerate() {
            for &c in &CONCURRENCY {
                self.line(&format!(
                    "| {name} | {c} | {:.0} | {:.2} | {:.2} | {} |",
                    med(i, c).rps,
                    med(i, c).p50_ms,
                    med(i, c).p99_ms,
                    if i == 1 {
                        format!("{:.2}x", med(1, c).rps / med(0, c).rps)
                    } else {
                        String::new()
                    }
                ));
            }
        }
        self.line(&format!(
            "\nSpans received by the collector: {}. Command lines:\n",
            receiver.spans().len()
        ));
        for (name, endpoint) in &modes {
            let cmd = telemetry::command(
                &self.args.omnia,
                guest,
                "ADDR",
                endpoint.map(|_| "http://127.0.0.1:PORT"),
            );
            self.line(&format!("- {name}: `{}`", command_line(&cmd)));
        }
        Ok(())
    }

    /// Messages/s through the guest against a native subscriber, on core NATS and JetStream.
    fn messaging(&mut self) -> Result<()> {
        use messaging::Mode;
        const COUNT: usize = 5_000;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let nats = NatsServer::start();
        let guest = guests::rust("msg-echo");
        let addr = free_addr();
        let cmd =
            messaging::omnia_command(&self.args.omnia, &guest, &nats.url(), &self.work, &addr)?;
        let shown = messaging::omnia_command(
            &self.args.omnia,
            &guest,
            "nats://127.0.0.1:PORT",
            Path::new(""),
            "ADDR",
        )?;
        let mut results: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
        runtime.block_on(async {
            messaging::create_stream(&nats).await?;
            let server = start(cmd, addr, "/received/warm-up")?;
            tokio::time::sleep(Duration::from_secs(1)).await; // the subscriptions follow HTTP
            let native = messaging::start_native(&nats).await?;
            for _ in 0..self.args.runs {
                for (m, mode) in Mode::ALL.iter().enumerate() {
                    for (w, who) in ["omnia", "native"].iter().enumerate() {
                        let rate = messaging::run(&nats, *mode, who, COUNT).await?;
                        results.entry((m, w)).or_default().push(rate);
                    }
                }
            }
            for task in native {
                task.abort();
            }
            drop(server);
            anyhow::Ok(())
        })?;
        self.line("\n### Messaging: msg-echo guest vs a native async-nats subscriber\n");
        self.line("| mode | omnia (guest), msgs/s | native subscriber, msgs/s | omnia / native |");
        self.line("|---|---:|---:|---:|");
        for (m, mode) in Mode::ALL.iter().enumerate() {
            let guest = median(results[&(m, 0)].clone());
            let native = median(results[&(m, 1)].clone());
            self.line(&format!(
                "| {} | {guest:.0} | {native:.0} | {:.2}x |",
                mode.name(),
                guest / native
            ));
        }
        self.line(&format!(
            "\nEach run publishes {COUNT} messages as fast as the publisher can and times the first \
             publish to the last echo; both contenders handle up to {} at once over one \
             connection to a local `nats-server` (JetStream: stream `BENCH`, durable pull \
             consumers, explicit acks).\n",
            messaging::CONCURRENCY
        ));
        self.line(&format!(
            "- omnia: `{}`, with `bench-subscriptions.toml`:",
            command_line(&shown)
        ));
        self.line(&format!("\n```toml\n{}```\n", messaging::omnia_config()));
        self.line("- native subscriber: `async-nats` in the driver (tests/src/bin/bench/messaging.rs): record, publish the echo with the headers, then (JetStream) double-ack");
        Ok(())
    }

    /// Resident memory idle and under 64 connections.
    fn memory(&mut self, guest: &Path) -> Result<()> {
        let contenders = self.serving_contenders(guest)?;
        self.line("\n### Memory (RSS, MiB, Rust hello guest)\n");
        self.line("| contender | idle | under 64 connections (peak) |");
        self.line("|---|---:|---:|");
        for (name, c, g) in &contenders {
            let server = c.start(g)?;
            let pid = server.child.id();
            std::thread::sleep(Duration::from_millis(300));
            let idle = rss_kib(pid).unwrap_or(0);
            let wrk_path = self.args.wrk.clone();
            let addr = server.addr.clone();
            let seconds = self.args.seconds;
            let load = std::thread::spawn(move || wrk(&wrk_path, &addr, 64, seconds));
            let mut peak = idle;
            while !load.is_finished() {
                peak = peak.max(rss_kib(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(50));
            }
            load.join()
                .map_err(|_| anyhow::anyhow!("wrk thread panicked"))??;
            self.line(&format!(
                "| {name} | {:.1} | {:.1} |",
                f64::from(idle) / 1024.0,
                f64::from(peak) / 1024.0
            ));
        }
        Ok(())
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let work = std::env::temp_dir().join(format!("omnia-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()?;
    let mut bench = Bench {
        args,
        work: work.clone(),
        md: String::new(),
    };
    bench.line("# Omnia benchmark results\n");
    bench.line(&format!(
        "Produced by `tests/bench/run` on {} with {cores} cores: wrk -t1, {} s per run, median of {} runs, \
         contenders alternating; loopback only; load generator and server share the machine. \
         Load: `wrk -t1 -cC -dSs --latency http://ADDR/` for concurrency C. Each table lists the \
         exact command line of every contender.",
        String::from_utf8_lossy(&date.stdout).trim(),
        bench.args.seconds,
        bench.args.runs
    ));
    if bench.args.runs_section("http") {
        bench.http("Rust guest (http-hello.wasm)", &guests::rust("http-hello"))?;
        bench.http("WAT guest", &guests::wat_http_hello())?;
    }
    if bench.args.runs_section("p3") {
        bench.p3()?;
    }
    if bench.args.runs_section("cold-start") {
        bench.cold_start(&[
            ("Rust http-hello", guests::rust("http-hello")),
            ("componentize-py http", guests::polyglot("py-http")),
        ])?;
    }
    if bench.args.runs_section("memory") {
        bench.memory(&guests::rust("http-hello"))?;
    }
    if bench.args.runs_section("keyvalue") {
        bench.keyvalue()?;
    }
    if bench.args.runs_section("messaging") {
        bench.messaging()?;
    }
    if bench.args.runs_section("telemetry") {
        bench.telemetry(&guests::rust("http-hello"))?;
    }
    if bench.args.runs_section("application") {
        bench.application(&guests::rust("http-hello"))?;
    }
    if let Some(out) = &bench.args.out {
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(out, &bench.md).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
