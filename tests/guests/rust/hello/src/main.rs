//! A `wasi:cli/run` command. With no arguments it greets; otherwise the first argument picks
//! what to do, so one guest covers args, env, files, stderr and exit codes:
//!
//! * `env`: print every visible environment variable, sorted, as `KEY=VALUE`
//! * `read PATH`: print the file, or `error: ...` and exit 1
//! * `write PATH TEXT`: write the file
//! * `ls PATH`: print the names in a directory, sorted
//! * `stderr TEXT`: print TEXT to stderr
//! * `exit CODE`: exit with CODE
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
        ["read", path] => match std::fs::read_to_string(path) {
            Ok(text) => print!("{text}"),
            Err(err) => {
                println!("error: {err}");
                exit(1);
            }
        },
        ["write", path, text] => {
            if let Err(err) = std::fs::write(path, text) {
                println!("error: {err}");
                exit(1);
            }
        }
        ["ls", path] => match std::fs::read_dir(path) {
            Ok(entries) => {
                let mut names: Vec<String> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                for name in names {
                    println!("{name}");
                }
            }
            Err(err) => {
                println!("error: {err}");
                exit(1);
            }
        },
        ["stderr", text] => eprintln!("{text}"),
        ["exit", code] => exit(code.parse().unwrap_or(2)),
        _ => println!("hello from Rust guest, args={args:?}"),
    }
}
