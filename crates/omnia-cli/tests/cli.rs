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
    let (code, _, stderr) = omnia(&["run"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("<COMPONENT>"), "{stderr}");
    let (code, _, stderr) = omnia(&["serve", "x.wasm"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unrecognized subcommand"), "{stderr}");
}
