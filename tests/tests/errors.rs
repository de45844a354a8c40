//! Bad input gets a clear error naming the input and what to do, and a non-zero exit; never a
//! panic.

use std::path::Path;

use omnia_tests::{guests, omnia, omnia_aot, run_to_end};

/// Runs `omnia run <path>` and returns stderr, asserting a clean failure.
fn run_fails(bin: &Path, path: &Path, env: &[(&str, &str)]) -> String {
    let out = run_to_end(bin, &["run", path.to_str().unwrap()], env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "exit code 1, stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    stderr
}

#[test]
fn missing_file() {
    let err = run_fails(&omnia(), Path::new("/no/such/app.wasm"), &[]);
    assert!(err.contains("cannot read /no/such/app.wasm"), "{err}");
}

#[test]
fn not_webassembly() {
    let path = guests::write_temp("not-wasm.wasm", b"#!/bin/sh\necho hi\n");
    let err = run_fails(&omnia(), &path, &[]);
    assert!(err.contains("not-wasm.wasm is not WebAssembly"), "{err}");
}

#[test]
fn core_module_that_is_not_a_command() {
    // A core module runs as a WASI 0.1 command; one without `_start` is a library.
    let path = guests::write_temp("core.wasm", &wat::parse_str("(module)").unwrap());
    let err = run_fails(&omnia(), &path, &[]);
    assert!(
        err.contains("core.wasm has no `_start` export: it is a library (reactor)"),
        "{err}"
    );
    // Imports other than WASI 0.1 cannot be satisfied by a module.
    let path = guests::write_temp(
        "core-imports.wasm",
        &wat::parse_str(r#"(module (import "env" "f" (func)))"#).unwrap(),
    );
    let err = run_fails(&omnia(), &path, &[]);
    assert!(err.contains("may import only WASI 0.1"), "{err}");
}

#[test]
fn invalid_component_bytes() {
    // A component header followed by garbage.
    let mut bytes = b"\0asm\x0d\x00\x01\x00".to_vec();
    bytes.extend_from_slice(&[0xff; 16]);
    let path = guests::write_temp("garbage.wasm", &bytes);
    let err = run_fails(&omnia(), &path, &[]);
    assert!(
        err.contains("cannot compile") && err.contains("garbage.wasm"),
        "{err}"
    );
}

#[test]
fn unprovided_imports_are_all_listed() {
    let component = r#"(component
        (import "acme:billing/invoices@1.0.0" (instance (export "total" (func (result u32)))))
        (import "acme:billing/customers@1.0.0" (instance (export "count" (func (result u32)))))
        (import "wasi:cli/environment@0.2.0" (instance))
    )"#;
    let path = guests::write_temp("needs-more.wasm", component.as_bytes());
    let err = run_fails(&omnia(), &path, &[]);
    assert!(
        err.contains("imports 2 interface(s) this runtime does not provide"),
        "{err}"
    );
    assert!(err.contains("- acme:billing/invoices@1.0.0"), "{err}");
    assert!(err.contains("- acme:billing/customers@1.0.0"), "{err}");
    assert!(
        !err.contains("- wasi:cli/environment"),
        "WASI is provided: {err}"
    );
}

/// A guest built against another shape of an interface this runtime provides is told what
/// differs, not that the interface is missing: here `wasi:messaging/types@0.2.0-draft` with an
/// `error` variant of five cases (the runtime's has four), a function the runtime lacks, and
/// `wasi:cli/environment` (a compatible version) whose `get-environment` returns the wrong type.
#[test]
fn imports_of_another_shape_name_the_item_that_differs() {
    let component = r#"(component
        (import "wasi:messaging/types@0.2.0-draft" (instance $types
            (export "client" (type $client (sub resource)))
            (type $err (variant (case "timeout") (case "connection" string)
                (case "permission-denied" string) (case "other" string) (case "busy")))
            (export "error" (type $e (eq $err)))
            (type $own (own $client))
            (type $connected (result $own (error $e)))
            (export "[static]client.connect" (func (param "name" string) (result $connected)))
            (type $borrowed (borrow $client))
            (export "[method]client.ping" (func (param "self" $borrowed)))
        ))
        (import "wasi:cli/environment@0.2.0" (instance
            (export "get-environment" (func (result (list string))))
        ))
        (import "acme:billing/invoices@1.0.0" (instance (export "total" (func (result u32)))))
    )"#;
    let path = guests::write_temp("other-shape.wasm", component.as_bytes());
    let err = run_fails(&omnia(), &path, &[]);
    for expected in [
        "the component's imports differ from what this runtime provides:",
        "- wasi:messaging/types@0.2.0-draft (the same version here): type `error`: the component \
         expects variant { timeout, connection(string), permission-denied(string), other(string), \
         busy }; this runtime has variant of 4 cases, the component 5 cases (first seen in the \
         results of `[static]client.connect`)",
        "- wasi:messaging/types@0.2.0-draft (the same version here): function \
         `[method]client.ping`: the component expects `func(self: borrow<client>)`; this runtime \
         does not provide it",
        "- wasi:cli/environment@0.2.0 (a compatible version here): function `get-environment`, \
         its results: the component expects `func() -> list<string>`; this runtime has \
         `tuple`, the component `string`",
        "the component imports 1 interface(s) this runtime does not provide:\n  - \
         acme:billing/invoices@1.0.0",
    ] {
        assert!(err.contains(expected), "expected {expected:?} in:\n{err}");
    }
}

