//! Running `omnia` as a real process.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a server may take to print its listening address. Generous: JIT-compiling a
/// Python or JS guest takes several seconds on a busy 2-core machine.
const START_TIMEOUT: Duration = Duration::from_mins(2);

/// A running `omnia run` serving a component. Killed when dropped.
pub struct Omnia {
    child: Child,
    addr: Option<String>,
    admin: Option<String>,
    log: Arc<Mutex<String>>,
}

impl Omnia {
    /// Starts `bin run <component>` with `env` and waits until it listens on HTTP. The server
    /// binds `127.0.0.1:0` unless `env` sets `OMNIA_HTTP_ADDR`.
    pub fn serve(bin: &Path, component: &Path, env: &[(&str, &str)]) -> Self {
        Self::try_serve(bin, component, env).unwrap_or_else(|log| {
            panic!(
                "omnia did not start serving {}:\n{log}",
                component.display()
            )
        })
    }

    /// Like [`Omnia::serve`], but returns the log if the process exits before listening.
    pub fn try_serve(bin: &Path, component: &Path, env: &[(&str, &str)]) -> Result<Self, String> {
        Self::try_serve_with(bin, &[], component, env)
    }

    /// Like [`Omnia::try_serve`], with `flags` between `run` and the component (grants such as
    /// `--env`, `--dir`).
    pub fn try_serve_with(
        bin: &Path,
        flags: &[&str],
        component: &Path,
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let mut cmd = Command::new(bin);
        cmd.arg("run").args(flags).arg(component);
        Self::spawn(cmd, env, Ready::Http)
    }

    /// Starts `bin run <args>` in the directory `dir` and waits until it listens on HTTP, or
    /// returns the log if the process exits before (for `omnia run` without a component).
    pub fn try_serve_in(
        bin: &Path,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let mut cmd = Command::new(bin);
        cmd.arg("run").args(args).current_dir(dir);
        Self::spawn(cmd, env, Ready::Http)
    }

    /// Starts `bin run <component>` for a component that only handles messages, and waits
    /// until the messaging trigger has subscribed.
    pub fn serve_messaging(bin: &Path, component: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(bin);
        cmd.arg("run").arg(component);
        Self::spawn(cmd, env, Ready::Messaging)
            .unwrap_or_else(|log| panic!("omnia did not subscribe:\n{log}"))
    }

    /// Like [`Omnia::serve`], with the process's open-file limit (`ulimit -n`) set to
    /// `open_files`, soft and hard.
    pub fn serve_with_open_files(
        bin: &Path,
        component: &Path,
        env: &[(&str, &str)],
        open_files: u32,
    ) -> Self {
        Self::spawn(
            run_with_open_files(bin, component, open_files),
            env,
            Ready::Http,
        )
        .unwrap_or_else(|log| panic!("omnia did not start serving:\n{log}"))
    }

