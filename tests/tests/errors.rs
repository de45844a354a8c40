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
    assert!(
        err.contains("not-wasm.wasm is not a WebAssembly component"),
        "{err}"
    );
}

#[test]
fn core_module_instead_of_component() {
    let path = guests::write_temp("core.wasm", &wat::parse_str("(module)").unwrap());
    let err = run_fails(&omnia(), &path, &[]);
    assert!(
        err.contains("core.wasm is a core WebAssembly module, not a component"),
        "{err}"
    );
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
    let bin = engine.precompile_component(&wasm).unwrap();
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
