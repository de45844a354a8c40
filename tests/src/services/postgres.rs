//! A real PostgreSQL server, owned by the test that needs it.
//!
//! [`PostgresServer::start`] makes a fresh cluster with `initdb` in a temporary directory and
//! runs `postgres` on it, on a free loopback port, with password authentication (SCRAM) for a
//! superuser `omnia` whose password is random per server. Like the Redis and NATS servers it
//! dereferences to [`ServerProcess`] for [`kill`](ServerProcess::kill) (SIGKILL to the postmaster
//! and every process it started, as in a crash), [`restart`](ServerProcess::restart) (same port,
//! same data directory: the server recovers from its WAL) and the server's log.
//!
//! The harness runs `postgres -D dir` itself, as its child, rather than `pg_ctl start`: `pg_ctl`
//! detaches the server, so the harness would know it only by the pid in `postmaster.pid`, could
//! not wait for it (a killed server would linger as nobody's zombie until init reaps it), and
//! would have to stop it through `pg_ctl` again. As a child, the postmaster is killed, reaped
//! and restarted exactly like `redis-server`, and its log goes to the same `server.log`.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (CI does), `initdb` and
//! `postgres` run as the system user [`SERVER_USER`], created on first use, which owns the
//! temporary directory; otherwise they run as the current user. The binaries come from Debian's
//! `postgresql` package (see [`bin_dir`]), which `tests/setup` installs; the cluster `main` the
//! package may create for itself is neither used nor needed.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::{Failure, ServerProcess, launch_command, program};

/// Where Debian's `postgresql` packages install the server programs: `<major>/bin`, one
/// directory per major version, none of them in `PATH`.
const DEBIAN_DIR: &str = "/usr/lib/postgresql";
/// The superuser `initdb` creates; [`PostgresServer::url`] logs in as it.
const SUPERUSER: &str = "omnia";
/// The unprivileged system user the server runs as when the tests run as root.
const SERVER_USER: &str = "omnia-pg";
/// What the server logs once it accepts connections (also after a crash recovery).
const READY: &str = "database system is ready to accept connections";
/// How long the server may take to accept connections after it was spawned: it starts in tens
/// of milliseconds, a restart after a kill replays the WAL first; the margin is for a loaded
/// 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`server_user`] retries `useradd` while another process holds the lock of
/// `/etc/passwd`.
const USERADD_TIMEOUT: Duration = Duration::from_secs(10);

/// A PostgreSQL server on a free loopback port, with a fresh cluster of its own in a temporary
/// directory. Its data survives [`kill`](ServerProcess::kill) and
/// [`restart`](ServerProcess::restart). Killed when dropped, its shared memory released and
/// its directory removed; see [`ServerProcess`] for kill and restart.
pub struct PostgresServer {
    process: ServerProcess,
    password: String,
}

super::deref_to_process!(PostgresServer);

impl PostgresServer {
    /// Makes a fresh cluster in a temporary directory (`initdb` with SCRAM authentication, UTF-8,
    /// locale C, superuser `omnia` with a random password), starts `postgres` on it on a free
    /// port of 127.0.0.1 (its Unix socket in the same directory, `fsync` off), and waits until it
    /// accepts connections. Panics with the `initdb` output or the server's log if either fails,
    /// or if the server does not accept connections within 20 s.
    ///
    /// Only `fsync` is off: that saves the disk flushes and loses nothing a test can observe,
    /// since a killed server's writes are in the kernel's page cache. `synchronous_commit` and
    /// `full_page_writes` stay on: off, a commit acknowledged just before a
    /// [`kill`](ServerProcess::kill) may be missing after the [`restart`](ServerProcess::restart)
    /// (the WAL writer had not written it yet), and a data page the kill tore halfway could not
    /// be repaired from the WAL.
    pub fn start() -> Self {
        let password = random_password();
        let user = server_user();
        let launch = {
            let password = password.clone();
            move |port: u16, dir: &Path| launch_postgres(port, dir, &password, user)
        };
        Self {
            process: ServerProcess::start("postgres", Arc::new(launch)),
            password,
        }
    }

