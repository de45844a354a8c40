//! A `wasi:cli/run` command (files are covered by a WAT guest in the tests: Debian's 2022
//! wasi-libc, which these guests link, traps in wasmtime 48 on its first preopen lookup in the
//! wasip2 build; the wasip1 build, `hello-p1`, reads files with `cat`). With no arguments it
//! greets; otherwise the first argument picks what to do, so one guest covers args, env, stderr
//! and exit codes:
//!
//! * `env`: print every visible environment variable, sorted, as `KEY=VALUE`
//! * `stderr TEXT`: print TEXT to stderr
//! * `exit CODE`: exit with CODE
//! * `cat PATH` (the WASIp1 build, `hello-p1`, only): print the file PATH (`std::fs`, which finds
//!   its preopen through wasi-libc); on failure `cat: ERROR` (the `std::io::Error`) on stderr
//!   and exit 1. Not in the wasip2 build, whose wasi-libc traps on the preopen lookup (above).
use std::process::exit;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["env"] => {
            let mut vars: Vec<(String, String)> = std::env::vars().collect();
            vars.sort();
            for (key, value) in vars {
                println!("{key}={value}");
            }
        }
        ["stderr", text] => eprintln!("{text}"),
        ["exit", code] => exit(code.parse().unwrap_or(2)),
        #[cfg(target_env = "p1")]
        ["cat", path] => match std::fs::read(path) {
            Ok(data) => {
                use std::io::Write;
                std::io::stdout().write_all(&data).unwrap();
            }
            Err(error) => {
                eprintln!("cat: {error}");
                exit(1);
            }
        },
        _ => println!("hello from Rust guest, args={args:?}"),
    }
}
