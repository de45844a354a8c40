//! What served guests (0.2 and 0.3 HTTP handlers) are granted: environment variables,
//! directories (read-write or read-only) and the network, only with `--env`, `--dir`,
//! `--dir-ro` and `--inherit-network` (or `wasmtime serve`'s `-S` spellings), as commands are.

use std::net::TcpListener;

use http::StatusCode;
use omnia_tests::{Omnia, get, guests, omnia, p2_and_p3};

p2_and_p3!(served_guests_see_only_what_is_granted);

async fn served_guests_see_only_what_is_granted(echo: &str) {
    let dir = tempdir(echo);
    std::fs::write(dir.join("note.txt"), "a note\n").unwrap();
    let dir = dir.to_str().unwrap().to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || for _ in listener.incoming() {});
    let probes = [
        "/env/GRANTED_VAR".to_string(),
        format!("/file{dir}/note.txt"),
        format!("/write{dir}/new.txt"),
        format!("/connect/{target}"),
    ];
    let answers = |server: Omnia| {
        let probes = probes.clone();
        async move {
            let mut answers = Vec::new();
            for probe in &probes {
                let response = get(&server.url(probe)).await.unwrap();
                answers.push((response.status, response.text()));
            }
            (answers, server.log())
        }
    };
    let serve = |flags: &[&str], env: &[(&str, &str)]| {
        Omnia::try_serve_with(&omnia(), flags, &guests::rust(echo), env)
            .unwrap_or_else(|log| panic!("{echo}: {log}"))
    };

    // Nothing granted: nothing seen (and nothing reported as granted).
    let (denied, log) = answers(serve(&[], &[("GRANTED_VAR", "in omnia's env")])).await;
    for (probe, (status, text)) in probes.iter().zip(&denied) {
        assert_eq!(*status, StatusCode::FORBIDDEN, "{echo} {probe}: {text}");
    }
    assert!(!log.contains("granted to the guest"), "{log}");

    // Everything granted, with omnia's own spellings.
    let flags = [
        "--env",
        "GRANTED_VAR=yes",
        "--dir",
        &dir,
        "--inherit-network",
    ];
    let (granted, log) = answers(serve(&flags, &[])).await;
    let texts: Vec<_> = granted.iter().map(|(_, t)| t.trim()).collect();
    assert!(
        granted.iter().all(|(s, _)| *s == StatusCode::OK),
        "{echo}: {granted:?}"
    );
    assert_eq!(texts[0], "yes", "{echo}");
    assert_eq!(texts[1], "a note", "{echo}");
    assert_eq!(texts[3], "connected", "{echo}");
    assert!(
        log.contains(&format!(
            "granted to the guest: env: GRANTED_VAR; dirs: {dir}; network"
        )),
        "{log}"
    );

    // wasmtime serve's spellings; the directory read-only: read, but not written.
    let ro = format!("{dir}::{dir}");
    let flags = [
        "--env",
        "GRANTED_VAR",
        "--dir-ro",
        &ro,
        "-S",
        "inherit-network,allow-ip-name-lookup",
        "-S",
        "cli",
    ];
    let (read_only, _) = answers(serve(&flags, &[("GRANTED_VAR", "inherited")])).await;
    let statuses: Vec<_> = read_only.iter().map(|(s, _)| s.as_u16()).collect();
    assert_eq!(statuses, [200, 200, 403, 200], "{echo}: {read_only:?}");
    assert_eq!(read_only[0].1.trim(), "inherited", "{echo}");
}

#[test]
fn bad_grants_are_refused_at_start_naming_the_flag() {
    for (flags, message) in [
        (
            &["--dir-ro", "/no/such/dir"][..],
            "--dir-ro /no/such/dir: /no/such/dir is not a directory on this machine",
        ),
        (
            &["--env", "SURELY_UNSET_VAR"][..],
            "--env SURELY_UNSET_VAR: SURELY_UNSET_VAR is not set",
        ),
        (&["-S", "threads"][..], "-S threads: unknown option"),
    ] {
        let log = Omnia::try_serve_with(&omnia(), flags, &guests::rust("http-hello"), &[])
            .err()
            .unwrap_or_else(|| panic!("{flags:?} was accepted"));
        assert!(log.contains(message), "{flags:?}: {log}");
    }
}

/// A fresh directory under the system's temporary directory.
fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("omnia-grants-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