/// A trigger's export of another shape is refused at start-up, naming the function and both
/// sides, instead of failing every request: here an HTTP handler whose `handle` takes a `u32`.
#[test]
fn a_trigger_export_of_another_shape_is_refused_at_start() {
    let component = r#"(component
        (core module $m (func (export "handle") (param i32)))
        (core instance $i (instantiate $m))
        (func $handle (param "a" u32) (canon lift (core func $i "handle")))
        (instance $handler (export "handle" (func $handle)))
        (export "wasi:http/incoming-handler@0.2.0" (instance $handler))
    )"#;
    let path = guests::write_temp("other-handler.wasm", component.as_bytes());
    let err = run_fails(&omnia(), &path, &[]);
    assert!(
        err.contains(
            "the component's export wasi:http/incoming-handler@0.2.0 has another shape: function \
             `handle`: the component has `func(a: u32)`; this runtime has 2-tuple, the component \
             1-tuple"
        ),
        "{err}"
    );
}

#[test]
fn component_without_a_known_export() {
    let path = guests::write_temp("no-exports.wasm", b"(component)");
    let err = run_fails(&omnia(), &path, &[]);
    assert!(
        err.contains("exports nothing this runtime can run"),
        "{err}"
    );
    assert!(err.contains("wasi:cli/run"), "{err}");
}

#[test]
fn bin_from_another_engine_configuration() {
    // Precompiled by a wasmtime engine configured differently from omnia's (no epoch
    // interruption): the artifact is genuine but must be refused.
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(false);
    let engine = wasmtime::Engine::new(&config).unwrap();
    let wasm = std::fs::read(guests::rust("http-hello")).unwrap();
    // Sealed as `omnia compile` seals, so that only the engine configuration is wrong.
    let bin = omnia::artifact::seal(engine.precompile_component(&wasm).unwrap());
    let path = guests::write_temp("foreign.bin", &bin);
    for omnia in [omnia(), omnia_aot()] {
        let err = run_fails(&omnia, &path, &[]);
        assert!(
            err.contains(
                "foreign.bin was precompiled by a different omnia version or engine configuration"
            ),
            "{err}"
        );
        assert!(err.contains("omnia compile"), "{err}");
    }
}

#[test]
fn bad_configuration_names_the_variable() {
    let hello = guests::rust("http-hello");
    for (var, value, expect) in [
        ("OMNIA_REQUEST_TIMEOUT", "soon", "expected a duration"),
        ("OMNIA_MAX_MEMORY", "lots", "expected a size"),
        ("OMNIA_MAX_CONCURRENCY", "0", "from 1 to 1000000"),
        (
            "OMNIA_MAX_CONCURRENCY",
            "18446744073709551615",
            "from 1 to 1000000",
        ),
        ("OMNIA_REQUEST_TIMEOUT", "999999999999999999m", "too long"),
        ("OMNIA_HTTP_ADDR", "localhost", "expected an address"),
        ("OMNIA_HTTP_ALLOWED_HOSTS", "a b", "bad entry"),
    ] {
        let err = run_fails(&omnia(), &hello, &[(var, value)]);
        assert!(
            err.contains(var) && err.contains(expect),
            "{var}={value}: {err}"
        );
    }
}

#[test]
fn address_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = run_fails(
        &omnia(),
        &guests::rust("http-hello"),
        &[("OMNIA_HTTP_ADDR", &addr)],
    );
    assert!(
        err.contains(&format!("cannot listen on OMNIA_HTTP_ADDR={addr}")),
        "{err}"
    );
}

