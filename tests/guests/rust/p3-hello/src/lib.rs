//! The WASIp3 twin of `hello`: a command exporting `wasi:cli/run@0.3.0` (`run: async func`)
//! that behaves like `hello` for the same arguments and environment, but does its I/O through
//! wasi:cli@0.3.0 instead of Rust's std (which would go through WASIp2):
//!
//! * arguments and environment from `wasi:cli/environment@0.3.0` (`get-arguments`, whose first
//!   entry is the program name as in `std::env::args`, and `get-environment`);
//! * output through `wasi:cli/stdout@0.3.0` / `stderr@0.3.0` `write-via-stream`;
//! * exit through `wasi:cli/exit@0.3.0` `exit`: `exit 0` succeeds and any other code fails, so the
//!   host sees status 0 or 1, like `hello` (whose std `exit` goes through WASIp2's `exit(result)`).
//!
//! With no arguments it greets; otherwise the first argument picks what to do:
//!
//! * `env`: print every visible environment variable, sorted, as `KEY=VALUE`
//! * `stderr TEXT`: print TEXT to stderr
//! * `exit CODE`: exit with CODE (2 if CODE is no number)
//! * `cat PATH`: print the file PATH through `wasi:filesystem@0.3.0`: PATH is resolved against the
//!   first preopen (`get-directories`) whose guest path is a prefix of it, opened with `open-at`
//!   and read with `read-via-stream`; on failure `cat: ERROR` (the `error-code` case, e.g.
//!   `cat: no-entry`; `no-entry` too when no preopen holds PATH) on stderr and exit 1
//! * `connect HOST:PORT`: connect a `wasi:sockets@0.3.0` IPv4 TCP socket to HOST:PORT (HOST an
//!   IPv4 address) and print `connected`; on failure `connect: ERROR` (the `error-code` case, e.g.
//!   `connect: access-denied`; `invalid-argument` for an unparsable address) on stderr and exit 1
//! * anything else: greet (`hello from Rust guest, args=[...]`, the arguments in Rust's `{:?}`)

wit_bindgen::generate!({
    path: "../../wit/p3",
    world: "omnia:guests-p3/command",
    generate_all,
});

use wasi::cli::{environment, exit, stderr, stdout};
use wasi::filesystem::{preopens, types as fs};
use wasi::sockets::types as net;

struct Component;

/// Writes `text` to stdout (or stderr) and waits until the host has taken all of it.
async fn write(to_stderr: bool, text: String) {
    write_bytes(to_stderr, text.into_bytes()).await
}

/// Writes `bytes` to stdout (or stderr) and waits until the host has taken all of them.
async fn write_bytes(to_stderr: bool, bytes: Vec<u8>) {
    let (mut tx, rx) = wit_stream::new::<u8>();
    let done = if to_stderr { stderr::write_via_stream(rx) } else { stdout::write_via_stream(rx) };
    let _unsent = tx.write_all(bytes).await;
    drop(tx);
    let _ = done.await;
}

/// Prints `text` to stderr and exits with status 1.
async fn fail(text: String) -> ! {
    write(true, text).await;
    exit::exit(Err(()));
    unreachable!("wasi:cli/exit returned")
}

/// The WIT name of an `error-code` case (without payload) from its `Debug` form:
/// `ErrorCode::NoEntry` -> `no-entry`.
fn case_name(debug: String) -> String {
    let case = debug.rsplit("::").next().unwrap_or(&debug);
    let mut name = String::new();
    for (i, c) in case.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                name.push('-');
            }
            name.push(c.to_ascii_lowercase());
        } else {
            name.push(c);
        }
    }
    name
}

/// The contents of the file `path` (see `cat` in the module documentation).
async fn cat(path: &str) -> Result<Vec<u8>, String> {
    let preopen = preopens::get_directories().into_iter().find_map(|(dir, guest)| {
        let rest = path.strip_prefix(guest.as_str())?;
        let rest = if guest.ends_with('/') || rest.is_empty() || rest.starts_with('/') {
            rest.trim_start_matches('/')
        } else {
            return None;
        };
        Some((dir, if rest.is_empty() { ".".to_string() } else { rest.to_string() }))
    });
    let Some((dir, relative)) = preopen else { return Err("no-entry".to_string()) };
    let file = dir
        .open_at(
            fs::PathFlags::empty(),
            relative,
            fs::OpenFlags::empty(),
            fs::DescriptorFlags::READ,
        )
        .await
        .map_err(fs_error_name)?;
    let (data, done) = file.read_via_stream(0);
    let data = data.collect().await;
    done.await.map_err(fs_error_name)?;
    Ok(data)
}

/// Connects an IPv4 TCP socket to `address` (`A.B.C.D:PORT`).
async fn connect(address: &str) -> Result<(), String> {
    let address: std::net::SocketAddrV4 =
        address.parse().map_err(|_| "invalid-argument".to_string())?;
    let [a, b, c, d] = address.ip().octets();
    let socket = net::TcpSocket::create(net::IpAddressFamily::Ipv4).map_err(error_name)?;
    let remote = net::IpSocketAddress::Ipv4(net::Ipv4SocketAddress {
        port: address.port(),
        address: (a, b, c, d),
    });
    socket.connect(remote).await.map_err(error_name)
}

/// The WIT name of a wasi:filesystem `error-code` (`other: MESSAGE` when `other` carries one).
fn fs_error_name(error: fs::ErrorCode) -> String {
    match error {
        fs::ErrorCode::Other(Some(message)) => format!("other: {message}"),
        error => case_name(format!("{error:?}")),
    }
}

/// The WIT name of a wasi:sockets `error-code` (`other: MESSAGE` when `other` carries one).
fn error_name(error: net::ErrorCode) -> String {
    match error {
        net::ErrorCode::Other(Some(message)) => format!("other: {message}"),
        error => case_name(format!("{error:?}")),
    }
}

impl exports::wasi::cli::run::Guest for Component {
    async fn run() -> Result<(), ()> {
        let args: Vec<String> = environment::get_arguments().into_iter().skip(1).collect();
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["env"] => {
                let mut vars: Vec<(String, String)> = environment::get_environment();
                vars.sort();
                let mut text = String::new();
                for (key, value) in vars {
                    text.push_str(&format!("{key}={value}\n"));
                }
                write(false, text).await;
            }
            ["stderr", text] => write(true, format!("{text}\n")).await,
            ["exit", code] => {
                let code: i32 = code.parse().unwrap_or(2);
                exit::exit(if code == 0 { Ok(()) } else { Err(()) });
            }
            ["cat", path] => match cat(path).await {
                Ok(data) => write_bytes(false, data).await,
                Err(error) => fail(format!("cat: {error}\n")).await,
            },
            ["connect", address] => match connect(address).await {
                Ok(()) => write(false, "connected\n".to_string()).await,
                Err(error) => fail(format!("connect: {error}\n")).await,
            },
            _ => write(false, format!("hello from Rust guest, args={args:?}\n")).await,
        }
        Ok(())
    }
}

export!(Component);
