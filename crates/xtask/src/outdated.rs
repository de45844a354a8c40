//! `cargo xtask outdated`: the wasmtime crates in `Cargo.lock` beside the newest patch release
//! of the same line on crates.io, and the newest release that every one of them has.
//!
//! Wasmtime publishes its crates together, one version for all, and pins them to each other
//! exactly (`wasmtime-wasi 48.0.8` needs `wiggle =48.0.8`, which needs `wasmtime-environ
//! =48.0.8`), so Omnia can move to a patch release only when every crate it uses has that
//! release. This task says which that is, and which crates hold it back. It reads the
//! crates.io index over the network (with `curl`), so it is run by hand, never in CI: CI must
//! not fail because upstream published something.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// Crates of the wasmtime release train, by name prefix.
const FAMILY: &[&str] = &[
    "wasmtime",
    "wiggle",
    "cranelift",
    "pulley",
    "wasi-preview1-component-adapter-provider",
];

/// The crates.io sparse index.
const INDEX: &str = "https://index.crates.io";

/// A version as `(major, minor, patch)`; pre-releases are skipped when reading the index.
type Version = (u64, u64, u64);

/// Prints the report for the workspace at `root`.
pub fn run(root: &Path) -> Result<()> {
    let locked = locked_family(root)?;
    if locked.is_empty() {
        bail!("Cargo.lock has no wasmtime crates");
    }
    let mut newest_per_crate = BTreeMap::new();
    println!("{:<48} {:>10} {:>14}", "crate", "locked", "newest patch");
    for (name, version) in &locked {
        let published = published(name)?;
        let newest = published
            .iter()
            .filter(|v| same_line(**v, *version))
            .max()
            .copied()
            .unwrap_or(*version);
        let mark = if newest > *version { "  <- newer" } else { "" };
        println!(
            "{name:<48} {:>10} {:>14}{mark}",
            show(*version),
            show(newest)
        );
        newest_per_crate.insert(name.clone(), (published, newest));
    }
    // wasmtime-* crates share one version number; cranelift and pulley follow their own
    // numbering, released with the same train.
    let wasmtime = locked
        .get("wasmtime")
        .context("Cargo.lock has no `wasmtime` package")?;
    let train: Vec<&String> = locked
        .iter()
        .filter(|(_, v)| *v == wasmtime)
        .map(|(n, _)| n)
        .collect();
    let newest_wasmtime = newest_per_crate["wasmtime"].1;
    // The newest version that every crate of the train was published at.
    let common = newest_per_crate["wasmtime"]
        .0
        .iter()
        .filter(|v| same_line(**v, *wasmtime))
        .filter(|v| {
            train
                .iter()
                .all(|name| newest_per_crate[*name].0.contains(v))
        })
        .max()
        .copied()
        .unwrap_or(*wasmtime);
    println!();
    println!(
        "wasmtime: locked {}, newest {} patch on crates.io {}",
        show(*wasmtime),
        line(*wasmtime),
        show(newest_wasmtime)
    );
    println!(
        "newest release that all {} crates locked at {} have: {}",
        train.len(),
        show(*wasmtime),
        show(common)
    );
    if newest_wasmtime > common {
        let missing: Vec<&str> = train
            .iter()
            .filter(|name| !newest_per_crate[**name].0.contains(&newest_wasmtime))
            .map(|name| name.as_str())
            .collect();
        println!("without {}: {}", show(newest_wasmtime), missing.join(", "));
    }
    if common > *wasmtime {
        println!(
            "to move: set the `=` versions of the wasmtime crates in Cargo.toml to {} and run \
             `cargo update -p wasmtime`; cargo refuses if another exact pin still holds it back",
            show(common)
        );
    } else {
        println!("nothing to move to: Omnia is on the newest release it can take");
    }
    Ok(())
}

