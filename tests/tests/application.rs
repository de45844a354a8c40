//! Applications of many guests (`omnia run omnia.toml` with several `[[guest]]`s): one process,
//! one listener, each request and message routed to its guest, 0.2 and 0.3 guests side by side,
//! each guest with its own grants and limits, a failing guest leaving the others untouched, and
//! every mistake refused at start-up with a message that names the manifest's line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use omnia_tests::{Omnia, guests, omnia, run_to_end};

/// A fresh directory for one test's manifest.
fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("omnia-app-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `text` as `dir/omnia.toml`.
fn manifest(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("omnia.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A `[[guest]]` entry: `id`, the test guest `file`, and more lines of TOML.
fn guest(id: &str, file: &str, more: &str) -> String {
    format!(
        "[[guest]]\nid = \"{id}\"\nsource.path = \"{}\"\n{more}\n",
        guests::rust(file).display()
    )
}

/// `method path` with `headers` and `body`: the status and the body.
async fn call(
    server: &Omnia,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let response = server.call(method, path, headers, body).await;
    (response.status.as_u16(), response.text())
}

async fn get(server: &Omnia, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    call(server, http::Method::GET, path, headers, b"").await
}

/// Polls `GET path` (with `headers`) until its body contains `needle`, for up to 10 s.
async fn eventually(server: &Omnia, path: &str, headers: &[(&str, &str)], needle: &str) -> String {
    let mut last = String::new();
    for _ in 0..200 {
        let (status, text) = get(server, path, headers).await;
        if status == 200 && text.contains(needle) {
            return text;
        }
        last = format!("{status} {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("GET {path}: never contained {needle:?}; last: {last}");
}

#[tokio::test]
async fn one_listener_routes_each_request_and_message_to_its_guest() {
    let dir = workdir("routes");
    let text = [
        guest("echo", "http-echo", "routes.http = [\"/echo\"]"),
        guest("hello", "http-hello", "routes.http = [\"/hello\"]"),
        guest("hello3", "p3-http-hello", "routes.http = [\"/p3\"]"),
        guest(
            "msg",
            "msg-echo",
            "routes.http = [\"/publish\", \"/received\"]\nroutes.messaging = [\"orders.*\"]\n\
             [guest.grants]\nmessaging = { publish = [\"orders.>\"] }\n\
             keyvalue = { buckets = [\"received\"] }",
        ),
        guest(
            "msg3",
            "p3-msg-echo",
            "routes.host = \"msg3.test\"\nroutes.http = [\"/received\"]\n\
             routes.messaging = [\"orders.*.out\"]\n\
             [guest.grants]\nkeyvalue = { buckets = [\"received\"] }",
        ),
    ]
    .concat();
    let server = Omnia::serve(&omnia(), &manifest(&dir, &text), &[]);
    server.log_with("subscribed to orders.*.out");

    // HTTP: each prefix to its guest, 0.2 and 0.3 on one listener; no route, 404.
    let (status, text) = get(&server, "/echo/a?x=1", &[]).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("path: /echo/a?x=1\n"), "{text}");
    assert!(
        text.contains("header: omnia-matched-route: /echo\n"),
        "{text}"
    );
    assert_eq!(
        get(&server, "/hello", &[]).await,
        (200, "hello from Rust http guest\n".into())
    );
    assert_eq!(
        get(&server, "/p3/x", &[]).await,
        (200, "hello from Rust http guest\n".into())
    );
    for path in ["/", "/echox", "/other"] {
        assert_eq!(
            get(&server, path, &[]).await,
            (404, "no route\n".into()),
            "{path}"
        );
    }

    // Messaging: `msg` takes `orders.*` and publishes `echo: ...` to `orders.a.out`, which only
    // `msg3` (a 0.3 guest, reached by its host) is routed.
    let (status, text) = call(
        &server,
        http::Method::POST,
        "/publish/orders.a",
        &[],
        b"one",
    )
    .await;
    assert_eq!(status, 204, "{text}");
    let received = eventually(&server, "/received/orders.a", &[], "one|").await;
    assert_eq!(received.lines().count(), 1, "{received}");
    let out = eventually(
        &server,
        "/received/orders.a.out",
        &[("host", "msg3.test")],
        "echo: one|",
    )
    .await;
    assert!(out.contains("transformed-by=msg-echo"), "{out}");
    let log = server.log();
    assert!(
        log.contains("subscribed to orders.* (") && log.contains("for guest \"msg\""),
        "{log}"
    );
}

#[tokio::test]
async fn each_guest_has_its_own_grants_and_limits() {
    let dir = workdir("grants");
    let text = [
        guest(
            "a",
            "http-echo",
            "routes.http = [\"/env\"]\n[guest.grants]\nenv = [\"WHO=a\"]",
        ),
        guest(
            "b",
            "http-echo",
            "routes.http = [\"/sleep\"]\n[guest.limits]\nrequest_timeout = \"1s\"",
        ),
        guest(
            "c",
            "http-echo",
            "routes.host = \"c.test\"\nroutes.http = [\"/env\", \"/sleep\"]",
        ),
    ]
    .concat();
    let server = Omnia::serve(&omnia(), &manifest(&dir, &text), &[]);
    assert_eq!(get(&server, "/env/WHO", &[]).await, (200, "a\n".into()));
    // `c` is not granted `WHO`; `b`'s timeout is its own.
    let (status, _) = get(&server, "/env/WHO", &[("host", "c.test")]).await;
    assert_eq!(status, 403, "a grant is per guest");
    assert_eq!(get(&server, "/sleep/3000", &[]).await.0, 504);
    let (status, _) = get(&server, "/sleep/1500", &[("host", "c.test")]).await;
    assert_eq!(status, 200, "another guest keeps the runtime's timeout");
}

#[tokio::test]
async fn a_failing_guest_leaves_the_others_untouched_under_load() {
    let dir = workdir("isolation");
    let text = [
        guest(
            "bad",
            "http-echo",
            "routes.http = [\"/trap\", \"/loop\", \"/alloc\"]\n\
             [guest.limits]\nrequest_timeout = \"1s\"\nmemory = \"64MiB\"",
        ),
        guest("good", "http-hello", "routes.http = [\"/good\"]"),
        guest("good3", "p3-http-hello", "routes.http = [\"/good3\"]"),
    ]
    .concat();
    let server = Omnia::serve(
        &omnia(),
        &manifest(&dir, &text),
        &[("OMNIA_ADMIN_ADDR", "127.0.0.1:0")],
    );
    // Within the client's share of the work slots (a 503 there is load shedding, not a
    // guest's failure): 3 bad and 12 good clients, each a request at a time.
    let bad: Vec<_> = ["/trap", "/loop", "/alloc/512"]
        .into_iter()
        .map(|path| {
            let url = server.url(path);
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..5 {
                    let response = omnia_tests::get(&url).await;
                    statuses.push(response.map(|r| r.status.as_u16()));
                }
                statuses
            })
        })
        .collect();
    let good: Vec<_> = (0..12)
        .map(|i| {
            let url = server.url(if i % 2 == 0 { "/good" } else { "/good3" });
            tokio::spawn(async move {
                let mut failed = Vec::new();
                for _ in 0..50 {
                    match omnia_tests::get(&url).await {
                        Ok(response) if response.status == 200 => {}
                        other => failed.push(format!("{url}: {:?}", other.map(|r| r.status))),
                    }
                }
                failed
            })
        })
        .collect();
    let mut failed = Vec::new();
    for task in good {
        failed.extend(task.await.unwrap());
    }
    assert_eq!(failed, Vec::<String>::new(), "good requests failed");
    for task in bad {
        for status in task.await.unwrap() {
            let status = status.expect("the runtime answers");
            assert!([500, 504].contains(&status), "a bad request got {status}");
        }
    }
    // Each guest's calls are counted under its id.
    let count = |component: &str, outcome: &str| {
        let name = format!(
            "omnia_guest_calls_total{{trigger=\"http\",component=\"{component}\",outcome=\"{outcome}\"}}"
        );
        let server = &server;
        async move { server.metric(&name).await }
    };
    assert_eq!(count("good", "ok").await + count("good3", "ok").await, 600);
    assert_eq!(
        count("bad", "trap").await + count("bad", "timeout").await,
        15
    );
}

/// A plain HTTP server on 127.0.0.1 answering every request `200 ok`, for outgoing calls.
fn upstream() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        }
    });
    addr
}

