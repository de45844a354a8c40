//! `cargo xtask`: the Omnia distribution without Nix, driven by the same profile files.
//!
//! ```sh
//! cargo xtask dist http-kv                        # target/dist/http-kv/{omnia, oci/, omnia-http-kv.tar}
//! cargo xtask dist --all --app app.wasm           # every profile, each image with the app
//! cargo xtask dist full --app examples/app        # an application: /app/omnia.toml and its guests
//! cargo xtask profiles                            # how each profile is read, as JSON
//! cargo xtask outdated                            # wasmtime crates: locked vs newest patch
//! ```
//!
//! `dist` builds the profile's `omnia` with the profile's cargo features (release, paths
//! remapped so that two checkouts build the same bytes; `--debug` for a quick dev build), then
//! writes its OCI image (see [`image`]). For an AOT-only profile, `--app` is precompiled first
//! with a JIT build of the same sources, as the image can only run `.bin` files: the full
//! profile's, built for the purpose, or one named with `--compiler` (a JIT `omnia` of the
//! same sources, such as `cargo build`'s, saves building the full profile).

mod app;
mod image;
mod outdated;
mod profile;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::profile::Profile;

/// Builds Omnia's distribution (binaries and OCI images) from profiles/*.toml.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build profiles' binaries and images into target/dist/<profile>/.
    Dist {
        /// Profile names (profiles/<name>.toml).
        profiles: Vec<String>,
        /// Every profile.
        #[arg(long)]
        all: bool,
        /// Put this component into each image (/app.wasm; precompiled to /app.bin for
        /// AOT-only profiles), or this application (an omnia.toml, or a directory holding one:
        /// the manifest and its guests' components in /app/, see the `app` module).
        #[arg(long, value_name = "COMPONENT|MANIFEST")]
        app: Option<PathBuf>,
        /// A dev build (fast, not reproducible) instead of a release build.
        #[arg(long)]
        debug: bool,
        /// Where to write (default: target/dist).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// A JIT `omnia` built from these sources that precompiles `--app` for AOT-only
        /// profiles (default: the first JIT profile built in this run, or the full profile,
        /// built for the purpose). It is run before any profile is built, so a binary that
        /// `--debug` builds overwrite, such as target/debug/omnia, is fine.
        #[arg(long, value_name = "OMNIA")]
        compiler: Option<PathBuf>,
    },
    /// Print every profile as read (features, services, image configuration) as JSON.
    Profiles,
    /// Print the wasmtime crates in Cargo.lock beside the newest patch release on crates.io,
    /// and the newest release all of them have (reads the crates.io index: run by hand).
    Outdated,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<()> {
    let root = workspace_root()?;
    let catalog = profile::catalog(&root)?;
    let profiles = profile::load_all(&root.join("profiles"), &catalog)?;
    match task {
        Task::Outdated => outdated::run(&root),
        Task::Profiles => {
            println!("{}", serde_json::to_string_pretty(&profiles)?);
            Ok(())
        }
        Task::Dist {
            profiles: names,
            all,
            app,
            debug,
            out,
            compiler,
        } => {
            let chosen: Vec<&Profile> = if all {
                profiles.values().collect()
            } else if names.is_empty() {
                bail!(
                    "name a profile (one of {}) or pass --all",
                    profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            } else {
                names
                    .iter()
                    .map(|n| {
                        profiles.get(n).with_context(|| {
                            format!(
                                "no profile {n:?}: expected one of {} (profiles/<name>.toml)",
                                profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                            )
                        })
                    })
                    .collect::<Result<_>>()?
            };
            let out = out.unwrap_or_else(|| root.join("target/dist"));
            let dist = Dist {
                root: &root,
                out: &out,
                debug,
                full: profiles
                    .get("full")
                    .context("profiles/full.toml is missing")?,
            };
            dist.all(&chosen, app.as_deref(), compiler)
        }
    }
}

/// One `dist` run.
struct Dist<'a> {
    root: &'a Path,
    out: &'a Path,
    debug: bool,
    /// The JIT profile that precompiles apps for AOT-only ones.
    full: &'a Profile,
}

