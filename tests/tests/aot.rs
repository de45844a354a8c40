//! `omnia compile` writes a `.bin` that an AOT-only build (no `jit` feature) serves; that
//! build refuses `.wasm` with an error that says what to do.

use http::StatusCode;
use omnia_tests::{Omnia, get, guests, omnia, omnia_aot, p2_and_p3, run_to_end};

p2_and_p3!(compiled_bin_is_served_by_the_aot_only_build);

/// `omnia compile wasm -o bin`, which must succeed.
fn compile(wasm: &std::path::Path, bin: &std::path::Path) {
    let out = run_to_end(
        &omnia(),
        &[
            "compile",
            wasm.to_str().unwrap(),
            "-o",
            bin.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(bin.is_file());
}

async fn compiled_bin_is_served_by_the_aot_only_build(echo: &str) {
    let dir = std::env::temp_dir().join(format!("omnia-aot-{echo}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("echo.bin");
    compile(&guests::rust(echo), &bin);

    let server = Omnia::serve(&omnia_aot(), &bin, &[]);
    let response = get(&server.url("/aot")).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.text().starts_with("method: GET\npath: /aot\n"));

    // The JIT build loads the same .bin too.
    let server = Omnia::serve(&omnia(), &bin, &[]);
    assert_eq!(get(&server.url("/")).await.unwrap().status, StatusCode::OK);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn aot_only_build_refuses_wasm_and_says_what_to_do() {
    let wasm = guests::rust("http-echo");
    let out = run_to_end(&omnia_aot(), &["run", wasm.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("built without the `jit` feature"),
        "{stderr}"
    );
    assert!(stderr.contains("omnia compile"), "{stderr}");
}

#[test]
fn aot_only_build_has_no_compile_command() {
    let out = run_to_end(&omnia_aot(), &["--version"], &[]);
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.contains("aot-only") && !version.contains("jit"),
        "{version}"
    );
    let out = run_to_end(&omnia_aot(), &["compile", "x.wasm"], &[]);
    assert_eq!(out.status.code(), Some(2), "clap usage error");
}

#[test]
fn compile_output_defaults_next_to_the_input() {
    let wasm = guests::write_temp(
        "default-out.wasm",
        &std::fs::read(guests::rust("http-hello")).unwrap(),
    );
    let out = run_to_end(&omnia(), &["compile", wasm.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(wasm.with_extension("bin").is_file());
}

/// A WASI 0.1 core module precompiles too, and the AOT-only build runs the `.bin` as a command.
#[test]
fn compiled_core_module_runs_in_the_aot_only_build() {
    let dir = std::env::temp_dir().join(format!("omnia-aot-p1-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("hello-p1.bin");
    compile(&guests::rust("hello-p1"), &bin);
    let out = run_to_end(
        &omnia_aot(),
        &["run", bin.to_str().unwrap(), "exit", "9"],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
