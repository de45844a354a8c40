//! `omnia run omnia.toml`: a manifest of one guest (upstream omnia's format) is run as if its
//! file, grants, mounts and limits had been given on the command line; its digest pins the
//! file; what cannot be honoured is refused with a message, never ignored. (Manifests of many
//! guests: `application.rs`.)

use std::path::{Path, PathBuf};

use http::StatusCode;
use omnia_tests::{Omnia, get, guests, omnia, run_to_end};
use sha2::{Digest, Sha256};

/// A fresh directory for one test's manifest and files.
fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("omnia-manifest-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/note.txt"), "a note\n").unwrap();
    dir
}

/// Writes `text` as `dir/omnia.toml`.
fn manifest(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("omnia.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn sha256(path: &Path) -> String {
    use std::fmt::Write as _;
    let mut hex = String::new();
    for byte in Sha256::digest(std::fs::read(path).unwrap()) {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// The first lines of what `omnia run PATH` printed when it refused to start.
fn refused(path: &Path) -> String {
    let out = run_to_end(&omnia(), &["run", path.to_str().unwrap()], &[]);
    assert!(!out.status.success(), "omnia started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn status_and_text(server: &Omnia, path: &str) -> (StatusCode, String) {
    let response = get(&server.url(path)).await.expect("omnia answers");
    (response.status, response.text())
}

#[tokio::test]
async fn a_manifest_of_one_guest_runs_with_its_grants_mounts_and_limits() {
    let dir = workdir("one");
    let echo = guests::rust("http-echo");
    let text = format!(
        "# upstream omnia's format, with Omnia's grants and limits\n\
         [[guest]]\nname = \"echo\"\nsource.path = \"{}\"\ndigest = \"sha256:{}\"\n\
         [guest.grants]\nenv = [\"GRANTED_VAR=from the manifest\"]\n\
         [guest.limits]\nrequest_timeout = \"1s\"\n\n\
         [[mount]]\nname = \"/data\"\npath = \"data\"\n",
        echo.display(),
        sha256(&echo)
    );
    let path = manifest(&dir, &text);
    let elsewhere = std::env::temp_dir();
    let shown = path.to_str().unwrap();
    // By the file, by the directory holding it, by `--manifest` and `OMNIA_MANIFEST`, and by
    // running in its directory without naming it.
    let servers = [
        Omnia::try_serve_in(&omnia(), &elsewhere, &[shown], &[]),
        Omnia::try_serve_in(&omnia(), &elsewhere, &[dir.to_str().unwrap()], &[]),
        Omnia::try_serve_in(&omnia(), &elsewhere, &["--manifest", shown], &[]),
        Omnia::try_serve_in(&omnia(), &elsewhere, &[], &[("OMNIA_MANIFEST", shown)]),
        Omnia::try_serve_in(&omnia(), &dir, &[], &[]),
    ];
    for (target, server) in servers.into_iter().enumerate() {
        let server = server.unwrap_or_else(|log| panic!("way {target}: {log}"));
        assert_eq!(
            status_and_text(&server, "/env/GRANTED_VAR").await,
            (StatusCode::OK, "from the manifest\n".into()),
            "way {target}"
        );
        let (status, text) = status_and_text(&server, "/file/data/note.txt").await;
        assert_eq!((status, text.trim()), (StatusCode::OK, "a note"));
        let (status, _) = status_and_text(&server, "/write/data/new.txt").await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "a mount is read-only unless writable"
        );
        let (status, _) = status_and_text(&server, "/sleep/3000").await;
        assert_eq!(
            status,
            StatusCode::GATEWAY_TIMEOUT,
            "limits.request_timeout applies"
        );
    }
}

/// `GET path` with `headers`: the status and the body.
async fn call(server: &Omnia, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let response = server.call(http::Method::GET, path, headers, b"").await;
    (response.status.as_u16(), response.text())
}

#[tokio::test]
async fn the_guests_http_routes_take_their_requests_and_name_the_route() {
    let dir = workdir("routes");
    let text = format!(
        "[[guest]]\nid = \"echo\"\nsource.path = \"{}\"\nroutes.http = [\"/api\", \
         \"/status/...\"]\n",
        guests::rust("http-echo").display()
    );
    let server = Omnia::serve(&omnia(), &manifest(&dir, &text), &[]);
    // Under a route: the guest sees the original path and the route it came by; what the
    // client sent in those headers is replaced.
    let (status, text) = call(
        &server,
        "/%61pi/users/7?x=1",
        &[("omnia-matched-route", "/forged")],
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("path: /%61pi/users/7?x=1\n"), "{text}");
    assert!(
        text.contains("header: omnia-matched-route: /api\n"),
        "{text}"
    );
    assert!(
        text.contains("header: omnia-path-info: /users/7\n"),
        "{text}"
    );
    assert!(!text.contains("/forged"), "{text}");
    assert_eq!(call(&server, "/status/204", &[]).await.0, 204);
    // Not under one: 404 from omnia, the guest never runs.
    for path in ["/", "/apix", "/other/api", "/api/../admin"] {
        assert_eq!(
            call(&server, path, &[]).await,
            (404, "no route\n".into()),
            "{path}"
        );
    }
}

#[test]
fn a_manifest_is_refused_before_anything_listens_when_it_cannot_be_honoured() {
    let dir = workdir("refused");
    let echo = guests::rust("http-echo");
    let guest = format!(
        "[[guest]]\nid = \"echo\"\nsource.path = \"{}\"\n",
        echo.display()
    );
    for (text, expected) in [
        (
            format!("{guest}digest = \"sha256:{}\"\n", "0".repeat(64)),
            format!(
                "omnia.toml:4: guest \"echo\": digest: {} has sha256:{}, not sha256:{}",
                echo.display(),
                sha256(&echo),
                "0".repeat(64)
            ),
        ),
        (
            format!("{guest}routes.messaging = [\"orders\"]\n"),
            format!(
                "omnia.toml:1: guest \"echo\": routes.messaging: {} does not serve messaging",
                echo.display()
            ),
        ),
        (
            format!("{guest}[guest.grants]\nkeyvalue = {{ buckets = [\"a\"] }}\n"),
            "guest \"echo\": grants.keyvalue: no guest of the application uses this capability"
                .into(),
        ),
        (
            format!("{guest}[guest.grants]\nevn = [\"A\"]\n"),
            "grants: unknown key \"evn\"".into(),
        ),
    ] {
        let err = refused(&manifest(&dir, &text));
        assert!(
            err.contains(&expected),
            "{text}\n  got: {err}\n  expected: {expected}"
        );
    }
    let empty = std::env::temp_dir().join(format!("omnia-manifest-none-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    assert!(refused(&empty).contains("is a directory without an omnia.toml"));
    let out = run_to_end(&omnia(), &["run"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("nothing to run: give a component"),
        "{err}"
    );
    let out = run_to_end(
        &omnia(),
        &["run", "--manifest", "a.toml", echo.to_str().unwrap()],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--manifest (OMNIA_MANIFEST) names a.toml and the command line"),
        "{err}"
    );
}
