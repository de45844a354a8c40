//! The OCI image of a profile, written without Docker or Nix: an OCI image layout (for
//! `skopeo copy oci:...`, `umoci unpack`) and a docker-archive (for `docker load` /
//! `podman load`), with the same configuration as the flake's `dockerTools` image.
//!
//! Byte-reproducible: every file and directory is owned by root with a fixed mode and the
//! fixed time of [`IMAGE_CREATED`](crate::profile::IMAGE_CREATED), entries are sorted, gzip
//! headers carry no name or time, and JSON documents are written with sorted keys. Two builds
//! of the same binary give the same digest, wherever the checkout is.
//!
//! Layers, from the bottom: the base (the binary's shared libraries, `/etc/passwd` and
//! `/etc/group` with the `omnia` user 10001, CA certificates, `/tmp`), the `omnia` binary,
//! and the app if one is given.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use flate2::Compression;
use flate2::write::GzEncoder;
use oci_spec::image::{
    Arch, ConfigBuilder, DescriptorBuilder, HistoryBuilder, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, Os, RootFsBuilder, SCHEMA_VERSION,
    Sha256Digest,
};
use sha2::{Digest as _, Sha256};

use crate::profile::{IMAGE_CREATED, Profile};

/// `mtime` of every entry: 1970-01-01T00:00:01Z, as [`IMAGE_CREATED`].
const MTIME: u64 = 1;
/// Where the host keeps the CA bundle (Debian's `ca-certificates`).
const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// One file (or directory) of a layer.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A directory with a mode.
    Dir(u32),
    /// A file's bytes and mode.
    File(Vec<u8>, u32),
}

/// A layer's files by absolute path (sorted, so the tar is the same every time).
pub type Layer = BTreeMap<String, Entry>;

/// What goes into an image.
pub struct ImageInput<'a> {
    /// The profile (configuration, name).
    pub profile: &'a Profile,
    /// The `omnia` binary.
    pub binary: &'a Path,
    /// The app's files (see [`crate::app`]), if any.
    pub app: Option<&'a crate::app::AppFiles>,
    /// `org.opencontainers.image.version`.
    pub version: &'a str,
    /// `org.opencontainers.image.revision` (a git commit), if known.
    pub revision: Option<&'a str>,
}

/// Where an image was written, and its digest.
#[derive(Debug)]
pub struct Written {
    /// The OCI image layout directory (tag: the version).
    pub layout: PathBuf,
    /// The docker-archive.
    pub archive: PathBuf,
    /// `sha256:...` of the manifest: the image's identity.
    pub digest: String,
}

/// A layer once serialized.
struct Blob {
    tar: Vec<u8>,
    gz: Vec<u8>,
    diff_id: String,
    digest: String,
}

