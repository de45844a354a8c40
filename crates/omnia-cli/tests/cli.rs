//! The `omnia` command line itself: subcommands and usage errors. (Behaviour is tested end to
//! end in the `omnia-tests` crate; building this test is also what puts the default `omnia`
//! binary at `target/debug/omnia` for those tests.)

use std::process::Command;

fn omnia(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_omnia"))
        .args(args)
        .output()
        .expect("omnia runs");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_run_and_compile() {
    let (code, stdout, _) = omnia(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("run") && stdout.contains("compile"),
        "{stdout}"
    );
}

#[test]
fn usage_errors_exit_2() {
    // Without a component, `run` runs ./omnia.toml; there is none here.
    let (code, _, stderr) = omnia(&["run"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("nothing to run: give a component"),
        "{stderr}"
    );
    let (code, _, stderr) = omnia(&["serve", "x.wasm"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unrecognized subcommand"), "{stderr}");
}

#[test]
fn run_help_lists_the_settings_with_their_variables_and_defaults() {
    let (code, stdout, _) = omnia(&["run", "--help"]);
    assert_eq!(code, 0);
    for expected in [
        "--listen <ADDR>",
        "[env: OMNIA_HTTP_ADDR] [default: 0.0.0.0:8080]",
        "--max-concurrency <N>",
        "[env: OMNIA_MAX_CONCURRENCY] [default: 256]",
        "--memory-budget <SIZE>",
        "--keyvalue <BACKEND>",
    ] {
        assert!(stdout.contains(expected), "{expected} missing:\n{stdout}");
    }
    assert!(!stdout.contains("--redis-url"), "secrets are never flags");
}

/// `omnia run --help` lists every setting, and the README's settings table lists the same ones:
/// a setting in one and not the other fails here (the table is written by hand from the same
/// `Setting`s, one row each).
#[test]
fn run_help_and_the_readme_list_the_same_settings() {
    let (code, help, _) = omnia(&["run", "--help"]);
    assert_eq!(code, 0);
    let mut in_help: Vec<&str> = help
        .split("[env: ")
        .skip(1)
        .map(|rest| rest.split([']', ' ']).next().unwrap_or(""))
        .collect();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("the README");
    let table = readme
        .split("### Configuration")
        .nth(1)
        .expect("a Configuration section");
    let mut in_readme: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.starts_with("| variable |"))
        .skip(2)
        .take_while(|l| l.starts_with("| `"))
        .map(|l| l.trim_start_matches("| `").split('`').next().unwrap_or(""))
        .collect();
    let count = in_help.len();
    in_help.sort_unstable();
    in_readme.sort_unstable();
    assert_eq!(
        in_help, in_readme,
        "omnia run --help (left) and the README table (right)"
    );
    assert_eq!(count, in_readme.len(), "each setting once in --help");
    for grant in ["--env <KEY[=VALUE]>", "--dir-ro", "-S <OPTION[=y|n]>"] {
        assert!(help.contains(grant), "{grant} missing:\n{help}");
    }
}

/// Help shows whether a secret is set, never its value.
#[test]
fn run_help_says_a_secret_is_set_without_showing_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_omnia"))
        .args(["run", "--help"])
        .env("REDIS_URL", "redis://:s3cret@127.0.0.1:1/")
        .output()
        .expect("omnia runs");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("[env: REDIS_URL (set)]"), "{help}");
    assert!(!help.contains("s3cret"), "{help}");
}

#[test]
fn a_bad_flag_value_names_the_flag_and_its_variable() {
    let (code, _, stderr) = omnia(&["run", "--max-memory", "lots", "app.wasm"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--max-memory \"lots\" (OMNIA_MAX_MEMORY) is not valid"),
        "{stderr}"
    );
}

#[test]
fn version_names_capabilities_backends_and_wasmtime() {
    let (code, stdout, _) = omnia(&["--version"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains(
            "(features: jit, http, keyvalue[memory,redis,nats], messaging[memory,nats], config, otel, sql[sqlite])"
        ),
        "{stdout}"
    );
    assert!(
        stdout.ends_with(&format!(", wasmtime {}\n", omnia::cli::WASMTIME_VERSION)),
        "{stdout}"
    );
}

#[test]
fn a_component_as_first_argument_means_run() {
    // As `wasmtime app.wasm`: what `nix run .#omnia-full -- app.wasm` passes.
    let (code, _, stderr) = omnia(&["/no/such/app.wasm"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("cannot read /no/such/app.wasm"), "{stderr}");
}
