#![allow(
    clippy::missing_panics_doc,
    reason = "tests: failing loudly is their job"
)]

//! The distribution, checked end to end.
//!
//! `rust_and_nix_read_profiles_alike` runs with the rest of the suite. The others check what
//! `cargo xtask dist --all --debug --app tests/guests/bin/kv-http.wasm` wrote to target/dist, so
//! `tests/run` runs them (with `--ignored`) after that command: every profile's binary names its
//! profile and features, the AOT-only one has no compiler and serves its precompiled guest, a
//! profile without key-value refuses a key-value guest, and each image is accepted by skopeo and
//! umoci and, unpacked, runs as its non-root user and answers HTTP (http-kv with a real Redis).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use omnia_tests::services::{RedisServer, Resp, free_port, program};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The default (JIT) omnia that `cargo test` built, which stands for the JIT profiles: a copy,
/// taken before any test runs `cargo xtask dist --debug` (whose build replaces
/// target/debug/omnia).
fn jit() -> &'static Path {
    static JIT: LazyLock<PathBuf> = LazyLock::new(|| {
        let built = root().join("target/debug/omnia");
        let bytes = std::fs::read(&built)
            .unwrap_or_else(|err| panic!("{}: {err} (run `cargo test` first)", built.display()));
        assert!(
            links_cranelift(&bytes),
            "{} is not a JIT build (run `cargo build -p omnia-cli`)",
            built.display()
        );
        let dir = std::env::temp_dir().join(format!("omnia-dist-jit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("omnia");
        std::fs::copy(&built, &copy).unwrap();
        copy
    });
    &JIT
}

fn links_cranelift(binary: &[u8]) -> bool {
    binary
        .windows(b"cranelift_codegen".len())
        .any(|w| w == b"cranelift_codegen")
}

fn dist(profile: &str) -> PathBuf {
    root().join("target/dist").join(profile)
}

/// The profiles whose binary and image `cargo xtask dist` wrote (tests/run builds `http-kv`, as
/// each profile is its own build of wasmtime, minutes apiece; tests/slow builds every one), each
/// checked by the tests below.
fn built(all: &Value) -> Vec<String> {
    let built: Vec<String> = all
        .as_object()
        .unwrap()
        .keys()
        .filter(|name| dist(name).join("oci/index.json").exists())
        .cloned()
        .collect();
    assert!(
        built.iter().any(|b| b == "http-kv"),
        "run `cargo xtask dist http-kv --debug` first (tests/run does)"
    );
    built
}

fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
    let program = program.as_ref();
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", program.to_string_lossy()))
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// The fields both readings produce, by profile.
const COMPARED: [&str; 7] = [
    "description",
    "jit",
    "features",
    "services",
    "backends",
    "cargoExtraArgs",
    "image",
];

#[test]
fn rust_and_nix_read_profiles_alike() {
    let rust = json(&run(env!("CARGO_BIN_EXE_xtask"), &["profiles"]));
    let expr = format!(
        "(import {}/nix/lib/profiles.nix).loadProfiles {}/profiles",
        root().display(),
        root().display()
    );
    let nix = json(&run(
        "nix-instantiate",
        &["--eval", "--strict", "--json", "-E", &expr],
    ));
    let names = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&rust), names(&nix), "the same profiles");
    for name in names(&rust) {
        for field in COMPARED {
            assert_eq!(
                rust[&name][field], nix[&name][field],
                "profile {name}, {field}: Rust and Nix disagree"
            );
        }
    }
}