/// Writes the image of `input` into `out` (`oci/` and `<name>.tar`).
pub fn write(input: &ImageInput<'_>, out: &Path) -> Result<Written> {
    let mut layers = vec![base_layer(input.binary)?, binary_layer(input.binary)?];
    if let Some(app) = input.app {
        // Parent directories (`/app`) are added by `tar`.
        layers.push(
            app.files
                .iter()
                .map(|(path, bytes)| (path.clone(), Entry::File(bytes.clone(), 0o644)))
                .collect(),
        );
    }
    let blobs: Vec<Blob> = layers.iter().map(blob).collect::<Result<_>>()?;

    let config = image_config(input, &blobs)?;
    let config_json = canonical_json(&config)?;
    let config_digest = sha256(&config_json);
    let manifest = ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(
            MediaType::ImageConfig,
            &config_digest,
            config_json.len(),
        )?)
        .layers(
            blobs
                .iter()
                .map(|b| descriptor(MediaType::ImageLayerGzip, &b.digest, b.gz.len()))
                .collect::<Result<Vec<_>>>()?,
        )
        .build()?;
    let manifest_json = canonical_json(&manifest)?;
    let manifest_digest = sha256(&manifest_json);
    let tag = input.version;
    let mut manifest_descriptor = descriptor(
        MediaType::ImageManifest,
        &manifest_digest,
        manifest_json.len(),
    )?;
    manifest_descriptor.set_annotations(Some(
        [(
            "org.opencontainers.image.ref.name".to_owned(),
            tag.to_owned(),
        )]
        .into(),
    ));
    let index = ImageIndexBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![manifest_descriptor])
        .build()?;

    // The OCI image layout.
    let layout = out.join("oci");
    if layout.exists() {
        std::fs::remove_dir_all(&layout)
            .with_context(|| format!("cannot clear {}", layout.display()))?;
    }
    let blobs_dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs_dir)
        .with_context(|| format!("cannot create {}", blobs_dir.display()))?;
    let put = |digest: &str, bytes: &[u8]| -> Result<()> {
        let path = blobs_dir.join(hex(digest));
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
    };
    for b in &blobs {
        put(&b.digest, &b.gz)?;
    }
    put(&config_digest, &config_json)?;
    put(&manifest_digest, &manifest_json)?;
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    std::fs::write(layout.join("index.json"), canonical_json(&index)?)?;

    // The docker-archive: the same config, uncompressed layers, and Docker's manifest.json.
    let name = format!("omnia-{}", input.profile.name);
    let archive = out.join(format!("{name}.tar"));
    let mut files = Layer::new();
    files.insert(
        format!("/{}.json", hex(&config_digest)),
        Entry::File(config_json.clone(), 0o644),
    );
    let mut layer_paths = Vec::new();
    for b in &blobs {
        let path = format!("{}/layer.tar", hex(&b.diff_id));
        files.insert(format!("/{}", hex(&b.diff_id)), Entry::Dir(0o755));
        files.insert(format!("/{path}"), Entry::File(b.tar.clone(), 0o644));
        layer_paths.push(path);
    }
    let docker_manifest = serde_json::json!([{
        "Config": format!("{}.json", hex(&config_digest)),
        "RepoTags": [format!("{name}:{tag}")],
        "Layers": layer_paths,
    }]);
    files.insert(
        "/manifest.json".to_owned(),
        Entry::File(serde_json::to_vec(&docker_manifest)?, 0o644),
    );
    std::fs::write(&archive, tar(&files)?)
        .with_context(|| format!("cannot write {}", archive.display()))?;

    Ok(Written {
        layout,
        archive,
        digest: manifest_digest,
    })
}

/// The image configuration: the profile's, plus version and revision labels and the layers.
fn image_config(
    input: &ImageInput<'_>,
    blobs: &[Blob],
) -> Result<oci_spec::image::ImageConfiguration> {
    let image = &input.profile.image;
    let mut labels: std::collections::HashMap<String, String> =
        image.labels.clone().into_iter().collect();
    labels.insert(
        "org.opencontainers.image.version".into(),
        input.version.to_owned(),
    );
    labels.insert(
        "org.opencontainers.image.revision".into(),
        input.revision.unwrap_or("dirty").to_owned(),
    );
    let config = ConfigBuilder::default()
        .user(image.user.clone())
        .exposed_ports(image.exposed_ports.keys().cloned().collect::<Vec<_>>())
        .env(image.env.clone())
        .entrypoint(image.entrypoint.clone())
        .cmd(
            input
                .app
                .and_then(|app| app.cmd.clone())
                .unwrap_or_else(|| image.cmd.clone()),
        )
        .working_dir(image.working_dir.clone())
        .labels(labels)
        .build()?;
    let history = ["base: libraries, users, CA certificates", "omnia", "app"]
        .iter()
        .take(blobs.len())
        .map(|what| {
            HistoryBuilder::default()
                .created(IMAGE_CREATED)
                .created_by(format!("cargo xtask dist {}: {what}", input.profile.name))
                .build()
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(ImageConfigurationBuilder::default()
        .created(IMAGE_CREATED)
        .architecture(host_arch()?)
        .os(Os::Linux)
        .config(config)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(blobs.iter().map(|b| b.diff_id.clone()).collect::<Vec<_>>())
                .build()?,
        )
        .history(history)
        .build()?)
}

fn host_arch() -> Result<Arch> {
    Ok(match std::env::consts::ARCH {
        "x86_64" => Arch::Amd64,
        "aarch64" => Arch::ARM64,
        other => bail!("images for {other} are not supported"),
    })
}

/// The bottom layer: what the binary needs to run as the image's user.
fn base_layer(binary: &Path) -> Result<Layer> {
    let mut layer = Layer::new();
    for (path, bytes) in shared_libraries(binary)? {
        layer.insert(path, Entry::File(bytes, 0o755));
    }
    layer.insert(
        "/etc/passwd".into(),
        Entry::File(
            b"root:x:0:0:root:/:/sbin/nologin\nomnia:x:10001:10001:omnia:/:/sbin/nologin\n"
                .to_vec(),
            0o644,
        ),
    );
    layer.insert(
        "/etc/group".into(),
        Entry::File(b"root:x:0:\nomnia:x:10001:\n".to_vec(), 0o644),
    );
    let ca = std::fs::read(HOST_CA_BUNDLE).with_context(|| {
        format!("cannot read {HOST_CA_BUNDLE}: install the ca-certificates package")
    })?;
    // Both names in use: Debian's, and the one Nix's dockerTools.caCertificates provides.
    layer.insert(
        "/etc/ssl/certs/ca-certificates.crt".into(),
        Entry::File(ca.clone(), 0o644),
    );
    layer.insert(
        "/etc/ssl/certs/ca-bundle.crt".into(),
        Entry::File(ca, 0o644),
    );
    layer.insert("/tmp".into(), Entry::Dir(0o1777));
    Ok(layer)
}

fn binary_layer(binary: &Path) -> Result<Layer> {
    let bytes =
        std::fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    Ok(Layer::from([(
        "/bin/omnia".to_owned(),
        Entry::File(bytes, 0o755),
    )]))
}

/// The shared libraries `binary` loads, from `ldd`, each at the path the dynamic loader will
/// look for it (the loader itself at the binary's interpreter path).
fn shared_libraries(binary: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let out = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .context("cannot run ldd (Debian package libc-bin)")?;
    if !out.status.success() {
        bail!(
            "ldd {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut libraries = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x...)`; `linux-vdso.so.1 (0x...)` has no file.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            continue;
        };
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {path}"))?;
        libraries.push((path.to_owned(), bytes));
    }
    if libraries.is_empty() {
        bail!("ldd found no libraries for {}", binary.display());
    }
    Ok(libraries)
}

/// A layer as an uncompressed and a gzipped tar, with their digests.
fn blob(layer: &Layer) -> Result<Blob> {
    let tar = tar(layer)?;
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&tar)?;
    let gz = gz.finish()?;
    Ok(Blob {
        diff_id: sha256(&tar),
        digest: sha256(&gz),
        tar,
        gz,
    })
}