/// Eight guests in pairs with disjoint grants, each reached by its host (`<id>.test`):
/// key-value, config, outgoing HTTP (to `up`) and messaging.
fn disjoint_guests(up: &str) -> String {
    let at = |id: &str, grants: &str| {
        format!("routes.host = \"{id}.test\"\nroutes.http = [\"/\"]\n[guest.grants]\n{grants}")
    };
    let msg = |id: &str, topic: &str| {
        format!(
            "routes.messaging = [\"{topic}.in\", \"{topic}.in.out\"]\n{}",
            at(
                id,
                &format!(
                    "messaging = {{ publish = [\"{topic}.>\"] }}\n\
                     keyvalue = {{ buckets = [\"received\"] }}"
                )
            )
        )
    };
    [
        guest(
            "kva",
            "kv-http",
            &at("kva", "keyvalue = { buckets = [\"shared\", \"a-only\"] }"),
        ),
        guest(
            "kvb",
            "kv-http",
            &at("kvb", "keyvalue = { buckets = [\"shared\"] }"),
        ),
        guest(
            "cfa",
            "config-http",
            &at("cfa", "config = { values = { who = \"a\" } }"),
        ),
        guest(
            "cfb",
            "config-http",
            &at(
                "cfb",
                "config = { keys = [\"REGION\"], values = { who = 2 } }",
            ),
        ),
        guest(
            "fa",
            "http-fetch",
            &at("fa", &format!("http = {{ hosts = [\"{up}\"] }}")),
        ),
        guest("fb", "http-fetch", &at("fb", "")),
        guest("ma", "msg-echo", &msg("ma", "a")),
        guest("mb", "msg-echo", &msg("mb", "b")),
    ]
    .concat()
}

