//! The manifest's reading and every error it reports.

use std::path::PathBuf;
use std::time::Duration;

use super::*;

const CAPABILITIES: &[&str] = &["http", "keyvalue", "messaging"];

/// A directory holding `a.wasm` (bytes `a`) and `data/`, for the manifests to name.
fn dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("omnia-manifest-{}-{n}", std::process::id()));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("a.wasm"), b"a").unwrap();
    std::fs::write(dir.join("b.wasm"), b"b").unwrap();
    dir
}

fn parse(text: &str) -> Result<Manifest> {
    Manifest::parse(&dir().join("omnia.toml"), text, CAPABILITIES)
}

/// The error of `text`, without the directory (`omnia.toml:LINE: ...`).
fn error(text: &str) -> String {
    let err = format!("{:#}", parse(text).expect_err(text));
    let start = err.find("omnia.toml").unwrap_or(0);
    err[start..].to_string()
}

/// sha256 of the bytes `a`.
const DIGEST_OF_A: &str = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";

#[test]
fn reads_upstreams_files_and_ours() {
    // Upstream's examples/http-routing, as written (but for the paths).
    let upstream = parse(
        "[[guest]]\nid = \"a\"\nsource.path = \"a.wasm\"\nroutes.http = [\"/a\"]\n\n\
         [[guest]]\nid = \"b\"\nsource.path = \"b.wasm\"\nroutes.http = [\"/b\"]\n\n\
         [transport]\ndefault = \"in-process\"\n",
    )
    .unwrap();
    let ids: Vec<&str> = upstream.guests.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(upstream.guests[1].routes.http[0].prefix(), "/b");
    assert_eq!(upstream.guests[1].line, 6);
    assert!(upstream.guests[0].source.ends_with("a.wasm"));

    let ours = parse(&format!(
        "[[guest]]\nname = \"api\"\nsource.path = \"a.wasm\"\ndigest = \"sha256:{}\"\n\
         routes.http = [\"/api\"]\nroutes.host = \"api.example.com\"\n\
         routes.messaging = [\"orders.>\"]\ncommand = false\n\
         [guest.grants]\nenv = [\"A=1\"]\ndirs = [\"data::/data\"]\nnetwork = true\n\
         keyvalue = {{ buckets = [\"orders\"] }}\n\
         [guest.limits]\nmemory = \"64MiB\"\nrequest_timeout = \"10s\"\n\n\
         [[mount]]\nname = \".\"\npath = \"data\"\n",
        DIGEST_OF_A.to_uppercase()
    ))
    .unwrap();
    let api = &ours.guests[0];
    assert_eq!(api.id, "api");
    assert_eq!(api.digest.as_deref(), Some(DIGEST_OF_A));
    assert_eq!(api.routes.http[0].host(), Some("api.example.com"));
    assert_eq!(api.routes.http[0].prefix(), "/api");
    assert_eq!(api.routes.messaging, ["orders.>"]);
    assert_eq!(api.grants.env, ["A=1"]);
    assert!(api.grants.network);
    assert_eq!(
        api.grants.capabilities["keyvalue"]["buckets"],
        toml::Value::Array(vec!["orders".into()])
    );
    assert_eq!(api.limits.memory, Some(64 << 20));
    assert_eq!(api.limits.request_timeout, Some(Duration::from_secs(10)));
    assert_eq!(ours.mounts.len(), 1);
    assert!(!ours.mounts[0].writable);
}

/// Checks that each text's error contains its expected words.
fn errors(cases: &[(String, &str)]) {
    for (text, expected) in cases {
        let got = error(text);
        assert!(
            got.contains(expected),
            "{text}\n  got: {got}\n  expected: {expected}"
        );
    }
}

const A: &str = "[[guest]]\nid = \"a\"\nsource.path = \"a.wasm\"\n";

