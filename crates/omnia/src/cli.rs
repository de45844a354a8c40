//! The command line every Omnia runtime shares: `run` and (with `jit`) `compile`.
//!
//! [`runtime!`](crate::runtime) wraps [`Command`] in the runtime's own `Cli`, and adds one
//! flag to `run` for every [`Setting`] that has one (see [`parse`]): `omnia run --help` lists
//! them with their environment variables and defaults.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Arg, ArgAction, Args, Subcommand};

use crate::config::{self, Setting, SettingGroup};

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a component: serve its triggers (e.g. HTTP), or, if it only exports `wasi:cli/run`,
    /// run it as a command.
    Run(RunArgs),
    /// Precompile a .wasm component into a .bin that loads without a compiler.
    #[cfg(feature = "jit")]
    Compile(CompileArgs),
}

/// What [`RunArgs::component`] is when none is given: the current directory, which is run if
/// it holds an `omnia.toml` (unless `--manifest` or `OMNIA_MANIFEST` names another).
pub const NO_COMPONENT: &str = ".";

/// Arguments of `run`.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// The component: a .wasm (needs the `jit` feature) or a .bin from `omnia compile`; or a
    /// manifest of an application (an `omnia.toml`, or a directory holding one). Without it:
    /// the manifest `--manifest` (`OMNIA_MANIFEST`) names, or `./omnia.toml`.
    #[arg(default_value = NO_COMPONENT, hide_default_value = true)]
    pub component: PathBuf,

    /// Arguments passed to a command component (after the component, or after `--`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,

    /// Grant an environment variable to the guest (a command or a served guest): `KEY=VALUE`,
    /// or `KEY` to pass omnia's own value. Repeatable. Nothing is granted by default.
    #[arg(long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,

    /// Grant a host directory to the guest, read-write: `HOST` (seen as the same path) or
    /// `HOST::GUEST`. Repeatable. Nothing is granted by default.
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    pub dirs: Vec<String>,

    /// Grant a host directory to the guest, read-only: `HOST` or `HOST::GUEST`. Repeatable.
    #[arg(long = "dir-ro", value_name = "HOST[::GUEST]")]
    pub dirs_read_only: Vec<String>,

    /// Grant the guest the host's network: `wasi:sockets` TCP and UDP to any address, and name
    /// lookups (as `wasmtime -S inherit-network -S allow-ip-name-lookup`). Without it sockets
    /// can be created but every bind and connect is refused.
    #[arg(long = "inherit-network")]
    pub inherit_network: bool,

    /// A `wasmtime` WASI option, for command lines written for `wasmtime serve` or `run`:
    /// inherit-network, allow-ip-name-lookup, inherit-env (every variable of omnia's
    /// environment), or cli, http, p3, tcp, udp (always on). Repeatable, or comma-separated.
    #[arg(short = 'S', value_name = "OPTION[=y|n]")]
    pub wasi: Vec<String>,
}

/// Arguments of `compile`.
#[cfg(feature = "jit")]
#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The .wasm component to compile.
    pub component: PathBuf,

    /// Where to write the precompiled component (default: the input with a .bin extension).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// The wasmtime release this build runs guests on (every `wasmtime*` crate is pinned to it in
/// the workspace's `Cargo.toml`; a test checks it against `Cargo.lock`).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// `omnia --version` text: the crate version, the profile it was built from (if any), whether
/// the build has a compiler, the capabilities compiled in with their backends, and the
/// wasmtime release, e.g.
/// `0.1.0 (profile: full; features: jit, http, keyvalue[memory,redis]), wasmtime 48.0.8`.
pub fn version(profile: Option<&str>, capabilities: &[String]) -> String {
    format!(
        "{} ({}), wasmtime {WASMTIME_VERSION}",
        env!("CARGO_PKG_VERSION"),
        build_summary(profile, capabilities)
    )
}

/// `profile: full; features: jit, http, ...`, or `features: ...` for a build without a profile.
pub fn build_summary(profile: Option<&str>, capabilities: &[String]) -> String {
    let compiler = if crate::JIT_ENABLED {
        "jit"
    } else {
        "aot-only"
    };
    let mut features = vec![compiler.to_owned()];
    features.extend_from_slice(capabilities);
    let features = format!("features: {}", features.join(", "));
    match profile {
        Some(profile) => format!("profile: {profile}; {features}"),
        None => features,
    }
}

/// The heading of the grant flags of `run`.
const GRANTS_HEADING: &str = "Grants (nothing is granted by default)";