/// `method path` with `body` to the guest whose host is `<id>.test`.
async fn to(
    server: &Omnia,
    id: &str,
    method: http::Method,
    path: &str,
    body: &[u8],
) -> (u16, String) {
    let host = format!("{id}.test");
    call(server, method, path, &[("host", &host)], body).await
}

#[tokio::test]
async fn guests_with_disjoint_grants_cannot_reach_each_others_buckets_hosts_config_or_topics() {
    use http::Method;
    let dir = workdir("disjoint");
    let up = upstream();
    let server = Omnia::serve(
        &omnia(),
        &manifest(&dir, &disjoint_guests(&up)),
        &[("OMNIA_CONFIG_ENV", "REGION"), ("REGION", "eu")],
    );
    let read = |id: &'static str, path: String| {
        let server = &server;
        async move { to(server, id, Method::GET, &path, b"").await }
    };

    // Key-value: a granted bucket is shared, another's is denied, `open("")` is one's own.
    assert_eq!(
        to(&server, "kva", Method::PUT, "/kv/a-only/k", b"secret")
            .await
            .0,
        204
    );
    assert_eq!(
        read("kvb", "/kv/a-only/k".into()).await,
        (403, "keyvalue error: access-denied".into())
    );
    assert_eq!(
        to(&server, "kva", Method::PUT, "/kv/shared/k", b"both")
            .await
            .0,
        204
    );
    assert_eq!(
        read("kvb", "/kv/shared/k".into()).await,
        (200, "both".into())
    );
    assert_eq!(
        to(&server, "kva", Method::PUT, "/kv//k", b"own").await.0,
        204
    );
    assert_eq!(read("kva", "/kv//k".into()).await, (200, "own".into()));
    assert_eq!(
        read("kvb", "/kv//k".into()).await.0,
        404,
        "b's own bucket is not a's"
    );
    assert_eq!(read("kvb", "/kv/_kva/k".into()).await.0, 403);

    // Config: each sees its own values and the runtime's keys it is granted, nothing else.
    assert_eq!(read("cfa", "/config".into()).await, (200, "who=a\n".into()));
    assert_eq!(
        read("cfb", "/config".into()).await,
        (200, "REGION=eu\nwho=2\n".into())
    );

    // Outgoing HTTP: only the granted host.
    let url = format!("/?url=http://{up}/x");
    assert_eq!(
        read("fa", url.clone()).await,
        (200, "upstream 200\nok".into())
    );
    let (status, text) = read("fb", url).await;
    assert_eq!(
        (status, text.trim()),
        (502, "error: ErrorCode::HttpRequestDenied")
    );

    // Messaging: each publishes to its own topics only; its handler's `.out` is granted.
    assert_eq!(
        to(&server, "ma", Method::POST, "/publish/a.in", b"hi")
            .await
            .0,
        204
    );
    let (status, text) = to(&server, "ma", Method::POST, "/publish/b.in", b"hi").await;
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("not granted"), "{text}");
    eventually(
        &server,
        "/received/a.in.out",
        &[("host", "ma.test")],
        "echo: hi|",
    )
    .await;
}

