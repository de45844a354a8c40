//! Real Redis, NATS and PostgreSQL servers, owned by the test that needs them.
//!
//! Capability tests must show that what a guest stores reaches the real backend byte for byte,
//! that a native client sees it (and the guest sees what a native client wrote), and that omnia
//! survives a backend that dies and comes back. A mock proves none of that, so each test starts
//! its own `redis-server`, `nats-server` or `postgres` as a child process: on a free loopback
//! port, with its own temporary directory, so tests run in parallel without sharing state, and
//! with [`kill`](ServerProcess::kill) / [`restart`](ServerProcess::restart) on the same port for
//! fault tests. The binaries come from Debian's `redis-server`, `nats-server` and `postgresql`
//! packages, which `tests/setup` installs.
//!
//! Talking to the servers needs no extra machinery in tests: [`RedisServer::command`] is a tiny
//! RESP2 client over a std `TcpStream`, [`NatsServer::kv_get`] / [`NatsServer::kv_put`] use
//! `async-nats` on a private runtime, and [`PostgresServer::psql`] runs the stock `psql`, so all
//! work from plain `#[test]` functions and from inside `#[tokio::test]` alike.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use rustix::process::{Pid, Signal, kill_process};

mod postgres;

pub use postgres::PostgresServer;

/// The Redis server binary (Debian's `redis-server`, 7.0).
const REDIS_SERVER: &str = "redis-server";
/// The Redis command-line client, shipped with the server.
const REDIS_CLI: &str = "redis-cli";
/// The NATS server binary (Debian's `nats-server`, 2.9, in `/usr/sbin`).
const NATS_SERVER: &str = "nats-server";

/// The path of `program`: the first in `PATH`, else in `/usr/sbin` (where Debian puts
/// `nats-server`, outside a normal user's `PATH`).
pub fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} not found in PATH or /usr/sbin: run tests/setup"))
}

/// The largest message the test NATS server accepts: room for 1 MiB values and their headers.
pub const NATS_MAX_PAYLOAD: usize = 4 << 20;

/// How long a server may take to answer after it was spawned. Both start in milliseconds; the
/// margin is for a loaded 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`RedisServer::restart`] / [`NatsServer::restart`] keep retrying while the old
/// port is still taken.
const RESTART_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`kill`] waits for a killed server's children to exit.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// How many fresh ports `start` tries when another process grabbed the one it picked.
const PORT_ATTEMPTS: usize = 5;
/// Connect, read and write timeout of the native clients.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A free TCP port on 127.0.0.1: binds port 0, reads the port the kernel chose and releases it.
///
/// Another process may take the port before the caller binds it; the servers here retry on a
/// new port when that happens.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A RESP2 reply, as [`RedisServer::command`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    /// A simple string (`+OK`).
    Simple(String),
    /// An error reply (`-ERR ...`), without the leading `-`.
    Error(String),
    /// An integer (`:1`).
    Integer(i64),
    /// A bulk string, byte-exact; `None` for the nil bulk string (`$-1`, e.g. `GET` of a missing
    /// key).
    Bulk(Option<Vec<u8>>),
    /// An array; `None` for the nil array (`*-1`).
    Array(Option<Vec<Resp>>),
}

impl Resp {
    /// The value of a bulk string reply, `None` for nil. Panics on any other reply, so a
    /// `WRONGTYPE` error fails the test with the error in the message.
    pub fn into_bulk(self) -> Option<Vec<u8>> {
        match self {
            Self::Bulk(value) => value,
            other => panic!("expected a bulk string reply, got {other:?}"),
        }
    }
}

/// A server process the harness owns: a port that stays the same across restarts, the child,
/// and a temporary directory for its files and log. Killed when dropped. [`RedisServer`],
/// [`NatsServer`] and [`PostgresServer`] dereference to it for [`kill`](Self::kill),
/// [`restart`](Self::restart) and the rest.
pub struct ServerProcess {
    name: &'static str,
    launch: Launch,
    port: u16,
    child: Option<Child>,
    dir: TempDir,
}