#[test]
fn every_mistake_names_the_line_the_guest_and_the_key() {
    let a = A;
    errors(&[
        (
            format!("{a}routez.http = [\"/\"]\n"),
            "omnia.toml:4: unknown field `routez`",
        ),
        (
            format!("{a}routes.htp = [\"/\"]\n"),
            "omnia.toml:4: unknown field `htp`",
        ),
        (String::new(), "no [[guest]]"),
        (
            "[[guest]]\nsource.path = \"a.wasm\"\n".into(),
            "omnia.toml:1: this [[guest]] has no `id`",
        ),
        (
            format!("{a}name = \"b\"\n"),
            "omnia.toml:4: a guest has `id` (upstream 0.35) or `name` (0.37), not both",
        ),
        (
            "[[guest]]\nid = \"a b\"\nsource.path = \"a.wasm\"\n".into(),
            "omnia.toml:2: guest id \"a b\": may hold only letters, digits",
        ),
        (
            "[[guest]]\nid = \"a\"\n".into(),
            "omnia.toml:1: guest \"a\" has no source: add source.path = \"a.wasm\"",
        ),
        (
            "[[guest]]\nid = \"a\"\nsource.path = \"none.wasm\"\n".into(),
            "omnia.toml:3: guest \"a\": source.path: ",
        ),
        (
            "[[guest]]\nid = \"a\"\nsource.package = \"acme:app@1.0\"\n".into(),
            "omnia.toml:3: guest \"a\": source.package: \"acme:app@1.0\": components from \
             a registry are not supported",
        ),
        (
            format!("{a}digest = \"md5:00\"\n"),
            "omnia.toml:4: guest \"a\": digest: \"md5:00\" is not a digest",
        ),
        (
            format!("{a}digest = \"sha256:{}\"\n", "0".repeat(64)),
            "is not the one pinned",
        ),
        (
            format!("{a}routes.websocket = [\"/ws\"]\n"),
            "omnia.toml:4: guest \"a\": routes.websocket: WebSocket routes are not supported",
        ),
        (
            format!("{a}routes.messaging = [\"x\", \"x\"]\n"),
            "omnia.toml:4: guest \"a\": routes.messaging: \"x\" is listed twice",
        ),
        (
            format!("{a}[guest.limits]\nmemory = \"8GiB\"\n"),
            "omnia.toml:5: guest \"a\": limits.memory: expected a size from 64KiB to 4GiB",
        ),
        (
            format!("{a}[guest.limits]\nrequest_timeout = \"0s\"\n"),
            "omnia.toml:5: guest \"a\": limits.request_timeout: ",
        ),
        (
            format!("{a}[guest.limits]\nconcurrency = 0\n"),
            "omnia.toml:5: guest \"a\": limits.concurrency: 0 is not a count of requests: give 1 \
             or more",
        ),
    ]);
}

#[test]
fn mistakes_in_grants_and_across_guests_are_named_too() {
    let a = A;
    errors(&[
        (
            format!("{a}routes.http = [\"api\"]\n"),
            "omnia.toml:4: guest \"a\": routes.http: ",
        ),
        (
            format!("{a}routes.http = [\"/api\"]\nroutes.host = \"example.com:80\"\n"),
            "omnia.toml:5: guest \"a\": routes.host: ",
        ),
        (
            format!(
                "{a}routes.http = [\"/api\"]\n[[guest]]\nid = \"b\"\nsource.path = \
                 \"b.wasm\"\nroutes.http = [\"/api/...\"]\n"
            ),
            "omnia.toml:5: routes.http: components `a` and `b` both have the route `/api`",
        ),
        (
            format!("{a}[guest.grants]\nevn = [\"A\"]\n"),
            "omnia.toml:4: guest \"a\": grants: unknown key \"evn\": expected env, dirs, \
             dirs_ro, network, or the name of a capability of this build (http, keyvalue, \
             messaging)",
        ),
        (
            format!("{a}[guest.grants]\nsql = {{ url = \"x\" }}\n"),
            "grants: unknown key \"sql\"",
        ),
        (
            format!("{a}[guest.grants]\nenv = \"A\"\n"),
            "grants: env: expected a list of strings",
        ),
        (
            format!("{a}\n[[guest]]\nid = \"a\"\nsource.path = \"b.wasm\"\n"),
            "omnia.toml:5: guest \"a\" again (first at line 1): ids must be unique",
        ),
        (
            format!(
                "{a}routes.messaging = [\"t\"]\n[[guest]]\nid = \"b\"\nsource.path = \
                 \"b.wasm\"\nroutes.messaging = [\"t\"]\n"
            ),
            "omnia.toml:5: guest \"b\": routes.messaging: \"t\" is also routed to guest \
             \"a\" (line 1)",
        ),
        (
            format!(
                "{a}command = true\n[[guest]]\nid = \"b\"\nsource.path = \"b.wasm\"\n\
                 command = true\n"
            ),
            "omnia.toml:5: guest \"b\" is marked command = true, as is \"a\" (line 1)",
        ),
        (
            format!("{a}[[mount]]\nname = \"m\"\npath = \"nowhere\"\n"),
            "omnia.toml:4: [[mount]] \"m\": ",
        ),
        (
            format!("dispatch = [\"omnia:link/echo\"]\n{a}"),
            "omnia.toml:1: `dispatch` (calls between guests through the host) is not \
             supported yet",
        ),
        (
            format!("{a}[transport]\ndefault = \"nats\"\n"),
            "omnia.toml:4: [transport] default: only \"in-process\" is supported",
        ),
    ]);
}

#[test]
fn a_digest_is_checked_against_the_file() {
    let a = A;
    let pinned = parse(&format!("{a}digest = \"sha256:{DIGEST_OF_A}\"\n")).unwrap();
    assert_eq!(pinned.guests[0].digest.as_deref(), Some(DIGEST_OF_A));
    let other = error(&format!("{a}digest = \"sha256:{}\"\n", "ab".repeat(32)));
    assert!(
        other.contains(&format!(
            "has sha256:{DIGEST_OF_A}, not sha256:{}",
            "ab".repeat(32)
        )),
        "{other}"
    );
}