    /// Starts `cmd` (an `omnia run`) with only `env` (and a default log filter and address),
    /// and waits until it is `ready` (and listens on the admin address, if `env` asks for one).
    fn spawn(mut cmd: Command, env: &[(&str, &str)], ready: Ready) -> Result<Self, String> {
        cmd.env_clear()
            .env("RUST_LOG", "info")
            .env("OMNIA_HTTP_ADDR", "127.0.0.1:0")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("omnia starts");
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut log = log.lock().expect("log lock");
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let started = Instant::now();
        loop {
            let text = log.lock().expect("log lock").clone();
            let admin_wanted = env.iter().any(|(k, _)| *k == "OMNIA_ADMIN_ADDR");
            let admin = find_after(&text, "admin: health checks on http://");
            let addr = find_after(&text, "http: listening on http://");
            let up = match ready {
                Ready::Http => addr.is_some(),
                Ready::Messaging => text.contains("messaging: subscribed to"),
            };
            if up && (!admin_wanted || admin.is_some()) {
                return Ok(Self {
                    child,
                    addr,
                    admin,
                    log,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100)); // let the readers drain
                let text = log.lock().expect("log lock").clone();
                return Err(format!("exited with {status}:\n{text}"));
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                return Err(format!(
                    "no listening line after {START_TIMEOUT:?}:\n{text}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A line of `/proc/<pid>/status` as a number, e.g. `VmHWM` (in KiB).
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the process is running");
        status
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{field}:")))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// CPU time (user and system) the process has used so far.
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.pid()).expect("the process is running")
    }

    /// `host:port` of the HTTP server.
    pub fn addr(&self) -> &str {
        self.addr.as_deref().expect("started with an HTTP trigger")
    }

    /// `http://host:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// One HTTP/1.1 request to the guest; panics on a transport error (the runtime must always
    /// answer).
    pub async fn call(
        &self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> crate::Response {
        crate::request(
            method,
            &self.url(path),
            headers,
            bytes::Bytes::copy_from_slice(body),
            false,
        )
        .await
        .unwrap_or_else(|err| panic!("{path}: no answer: {err}"))
    }

    /// `http://host:port{path}` on the admin address.
    pub fn admin_url(&self, path: &str) -> String {
        let admin = self
            .admin
            .as_deref()
            .expect("started with OMNIA_ADMIN_ADDR");
        format!("http://{admin}{path}")
    }

    /// The value of an unlabelled metric on the admin endpoint's `/metrics` page; panics, with
    /// the page, if it is not there.
    pub async fn metric(&self, name: &str) -> u64 {
        let page = crate::get(&self.admin_url("/metrics"))
            .await
            .expect("the admin endpoint answers")
            .text();
        page.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{page}"))
    }

    /// Everything the process printed so far (stdout and stderr).
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// Waits (up to 10 s) until the log contains `needle`, and returns the log. Log lines reach
    /// the test through reader threads, so a line may arrive just after the response it explains.
    pub fn log_with(&self, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let log = self.log();
            if log.contains(needle) || started.elapsed() > Duration::from_secs(10) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (e.g. `"TERM"`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// What a started `omnia` must show before a test may use it.
#[derive(Clone, Copy)]
enum Ready {
    /// The HTTP trigger listens.
    Http,
    /// The messaging trigger has subscribed.
    Messaging,
}

impl Drop for Omnia {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_after(text: &str, marker: &str) -> Option<String> {
    let at = text.find(marker)? + marker.len();
    let rest = &text[at..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '/')
        .unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

/// `bin run component` with the open-file limit (`ulimit -n`) set to `open_files`, soft and hard.
fn run_with_open_files(bin: &Path, component: &Path, open_files: u32) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n {open_files} && exec \"$0\" run \"$1\""))
        .arg(bin)
        .arg(component);
    cmd
}

/// CPU time (user and system) process `pid` has used so far; `None` once it is gone.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) end with ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10)) // USER_HZ is 100 on Linux
}

/// Runs `bin` with `args` to completion (no inherited environment but `env`). A process still
/// running after a minute is killed (and what it printed returned), so a test expecting an exit
/// fails instead of hanging when the process serves instead.
pub fn run_to_end(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    command_to_end(cmd, env)
}

/// Like [`run_to_end`] for `bin run component`, with the open-file limit (`ulimit -n`) set to
/// `open_files`, soft and hard.
pub fn run_to_end_with_open_files(
    bin: &Path,
    component: &Path,
    env: &[(&str, &str)],
    open_files: u32,
) -> Output {
    command_to_end(run_with_open_files(bin, component, open_files), env)
}

/// Runs `cmd` to completion, as [`run_to_end`] describes.
fn command_to_end(mut cmd: Command, env: &[(&str, &str)]) -> Output {
    let child = cmd
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("omnia runs");
    let pid = child.id().to_string();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(Duration::from_mins(1)).is_err() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    });
    let output = child.wait_with_output().expect("omnia's output");
    let _ = done.send(());
    let _ = watchdog.join();
    output
}