/// Spawns a server on a port with its files in a directory.
type Launch = Arc<dyn Fn(u16, &Path) -> Result<Child, Failure> + Send + Sync>;

impl ServerProcess {
    /// Launches `name` on a free port (trying another if the port was taken meanwhile).
    fn start(name: &'static str, launch: Launch) -> Self {
        let dir = TempDir::new(name.trim_end_matches("-server"));
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match launch(port, &dir.0) {
                Ok(child) => {
                    return Self {
                        name,
                        launch,
                        port,
                        child: Some(child),
                        dir,
                    };
                }
                Err(Failure::PortInUse) => {}
                Err(Failure::Other(log)) => panic!("{name} did not start:\n{log}"),
            }
        }
        panic!("{name} found no free port in {PORT_ATTEMPTS} attempts")
    }

    /// The port the server listens on (the same across [`restart`](Self::restart)s).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server, and the processes it started (PostgreSQL's backends), with SIGKILL and
    /// waits for them to exit. Does nothing if it is not running.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// Starts the server again on the same port with the same directory (killing it first if
    /// it still runs) and waits until it is ready, retrying for up to 10 s while the port is
    /// still taken.
    pub fn restart(&mut self) {
        self.kill();
        let (port, dir, launch) = (self.port, self.dir.0.clone(), Arc::clone(&self.launch));
        self.child = Some(relaunch(self.name, || launch(port, &dir)));
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        is_running(&mut self.child)
    }

    /// Everything the server printed, across restarts.
    pub fn log(&self) -> String {
        read_log(&self.dir.0, 0)
    }
}

macro_rules! deref_to_process {
    ($server:ty) => {
        impl std::ops::Deref for $server {
            type Target = ServerProcess;
            fn deref(&self) -> &ServerProcess {
                &self.process
            }
        }

        impl std::ops::DerefMut for $server {
            fn deref_mut(&mut self) -> &mut ServerProcess {
                &mut self.process
            }
        }
    };
}

use deref_to_process;

deref_to_process!(RedisServer);
deref_to_process!(NatsServer);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `redis-server` on a free loopback port, without persistence (a restarted server starts
/// empty). Killed when dropped; see [`ServerProcess`] for kill and restart.
pub struct RedisServer {
    process: ServerProcess,
}

impl RedisServer {
    /// Starts `redis-server` on a free port of 127.0.0.1 (no RDB snapshots, no AOF, working
    /// directory in a fresh temporary directory) and waits until it answers `PING`. Panics with
    /// the server's log if it is not ready within 10 s.
    pub fn start() -> Self {
        Self {
            process: ServerProcess::start("redis-server", Arc::new(launch_redis)),
        }
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }

    /// Sends one command (an array of bulk strings) on a fresh connection and reads the reply.
    /// Panics if the server cannot be reached; use [`try_command`](Self::try_command) to expect
    /// that.
    ///
    /// ```no_run
    /// # let redis = omnia_tests::services::RedisServer::start();
    /// redis.command(&[b"SET", b"key", &[0, 255, b'\r', b'\n']]);
    /// ```
    pub fn command(&self, args: &[&[u8]]) -> Resp {
        self.try_command(args)
            .unwrap_or_else(|err| panic!("redis command {:?}: {err}", lossy(args)))
    }

    /// Like [`command`](Self::command), but returns the I/O error, e.g. connection refused
    /// while the server is killed.
    pub fn try_command(&self, args: &[&[u8]]) -> io::Result<Resp> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port()));
        let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg);
            request.extend_from_slice(b"\r\n");
        }
        stream.write_all(&request)?;
        read_resp(&mut BufReader::new(stream))
    }

    /// Runs `redis-cli --raw` with `args` against the server and returns its stdout without
    /// the one trailing newline it adds. Panics if `redis-cli` exits non-zero.
    ///
    /// Byte-exact only for a single bulk string reply that is not nil and whose value does not
    /// itself end the output ambiguously: `--raw` prints the value unescaped plus `\n`, but a nil
    /// reply prints as an empty value, arrays print one element per line (so elements containing
    /// `\n` cannot be told apart), integers print as decimal text, and an error reply prints as
    /// `ERR ...` on stdout with exit status 0. Arguments cannot contain NUL bytes. Use
    /// [`command`](Self::command) to assert exact replies; this is for checking what the stock
    /// client sees.
    pub fn cli_raw(&self, args: &[&str]) -> Vec<u8> {
        let output = self.cli(&["--raw"], args);
        assert!(
            output.status.success(),
            "redis-cli {args:?} failed with {}:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let mut stdout = output.stdout;
        if stdout.last() == Some(&b'\n') {
            stdout.pop();
        }
        stdout
    }

    fn cli(&self, options: &[&str], args: &[&str]) -> Output {
        Command::new(program(REDIS_CLI))
            .args(["-h", "127.0.0.1", "-p", &self.port().to_string()])
            .args(options)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs")
    }
}