/// `name -> version` of the wasmtime crates in `root/Cargo.lock` (from crates.io).
fn locked_family(root: &Path) -> Result<BTreeMap<String, Version>> {
    #[derive(Deserialize)]
    struct Lock {
        package: Vec<Package>,
    }
    #[derive(Deserialize)]
    struct Package {
        name: String,
        version: String,
        source: Option<String>,
    }
    let path = root.join("Cargo.lock");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let lock: Lock = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let mut family = BTreeMap::new();
    for package in lock.package {
        let from_registry = package
            .source
            .as_deref()
            .is_some_and(|s| s.starts_with("registry+"));
        if from_registry && FAMILY.iter().any(|p| package.name.starts_with(p)) {
            let version = parse(&package.version).with_context(|| {
                format!(
                    "{}: version {} of {}",
                    path.display(),
                    package.version,
                    package.name
                )
            })?;
            family.insert(package.name, version);
        }
    }
    Ok(family)
}

/// Every version of `name` on crates.io that is not yanked and not a pre-release.
fn published(name: &str) -> Result<Vec<Version>> {
    #[derive(Deserialize)]
    struct Entry {
        vers: String,
        yanked: bool,
    }
    let url = format!("{INDEX}/{}", index_path(name));
    let out = Command::new("curl")
        .args([
            "--fail",
            "--silent",
            "--show-error",
            "--max-time",
            "30",
            &url,
        ])
        .output()
        .with_context(|| format!("cannot run curl for {url} (install curl)"))?;
    if !out.status.success() {
        bail!("{url}: {}", String::from_utf8_lossy(&out.stderr).trim_end());
    }
    let text = String::from_utf8(out.stdout).with_context(|| format!("{url}: not UTF-8"))?;
    let mut versions = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Entry =
            serde_json::from_str(line).with_context(|| format!("{url}: bad index line {line}"))?;
        if !entry.yanked
            && let Some(version) = parse(&entry.vers)
        {
            versions.push(version);
        }
    }
    Ok(versions)
}

/// Where the sparse index keeps `name` (the crates.io layout: `1/a`, `2/ab`, `3/a/abc`,
/// `ab/cd/abcd...`).
fn index_path(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    match name.len() {
        1 => format!("1/{name}"),
        2 => format!("2/{name}"),
        3 => format!("3/{}/{name}", &name[..1]),
        _ => format!("{}/{}/{name}", &name[..2], &name[2..4]),
    }
}

/// `1.2.3` as a version; `None` for a pre-release or anything else.
fn parse(text: &str) -> Option<Version> {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

/// Whether `candidate` is a patch release of the same line as `locked` (same major, and same
/// minor, as wasmtime and cranelift never add features in a patch).
fn same_line(candidate: Version, locked: Version) -> bool {
    candidate.0 == locked.0 && candidate.1 == locked.1
}

fn show((major, minor, patch): Version) -> String {
    format!("{major}.{minor}.{patch}")
}

fn line((major, minor, _): Version) -> String {
    format!("{major}.{minor}.x")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_paths_follow_the_crates_io_layout() {
        assert_eq!(index_path("a"), "1/a");
        assert_eq!(index_path("h2"), "2/h2");
        assert_eq!(index_path("syn"), "3/s/syn");
        assert_eq!(index_path("wasmtime-wasi"), "wa/sm/wasmtime-wasi");
        assert_eq!(index_path("Wiggle"), "wi/gg/wiggle");
    }

    #[test]
    fn versions_and_lines() {
        assert_eq!(parse("48.0.11"), Some((48, 0, 11)));
        assert_eq!(parse("50.0.0-rc.1"), None);
        assert_eq!(parse("1.2"), None);
        assert!(same_line((48, 0, 11), (48, 0, 8)));
        assert!(!same_line((49, 0, 0), (48, 0, 8)));
        assert!(same_line((0, 135, 10), (0, 135, 8)));
        assert!(!same_line((0, 136, 0), (0, 135, 8)));
    }

    #[test]
    fn the_lock_file_has_the_wasmtime_crates() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let family = locked_family(&root).unwrap();
        for name in [
            "wasmtime",
            "wasmtime-wasi",
            "wasmtime-wasi-http",
            "cranelift-codegen",
        ] {
            assert!(family.contains_key(name), "{name} missing from {family:?}");
        }
    }
}
