//! wasi:config end to end: the `config-http` guest reads what the operator granted (a TOML file,
//! variables by name or by prefix) and nothing else, not even the runtime's own secrets; bad
//! grants stop start-up naming the file and line or the variable.

use omnia_tests::{Omnia, get, guests, omnia, run_to_end};

/// `GET path` on `server`: (status, body).
async fn read(server: &Omnia, path: &str) -> (u16, String) {
    let response = get(&server.url(path)).await.expect("omnia answers");
    (response.status.as_u16(), response.text())
}

#[tokio::test]
async fn the_guest_sees_what_is_granted_and_nothing_else() {
    let file = guests::write_temp(
        "app-config.toml",
        b"greeting = \"hello from the file\"\nretries = 3\nregion = \"file-region\"\n",
    );
    let server = Omnia::serve(
        &omnia(),
        &guests::rust("config-http"),
        &[
            ("OMNIA_CONFIG_FILE", file.to_str().unwrap()),
            ("OMNIA_CONFIG_ENV", "REGION,FEATURE_FLAGS,NOT_SET"),
            ("OMNIA_CONFIG_ENV_PREFIX", "APP_"),
            ("REGION", "eu-west"),
            ("FEATURE_FLAGS", "beta"),
            ("APP_COLOUR", "blue"),
            // Not granted: an unrelated variable and the runtime's own, which hold credentials.
            ("DATABASE_PASSWORD", "hunter2"),
            ("NATS_URL", "nats://omnia:s3cret@127.0.0.1:1"),
            ("OMNIA_MESSAGING", "memory"),
        ],
    );
    assert_eq!(
        read(&server, "/config").await,
        (
            200,
            "COLOUR=blue\nFEATURE_FLAGS=beta\nREGION=eu-west\ngreeting=hello from the \
             file\nregion=file-region\nretries=3\n"
                .to_string()
        )
    );
    assert_eq!(read(&server, "/config/retries").await, (200, "3".into()));
    assert_eq!(read(&server, "/config/COLOUR").await, (200, "blue".into()));
    for hidden in [
        "DATABASE_PASSWORD",
        "NATS_URL",
        "APP_COLOUR",
        "NOT_SET",
        "OMNIA_CONFIG_ENV",
    ] {
        assert_eq!(
            read(&server, &format!("/config/{hidden}")).await,
            (404, "no such key\n".into()),
            "{hidden} must not be visible"
        );
    }
    let log = server.log_with("not set");
    assert!(
        log.contains("OMNIA_CONFIG_ENV grants NOT_SET, not set"),
        "{log}"
    );
    assert!(
        !log.contains("hunter2") && !log.contains("blue"),
        "no values in logs: {log}"
    );
}

#[tokio::test]
async fn a_granted_variable_wins_over_the_file() {
    let file = guests::write_temp("app-override.toml", b"REGION = \"from-file\"\n");
    let server = Omnia::serve(
        &omnia(),
        &guests::rust("config-http"),
        &[
            ("OMNIA_CONFIG_FILE", file.to_str().unwrap()),
            ("OMNIA_CONFIG_ENV", "REGION"),
            ("REGION", "from-env"),
        ],
    );
    assert_eq!(
        read(&server, "/config/REGION").await,
        (200, "from-env".into())
    );
}

#[tokio::test]
async fn nothing_is_visible_by_default() {
    let server = Omnia::serve(
        &omnia(),
        &guests::rust("config-http"),
        &[("HOME", "/root"), ("PATH", "/usr/bin")],
    );
    assert_eq!(read(&server, "/config").await, (200, String::new()));
    assert_eq!(read(&server, "/config/PATH").await.0, 404);
}

/// `omnia run config-http.wasm` with `env` must fail before serving; returns stderr.
fn start_fails(env: &[(&str, &str)]) -> String {
    let guest = guests::rust("config-http");
    let out = run_to_end(&omnia(), &["run", guest.to_str().unwrap()], env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "exit code 1, stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    stderr
}

#[test]
fn bad_config_stops_start_up_naming_the_file_line_or_variable() {
    let invalid = guests::write_temp("invalid.toml", b"a = \"x\"\nb = \"unterminated\n");
    let err = start_fails(&[("OMNIA_CONFIG_FILE", invalid.to_str().unwrap())]);
    assert!(
        err.contains("OMNIA_CONFIG_FILE") && err.contains("invalid.toml") && err.contains("line 2"),
        "{err}"
    );

    let nested = guests::write_temp("nested.toml", b"a = 1\n\n[db]\nhost = \"x\"\n");
    let err = start_fails(&[("OMNIA_CONFIG_FILE", nested.to_str().unwrap())]);
    assert!(
        err.contains("nested.toml") && err.contains("line 3: \"db\" is a table"),
        "{err}"
    );

    let err = start_fails(&[("OMNIA_CONFIG_FILE", "/no/such/config.toml")]);
    assert!(err.contains("cannot read /no/such/config.toml"), "{err}");

    let err = start_fails(&[("OMNIA_CONFIG_ENV", "REGION,NATS_URL")]);
    assert!(
        err.contains("OMNIA_CONFIG_ENV")
            && err.contains("NATS_URL is one of the runtime's own settings"),
        "{err}"
    );

    let err = start_fails(&[("OMNIA_CONFIG_ENV", "MY-VAR")]);
    assert!(
        err.contains("\"MY-VAR\" is not an environment variable name"),
        "{err}"
    );

    let err = start_fails(&[("OMNIA_CONFIG_ENV_PREFIX", "OMNIA")]);
    assert!(
        err.contains("OMNIA_CONFIG_ENV_PREFIX") && err.contains("choose a prefix of your own"),
        "{err}"
    );
}