/// Spawns `redis-server` on `port` in `dir` and waits until it answers `PING`.
fn launch_redis(port: u16, dir: &Path) -> Result<Child, Failure> {
    let args: Vec<OsString> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
    ]
    .iter()
    .map(OsString::from)
    .chain([dir.as_os_str().to_owned()])
    .collect();
    launch(
        REDIS_SERVER,
        &args,
        dir,
        "Ready to accept connections",
        &|| redis_pong(port),
    )
}

/// Whether a raw `PING` on `port` is answered with `+PONG`.
fn redis_pong(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

/// Reads one RESP2 reply.
fn read_resp(reader: &mut impl BufRead) -> io::Result<Resp> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    let Some(text) = line.strip_suffix(b"\r\n") else {
        return Err(invalid(format!(
            "RESP line not ended by CRLF: {:?}",
            String::from_utf8_lossy(&line)
        )));
    };
    let (&kind, rest) = text
        .split_first()
        .ok_or_else(|| invalid("empty RESP line".into()))?;
    let rest = String::from_utf8_lossy(rest).into_owned();
    let number = |rest: &str| {
        rest.parse::<i64>()
            .map_err(|_| invalid(format!("bad RESP number {rest:?}")))
    };
    Ok(match kind {
        b'+' => Resp::Simple(rest),
        b'-' => Resp::Error(rest),
        b':' => Resp::Integer(number(&rest)?),
        b'$' => match usize::try_from(number(&rest)?) {
            Err(_) => Resp::Bulk(None),
            Ok(len) => {
                let mut value = vec![0; len + 2];
                reader.read_exact(&mut value)?;
                if value.split_off(len) != b"\r\n" {
                    return Err(invalid("bulk string not ended by CRLF".into()));
                }
                Resp::Bulk(Some(value))
            }
        },
        b'*' => match usize::try_from(number(&rest)?) {
            Err(_) => Resp::Array(None),
            Ok(len) => Resp::Array(Some(
                (0..len)
                    .map(|_| read_resp(reader))
                    .collect::<io::Result<_>>()?,
            )),
        },
        other => return Err(invalid(format!("unknown RESP type {:?}", other as char))),
    })
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn lossy(args: &[&[u8]]) -> Vec<String> {
    args.iter()
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// A `nats-server` with JetStream on a free loopback port. Its store directory outlives
/// [`kill`](ServerProcess::kill) and [`restart`](ServerProcess::restart), so JetStream data
/// (KV buckets) survives them. Killed when dropped; see [`ServerProcess`] for kill and restart.
pub struct NatsServer {
    process: ServerProcess,
    login: NatsLogin,
}

/// How clients must log in to a test [`NatsServer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsLogin {
    /// No authentication.
    None,
    /// `authorization { user, password }`.
    User(&'static str, &'static str),
    /// `authorization { token }`.
    Token(&'static str),
}

impl NatsLogin {
    fn config(self) -> String {
        match self {
            Self::None => String::new(),
            Self::User(user, password) => {
                format!("authorization {{ user: \"{user}\", password: \"{password}\" }}\n")
            }
            Self::Token(token) => format!("authorization {{ token: \"{token}\" }}\n"),
        }
    }

    fn options(self) -> async_nats::ConnectOptions {
        let options = async_nats::ConnectOptions::new();
        match self {
            Self::None => options,
            Self::User(user, password) => options.user_and_password(user.into(), password.into()),
            Self::Token(token) => options.token(token.into()),
        }
    }
}

impl NatsServer {
    /// Starts `nats-server -js` on a free port of 127.0.0.1 with its store in a fresh temporary
    /// directory, and waits until it is ready and a JetStream API request (`$JS.API.INFO`)
    /// succeeds. Panics with the server's log if that takes longer than 10 s.
    pub fn start() -> Self {
        Self::start_with_login(NatsLogin::None)
    }

    /// Like [`NatsServer::start`], for a server that requires `login`.
    pub fn start_with_login(login: NatsLogin) -> Self {
        let launch = move |port: u16, dir: &Path| launch_nats(port, dir, login);
        Self {
            process: ServerProcess::start("nats-server", Arc::new(launch)),
            login,
        }
    }

    /// `nats://127.0.0.1:{port}` (without credentials).
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port())
    }

    /// A native client connected (and logged in) to the server, running on the caller's tokio
    /// runtime.
    pub async fn client(&self) -> async_nats::Client {
        self.login
            .options()
            .connection_timeout(IO_TIMEOUT)
            .connect(self.url())
            .await
            .unwrap_or_else(|err| panic!("connect to {}: {err}", self.url()))
    }

    /// The value of `key` in KV bucket `bucket`, read with a native client; `None` if the key or
    /// the whole bucket is missing (or the key was deleted). Blocks; callable from sync tests and
    /// from inside a tokio runtime.
    pub fn kv_get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        block_on(async {
            let store = open_bucket(&self.jetstream().await, bucket).await?;
            store
                .get(key)
                .await
                .unwrap_or_else(|err| panic!("kv get {bucket}/{key}: {err}"))
                .map(|value| value.to_vec())
        })
    }

    /// Puts `value` under `key` in KV bucket `bucket` with a native client, creating the bucket
    /// (history 1) if it is missing, and returns once JetStream acknowledged it. Blocks; callable
    /// from sync tests and from inside a tokio runtime.
    pub fn kv_put(&self, bucket: &str, key: &str, value: &[u8]) {
        let value = bytes::Bytes::copy_from_slice(value);
        block_on(async {
            let js = self.jetstream().await;
            let store = match open_bucket(&js, bucket).await {
                Some(store) => store,
                // The way omnia creates buckets (`OMNIA_NATS_KV_CREATE`).
                None => omnia_nats::keyvalue::create_bucket(&js, bucket)
                    .await
                    .unwrap_or_else(|err| panic!("create kv bucket {bucket}: {err:#}")),
            };
            store
                .put(key, value)
                .await
                .unwrap_or_else(|err| panic!("kv put {bucket}/{key}: {err}"));
        });
    }

    async fn jetstream(&self) -> jetstream::Context {
        jetstream::new(self.client().await)
    }
}