impl Dist<'_> {
    fn all(
        &self,
        profiles: &[&Profile],
        app: Option<&Path>,
        mut compiler: Option<PathBuf>,
    ) -> Result<()> {
        let app = app.map(app::App::read).transpose()?;
        let version = workspace_version(self.root)?;
        let revision = git_revision(self.root);
        if let Some(jit) = &compiler {
            anyhow::ensure!(
                jit.is_file(),
                "--compiler {}: no such file (build a JIT omnia first, e.g. `cargo build -p omnia-cli`)",
                jit.display()
            );
        }
        for profile in profiles {
            let dir = self.out.join(&profile.name);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            // Precompiled before the profile is built: a `--debug` build overwrites
            // target/debug/omnia, which may be the compiler.
            let app = match &app {
                Some(app) => Some(app.files(profile.app_path(), |name, component| {
                    if profile.jit {
                        return Ok(component.to_path_buf());
                    }
                    let jit = self.compiler(&mut compiler)?;
                    precompile(&jit, component, &dir.join(format!("{name}.bin")))
                })?),
                None => None,
            };
            let binary = self.build(profile, &dir)?;
            if profile.jit && compiler.is_none() {
                compiler = Some(binary.clone());
            }
            let written = image::write(
                &image::ImageInput {
                    profile,
                    binary: &binary,
                    app: app.as_ref(),
                    version: &version,
                    revision: revision.as_deref(),
                },
                &dir,
            )?;
            std::fs::write(dir.join("digest"), format!("{}\n", written.digest))?;
            println!(
                "{}: {} (image {}), {} and {}",
                profile.name,
                binary.display(),
                written.digest,
                written.layout.display(),
                written.archive.display()
            );
        }
        Ok(())
    }

    /// A JIT binary of these sources: `--compiler`, one built earlier in this run, or the full
    /// profile's, built now into `<out>/compiler/` (not the full profile's own directory,
    /// which holds an image only when that profile was asked for).
    fn compiler(&self, built: &mut Option<PathBuf>) -> Result<PathBuf> {
        if let Some(jit) = built {
            return Ok(jit.clone());
        }
        let dir = self.out.join("compiler");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let jit = self.build(self.full, &dir)?;
        *built = Some(jit.clone());
        Ok(jit)
    }

    /// Builds the profile's binary and copies it to `dir/omnia`.
    fn build(&self, profile: &Profile, dir: &Path) -> Result<PathBuf> {
        eprintln!(
            "building omnia for profile {} ({})",
            profile.name,
            profile.features.join(", ")
        );
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(self.root)
            .arg("build")
            .args(profile.cargo_args())
            .env("OMNIA_PROFILE", &profile.name);
        let target = if self.debug {
            self.root.join("target/debug")
        } else {
            // Release builds are reproducible: no checkout or home directory paths inside.
            let target_dir = self.root.join("target/dist/cargo");
            let cargo_home =
                std::env::var_os("CARGO_HOME").map_or_else(|| home().join(".cargo"), PathBuf::from);
            let flags = [
                format!("--remap-path-prefix={}=/omnia", self.root.display()),
                format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
            ];
            cmd.arg("--release")
                .arg("--target-dir")
                .arg(&target_dir)
                .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\u{1f}"));
            target_dir.join("release")
        };
        let status = cmd.status().context("cannot run cargo")?;
        if !status.success() {
            bail!("cargo build for profile {} failed", profile.name);
        }
        let binary = dir.join("omnia");
        std::fs::copy(target.join("omnia"), &binary)
            .with_context(|| format!("cannot copy the binary to {}", binary.display()))?;
        Ok(binary)
    }
}

/// `app` precompiled by the JIT binary `jit` into `bin`.
fn precompile(jit: &Path, app: &Path, bin: &Path) -> Result<PathBuf> {
    let bin = bin.to_path_buf();
    let status = Command::new(jit)
        .arg("compile")
        .arg(app)
        .arg("-o")
        .arg(&bin)
        .env("OMNIA_COMPILE_CACHE", "off")
        .status()
        .with_context(|| format!("cannot run {}", jit.display()))?;
    if !status.success() {
        bail!("omnia compile {} failed", app.display());
    }
    Ok(bin)
}

/// The workspace root: two levels above this crate.
fn workspace_root() -> Result<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .context("cannot find the workspace root")
}

fn workspace_version(root: &Path) -> Result<String> {
    let path = root.join("Cargo.toml");
    let manifest: toml::Table = toml::from_str(
        &std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?,
    )?;
    manifest
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .context("Cargo.toml has no workspace.package.version")
}

/// The commit checked out, if this is a git checkout without local changes.
fn git_revision(root: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])?;
    if !dirty.is_empty() {
        return None;
    }
    git(&["rev-parse", "HEAD"])
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}
