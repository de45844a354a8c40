//! `omnia run` on commands: `wasi:cli/run` components (WASI 0.2 and 0.3) and WASI 0.1 core
//! modules. Output, arguments, exit codes, and only the granted environment variables,
//! directories and network.

use omnia_tests::{guests, omnia, run_to_end};

/// The same command guest as a WASI 0.2 component, a WASI 0.3 component and a WASI 0.1 module.
const HELLOS: [&str; 3] = ["hello", "p3-hello", "hello-p1"];

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
    for name in HELLOS {
        let hello = guests::rust(name);
        let hello = hello.to_str().unwrap();
        let (code, stdout, stderr) = run(&["run", hello, "a", "--b", "c d"], &[]);
        assert_eq!(code, 0, "{name}: stderr: {stderr}");
        assert_eq!(
            stdout, "hello from Rust guest, args=[\"a\", \"--b\", \"c d\"]\n",
            "{name}"
        );
        assert_eq!(stderr, "", "omnia itself prints nothing in command mode");

        let (code, stdout, _) = run(&["run", hello, "--", "x", "-y"], &[]);
        assert_eq!(code, 0);
        assert_eq!(stdout, "hello from Rust guest, args=[\"x\", \"-y\"]\n");
    }
}

#[test]
fn exit_codes_become_the_process_exit_code() {
    // `wasi:cli/exit.exit` (what Rust's std calls on WASI 0.2, and the 0.3 twin) reports only
    // success or failure.
    for name in ["hello", "p3-hello"] {
        let hello = guests::rust(name);
        let hello = hello.to_str().unwrap();
        assert_eq!(run(&["run", hello, "exit", "0"], &[]).0, 0, "{name}");
        assert_eq!(run(&["run", hello, "exit", "7"], &[]).0, 1, "{name}");
    }
    // WASI 0.1 `proc_exit` carries the exact value.
    let p1 = guests::rust("hello-p1");
    for code in [0, 7, 33, 125] {
        let (got, _, stderr) = run(
            &["run", p1.to_str().unwrap(), "exit", &code.to_string()],
            &[],
        );
        assert_eq!(got, code, "stderr: {stderr}");
    }
    // exit-with-code carries the exact value.
    for code in [0u8, 3, 42] {
        let wat = guests::wat_exit_code(code);
        let (got, _, stderr) = run(&["run", wat.to_str().unwrap()], &[]);
        assert_eq!(got, i32::from(code), "stderr: {stderr}");
    }
}

#[test]
fn stderr_is_the_guests() {
    for name in HELLOS {
        let hello = guests::rust(name);
        let (code, stdout, stderr) = run(&["run", hello.to_str().unwrap(), "stderr", "oops"], &[]);
        assert_eq!(code, 0, "{name}");
        assert_eq!(stdout, "");
        assert_eq!(stderr, "oops\n", "{name}");
    }
}

#[test]
fn a_trap_exits_134_like_wasmtime() {
    let module = guests::write_temp(
        "trap-p1.wat",
        br#"(module (func (export "_start") unreachable))"#,
    );
    let (code, stdout, stderr) = run(&["run", module.to_str().unwrap()], &[]);
    assert_eq!(code, 134, "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("unreachable"),
        "the trap is reported: {stderr}"
    );
}

#[test]
fn a_core_module_without_start_is_refused_by_name() {
    let module = guests::write_temp("reactor-p1.wat", br#"(module (func (export "f")))"#);
    let (code, _, stderr) = run(&["run", module.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("no `_start` export"), "{stderr}");
}

#[test]
fn sees_only_granted_env_vars() {
    for name in HELLOS {
        sees_only_granted_env_vars_in(name);
    }
}

fn sees_only_granted_env_vars_in(name: &str) {
    let hello = guests::rust(name);
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
fn p3_and_p1_commands_see_only_granted_directories() {
    let dir = std::env::temp_dir().join(format!("omnia-dir-cat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("note.txt"), "from the host\n").unwrap();
    let grant = format!("{}::/data", dir.to_str().unwrap());
    for name in ["p3-hello", "hello-p1"] {
        let hello = guests::rust(name);
        let hello = hello.to_str().unwrap();
        let (code, stdout, stderr) = run(
            &["run", "--dir", &grant, hello, "cat", "/data/note.txt"],
            &[],
        );
        assert_eq!(
            (code, stdout.as_str()),
            (0, "from the host\n"),
            "{name}: {stderr}"
        );
        let (code, stdout, stderr) = run(&["run", hello, "cat", "/data/note.txt"], &[]);
        assert_eq!(
            (code, stdout.as_str()),
            (1, ""),
            "{name}: nothing without --dir"
        );
        assert!(stderr.starts_with("cat: "), "{name}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_network_is_granted_only_with_inherit_network() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hello = guests::rust("p3-hello");
    let hello = hello.to_str().unwrap();
    let (code, stdout, stderr) = run(&["run", hello, "connect", &addr], &[]);
    assert_eq!((code, stdout.as_str()), (1, ""), "denied by default");
    assert_eq!(stderr, "connect: access-denied\n");
    let (code, stdout, stderr) = run(&["run", "--inherit-network", hello, "connect", &addr], &[]);
    assert_eq!((code, stdout.as_str()), (0, "connected\n"), "{stderr}");
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