fn version(profile: &str) -> String {
    let out = run(dist(profile).join("omnia"), &["--version"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "run by tests/run after cargo xtask dist"]
fn every_binary_names_its_profile_and_features() {
    let built = built(&json(&run(env!("CARGO_BIN_EXE_xtask"), &["profiles"])));
    let expected = [
        (
            "full",
            "(profile: full; features: jit, http, keyvalue[memory,redis,nats], messaging[memory,nats], config, otel, sql[sqlite])",
        ),
        ("http", "(profile: http; features: jit, http)"),
        (
            "http-kv",
            "(profile: http-kv; features: aot-only, http, keyvalue[memory,redis])",
        ),
        (
            "http-otel",
            "(profile: http-otel; features: jit, http, config, otel)",
        ),
        (
            "kv-nats",
            "(profile: kv-nats; features: jit, http, keyvalue[memory,nats])",
        ),
        (
            "messaging",
            "(profile: messaging; features: jit, http, keyvalue[memory,nats], messaging[memory,nats])",
        ),
    ];
    for profile in &built {
        let (_, expected) = expected
            .iter()
            .find(|(name, _)| name == profile)
            .unwrap_or_else(|| panic!("{profile}: add the version line it should print"));
        let version = version(profile);
        assert!(version.contains(expected), "{profile}: {version}");
    }
}

#[test]
#[ignore = "run by tests/run after cargo xtask dist"]
fn only_jit_profiles_contain_the_compiler() {
    let contains =
        |profile: &str| links_cranelift(&std::fs::read(dist(profile).join("omnia")).unwrap());
    // The default build (all features, what `cargo test` builds) stands for the JIT profiles.
    assert!(
        links_cranelift(&std::fs::read(jit()).unwrap()),
        "the JIT build links Cranelift"
    );
    assert!(!contains("http-kv"), "the AOT-only build has no Cranelift");
}

#[test]
#[ignore = "run by tests/run after cargo xtask dist"]
fn a_profile_without_a_capability_names_itself_when_refusing_a_guest() {
    // http-kv has no messaging: a messaging guest, precompiled by the default (JIT) omnia.
    let guest = root().join("tests/guests/bin/msg-echo.wasm");
    let bin = std::env::temp_dir().join(format!("omnia-msg-echo-{}.bin", std::process::id()));
    let compiled = run(
        jit(),
        &[
            "compile",
            guest.to_str().unwrap(),
            "-o",
            bin.to_str().unwrap(),
        ],
    );
    assert!(compiled.status.success(), "{compiled:?}");
    let out = run(
        dist("http-kv").join("omnia"),
        &["run", bin.to_str().unwrap()],
    );
    let _ = std::fs::remove_file(&bin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("wasi:messaging/"), "{stderr}");
    assert!(
        stderr.contains(
            "this omnia is profile: http-kv; features: aot-only, http, keyvalue[memory,redis]"
        ),
        "{stderr}"
    );
}

/// A server process, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends one HTTP/1.0 request (so the body comes unchunked) and returns the response, retrying
/// the connection for 60 s while the server starts.
fn http(port: u16, method: &str, path: &str) -> String {
    let started = Instant::now();
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            write!(
                stream,
                "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
            )
            .unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            return response;
        }
        assert!(
            started.elapsed() < Duration::from_mins(1),
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "run by tests/run after cargo xtask dist"]
fn the_aot_only_binary_serves_its_precompiled_guest() {
    let port = free_port();
    let _server = Running(
        Command::new(dist("http-kv").join("omnia"))
            .args(["run", dist("http-kv").join("app.bin").to_str().unwrap()])
            .env_clear()
            .env("OMNIA_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let response = http(port, "POST", "/incr//hits");
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(response.ends_with("\r\n\r\n1"), "{response}");
}

fn skopeo_inspect(reference: &str) -> Value {
    json(&run("skopeo", &["inspect", "--config", reference]))
}

#[test]
#[ignore = "run by tests/run after cargo xtask dist"]
fn images_carry_the_profile_configuration_in_both_formats() {
    let profiles = json(&run(env!("CARGO_BIN_EXE_xtask"), &["profiles"]));
    for name in built(&profiles) {
        let profile = &profiles[&name];
        let dir = dist(&name);
        let layout = format!("oci:{}:0.1.0", dir.join("oci").display());
        let archive = format!(
            "docker-archive:{}",
            dir.join(format!("omnia-{name}.tar")).display()
        );
        for reference in [&layout, &archive] {
            let config = skopeo_inspect(reference);
            let image = &profile["image"];
            let c = &config["config"];
            assert_eq!(c["User"], image["User"], "{reference}");
            assert_eq!(c["Entrypoint"], image["Entrypoint"], "{reference}");
            assert_eq!(c["Cmd"], image["Cmd"], "{reference}");
            assert_eq!(c["Env"], image["Env"], "{reference}");
            assert_eq!(c["ExposedPorts"], image["ExposedPorts"], "{reference}");
            assert_eq!(c["WorkingDir"], image["WorkingDir"], "{reference}");
            for (label, value) in image["Labels"].as_object().unwrap() {
                assert_eq!(&c["Labels"][label], value, "{reference}: {label}");
            }
            assert_eq!(config["created"], "1970-01-01T00:00:01Z", "{reference}");
        }
    }
}

#[test]
#[ignore = "run by tests/run after cargo xtask dist"]
fn writing_an_image_again_gives_the_same_digest() {
    // The same binary (cargo has nothing to rebuild), written twice into different directories.
    // Its build replaces target/debug/omnia: the other tests' copy is taken first, and put back.
    let jit = jit();
    let out = std::env::temp_dir().join(format!("omnia-dist-again-{}", std::process::id()));
    let digest = |dir: &str| {
        let target = out.join(dir);
        let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args([
                "dist",
                "http-kv",
                "--debug",
                "--out",
                target.to_str().unwrap(),
            ])
            .env("CARGO", env!("CARGO"))
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read_to_string(target.join("http-kv/digest")).unwrap()
    };
    let (one, two) = (digest("one"), digest("two"));
    assert!(one.starts_with("sha256:"), "{one}");
    // A new file, not written through: cargo's target/debug/omnia is a hard link to its build.
    let uplifted = root().join("target/debug/omnia");
    std::fs::remove_file(&uplifted).unwrap();
    std::fs::copy(jit, &uplifted).unwrap();
    assert_eq!(one, two, "the same binary gives the same image");
    let _ = std::fs::remove_dir_all(&out);
}

/// `umoci unpack` of the profile's image into a fresh bundle; returns its root filesystem.
fn unpack(profile: &str) -> (PathBuf, PathBuf) {
    unpack_from(&dist(profile), profile)
}

/// `umoci unpack` of the image in `dir` (a profile's output) into a fresh bundle named after
/// `name`; returns its root filesystem and the bundle.
fn unpack_from(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let bundle = std::env::temp_dir().join(format!("omnia-bundle-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&bundle);
    let image = format!("{}:0.1.0", dir.join("oci").display());
    let out = run(
        "umoci",
        &["unpack", "--image", &image, bundle.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (bundle.join("rootfs"), bundle)
}

/// Starts the image's entry point inside its unpacked root filesystem, as the image's user
/// (`chroot --userspec`; podman cannot start containers on these machines).
fn run_image(rootfs: &Path, image: &Value, env: &[(String, String)]) -> Running {
    let user = image["User"].as_str().unwrap();
    let mut argv: Vec<String> = Vec::new();
    for part in ["Entrypoint", "Cmd"] {
        argv.extend(
            image[part]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned()),
        );
    }
    let mut cmd = Command::new(program("chroot"));
    cmd.arg(format!("--userspec={user}"))
        .arg(rootfs)
        .args(&argv)
        .env_clear()
        .stderr(Stdio::null());
    for kv in image["Env"].as_array().unwrap() {
        let (k, v) = kv.as_str().unwrap().split_once('=').unwrap();
        cmd.env(k, v);
    }
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    Running(cmd.spawn().expect("chroot starts (run as root)"))
}

#[test]
#[ignore = "run by tests/run after cargo xtask dist"]
fn unpacked_images_run_as_their_user_and_answer_http() {
    let profiles = json(&run(env!("CARGO_BIN_EXE_xtask"), &["profiles"]));
    let built = built(&profiles);
    // Profiles built only by tests/slow. `full` runs the app dist put in (the key-value guest,
    // in memory); the `http` profile has no key-value, so it gets the hello guest, as a volume
    // mounted at /app.wasm would. (The http-kv image runs in the test below, with Redis.)
    for (name, method, path, expected) in [
        ("full", "POST", "/incr//hits", "1"),
        ("http", "GET", "/", "hello from Rust http guest\n"),
    ] {
        if !built.iter().any(|b| b == name) {
            continue;
        }
        let image = &profiles[name]["image"];
        let (rootfs, bundle) = unpack(name);
        if name == "http" {
            std::fs::copy(
                root().join("tests/guests/bin/http-hello.wasm"),
                rootfs.join("app.wasm"),
            )
            .unwrap();
        }
        let port = free_port();
        let server = run_image(
            &rootfs,
            image,
            &[("OMNIA_HTTP_ADDR".into(), format!("127.0.0.1:{port}"))],
        );
        let response = http(port, method, path);
        assert!(response.starts_with("HTTP/1.0 200"), "{name}: {response}");
        assert!(
            response.ends_with(&format!("\r\n\r\n{expected}")),
            "{name}: {response}"
        );
        // chroot --userspec execs omnia in place: the process is the image's user.
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.0.id())).unwrap();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert_eq!(
            uid.split_whitespace().nth(1),
            Some("10001"),
            "{name} runs as {uid}"
        );
        drop(server);
        let _ = std::fs::remove_dir_all(bundle);
    }
}

#[test]
#[ignore = "run by tests/run after cargo xtask dist"]
fn the_http_kv_image_keeps_its_counter_in_redis() {
    let profiles = json(&run(env!("CARGO_BIN_EXE_xtask"), &["profiles"]));
    let redis = RedisServer::start();
    let (rootfs, bundle) = unpack("http-kv");
    let port = free_port();
    let _server = run_image(
        &rootfs,
        &profiles["http-kv"]["image"],
        &[
            ("OMNIA_HTTP_ADDR".into(), format!("127.0.0.1:{port}")),
            ("REDIS_URL".into(), redis.url()),
        ],
    );
    for expected in ["1", "2"] {
        let response = http(port, "POST", "/incr//hits");
        assert!(
            response.ends_with(&format!("\r\n\r\n{expected}")),
            "{response}"
        );
    }
    assert_eq!(
        redis.command(&[b"GET", b"default:hits"]),
        Resp::Bulk(Some(b"2".to_vec()))
    );
    let _ = std::fs::remove_dir_all(bundle);
}

#[test]
#[ignore = "run by tests/run after cargo xtask dist --app tests/apps/http-kv.toml"]
fn an_application_image_runs_its_manifest_with_precompiled_guests() {
    let profiles = json(&run(env!("CARGO_BIN_EXE_xtask"), &["profiles"]));
    let (rootfs, bundle) = unpack_from(&root().join("target/dist-app/http-kv"), "app");
    // The image runs the manifest: its command, as umoci wrote it for the runtime.
    let config: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let args = config["process"]["args"].as_array().unwrap();
    assert_eq!(args.last().and_then(Value::as_str), Some("/app/omnia.toml"));
    let manifest = std::fs::read_to_string(rootfs.join("app/omnia.toml")).unwrap();
    assert!(manifest.contains("path = \"api.bin\""), "{manifest}");
    assert!(rootfs.join("app/hello.bin").is_file());
    let mut image = profiles["http-kv"]["image"].clone();
    image["Cmd"] = serde_json::json!(["/app/omnia.toml"]);
    let port = free_port();
    let _server = run_image(
        &rootfs,
        &image,
        &[("OMNIA_HTTP_ADDR".into(), format!("127.0.0.1:{port}"))],
    );
    let response = http(port, "POST", "/incr/counters/hits");
    assert!(response.ends_with("\r\n\r\n1"), "{response}");
    let response = http(port, "GET", "/hello");
    assert!(
        response.ends_with("\r\n\r\nhello from Rust http guest\n"),
        "{response}"
    );
    // The api is granted `counters` only.
    let response = http(port, "POST", "/incr/other/hits");
    assert!(response.starts_with("HTTP/1.0 403"), "{response}");
    let _ = std::fs::remove_dir_all(bundle);
}