/// KV bucket `bucket`, or `None` if it does not exist.
async fn open_bucket(js: &jetstream::Context, bucket: &str) -> Option<kv::Store> {
    match js.get_key_value(bucket).await {
        Ok(store) => Some(store),
        Err(err) if omnia_nats::keyvalue::is_not_found(&err) => None,
        Err(err) => panic!("open kv bucket {bucket}: {err}"),
    }
}

/// Spawns `nats-server -js` on `port` with its store under `dir`, and waits until it logs that
/// it is ready and answers a JetStream request.
fn launch_nats(port: u16, dir: &Path, login: NatsLogin) -> Result<Child, Failure> {
    // The default max_payload (1 MiB) would refuse a 1 MiB value plus its headers.
    let config = dir.join("nats.conf");
    let text = format!("max_payload: {NATS_MAX_PAYLOAD}\n{}", login.config());
    std::fs::write(&config, text).unwrap_or_else(|err| panic!("write {}: {err}", config.display()));
    let args: Vec<OsString> = ["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-c"]
        .iter()
        .map(OsString::from)
        .chain([config.into_os_string(), "-sd".into()])
        .chain([dir.join("store").into_os_string()])
        .collect();
    launch(NATS_SERVER, &args, dir, "Server is ready", &|| {
        jetstream_answers(port, login)
    })
}

