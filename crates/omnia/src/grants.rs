//! What a guest may see of the host beyond its capabilities: environment variables, host
//! directories and the network. Nothing is granted unless asked for, to commands and served
//! guests alike.
//!
//! The flags are those of `wasmtime run` and `wasmtime serve`, so a guest that runs under one
//! runs under the other with the same command line:
//!
//! | Omnia | `wasmtime serve` / `run` | grants |
//! |---|---|---|
//! | `--env KEY=VALUE`, `--env KEY` | the same | one variable (`KEY` alone: Omnia's own value) |
//! | `-S inherit-env` | the same | every variable of Omnia's environment |
//! | `--dir HOST[::GUEST]` | the same | a host directory, read-write |
//! | `--dir-ro HOST[::GUEST]` | (none) | a host directory, read-only |
//! | `--inherit-network` | `-S inherit-network -S allow-ip-name-lookup` | TCP and UDP to any address, and name lookups |
//! | `-S inherit-network`, `-S allow-ip-name-lookup` | the same | each half of `--inherit-network` |
//!
//! `-S cli`, `-S http`, `-S p3`, `-S tcp` and `-S udp` (each bare or `=y`) are accepted and
//! change nothing, since Omnia always provides them; any other `-S` option is refused, naming
//! the ones it knows. Without the network a guest may create sockets, but every bind and
//! connect is refused (`access-denied`). The `wasmtime` 48 CLI refuses already to create one
//! unless given `-S tcp` or `-S udp`; Omnia lets a guest create sockets and set their options
//! without the network, as wasi-testsuite's `sockets-*-properties` cases expect.
//!
//! Grants are read once, at start-up: a directory that does not exist or a variable that is
//! not set is an error then, not a failure of the first request. Each store (a command's one,
//! or one per request or message) is given the same grants; a served guest's directories are
//! opened again for each store.

use std::path::Path;

use anyhow::{Context, Result, bail};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::cli::RunArgs;

/// The grants of one run (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    env: Vec<(String, String)>,
    dirs: Vec<DirGrant>,
    network: bool,
    name_lookup: bool,
}

/// A host directory the guest may open.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DirGrant {
    host: String,
    guest: String,
    read_only: bool,
}

/// The `-S` options that Omnia always provides: accepted, and ignored.
const ALWAYS_ON: &[&str] = &["cli", "common", "http", "p3", "tcp", "udp"];

impl Grants {
    /// The grants `args` ask for, checked: each directory must exist, each `--env KEY` must be
    /// set in Omnia's environment.
    pub fn from_args(args: &RunArgs) -> Result<Self> {
        let mut grants = Self::default();
        for option in args.wasi.iter().flat_map(|o| o.split(',')) {
            grants.wasi_option(option)?;
        }
        if args.inherit_network {
            grants.network = true;
            grants.name_lookup = true;
        }
        for grant in &args.env {
            let (key, value) = parse_env_grant(grant)?;
            grants.env.retain(|(k, _)| *k != key);
            grants.env.push((key, value));
        }
        for (flag, grant, read_only) in args
            .dirs
            .iter()
            .map(|g| ("--dir", g, false))
            .chain(args.dirs_read_only.iter().map(|g| ("--dir-ro", g, true)))
        {
            let (host, guest) = grant.split_once("::").unwrap_or((grant, grant));
            if !Path::new(host).is_dir() {
                bail!("{flag} {grant}: {host} is not a directory on this machine");
            }
            grants.dirs.push(DirGrant {
                host: host.into(),
                guest: guest.into(),
                read_only,
            });
        }
        Ok(grants)
    }

