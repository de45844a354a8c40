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

/// A `.bin` with flipped bytes, or cut short, is refused before any of it is loaded, with a
/// message that says what happened and what to do; it never crashes the process.
#[test]
fn corrupted_or_truncated_bin_is_refused() {
    let dir = std::env::temp_dir().join(format!("omnia-corrupt-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("echo.bin");
    compile(&guests::rust("http-echo"), &bin);
    let good = std::fs::read(&bin).unwrap();
    let len = good.len();
    let mut cases: Vec<(String, Vec<u8>, &str)> = Vec::new();
    // The offsets of the attack that made omnia ask for 412 GB, then spread over the file.
    for offset in [0x462ff, 0x463f0, 0x4a01a, 100, len / 3, len / 2, len - 100] {
        let mut bad = good.clone();
        let offset = offset.min(len - 1);
        bad[offset] ^= 0x5a;
        cases.push((format!("byte {offset:#x} flipped"), bad, "is corrupted"));
    }
    for cut in [len / 2, len - 1, 64] {
        cases.push((
            format!("cut to {cut} bytes"),
            good[..cut].to_vec(),
            "no integrity seal",
        ));
    }
    for (what, bytes, says) in cases {
        let path = dir.join("bad.bin");
        std::fs::write(&path, &bytes).unwrap();
        for omnia in [omnia(), omnia_aot()] {
            let out = run_to_end(&omnia, &["run", path.to_str().unwrap()], &[]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
            assert!(stderr.contains(says), "{what}: {stderr}");
            assert!(stderr.contains("omnia compile"), "{what}: {stderr}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A compile-cache entry that was damaged is discarded (logged once), the component compiled
/// again and the entry rewritten; the run itself is unaffected.
#[test]
fn corrupted_compile_cache_entry_is_rebuilt() {
    let cache = std::env::temp_dir().join(format!("omnia-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let hello = guests::rust("hello");
    let run = || {
        let env = [("OMNIA_COMPILE_CACHE", cache.to_str().unwrap())];
        let out = run_to_end(&omnia(), &["run", hello.to_str().unwrap()], &env);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with("hello from Rust guest"), "{stdout}");
        stderr
    };
    let entry = || {
        let entries: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(
            entries.len(),
            1,
            "one entry, no temporary file left: {entries:?}"
        );
        entries[0].clone()
    };
    assert!(!run().contains("compile cache"));
    let path = entry();
    let good = std::fs::read(&path).unwrap();
    assert!(
        !run().contains("compile cache"),
        "a sound entry is used as it is"
    );
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xd5;
    for (what, bad) in [
        ("a flipped byte", flipped),
        ("cut short", good[..good.len() / 3].to_vec()),
    ] {
        std::fs::write(&path, &bad).unwrap();
        let stderr = run();
        assert!(
            stderr.contains("compile cache: discarding"),
            "{what}: {stderr}"
        );
        let rebuilt = std::fs::read(entry()).unwrap();
        assert!(
            omnia::artifact::unseal(&rebuilt).is_ok(),
            "{what}: the entry is rebuilt"
        );
    }
    std::fs::remove_dir_all(&cache).unwrap();
}
