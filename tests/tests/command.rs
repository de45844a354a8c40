//! `omnia run` on `wasi:cli/run` components: output, arguments, exit codes, and only the
//! granted environment variables and directories.

use omnia_tests::{guests, omnia, run_to_end};

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = run_to_end(&omnia(), args, env);
    (
        out.status.code().expect("exited normally"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn prints_output_and_passes_args() {
    let hello = guests::rust("hello");
    let hello = hello.to_str().unwrap();
    let (code, stdout, stderr) = run(&["run", hello, "a", "--b", "c d"], &[]);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(
        stdout,
        "hello from Rust guest, args=[\"a\", \"--b\", \"c d\"]\n"
    );
    assert_eq!(stderr, "", "omnia itself prints nothing in command mode");

    let (code, stdout, _) = run(&["run", hello, "--", "x", "-y"], &[]);
    assert_eq!(code, 0);
    assert_eq!(stdout, "hello from Rust guest, args=[\"x\", \"-y\"]\n");
}

#[test]
fn exit_codes_become_the_process_exit_code() {
    let hello = guests::rust("hello");
    let hello = hello.to_str().unwrap();
    // A Rust std guest goes through the WASI p1 adapter, which reports success or failure.
    assert_eq!(run(&["run", hello, "exit", "0"], &[]).0, 0);
    assert_eq!(run(&["run", hello, "exit", "7"], &[]).0, 1);
    // exit-with-code carries the exact value.
    for code in [0u8, 3, 42] {
        let wat = guests::wat_exit_code(code);
        let (got, _, stderr) = run(&["run", wat.to_str().unwrap()], &[]);
        assert_eq!(got, i32::from(code), "stderr: {stderr}");
    }
}

#[test]
fn stderr_is_the_guests() {
    let hello = guests::rust("hello");
    let (code, stdout, stderr) = run(&["run", hello.to_str().unwrap(), "stderr", "oops"], &[]);
    assert_eq!(code, 0);
    assert_eq!(stdout, "");
    assert_eq!(stderr, "oops\n");
}

#[test]
fn sees_only_granted_env_vars() {
    let hello = guests::rust("hello");
    let hello = hello.to_str().unwrap();
    let host_env = [("SECRET", "host-only"), ("PASSED", "from-host")];
    let (code, stdout, _) = run(&["run", hello, "env"], &host_env);
    assert_eq!(code, 0);
    assert_eq!(stdout, "", "no variable is visible without --env");

    let (code, stdout, stderr) = run(
        &[
            "run",
            "--env",
            "GREETING=hi there",
            "--env",
            "PASSED",
            hello,
            "env",
        ],
        &host_env,
    );
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(stdout, "GREETING=hi there\nPASSED=from-host\n");

    let (code, _, stderr) = run(&["run", "--env", "MISSING_VAR", hello, "env"], &host_env);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("MISSING_VAR"),
        "error names the variable: {stderr}"
    );
}

#[test]
fn sees_only_granted_directories() {
    let reader = guests::wat_fs_reader();
    let reader = reader.to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("omnia-dir-grant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("note.txt"), "from the host\n").unwrap();
    let host = dir.to_str().unwrap();

    let (code, stdout, stderr) = run(&["run", reader], &[]);
    assert_eq!(
        (code, stdout.as_str()),
        (0, ""),
        "no directory without --dir: {stderr}"
    );

    let grant = format!("{host}::/data");
    let (code, stdout, stderr) = run(&["run", "--dir", &grant, reader], &[]);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(stdout, "preopen /data\nnote.txt: from the host\n");

    let (code, stdout, _) = run(&["run", "--dir", host, reader], &[]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with(&format!("preopen {host}\n")), "{stdout}");

    let (code, _, stderr) = run(&["run", "--dir", "/no/such/dir", reader], &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("/no/such/dir"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn version_names_the_features() {
    let (code, stdout, _) = run(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("omnia "), "{stdout}");
    assert!(
        stdout.contains("jit") && stdout.contains("http"),
        "{stdout}"
    );
}