#[test]
fn files_that_are_not_components_are_refused_before_reading() {
    let err = run_fails(&omnia(), Path::new("/dev/zero"), &[]);
    assert!(err.contains("/dev/zero is a device, not a file"), "{err}");
    let dir = std::env::temp_dir().join(format!("omnia-fifo-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let made = std::process::Command::new("mkfifo")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(made.success());
    let err = run_fails(&omnia(), &dir, &[]);
    assert!(err.contains("is a FIFO (named pipe), not a file"), "{err}");
    let _ = std::fs::remove_file(&dir);
    // A directory may hold an application's manifest; this one does not.
    let err = run_fails(&omnia(), &std::env::temp_dir(), &[]);
    assert!(
        err.contains("is a directory without an omnia.toml: give the component's file"),
        "{err}"
    );
}

#[test]
fn components_over_the_size_limit_are_refused() {
    let err = run_fails(
        &omnia(),
        &guests::rust("http-hello"),
        &[("OMNIA_MAX_COMPONENT_SIZE", "1KiB")],
    );
    assert!(
        err.contains("http-hello.wasm is larger than OMNIA_MAX_COMPONENT_SIZE (1024 bytes)"),
        "{err}"
    );
}

#[test]
fn every_setting_is_checked_before_the_component_is_read() {
    // The component does not even exist: the settings are reported first, in milliseconds,
    // whichever backend is selected.
    let missing = Path::new("/no/such/app.wasm");
    for (env, expect) in [
        (
            vec![("OMNIA_MAX_MEMORY", "8GiB")],
            "OMNIA_MAX_MEMORY=\"8GiB\" is not valid",
        ),
        (
            vec![("OMNIA_KEYVALUE", "memory"), ("REDIS_URL", "http://nope")],
            "REDIS_URL=\"http://nope\" is not valid",
        ),
        (vec![("NATS_URL", "nats://a:b@h:1,ftp:///")], "NATS_URL="),
        (vec![("OMNIA_HTTP_ALLOWED_HOSTS", "*.")], "bad entry \"*.\""),
        (
            vec![("OMNIA_HTTP_ALLOWED_HOSTS", "*.*.example.com")],
            "bad entry \"*.*.example.com\"",
        ),
        (
            vec![("OMNIA_KEYVALUE_DEFAULT_BUCKET", "no/slash")],
            "OMNIA_KEYVALUE_DEFAULT_BUCKET",
        ),
        (vec![("OMNIA_HTTP_IDLE_TIMEOUT", "0s")], "above zero"),
    ] {
        let err = run_fails(&omnia(), missing, &env);
        assert!(err.contains(expect), "{env:?}: {err}");
        assert!(
            !err.contains("cannot read /no/such/app.wasm"),
            "{env:?}: {err}"
        );
    }
}

#[test]
fn passwords_never_appear_in_errors() {
    let secret = "hunter2secret";
    let otlp = |headers: String| {
        vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://127.0.0.1:1".to_owned(),
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", headers),
        ]
    };
    for env in [
        // Every server of a list, and a URL no parser accepts.
        vec![(
            "NATS_URL",
            format!("nats://u:{secret}@127.0.0.1:1,nats://v:{secret}x@127.0.0.1:2"),
        )],
        vec![("NATS_URL", format!("nats://u:{secret}@bad host:1"))],
        vec![(
            "REDIS_URL",
            format!("redis+unix:///no/such.sock?db=0&pass={secret}"),
        )],
        vec![("REDIS_URL", format!("redis://:{secret}@127.0.0.1:1/0"))],
        vec![("REDIS_URL", format!("redis://u:{secret}@[bad"))],
        // Malformed: `/`, `#`, `?` or `,` in the password, `:` or `/` missing after the scheme.
        vec![("REDIS_URL", format!("redis://:{secret}/x@127.0.0.1:1/"))],
        vec![("REDIS_URL", format!("redis://:{secret}#x@127.0.0.1:1/"))],
        vec![("REDIS_URL", format!("redis://:{secret}?x@127.0.0.1:1/"))],
        vec![("REDIS_URL", format!("redis://u:a,{secret}@127.0.0.1:1/"))],
        vec![("REDIS_URL", format!("redis//:{secret}@127.0.0.1:1"))],
        vec![("NATS_URL", format!("nats//u:{secret}@127.0.0.1:1"))],
        vec![("NATS_URL", format!("nats:/u:{secret}@127.0.0.1:1"))],
        // OTLP headers with the `=` missing, or a value where the name should be.
        otlp(format!("authorization Bearer {secret}")),
        otlp(format!("authorization:Bearer {secret}=x")),
    ] {
        let var = env[0].0;
        let kv = match var {
            "NATS_URL" => "nats",
            "REDIS_URL" => "redis",
            _ => "memory",
        };
        let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.push(("OMNIA_KEYVALUE", kv));
        let out = run_to_end(
            &omnia(),
            &["run", guests::rust("kv-http").to_str().unwrap()],
            &all,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{env:?}: {stderr}");
        assert!(!stderr.contains(secret), "{env:?} leaked: {stderr}");
        let named = env.last().map_or(var, |(k, _)| *k);
        assert!(stderr.contains(named), "{env:?}: {stderr}");
    }
}

#[test]
fn user_errors_print_no_backtrace() {
    let out = run_to_end(
        &omnia(),
        &["run", "/no/such/app.wasm"],
        &[("RUST_BACKTRACE", "1"), ("RUST_LIB_BACKTRACE", "1")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.starts_with("Error: cannot read /no/such/app.wasm"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Stack backtrace") && !stderr.contains(" at "),
        "{stderr}"
    );
}