/// Whether a JetStream account info request (`$JS.API.INFO`) on `port` succeeds. Sent raw:
/// async-nats' `query_account` expects fields that nats-server 2.9 does not send.
fn jetstream_answers(port: u16, login: NatsLogin) -> bool {
    block_on(async {
        let connect = login
            .options()
            .connection_timeout(Duration::from_secs(1))
            .connect(format!("nats://127.0.0.1:{port}"));
        let Ok(client) = connect.await else {
            return false;
        };
        let request = client.request("$JS.API.INFO", bytes::Bytes::new());
        match tokio::time::timeout(Duration::from_secs(2), request).await {
            Ok(Ok(reply)) => {
                let body = String::from_utf8_lossy(&reply.payload);
                body.contains("account_info_response") && !body.contains("\"error\"")
            }
            _ => false,
        }
    })
}

/// Runs `future` to completion on a fresh current-thread runtime in a thread of its own, so the
/// caller may or may not be inside a tokio runtime already.
fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime")
                    .block_on(future)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Why a server did not come up.
enum Failure {
    /// Its port was taken by another process: try again (elsewhere, or later).
    PortInUse,
    /// Anything else; carries the server's log.
    Other(String),
}

/// Spawns `program` with `args`, stdout and stderr appended to `dir/server.log`, and waits until
/// the log of this run contains `ready` and `probe` succeeds.
fn launch(
    program: &str,
    args: &[OsString],
    dir: &Path,
    ready: &str,
    probe: &dyn Fn() -> bool,
) -> Result<Child, Failure> {
    let mut command = Command::new(self::program(program));
    command.args(args);
    launch_command(program, &mut command, dir, ready, START_TIMEOUT, probe)
}