/// Parses the command line of `P` (a runtime's `Cli`). `omnia run --help` lists every setting
/// of `groups`, under its capability's heading: a flag for each setting that has one, and the
/// environment-only ones (secrets, which would show in `ps`, and rare ones) after the flags.
/// Each shows its variable and default, and `(set)` if the variable is set now, never its
/// value. Flags given are installed as overrides of their variables
/// ([`config::set_overrides`]). As with `wasmtime app.wasm`, a first argument that names a file
/// (it has a `.` or a `/`) means `run` it: `omnia app.wasm` is `omnia run app.wasm`. Exits
/// with a usage message on bad input, as clap does.
pub fn parse<P: clap::Parser>(groups: &[SettingGroup]) -> P {
    let command = P::command()
        .after_help("`omnia app.wasm` is short for `omnia run app.wasm`.")
        .mut_subcommand("run", |run| {
            let run = run
                .mut_args(|arg| {
                    if GRANT_FLAGS.contains(&arg.get_id().as_str()) {
                        arg.help_heading(GRANTS_HEADING)
                    } else {
                        arg
                    }
                })
                .after_help(env_only_help(groups));
            groups
                .iter()
                .flat_map(|g| g.settings.iter().map(move |s| (g.title, s)))
                .filter_map(|(title, s)| s.flag.map(|flag| (title, s, flag)))
                .fold(run, |run, (title, s, flag)| {
                    run.arg(
                        Arg::new(flag)
                            .long(flag)
                            .value_name(s.value)
                            .action(ArgAction::Set)
                            .help(format!("{} {}", s.help, env_note(s)))
                            .help_heading(title),
                    )
                })
        });
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|first| names_a_file(first)) {
        args.insert(1, "run".into());
    }
    let matches = command.get_matches_from(args);
    if let Some(("run", run)) = matches.subcommand() {
        let given = groups
            .iter()
            .flat_map(|g| &g.settings)
            .filter_map(|s| {
                let value = run.get_one::<String>(s.flag?)?;
                Some((*s, value.clone()))
            })
            .collect();
        config::set_overrides(given);
    }
    P::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
}

/// The arguments of `run` that grant the guest something (see [`crate::grants`]).
const GRANT_FLAGS: &[&str] = &["env", "dirs", "dirs_read_only", "inherit_network", "wasi"];

/// `[env: NAME] [default: D]`, with ` (set)` if `NAME` is set now (never its value).
fn env_note(setting: &Setting) -> String {
    let set = if std::env::var_os(setting.env).is_some() {
        " (set)"
    } else {
        ""
    };
    format!("[env: {}{set}] [default: {}]", setting.env, setting.default)
}

/// The settings without a flag, by heading, laid out as clap lays out flags.
fn env_only_help(groups: &[SettingGroup]) -> String {
    let mut text = String::from(
        "Settings without a flag (environment variables only: secrets, which a flag would \
         show in `ps`, and rarely changed ones):",
    );
    for group in groups {
        let settings: Vec<_> = group.settings.iter().filter(|s| s.flag.is_none()).collect();
        if settings.is_empty() {
            continue;
        }
        let _ = write!(text, "\n\n{}:", group.title);
        for s in settings {
            let _ = write!(
                text,
                "\n  {}=<{}>\n          {} {}",
                s.env,
                s.value,
                s.help,
                env_note(s)
            );
        }
    }
    text
}

/// Whether a first argument is a component rather than a subcommand or a flag.
fn names_a_file(arg: &std::ffi::OsStr) -> bool {
    let arg = arg.to_string_lossy();
    !arg.starts_with('-') && (arg.contains('.') || arg.contains('/'))
}

/// The process exit code for the result of `runtime_run`: 0, or 1 after printing the error and
/// its causes to stderr (see [`print_error`]).
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            print_error(&err);
            ExitCode::FAILURE
        }
    }
}

/// Prints `err` and its causes to stderr, never a backtrace: the message is for the user, who
/// fixes their input from it.
pub fn print_error(err: &anyhow::Error) {
    let mut text = format!("Error: {err}");
    let causes: Vec<String> = err.chain().skip(1).map(ToString::to_string).collect();
    if !causes.is_empty() {
        text.push_str("\n\nCaused by:");
        for (i, cause) in causes.iter().enumerate() {
            let _ = write!(text, "\n    {i}: {cause}");
        }
    }
    eprintln!("{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `omnia --version` must name the wasmtime that is really linked: the one in Cargo.lock.
    #[test]
    fn wasmtime_version_is_the_locked_one() {
        let lock = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock");
        let text = std::fs::read_to_string(lock).unwrap();
        let locked = text
            .split("[[package]]")
            .find(|p| p.contains("\nname = \"wasmtime\"\n"))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .unwrap()
            .trim_matches('"');
        assert_eq!(WASMTIME_VERSION, locked);
        assert!(version(None, &[]).ends_with(&format!(", wasmtime {locked}")));
    }

    /// The settings flags must not collide with the fixed arguments of `run`.

    #[test]
    fn flags_do_not_collide() {
        let run = RunArgs::augment_args(clap::Command::new("run"));
        let fixed: Vec<String> = run
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_owned))
            .collect();
        for setting in <crate::RuntimeConfig as crate::FromEnv>::settings() {
            if let Some(flag) = setting.flag {
                assert!(!fixed.iter().any(|f| f == flag), "--{flag}");
            }
        }
    }
}
