//! What `--app` puts into an image: one component, or an application (an `omnia.toml` and the
//! components its guests name).
//!
//! An application goes to `/app/`: each guest's component as `/app/<id>.wasm` (or `.bin`,
//! precompiled for an AOT-only profile), and the manifest as `/app/omnia.toml`, rewritten so
//! that each guest's `source.path` names its file there and its `digest` pins the file shipped
//! (a `digest` the manifest gives is checked against the source first). The image runs
//! `omnia run /app/omnia.toml`. Comments in the manifest are not kept; directories
//! (`[[mount]]`) are not carried (refused: put them in a volume, or an image layer of your
//! own), nor registry sources (`source.package`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use toml::{Table, Value};

/// Where an application goes in the image.
pub const APP_DIR: &str = "/app";

/// The `--app` of a `dist` run.
pub enum App {
    /// One component, at the profile's app path (`/app.wasm` or `/app.bin`).
    Component(PathBuf),
    /// An application's manifest (its guests' sources resolved against its directory).
    Application {
        /// The manifest file.
        manifest: PathBuf,
        /// Its text, parsed.
        table: Table,
        /// Each guest's id and component file.
        guests: Vec<(String, PathBuf)>,
    },
}

/// The files `--app` adds to an image (absolute paths), and what the image runs (its `Cmd`).
pub struct AppFiles {
    /// The files, with their bytes.
    pub files: Vec<(String, Vec<u8>)>,
    /// The image's command, if not the profile's.
    pub cmd: Option<Vec<String>>,
}

impl App {
    /// `path` as `--app` names it: a manifest (`.toml`, or a directory holding an
    /// `omnia.toml`) or a component.
    pub fn read(path: &Path) -> Result<Self> {
        let manifest = if path.is_dir() {
            path.join("omnia.toml")
        } else {
            path.to_owned()
        };
        if manifest.extension().is_none_or(|ext| ext != "toml") {
            return Ok(Self::Component(path.to_owned()));
        }
        let shown = manifest.display();
        let text =
            std::fs::read_to_string(&manifest).with_context(|| format!("cannot read {shown}"))?;
        let table: Table = toml::from_str(&text).with_context(|| format!("{shown}"))?;
        if table.contains_key("mount") {
            bail!(
                "{shown}: [[mount]] directories are not carried into images: put them in a \
                 volume (or a layer of your own) and remove the [[mount]]s"
            );
        }
        let base = manifest.parent().unwrap_or(Path::new("."));
        let Some(Value::Array(guests)) = table.get("guest") else {
            bail!("{shown}: no [[guest]]");
        };
        let mut read = Vec::new();
        for (i, guest) in guests.iter().enumerate() {
            let at = format!("{shown}: guest {}", i + 1);
            let id = guest
                .get("id")
                .or_else(|| guest.get("name"))
                .and_then(Value::as_str)
                .with_context(|| format!("{at}: no id"))?;
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                bail!("{at}: id {id:?}: use letters, digits, - and _");
            }
            let source = guest
                .get("source")
                .and_then(|s| s.get("path"))
                .and_then(Value::as_str)
                .with_context(|| {
                    format!("{at} ({id}): no source.path (registry sources are not supported)")
                })?;
            read.push((id.to_owned(), base.join(source)));
        }
        Ok(Self::Application {
            manifest: manifest.clone(),
            table,
            guests: read,
        })
    }

    /// The files for an image of `app_path` (the profile's path for one component), each
    /// component through `ship` (which precompiles it for an AOT-only profile, or returns it).
    pub fn files(
        &self,
        app_path: &str,
        mut ship: impl FnMut(&str, &Path) -> Result<PathBuf>,
    ) -> Result<AppFiles> {
        let read = |path: &Path| {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        };
        match self {
            Self::Component(path) => Ok(AppFiles {
                files: vec![(app_path.to_owned(), read(&ship("app", path)?)?)],
                cmd: None,
            }),
            Self::Application {
                manifest,
                table,
                guests,
            } => {
                let mut table = table.clone();
                let mut files = Vec::new();
                let Some(Value::Array(entries)) = table.get_mut("guest") else {
                    bail!("{}: no [[guest]]", manifest.display());
                };
                for ((id, source), entry) in guests.iter().zip(entries.iter_mut()) {
                    let Value::Table(entry) = entry else {
                        bail!("{}: guest {id:?} is not a table", manifest.display());
                    };
                    if let Some(pinned) = entry.get("digest").and_then(Value::as_str) {
                        let actual = sha256(&read(source)?);
                        if pinned != actual {
                            bail!(
                                "{}: guest {id:?}: digest: {} has {actual}, not {pinned}",
                                manifest.display(),
                                source.display()
                            );
                        }
                    }
                    let shipped = ship(id, source)?;
                    let bytes = read(&shipped)?;
                    let ext = shipped
                        .extension()
                        .map_or("wasm".into(), |e| e.to_string_lossy());
                    let name = format!("{id}.{ext}");
                    entry.insert(
                        "source".into(),
                        Value::Table(Table::from_iter([(
                            "path".to_owned(),
                            Value::String(name.clone()),
                        )])),
                    );
                    entry.insert("digest".into(), Value::String(sha256(&bytes)));
                    files.push((format!("{APP_DIR}/{name}"), bytes));
                }
                let text = format!(
                    "# Written by cargo xtask dist from {}: each source is the file beside it.\n{}",
                    manifest
                        .file_name()
                        .map_or_else(|| "omnia.toml".into(), |n| n.to_string_lossy()),
                    toml::to_string(&table).context("writing the manifest")?
                );
                let path = format!("{APP_DIR}/omnia.toml");
                files.push((path.clone(), text.into_bytes()));
                Ok(AppFiles {
                    files,
                    cmd: Some(vec![path]),
                })
            }
        }
    }
}