    /// One `-S KEY[=y|n]` option.
    fn wasi_option(&mut self, option: &str) -> Result<()> {
        let (key, value) = option.split_once('=').unwrap_or((option, "y"));
        let on = match value {
            "y" | "yes" | "true" => true,
            "n" | "no" | "false" => false,
            _ => bail!("-S {option}: expected {key}, {key}=y or {key}=n"),
        };
        match key {
            "inherit-network" => self.network = on,
            "allow-ip-name-lookup" => self.name_lookup = on,
            "inherit-env" => {
                if on {
                    self.env = std::env::vars().collect();
                }
            }
            _ if ALWAYS_ON.contains(&key) => {
                if !on {
                    bail!("-S {option}: Omnia always provides {key}; it cannot be turned off");
                }
            }
            _ => bail!(
                "-S {option}: unknown option; Omnia knows inherit-network, \
                 allow-ip-name-lookup, inherit-env and (always on) {}",
                ALWAYS_ON.join(", ")
            ),
        }
        Ok(())
    }

    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// What is granted, for the start-up log: `env: A, B; dirs: /data (read-only); network`.
    /// Variable names only, never their values.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.env.is_empty() {
            let names: Vec<_> = self.env.iter().map(|(k, _)| k.as_str()).collect();
            parts.push(format!("env: {}", names.join(", ")));
        }
        if !self.dirs.is_empty() {
            let dirs: Vec<_> = self
                .dirs
                .iter()
                .map(|d| {
                    let shown = if d.host == d.guest {
                        d.host.clone()
                    } else {
                        format!("{} as {}", d.host, d.guest)
                    };
                    if d.read_only {
                        format!("{shown} (read-only)")
                    } else {
                        shown
                    }
                })
                .collect();
            parts.push(format!("dirs: {}", dirs.join(", ")));
        }
        match (self.network, self.name_lookup) {
            (true, true) => parts.push("network".into()),
            (true, false) => parts.push("network (no name lookups)".into()),
            (false, true) => parts.push("name lookups".into()),
            (false, false) => {}
        }
        parts.join("; ")
    }

    /// Gives the grants to a store's WASI context. A directory that cannot be opened (it was
    /// there at start-up) is left out, the rest is granted, and the first such error returned.
    pub fn apply(&self, builder: &mut WasiCtxBuilder) -> Result<()> {
        for (key, value) in &self.env {
            builder.env(key, value);
        }
        // TCP and UDP sockets may be created, but with no address allowed until the network is
        // granted (see the module documentation).
        builder.allow_tcp(true).allow_udp(true);
        if self.network {
            builder.inherit_network();
        }
        builder.allow_ip_name_lookup(self.name_lookup);
        let mut failed = None;
        for dir in &self.dirs {
            let perms = if dir.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            if let Err(err) = builder.preopened_dir(&dir.host, &dir.guest, perms) {
                failed.get_or_insert_with(|| {
                    anyhow::Error::from(err)
                        .context(format!("cannot open the granted directory {}", dir.host))
                });
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

/// `KEY=VALUE`, or `KEY` to pass Omnia's own value of `KEY`.
fn parse_env_grant(grant: &str) -> Result<(String, String)> {
    if let Some((key, value)) = grant.split_once('=') {
        if key.is_empty() {
            bail!("--env {grant:?}: the variable name is empty; expected KEY=VALUE or KEY");
        }
        return Ok((key.into(), value.into()));
    }
    if grant.is_empty() {
        bail!("--env needs KEY=VALUE or KEY");
    }
    let value = std::env::var(grant).with_context(|| {
        format!(
            "--env {grant}: {grant} is not set in omnia's environment; pass --env {grant}=VALUE"
        )
    })?;
    Ok((grant.into(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(f: impl FnOnce(&mut RunArgs)) -> RunArgs {
        let mut args = RunArgs {
            component: "app.wasm".into(),
            args: Vec::new(),
            env: Vec::new(),
            dirs: Vec::new(),
            dirs_read_only: Vec::new(),
            inherit_network: false,
            wasi: Vec::new(),
        };
        f(&mut args);
        args
    }

    #[test]
    fn nothing_by_default() {
        let grants = Grants::from_args(&args(|_| {})).unwrap();
        assert!(grants.is_empty());
        assert_eq!(grants.summary(), "");
    }

    #[test]
    fn dir_grants() {
        let tmp = std::env::temp_dir();
        let tmp = tmp.to_str().unwrap();
        let grants = Grants::from_args(&args(|a| {
            a.dirs = vec![format!("{tmp}::/data")];
            a.dirs_read_only = vec![tmp.to_owned()];
        }))
        .unwrap();
        assert_eq!(
            grants.summary(),
            format!("dirs: {tmp} as /data, {tmp} (read-only)")
        );
        let err = Grants::from_args(&args(|a| a.dirs_read_only = vec!["/surely/absent".into()]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--dir-ro /surely/absent: /surely/absent is not a directory on this machine"
        );
    }

    #[test]
    fn env_grants() {
        assert_eq!(
            parse_env_grant("A=b=c").unwrap(),
            ("A".to_string(), "b=c".to_string())
        );
        assert!(parse_env_grant("=x").is_err());
        let err = parse_env_grant("OMNIA_TEST_SURELY_UNSET_VAR").unwrap_err();
        assert!(format!("{err:#}").contains("OMNIA_TEST_SURELY_UNSET_VAR"));
        let grants =
            Grants::from_args(&args(|a| a.env = vec!["A=1".into(), "A=2".into()])).unwrap();
        assert_eq!(
            grants.env,
            [("A".to_string(), "2".to_string())],
            "the last one wins"
        );
        assert_eq!(grants.summary(), "env: A");
    }

    #[test]
    fn wasmtime_spellings() {
        let grants =
            Grants::from_args(&args(|a| a.wasi = vec!["inherit-network,cli=y".into()])).unwrap();
        assert_eq!(grants.summary(), "network (no name lookups)");
        let grants = Grants::from_args(&args(|a| {
            a.wasi = vec!["inherit-network".into(), "allow-ip-name-lookup=y".into()];
        }))
        .unwrap();
        assert_eq!(
            grants,
            Grants::from_args(&args(|a| a.inherit_network = true)).unwrap()
        );
        for (bad, message) in [
            (
                "threads",
                "-S threads: unknown option; Omnia knows inherit-network",
            ),
            (
                "http=n",
                "-S http=n: Omnia always provides http; it cannot be turned off",
            ),
            ("tcp=maybe", "-S tcp=maybe: expected tcp, tcp=y or tcp=n"),
        ] {
            let err = Grants::from_args(&args(|a| a.wasi = vec![bad.into()])).unwrap_err();
            assert!(err.to_string().starts_with(message), "{bad}: {err}");
        }
    }
}