    /// `postgres://omnia:{password}@127.0.0.1:{port}/postgres`: the superuser, on the database
    /// `postgres`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/postgres",
            self.password,
            self.port()
        )
    }

    /// The password of the superuser `omnia`: random, different for every server.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Runs `sql` (any number of `;`-separated statements) with the native client, `psql`, as the
    /// superuser, and returns what it printed: the rows of each query, one a line, columns
    /// separated by `|`, without the trailing newline (`-XAtq`). Panics with `psql`'s errors if
    /// it cannot connect or a statement fails (`ON_ERROR_STOP`); statements before the failing
    /// one stay done unless `sql` wraps them in a transaction.
    ///
    /// ```no_run
    /// # let pg = omnia_tests::services::PostgresServer::start();
    /// pg.psql("CREATE TABLE t (id int, s text); INSERT INTO t VALUES (1, 'a'), (2, 'b')");
    /// assert_eq!(pg.psql("SELECT * FROM t ORDER BY id"), "1|a\n2|b");
    /// ```
    pub fn psql(&self, sql: &str) -> String {
        self.try_psql(&self.url(), sql)
            .unwrap_or_else(|err| panic!("psql {sql:?} on port {}: {err}", self.port()))
    }

    /// Like [`psql`](Self::psql), but connects to `url` (this server with other credentials,
    /// say) and returns what failed instead of panicking: the exit status and `psql`'s errors.
    ///
    /// `psql` never prompts for a password (`-w`) and ignores `PG*` variables of the caller's
    /// environment and `~/.pgpass`, so a `url` without the right password fails.
    pub fn try_psql(&self, url: &str, sql: &str) -> Result<String, String> {
        let mut command = Command::new(pg_program("psql"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PG") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .args(["-XAtqw", "-v", "ON_ERROR_STOP=1", "-f", "-"])
            .arg(format!("--dbname={url}"))
            .env("PGPASSFILE", "/dev/null")
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("psql starts: {err}"));
        let stdin = child.stdin.take().expect("psql stdin");
        // Written from a thread: psql may fill its stdout before it has read all of `sql`.
        let output = std::thread::scope(|scope| {
            scope.spawn(move || {
                let mut stdin = stdin;
                // A psql that could not connect exits without reading: its stderr says why.
                let _ = stdin.write_all(sql.as_bytes());
            });
            child.wait_with_output()
        })
        .unwrap_or_else(|err| panic!("psql runs: {err}"));
        if !output.status.success() {
            return Err(format!(
                "psql exited with {}:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let mut stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if stdout.ends_with('\n') {
            stdout.pop();
        }
        Ok(stdout)
    }

    /// The cluster's data directory.
    fn data_dir(&self) -> PathBuf {
        self.process.dir.0.join("data")
    }
}

impl Drop for PostgresServer {
    /// Kills the server, then removes the System V shared memory segment it leaves behind when
    /// killed (a restart would have reused it); the temporary directory goes with
    /// [`ServerProcess`].
    fn drop(&mut self) {
        self.process.kill();
        release_shared_memory(&self.data_dir());
    }
}

/// Makes the cluster in `dir/data` if there is none yet, then spawns `postgres` on it on `port`
/// (as `user`, if given) and waits until it accepts connections.
fn launch_postgres(
    port: u16,
    dir: &Path,
    password: &str,
    user: Option<(u32, u32)>,
) -> Result<Child, Failure> {
    let data = dir.join("data");
    if !data.join("PG_VERSION").is_file() {
        init_cluster(dir, &data, password, user)?;
    }
    let mut sockets = OsString::from("unix_socket_directories=");
    sockets.push(dir);
    let mut command = Command::new(pg_program("postgres"));
    command
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1", "-c"])
        .arg(sockets)
        .args(["-c", "fsync=off"])
        // Dynamic shared memory as files in the data directory rather than in /dev/shm, so a
        // killed server leaves nothing behind once its directory is removed.
        .args(["-c", "dynamic_shared_memory_type=mmap"]);
    run_as(&mut command, user);
    launch_command("postgres", &mut command, dir, READY, START_TIMEOUT, &|| {
        accepts_connections(port)
    })
}

/// Runs `initdb` for a cluster in `data` (inside `dir`, which `user` is given first): superuser
/// [`SUPERUSER`] with `password`, SCRAM authentication for every connection, UTF-8, locale C.
fn init_cluster(
    dir: &Path,
    data: &Path,
    password: &str,
    user: Option<(u32, u32)>,
) -> Result<(), Failure> {
    let pwfile = dir.join("pwfile");
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&pwfile)
        .unwrap_or_else(|err| panic!("create {}: {err}", pwfile.display()));
    writeln!(file, "{password}").unwrap_or_else(|err| panic!("write {}: {err}", pwfile.display()));
    drop(file);
    if let Some((uid, gid)) = user {
        for path in [dir, &pwfile] {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .unwrap_or_else(|err| panic!("chown {} to {SERVER_USER}: {err}", path.display()));
        }
    }
    let mut command = Command::new(pg_program("initdb"));
    command
        .arg("-D")
        .arg(data)
        .args(["--auth=scram-sha-256", "-U", SUPERUSER])
        .arg(format!("--pwfile={}", pwfile.display()))
        .args(["-E", "UTF8", "--locale=C", "--no-sync"])
        .current_dir(dir)
        .stdin(Stdio::null());
    run_as(&mut command, user);
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("initdb starts: {err}"));
    let _ = std::fs::remove_file(&pwfile);
    if output.status.success() {
        Ok(())
    } else {
        Err(Failure::Other(format!(
            "initdb exited with {}:\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}

/// Makes `command` run as `user` (uid, gid; without supplementary groups), if given. The process
/// itself changes user before it executes the program, so the harness's child is the server,
/// with no `runuser` or `setpriv` in between to take a SIGKILL in its place.
fn run_as(command: &mut Command, user: Option<(u32, u32)>) {
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
}

/// Whether the server on `port` accepts connections: a TCP connect succeeds and, where the
/// package has it, `pg_isready` says so.
fn accepts_connections(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
        return false;
    }
    let pg_isready = bin_dir().join("pg_isready");
    !pg_isready.is_file()
        || Command::new(pg_isready)
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-d", "postgres", "-t", "2"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
}

/// The directory of the PostgreSQL programs (`initdb`, `postgres`, `pg_isready`, `psql`): the
/// newest major version's `/usr/lib/postgresql/<major>/bin` (Debian's layout), else the
/// directory the first `initdb` in `PATH` really is in (symbolic links resolved, so `psql` is
/// the one next to it rather than Debian's `/usr/bin/psql` wrapper). Panics, saying what to
/// install, if there is neither.
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let newest_debian = std::fs::read_dir(DEBIAN_DIR)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version: Vec<u32> = (entry.file_name().to_str()?.split('.'))
                    .map(|part| part.parse().ok())
                    .collect::<Option<_>>()?;
                let bin = entry.path().join("bin");
                bin.join("postgres").is_file().then_some((version, bin))
            })
            .max()
            .map(|(_, bin)| bin);
        newest_debian
            .or_else(|| {
                let path = std::env::var_os("PATH").unwrap_or_default();
                let initdb = std::env::split_paths(&path)
                    .map(|dir| dir.join("initdb"))
                    .find(|candidate| candidate.is_file())?;
                Some(initdb.canonicalize().ok()?.parent()?.to_path_buf())
            })
            .unwrap_or_else(|| {
                panic!(
                    "PostgreSQL not found: no {DEBIAN_DIR}/<major>/bin/postgres and no initdb in \
                     PATH: apt-get install postgresql (tests/setup does)"
                )
            })
    })
}