/// A tar of `files`, parent directories included, everything owned by root with fixed times.
pub fn tar(files: &Layer) -> Result<Vec<u8>> {
    let mut all = files.clone();
    for path in files.keys() {
        let mut parent = Path::new(path).parent();
        while let Some(dir) = parent.filter(|d| *d != Path::new("/")) {
            all.entry(dir.display().to_string())
                .or_insert(Entry::Dir(0o755));
            parent = dir.parent();
        }
    }
    let mut builder = tar::Builder::new(Vec::new());
    for (path, entry) in &all {
        let name = path.trim_start_matches('/');
        let mut header = tar::Header::new_ustar();
        header.set_mtime(MTIME);
        header.set_uid(0);
        header.set_gid(0);
        header.set_username("")?;
        header.set_groupname("")?;
        match entry {
            Entry::Dir(mode) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_size(0);
                builder.append_data(&mut header, format!("{name}/"), std::io::empty())?;
            }
            Entry::File(bytes, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, name, bytes.as_slice())?;
            }
        }
    }
    Ok(builder.into_inner()?)
}

fn descriptor(
    media_type: MediaType,
    digest: &str,
    size: usize,
) -> Result<oci_spec::image::Descriptor> {
    Ok(DescriptorBuilder::default()
        .media_type(media_type)
        .digest(Sha256Digest::from_str(hex(digest))?)
        .size(size as u64)
        .build()?)
}

/// JSON with object keys sorted (the OCI types keep some maps unordered).
fn canonical_json(value: &impl serde::Serialize) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(&serde_json::to_value(value)?)?)
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn hex(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tars_are_deterministic_and_complete() {
        let layer = Layer::from([
            ("/b/file".to_owned(), Entry::File(b"x".to_vec(), 0o644)),
            ("/a".to_owned(), Entry::File(b"y".to_vec(), 0o755)),
        ]);
        let one = tar(&layer).unwrap();
        assert_eq!(one, tar(&layer).unwrap());
        let mut archive = tar::Archive::new(one.as_slice());
        let names: Vec<(String, u64, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mtime().unwrap(),
                    h.uid().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("a".to_owned(), 1, 0),
                ("b/".to_owned(), 1, 0),
                ("b/file".to_owned(), 1, 0)
            ]
        );
    }
}