/// Spawns `command` (the server `name`) in `dir`, stdout and stderr appended to
/// `dir/server.log`, and waits up to `timeout` until the log of this run contains `ready` and
/// `probe` succeeds.
fn launch_command(
    name: &str,
    command: &mut Command,
    dir: &Path,
    ready: &str,
    timeout: Duration,
    probe: &dyn Fn() -> bool,
) -> Result<Child, Failure> {
    let log_path = dir.join("server.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .expect("server log opens");
    let offset = log.metadata().expect("server log metadata").len();
    let child = command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("server log clones"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|err| panic!("{name} starts: {err}"));
    let mut child = Some(child);
    let started = Instant::now();
    loop {
        let text = read_log(dir, offset);
        if text.contains(ready) && probe() {
            return Ok(child.take().expect("server child"));
        }
        if let Some(Ok(Some(status))) = child.as_mut().map(Child::try_wait) {
            let text = read_log(dir, offset);
            return Err(if text.to_lowercase().contains("address already in use") {
                Failure::PortInUse
            } else {
                Failure::Other(format!("{name} exited with {status}:\n{text}"))
            });
        }
        if started.elapsed() > timeout {
            kill(&mut child);
            return Err(Failure::Other(format!(
                "{name} not ready after {timeout:?}:\n{}",
                read_log(dir, offset)
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Calls `launch` until it does not fail for a port still in use, for up to [`RESTART_TIMEOUT`].
fn relaunch(program: &str, launch: impl Fn() -> Result<Child, Failure>) -> Child {
    let started = Instant::now();
    loop {
        match launch() {
            Ok(child) => return child,
            Err(Failure::Other(log)) => panic!("{program} did not restart:\n{log}"),
            Err(Failure::PortInUse) if started.elapsed() > RESTART_TIMEOUT => {
                panic!("{program} did not restart: port still in use after {RESTART_TIMEOUT:?}")
            }
            Err(Failure::PortInUse) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The server log in `dir` from byte `offset` on.
fn read_log(dir: &Path, offset: u64) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut file) = File::open(dir.join("server.log")) {
        let _ = file.read_to_end(&mut bytes);
    }
    let start = usize::try_from(offset).map_or(bytes.len(), |at| at.min(bytes.len()));
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Kills the server `child` and the processes it started with SIGKILL, and waits until they
/// are gone (for the server's children, up to [`KILL_TIMEOUT`]). Does nothing for `None`.
///
/// The children matter for PostgreSQL: its postmaster runs each connection and background task
/// in a process of its own (in a session of its own, so a signal to the postmaster's group
/// misses them). Killed alone, the postmaster leaves them running until they notice, still
/// attached to its shared memory, which a restart then refuses; a real crash (the OOM killer, a
/// container stopped) takes them all. So the server is first stopped (SIGSTOP), which keeps it
/// from starting another process between the listing of its children (from `/proc`) and the
/// kill. Only direct children are looked for: no server here has grandchildren.
fn kill(child: &mut Option<Child>) {
    let Some(mut child) = child.take() else {
        return;
    };
    let pid = child.id();
    // Once reaped, its pid may belong to another process: signal only a child not yet waited for.
    let running = matches!(child.try_wait(), Ok(None));
    let children = if running && signal(pid, Signal::STOP) {
        wait_until_stopped(pid);
        children_of(pid)
    } else {
        Vec::new()
    };
    let _ = child.kill();
    for &pid in &children {
        signal(pid, Signal::KILL);
    }
    let _ = child.wait();
    let started = Instant::now();
    while children.iter().any(|&pid| is_alive(pid)) && started.elapsed() < KILL_TIMEOUT {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` to process `pid`; whether it was sent.
fn signal(pid: u32, signal: Signal) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .is_some_and(|pid| kill_process(pid, signal).is_ok())
}

/// The state letter and parent of process `pid`, from `/proc/{pid}/stat`; `None` if there is
/// no such process.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; `comm` may itself contain spaces and parentheses.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

/// Waits (up to 1 s) until `pid` is stopped or has exited, so it is no longer in the middle of
/// starting a process.
fn wait_until_stopped(pid: u32) {
    let started = Instant::now();
    while matches!(proc_stat(pid), Some((state, _)) if !matches!(state, 'T' | 'Z' | 'X'))
        && started.elapsed() < Duration::from_secs(1)
    {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter(|&child| proc_stat(child).is_some_and(|(_, parent)| parent == pid))
        .collect()
}

/// Whether `pid` is a live process: it exists and is not a zombie (a killed server's children
/// are reparented to init, which may be slow to reap them, or never in a container).
fn is_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| !matches!(state, 'Z' | 'X'))
}

fn is_running(child: &mut Option<Child>) -> bool {
    child
        .as_mut()
        .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
}

/// A unique directory under the system temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(kind: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "omnia-tests-{}-{kind}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("server temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_parses_every_reply_type() {
        let wire = b"*6\r\n+OK\r\n-ERR no\r\n:-7\r\n$4\r\n\r\n\0\xff\r\n$-1\r\n*-1\r\n";
        assert_eq!(
            read_resp(&mut &wire[..]).unwrap(),
            Resp::Array(Some(vec![
                Resp::Simple("OK".into()),
                Resp::Error("ERR no".into()),
                Resp::Integer(-7),
                Resp::Bulk(Some(b"\r\n\0\xff".to_vec())),
                Resp::Bulk(None),
                Resp::Array(None),
            ]))
        );
    }

    #[test]
    fn redis_round_trips_binary_values_and_restarts_on_the_same_port() {
        let mut redis = RedisServer::start();
        assert!(redis.is_running());
        assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
        let value: Vec<u8> = (0..=255).chain(*b"\r\n$-1\r\n*").collect();

        assert_eq!(
            redis.command(&[b"SET", b"bin", &value]),
            Resp::Simple("OK".into())
        );
        assert_eq!(redis.command(&[b"GET", b"bin"]).into_bulk(), Some(value));
        assert_eq!(redis.command(&[b"GET", b"missing"]), Resp::Bulk(None));
        assert_eq!(redis.command(&[b"INCR", b"n"]), Resp::Integer(1));
        assert!(
            matches!(redis.command(&[b"INCR", b"bin"]), Resp::Error(e) if e.starts_with("ERR"))
        );
        redis.command(&[b"SET", b"text", b"a\nb\x01\xff"]);
        assert_eq!(redis.cli_raw(&["GET", "text"]), b"a\nb\x01\xff");

        let port = redis.port();
        redis.kill();
        assert!(!redis.is_running());
        let refused = redis
            .try_command(&[b"PING"])
            .expect_err("killed server refuses");
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);

        redis.restart();
        assert!(redis.is_running());
        assert_eq!(redis.port(), port);
        assert_eq!(redis.command(&[b"PING"]), Resp::Simple("PONG".into()));
        assert_eq!(
            redis.command(&[b"GET", b"bin"]),
            Resp::Bulk(None),
            "nothing is persisted across a kill"
        );
        assert!(redis.log().contains("Ready to accept connections"));
    }

    #[test]
    fn restart_waits_while_another_process_holds_the_port() {
        let mut redis = RedisServer::start();
        redis.kill();
        let squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, redis.port())).expect("port free");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            drop(squatter);
        });
        let started = Instant::now();
        redis.restart();
        assert!(started.elapsed() >= Duration::from_millis(400));
        assert_eq!(redis.command(&[b"PING"]), Resp::Simple("PONG".into()));
        release.join().unwrap();
    }

    #[test]
    fn nats_kv_round_trips_and_survives_kill_and_restart() {
        let mut nats = NatsServer::start();
        assert!(nats.is_running());
        assert_eq!(nats.url(), format!("nats://127.0.0.1:{}", nats.port()));
        let value: Vec<u8> = (0..=255).rev().collect();

        assert_eq!(nats.kv_get("harness", "key"), None, "missing bucket");
        nats.kv_put("harness", "key", &value);
        nats.kv_put("harness", "empty", b"");
        assert_eq!(nats.kv_get("harness", "key"), Some(value.clone()));
        assert_eq!(nats.kv_get("harness", "empty"), Some(Vec::new()));
        assert_eq!(nats.kv_get("harness", "missing"), None, "missing key");

        let port = nats.port();
        nats.kill();
        assert!(!nats.is_running());
        let refused = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect_err("refused");
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);

        nats.restart();
        assert!(nats.is_running());
        assert_eq!(nats.port(), port);
        assert_eq!(
            nats.kv_get("harness", "key"),
            Some(value),
            "JetStream data survives"
        );
        nats.kv_put("harness", "key", b"after");
        assert_eq!(nats.kv_get("harness", "key"), Some(b"after".to_vec()));
    }

    #[tokio::test]
    async fn nats_kv_helpers_work_inside_a_runtime() {
        let nats = NatsServer::start();
        nats.kv_put("inside", "k", b"v");
        assert_eq!(nats.kv_get("inside", "k"), Some(b"v".to_vec()));
        let client = nats.client().await;
        let kv = jetstream::new(client)
            .get_key_value("inside")
            .await
            .unwrap();
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    }
}