/// The PostgreSQL program `name` in [`bin_dir`]. Panics if it is not there.
fn pg_program(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{name} not found in {}: apt-get install postgresql (tests/setup does)",
        bin_dir().display()
    );
    path
}

/// 32 hex digits from `/dev/urandom`.
fn random_password() -> String {
    let mut bytes = [0; 16];
    File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .unwrap_or_else(|err| panic!("read /dev/urandom: {err}"));
    bytes.iter().fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

/// Who the server runs as: `None` (the current user) unless the tests run as root, else the uid
/// and gid of [`SERVER_USER`], which is created (a system user with its own group, no home, no
/// shell) if missing. Looked up once per test process.
///
/// Test processes running in parallel take turns creating the user (see
/// [`create_server_user`]); a `useradd` failing on the lock of `/etc/passwd` (some other program
/// editing it) is retried for up to 10 s.
fn server_user() -> Option<(u32, u32)> {
    static USER: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *USER.get_or_init(|| {
        rustix::process::geteuid()
            .is_root()
            .then(create_server_user)
    })
}

/// The uid and gid of [`SERVER_USER`], creating it if missing; see [`server_user`].
///
/// `useradd` looks whether the user exists before it locks `/etc/passwd`, so several run at the
/// same time all succeed, each replacing the entry the one before wrote with other ids (seen with
/// Debian 12's shadow 4.13): the uid a test looked up would stop existing under it. So test
/// processes take turns, under an advisory lock on the directory `/etc` itself: a path they all
/// agree on whatever their `TMPDIR`, and nothing is left behind.
fn create_server_user() -> (u32, u32) {
    let etc = File::open("/etc").unwrap_or_else(|err| panic!("open /etc: {err}"));
    etc.lock()
        .unwrap_or_else(|err| panic!("lock /etc to create {SERVER_USER}: {err}"));
    let started = Instant::now();
    loop {
        if let Some(ids) = user_ids(SERVER_USER) {
            return ids;
        }
        let output = Command::new(program("useradd"))
            .args(["--system", "--no-create-home", "--user-group"])
            .args(["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"])
            .arg(SERVER_USER)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("useradd starts: {err}"));
        // 9: the user exists (created by something else than a test).
        if output.status.success() || output.status.code() == Some(9) {
            continue;
        }
        assert!(
            started.elapsed() < USERADD_TIMEOUT,
            "useradd {SERVER_USER} (PostgreSQL refuses to run as root) exited with {}:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The uid and gid of user `name`, from `getent passwd`; `None` if there is no such user.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let output = Command::new(program("getent"))
        .args(["passwd", name])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("getent starts: {err}"));
    // name:password:uid:gid:...
    let entry = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut fields = entry.trim_end().split(':').skip(2);
    let uid = fields.next()?.parse().ok()?;
    let gid = fields.next()?.parse().ok()?;
    output.status.success().then_some((uid, gid))
}

/// Removes the System V shared memory segment of the killed server whose cluster is in `data`:
/// its id is on line 7 of `postmaster.pid` (`key id`). PostgreSQL removes it when it shuts down
/// and reuses it when it restarts after a crash; a server killed for good would leave it behind
/// until the machine reboots. Best effort: it runs in `Drop`.
fn release_shared_memory(data: &Path) {
    let Ok(pid_file) = std::fs::read_to_string(data.join("postmaster.pid")) else {
        return;
    };
    let Some(id) = (pid_file.lines().nth(6))
        .and_then(|line| line.split_whitespace().nth(1))
        .filter(|id| id.parse::<u64>().is_ok())
    else {
        return;
    };
    let _ = Command::new("ipcrm")
        .args(["-m", id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The processes whose working directory is `dir`: the postmaster and every process it
    /// started work in the data directory.
    fn processes_in(dir: &Path) -> Vec<u32> {
        std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir)
            })
            .collect()
    }

    /// Whether System V shared memory segment `id` exists.
    fn shared_memory_exists(id: &str) -> bool {
        std::fs::read_to_string("/proc/sysvipc/shm")
            .expect("/proc/sysvipc/shm")
            .lines()
            .skip(1)
            .any(|line| line.split_whitespace().nth(1) == Some(id))
    }

    #[test]
    fn rows_survive_kill_and_restart_on_the_same_port() {
        let mut pg = PostgresServer::start();
        assert!(pg.is_running());
        let port = pg.port();
        assert_eq!(
            pg.url(),
            format!(
                "postgres://omnia:{}@127.0.0.1:{port}/postgres",
                pg.password()
            )
        );
        let settings = "SELECT current_user, current_setting('port'), \
                        current_setting('listen_addresses'), current_setting('server_encoding'), \
                        current_setting('lc_collate'), current_setting('password_encryption'), \
                        current_setting('fsync'), current_setting('synchronous_commit')";
        assert_eq!(
            pg.psql(settings),
            format!("omnia|{port}|127.0.0.1|UTF8|C|scram-sha-256|off|on")
        );
        pg.psql(
            "CREATE TABLE t (id int PRIMARY KEY, s text); \
             INSERT INTO t VALUES (1, 'a'), (2, 'ü|\n');",
        );
        assert_eq!(pg.psql("SELECT id, s FROM t ORDER BY id"), "1|a\n2|ü|\n");
        pg.psql("INSERT INTO t VALUES (3, 'just before the kill')");

        let data = pg.data_dir();
        assert!(
            !processes_in(&data).is_empty(),
            "the server works in {data:?}"
        );
        pg.kill();
        assert!(!pg.is_running());
        assert_eq!(
            processes_in(&data),
            Vec::<u32>::new(),
            "no process of the server survives a kill"
        );
        let refused = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect_err("refused");
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        let down = pg
            .try_psql(&pg.url(), "SELECT 1")
            .expect_err("server is down");
        assert!(down.contains("onnection refused"), "{down}");

        pg.restart();
        assert!(pg.is_running());
        assert_eq!(pg.port(), port);
        assert_eq!(
            pg.psql("SELECT id, s FROM t ORDER BY id"),
            "1|a\n2|ü|\n\n3|just before the kill",
            "committed rows survive a kill"
        );
        assert!(
            pg.log().contains("database system was interrupted"),
            "the restart recovered from a crash:\n{}",
            pg.log()
        );
    }

    #[test]
    fn the_password_is_required_and_random() {
        let pg = PostgresServer::start();
        let other = PostgresServer::start();
        assert_ne!(pg.password(), other.password());
        assert_eq!(pg.password().len(), 32);
        let port = pg.port();

        let wrong = format!(
            "postgres://omnia:{}@127.0.0.1:{port}/postgres",
            other.password()
        );
        let err = pg.try_psql(&wrong, "SELECT 1").expect_err("wrong password");
        assert!(
            err.contains("password authentication failed for user \"omnia\""),
            "{err}"
        );
        let none = format!("postgres://omnia@127.0.0.1:{port}/postgres");
        let err = pg.try_psql(&none, "SELECT 1").expect_err("no password");
        assert!(err.contains("no password supplied"), "{err}");
        // The Unix socket asks for the password too.
        let socket = format!(
            "postgres://omnia@/postgres?host={}&port={port}",
            pg.process.dir.0.display()
        );
        let err = pg.try_psql(&socket, "SELECT 1").expect_err("no password");
        assert!(err.contains("no password supplied"), "{err}");

        assert_eq!(pg.try_psql(&pg.url(), "SELECT 1").as_deref(), Ok("1"));
        let failed = pg.try_psql(&pg.url(), "SELECT 1; SELECT nope; SELECT 2");
        assert!(
            failed
                .as_ref()
                .is_err_and(|err| err.contains("column \"nope\" does not exist")),
            "{failed:?}"
        );
    }

    #[test]
    fn restart_waits_while_another_process_holds_the_port() {
        let mut pg = PostgresServer::start();
        pg.psql("CREATE TABLE t (n int); INSERT INTO t VALUES (7)");
        pg.kill();
        let squatter =
            std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, pg.port())).expect("port free");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            drop(squatter);
        });
        let started = Instant::now();
        pg.restart();
        assert!(started.elapsed() >= Duration::from_millis(400));
        assert_eq!(pg.psql("SELECT n FROM t"), "7");
        assert!(pg.log().contains("Address already in use"), "{}", pg.log());
        release.join().unwrap();
    }

    #[test]
    fn drop_removes_the_directory_and_the_shared_memory() {
        let mut pg = PostgresServer::start();
        let dir = pg.process.dir.0.clone();
        let pid_file = std::fs::read_to_string(pg.data_dir().join("postmaster.pid")).unwrap();
        let id = pid_file
            .lines()
            .nth(6)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned();
        assert!(shared_memory_exists(&id), "segment {id}");
        // Killed first, like a fault test that does not restart the server.
        pg.kill();
        assert!(
            shared_memory_exists(&id),
            "a killed server leaves segment {id}"
        );
        drop(pg);
        assert!(!dir.exists(), "{dir:?} removed");
        assert!(!shared_memory_exists(&id), "segment {id} removed");
    }
}