/// What `omnia run` printed when it refused `text` as `omnia.toml`.
fn refused(dir: &Path, text: &str) -> String {
    let path = manifest(dir, text);
    let out = run_to_end(&omnia(), &["run", path.to_str().unwrap()], &[]);
    assert!(!out.status.success(), "omnia started with:\n{text}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_application_that_cannot_be_served_is_refused_before_anything_listens() {
    let dir = workdir("refused");
    let echo = guest("echo", "http-echo", "routes.http = [\"/echo\"]");
    // A guest that uses every capability a grant can name, so each entry is connected.
    let kv = format!(
        "{echo}{}",
        guest(
            "kv",
            "p3-app-http",
            "routes.http = [\"/kv\"]\nroutes.messaging = [\"o\"]"
        )
    );
    for (text, expected) in [
        (
            format!("{echo}{}", guest("two", "http-hello", "")),
            "omnia.toml:5: guest \"two\": ".to_owned()
                + &format!(
                    "{} serves http but has no routes.http: in an application of several guests \
                     each names what it takes, e.g. routes.http = [\"/two\"]",
                    guests::rust("http-hello").display()
                ),
        ),
        (
            format!(
                "{echo}{}",
                guest(
                    "msg",
                    "http-hello",
                    "routes.http = [\"/m\"]\nroutes.messaging = [\"a\"]"
                )
            ),
            format!(
                "omnia.toml:5: guest \"msg\": routes.messaging: {} does not serve messaging (it \
                 is served by: http)",
                guests::rust("http-hello").display()
            ),
        ),
        (
            format!("{echo}{}", guest("cmd", "hello", "routes.http = [\"/c\"]")),
            "a wasi:cli/run command runs on its own (omnia run FILE), not in an application".into(),
        ),
        (
            format!(
                "{echo}{}",
                guest("p1", "hello-p1", "routes.http = [\"/p1\"]")
            ),
            "is a WASI 0.1 module, which runs as a command on its own".into(),
        ),
        (
            format!("{kv}[guest.grants]\nkeyvalue = {{ bukets = [\"a\"] }}"),
            "omnia.toml:5: guest \"kv\": grants.keyvalue: not the shape this capability's grants \
             have: unknown field `bukets`, expected `buckets`"
                .into(),
        ),
        (
            format!("{kv}[guest.grants]\nkeyvalue = {{ buckets = [\"_echo\"] }}"),
            "grants.keyvalue: buckets: \"_echo\": a name beginning with '_' is a guest's own \
             bucket"
                .into(),
        ),
        (
            format!("{kv}[guest.grants]\nconfig = {{ keys = [\"REGION\"] }}"),
            "grants.config: keys: \"REGION\" is not in the runtime's configuration".into(),
        ),
        (
            format!("{kv}[guest.grants]\nmessaging = {{ publish = [\"a b\"] }}"),
            "grants.messaging: publish: \"a b\"".into(),
        ),
        (
            format!("{kv}[guest.grants]\nhttp = {{ hosts = [\"a,b\"] }}"),
            "grants.http: hosts: \"a,b\": one host per entry".into(),
        ),
    ] {
        let err = refused(&dir, &text);
        assert!(
            err.contains(&expected),
            "{text}\n  got: {err}\n  expected: {expected}"
        );
        assert!(!err.contains("listening"), "{err}");
    }
}

#[tokio::test]
async fn the_example_application_runs_as_its_comments_say() {
    use http::Method;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/app");
    let server = Omnia::serve(&omnia(), &example, &[]);
    server.log_with("subscribed to orders.*.out");
    assert_eq!(
        call(&server, Method::PUT, "/kv/orders/o-1", &[], b"42")
            .await
            .0,
        204
    );
    assert_eq!(
        get(&server, "/kv/orders/o-1", &[]).await,
        (200, "42".into())
    );
    let published = call(&server, Method::POST, "/publish/orders.new", &[], b"o-1").await;
    assert_eq!(published.0, 204, "{}", published.1);
    eventually(&server, "/received/orders.new.out", &[], "echo: o-1|").await;
    assert_eq!(
        get(&server, "/admin", &[]).await,
        (200, "hello from Rust http guest\n".into())
    );
    // The API cannot see what the worker keeps.
    assert_eq!(get(&server, "/kv/received/orders.new", &[]).await.0, 403);
}

/// Waits (up to 60 s) until the log holds `needle` `n` times.
fn logged(server: &Omnia, needle: &str, n: usize) {
    for _ in 0..1200 {
        if server.log().matches(needle).count() >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{needle:?} not logged {n} times:\n{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_application_under_load_without_failing_a_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let dir = workdir("reload");
    let a = |file: &str| guest("a", file, "routes.http = [\"/a\"]");
    let b = guest("b", "http-echo", "routes.http = [\"/b\"]");
    let path = manifest(&dir, &a("http-hello"));
    let server = Omnia::serve(&omnia(), &path, &[("OMNIA_ADMIN_ADDR", "127.0.0.1:0")]);

    // 64 clients on guest a all along, each a request at a time.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..64)
        .map(|_| {
            let (url, stop, answered) =
                (server.url("/a"), Arc::clone(&stop), Arc::clone(&answered));
            tokio::spawn(async move {
                let mut failed = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match omnia_tests::get(&url).await {
                        Ok(response) if response.status == 200 => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        other => failed.push(format!("{:?}", other.map(|r| r.status))),
                    }
                }
                failed
            })
        })
        .collect();

    // Ten reloads: a's component replaced each time, b's route added and removed.
    for round in 1..=10 {
        let (file, with_b) = if round % 2 == 1 {
            ("http-echo", true)
        } else {
            ("http-hello", false)
        };
        let text = if with_b { a(file) + &b } else { a(file) };
        std::fs::write(&path, text).unwrap();
        server.signal("HUP");
        logged(&server, "reloaded: ", round);
        let (status, text) = get(&server, "/a", &[]).await;
        assert_eq!(status, 200);
        assert_eq!(
            text.contains("path: /a"),
            file == "http-echo",
            "round {round}: {text}"
        );
        let expected = if with_b { 200 } else { 404 };
        assert_eq!(get(&server, "/b", &[]).await.0, expected, "round {round}");
    }

    let pinned = format!(
        "{}digest = \"sha256:{}\"\n",
        a("http-hello"),
        "0".repeat(64)
    );
    refused_reloads(&server, &path, &pinned).await;

    stop.store(true, Ordering::Relaxed);
    let mut failed = Vec::new();
    for client in clients {
        failed.extend(client.await.unwrap());
    }
    assert_eq!(
        failed,
        Vec::<String>::new(),
        "requests failed during reloads"
    );
    assert!(answered.load(Ordering::Relaxed) > 100, "the load ran");
}

#[tokio::test]
async fn a_reload_sends_new_messages_to_the_new_handler_and_follows_changed_topics() {
    use http::Method;
    let dir = workdir("reload-msg");
    let worker = |file: &str, topics: &str| {
        guest(
            "worker",
            file,
            &format!(
                "routes.http = [\"/publish\", \"/received\"]\nroutes.messaging = [{topics}]\n\
                 [guest.grants]\nmessaging = {{ publish = [\"jobs.>\", \"orders.>\"] }}\n\
                 keyvalue = {{ buckets = [\"received\"] }}"
            ),
        )
    };
    let topics = "\"jobs.*\", \"jobs.*.out\"";
    let path = manifest(&dir, &worker("msg-echo", topics));
    let server = Omnia::serve(&omnia(), &path, &[]);
    server.log_with("subscribed to jobs.*.out");
    std::fs::write(&path, worker("p3-msg-echo", topics)).unwrap();
    server.signal("HUP");
    logged(&server, "reloaded: ", 1);
    let published = call(&server, Method::POST, "/publish/jobs.a", &[], b"j1").await;
    assert_eq!(published.0, 204, "{}", published.1);
    let out = eventually(&server, "/received/jobs.a.out", &[], "echo: j1|").await;
    assert!(out.contains("transformed-by=p3-msg-echo"), "{out}");
    // Other topics: the trigger subscribes to the new ones and lets the old ones go.
    std::fs::write(&path, worker("msg-echo", "\"jobs.>\"")).unwrap();
    server.signal("HUP");
    logged(&server, "reloaded: ", 2);
    let published = call(&server, Method::POST, "/publish/jobs.b.c", &[], b"j2").await;
    assert_eq!(published.0, 204, "{}", published.1);
    let out = eventually(&server, "/received/jobs.b.c.out", &[], "echo: j2|").await;
    assert!(out.contains("transformed-by=msg-echo"), "{out}");
    std::fs::write(&path, worker("msg-echo", "\"orders.*\"")).unwrap();
    server.signal("HUP");
    logged(&server, "reloaded: ", 3);
    server.log_with("no longer routes jobs.> to guest \"worker\"");
    for topic in ["jobs.z", "orders.x"] {
        let published = call(
            &server,
            Method::POST,
            &format!("/publish/{topic}"),
            &[],
            b"j3",
        )
        .await;
        assert_eq!(published.0, 204, "{}", published.1);
    }
    eventually(&server, "/received/orders.x", &[], "j3").await;
    let (status, body) = get(&server, "/received/jobs.z", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (200, ""),
        "a dropped topic is still delivered"
    );
    assert!(
        !server.log().contains("the last reload failed"),
        "{}",
        server.log()
    );
}

/// Two reloads that must not take: a missing component (asked for through the admin
/// endpoint) and a digest mismatch (`pinned`, by `SIGHUP`); the application before them keeps
/// serving `/a`, and `/readyz` and the metrics say so.
async fn refused_reloads(server: &Omnia, path: &Path, pinned: &str) {
    // A manifest that does not hold: the application before it keeps serving.
    std::fs::write(
        path,
        "[[guest]]\nid = \"a\"\nsource.path = \"no-such.wasm\"\nroutes.http = [\"/a\"]\n",
    )
    .unwrap();
    // (This time through the admin endpoint.)
    let asked = omnia_tests::request(
        http::Method::POST,
        &server.admin_url("/reload"),
        &[],
        bytes::Bytes::new(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(asked.status, 202);
    logged(server, "the last reload failed", 1);
    assert_eq!(get(server, "/a", &[]).await.0, 200);
    let ready = omnia_tests::get(&server.admin_url("/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status, 200);
    assert!(
        ready.text().contains("the last reload failed"),
        "{}",
        ready.text()
    );
    // A component the manifest's digest does not pin is refused at reload too.
    std::fs::write(path, pinned).unwrap();
    server.signal("HUP");
    logged(server, "the last reload failed", 2);
    assert!(server.log().contains("digest: "), "{}", server.log());
    assert_eq!(get(server, "/a", &[]).await.0, 200);
    assert_eq!(
        server
            .metric("omnia_reloads_total{result=\"failed\"}")
            .await,
        2
    );
    assert_eq!(
        server.metric("omnia_reloads_total{result=\"ok\"}").await,
        10
    );
}

#[tokio::test]
async fn a_guest_calls_another_in_process_as_its_grants_allow() {
    let dir = workdir("local");
    let text = [
        guest(
            "front",
            "http-fetch",
            "routes.http = [\"/fetch\"]\n[guest.grants]\n\
             http = { hosts = [\"api.omnia.local\", \"front.omnia.local\", \"nobody.omnia.local\"] }",
        ),
        guest("api", "http-echo", "routes.http = [\"/api\"]"),
        guest("secret", "http-echo", "routes.http = [\"/secret\"]"),
    ]
    .concat();
    let server = Omnia::serve(
        &omnia(),
        &manifest(&dir, &text),
        &[("OMNIA_ADMIN_ADDR", "127.0.0.1:0")],
    );
    // The caller's trace goes on into the callee.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
    let (status, text) = get(
        &server,
        "/fetch?url=http://api.omnia.local/api/x?y=1",
        &[("traceparent", &traceparent)],
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.starts_with("upstream 200\n"), "{text}");
    assert!(text.contains("path: /api/x?y=1\n"), "{text}");
    assert!(text.contains("authority: api.omnia.local"), "{text}");
    assert!(text.contains(trace), "the trace continues: {text}");
    assert!(!text.contains("omnia-matched-route"), "{text}");
    assert_eq!(server.metric("omnia_http_local_calls_total").await, 1);

    // Not granted, or no such guest: the errors an outgoing request gets.
    let (status, text) = get(&server, "/fetch?url=http://secret.omnia.local/secret", &[]).await;
    assert_eq!(
        (status, text.trim()),
        (502, "error: ErrorCode::HttpRequestDenied")
    );
    let (status, text) = get(&server, "/fetch?url=http://nobody.omnia.local/", &[]).await;
    assert_eq!(
        (status, text.trim()),
        (502, "error: ErrorCode::DestinationNotFound")
    );

    // Calls that lead to calls: a few are fine, past the limit the chain is cut.
    let chain = |hops: usize| {
        "url=http://front.omnia.local/fetch?".repeat(hops) + "url=http://api.omnia.local/api/end"
    };
    let (status, text) = get(&server, &format!("/fetch?{}", chain(3)), &[]).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text.matches("upstream 200\n").count(), 4, "{text}");
    assert!(text.contains("path: /api/end\n"), "{text}");
    let (status, text) = get(&server, &format!("/fetch?{}", chain(12)), &[]).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("error: ErrorCode::LoopDetected"), "{text}");
    assert!(!text.contains("path: /api/end"), "{text}");
}

#[tokio::test]
async fn a_guests_concurrency_limit_caps_it_alone() {
    let dir = workdir("cap");
    let text = [
        guest(
            "capped",
            "http-echo",
            "routes.http = [\"/sleep\"]\n[guest.limits]\nconcurrency = 2",
        ),
        guest("free", "http-hello", "routes.http = [\"/free\"]"),
    ]
    .concat();
    let server = Omnia::serve(&omnia(), &manifest(&dir, &text), &[]);
    let slow: Vec<_> = (0..4)
        .map(|_| {
            let url = server.url("/sleep/1000");
            tokio::spawn(async move { omnia_tests::get(&url).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The other guest is not held back meanwhile.
    assert_eq!(get(&server, "/free", &[]).await.0, 200);
    let mut statuses = Vec::new();
    for task in slow {
        statuses.push(
            task.await
                .unwrap()
                .expect("the runtime answers")
                .status
                .as_u16(),
        );
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 503, 503]);
}

#[tokio::test]
async fn a_0_3_guests_instance_limits_are_its_own() {
    let dir = workdir("instances");
    let text = [
        guest(
            "once",
            "p3-http-hello",
            "routes.http = [\"/once\"]\n[guest.limits]\ninstance_reuse = 1",
        ),
        guest("many", "p3-http-hello", "routes.http = [\"/many\"]"),
    ]
    .concat();
    let server = Omnia::serve(
        &omnia(),
        &manifest(&dir, &text),
        &[("OMNIA_ADMIN_ADDR", "127.0.0.1:0")],
    );
    let instances = || server.metric("omnia_instantiations_total");
    for _ in 0..10 {
        assert_eq!(get(&server, "/many", &[]).await.0, 200);
    }
    let reused = instances().await;
    assert!(reused <= 4, "{reused} instances for 10 requests with reuse");
    for _ in 0..10 {
        assert_eq!(get(&server, "/once", &[]).await.0, 200);
    }
    let once = instances().await - reused;
    assert!(
        once >= 10,
        "{once} instances for 10 requests with instance_reuse = 1"
    );
}

#[tokio::test]
async fn request_spans_name_the_guest_that_served_them() {
    use omnia_tests::otlp::{OtlpReceiver, Protocol};
    let receiver = OtlpReceiver::start(Protocol::Grpc);
    let dir = workdir("spans");
    let text = [
        guest("a", "http-echo", "routes.http = [\"/a\"]"),
        guest("b", "p3-http-hello", "routes.http = [\"/b\"]"),
    ]
    .concat();
    let endpoint = receiver.endpoint();
    let server = Omnia::serve(
        &omnia(),
        &manifest(&dir, &text),
        &[
            ("OTEL_GRPC_URL", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    for (path, id) in [("/a/x", "a"), ("/b/y", "b")] {
        assert_eq!(get(&server, path, &[]).await.0, 200);
        let span = receiver
            .wait_for_span(
                |span| span.attributes.get("url.path").map(String::as_str) == Some(path),
                Duration::from_secs(10),
            )
            .unwrap_or_else(|| panic!("no span for {path}: {:?}", receiver.spans()));
        assert_eq!(
            span.attributes.get("omnia.component").map(String::as_str),
            Some(id)
        );
    }
}
