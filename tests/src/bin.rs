//! Where the `omnia` binaries under test are.
//!
//! `tests/run` builds two: the default one (every feature), next to the test binaries
//! (`target/debug/omnia`, or `target/release/omnia` for a release test build such as the Nix
//! flake's), and an AOT-only one with in-memory key-value only (`--no-default-features
//! --features http,keyvalue`) copied to `target/omnia-aot/omnia`. `OMNIA_BIN` and
//! `OMNIA_AOT_BIN` override the locations.

use std::path::PathBuf;

/// The workspace's `target` directory, found from the running test binary
/// (`target/debug/deps/<test>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    exe.ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
}

fn locate(var: &str, default: PathBuf, how: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or(default, PathBuf::from);
    assert!(
        path.is_file(),
        "{} not found: {how} (or set {var})",
        path.display()
    );
    path
}

/// The directory of the cargo profile the tests were built with (`target/debug`, ...): the
/// test binary is `<that>/deps/<test>`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    exe.ancestors()
        .nth(2)
        .map_or_else(|| target_dir().join("debug"), PathBuf::from)
}

/// The default `omnia` binary (with the `jit` feature).
pub fn omnia() -> PathBuf {
    locate(
        "OMNIA_BIN",
        profile_dir().join("omnia"),
        "run `cargo test --workspace` or `cargo build -p omnia-cli` (tests/run does)",
    )
}

/// The AOT-only `omnia` binary (built without the `jit` feature).
pub fn omnia_aot() -> PathBuf {
    locate(
        "OMNIA_AOT_BIN",
        target_dir().join("omnia-aot/omnia"),
        "run tests/run, which builds it with --no-default-features",
    )
}