/// `sha256:` and the hex digest of `bytes`, as a manifest's `digest` is written.
fn sha256(bytes: &[u8]) -> String {
    let mut hex = String::from("sha256:");
    for byte in Sha256::digest(bytes) {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example application: three guests into `/app/`, the manifest rewritten to name
    /// them there and pin what is shipped.
    #[test]
    fn an_application_goes_to_app_with_its_manifest_rewritten() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/app");
        let app = App::read(&example).unwrap();
        let mut shipped = Vec::new();
        let files = app
            .files("/app.wasm", |id, source| {
                shipped.push(id.to_owned());
                Ok(source.to_owned())
            })
            .unwrap();
        assert_eq!(shipped, ["api", "worker", "admin"]);
        assert_eq!(files.cmd, Some(vec!["/app/omnia.toml".to_owned()]));
        let names: Vec<&str> = files.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "/app/api.wasm",
                "/app/worker.wasm",
                "/app/admin.wasm",
                "/app/omnia.toml"
            ]
        );
        let manifest: Table =
            toml::from_str(std::str::from_utf8(&files.files[3].1).unwrap()).unwrap();
        let api = &manifest["guest"][0];
        assert_eq!(api["source"]["path"].as_str(), Some("api.wasm"));
        assert_eq!(
            api["digest"].as_str(),
            Some(sha256(&files.files[0].1).as_str())
        );
        assert_eq!(api["routes"]["http"][0].as_str(), Some("/kv"));
        assert_eq!(
            manifest["guest"][1]["grants"]["messaging"]["publish"][0].as_str(),
            Some("orders.>")
        );
    }

    #[test]
    fn a_wrong_digest_or_a_mount_is_refused() {
        let dir = std::env::temp_dir().join(format!("xtask-app-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.wasm"), b"not really").unwrap();
        let manifest = dir.join("omnia.toml");
        std::fs::write(
            &manifest,
            format!(
                "[[guest]]\nid = \"a\"\nsource.path = \"a.wasm\"\ndigest = \"sha256:{}\"\n",
                "0".repeat(64)
            ),
        )
        .unwrap();
        let err = App::read(&manifest)
            .unwrap()
            .files("/app.wasm", |_, s| Ok(s.to_owned()))
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("digest: "), "{err:#}");
        std::fs::write(
            &manifest,
            "[[guest]]\nid = \"a\"\nsource.path = \"a.wasm\"\n[[mount]]\nname = \"/d\"\npath = \"d\"\n",
        )
        .unwrap();
        let err = App::read(&manifest).err().unwrap();
        assert!(format!("{err:#}").contains("[[mount]]"), "{err:#}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
