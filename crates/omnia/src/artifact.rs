//! Compiled code on disk: `.bin` files from `omnia compile` and the compile cache, both sealed
//! with a SHA-256 digest that is checked before the code is loaded.
//!
//! Wasmtime checks that a precompiled artefact is one of its own, for this version and engine
//! configuration, but not that its machine code is intact: a flipped bit or a truncated copy
//! can make it allocate absurd amounts, panic or run wrong code. So every artefact Omnia writes
//! ends with a seal ([`SEAL_LEN`] bytes: the SHA-256 of everything before it, then a magic
//! string), and nothing is deserialised until the seal matches. A `.bin` without a matching
//! seal is refused; a cache entry without one is discarded and compiled again.
//!
//! The compile cache is Omnia's own (wasmtime's does not verify entries): one file per
//! component and engine configuration, named by the SHA-256 of both, written to a temporary
//! file and renamed, so a reader never sees a half-written entry. Entries are never evicted;
//! each distinct `.wasm` adds one (delete the directory to reclaim the space).

#[cfg(feature = "jit")]
use std::path::Path;
#[cfg(feature = "jit")]
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

/// Marks the end of a sealed artefact.
const MAGIC: &[u8; 16] = b"omnia-sealed-v1\0";

/// Bytes a seal adds: the digest, then `MAGIC`.
pub const SEAL_LEN: usize = 32 + MAGIC.len();

/// `compiled` with its seal appended.
pub fn seal(mut compiled: Vec<u8>) -> Vec<u8> {
    let digest = Sha256::digest(&compiled);
    compiled.extend_from_slice(&digest);
    compiled.extend_from_slice(MAGIC);
    compiled
}

/// Why a file's seal does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// It does not end with a seal: not written by this `omnia compile`, or cut short.
    NoSeal,
    /// The seal is there but the bytes before it changed.
    Mismatch,
}

impl Broken {
    /// What went wrong, for a message that starts with the file's name.
    pub fn describe(self) -> &'static str {
        match self {
            Self::NoSeal => {
                "has no integrity seal: it is cut short (a truncated copy), or it was not \
                 written by `omnia compile` of this version"
            }
            Self::Mismatch => {
                "is corrupted: its contents do not match the checksum `omnia compile` wrote \
                 (a damaged disk or copy)"
            }
        }
    }
}

/// The artefact inside `bytes`, once its seal is checked.
pub fn unseal(bytes: &[u8]) -> Result<&[u8], Broken> {
    let Some(body_len) = bytes.len().checked_sub(SEAL_LEN) else {
        return Err(Broken::NoSeal);
    };
    let (body, seal) = bytes.split_at(body_len);
    let (digest, magic) = seal.split_at(32);
    if magic != MAGIC {
        return Err(Broken::NoSeal);
    }
    if Sha256::digest(body).as_slice() == digest {
        Ok(body)
    } else {
        Err(Broken::Mismatch)
    }
}

/// The compile cache in `dir`.
#[cfg(feature = "jit")]
pub struct Cache<'a> {
    dir: &'a Path,
}

/// Whether a bad cache entry was already logged by this process.
#[cfg(feature = "jit")]
static BAD_ENTRY_LOGGED: AtomicBool = AtomicBool::new(false);

#[cfg(feature = "jit")]
impl<'a> Cache<'a> {
    /// The cache in `dir` (created on first write).
    pub fn new(dir: &'a Path) -> Self {
        Self { dir }
    }

    /// The compiled code of `wasm` for `engine`: the cached entry if there is a sound one,
    /// else what `compile` returns (then stored). `load` deserialises an artefact; an entry it
    /// refuses is treated like a corrupted one. Cache trouble (an unwritable directory, a bad
    /// entry) is logged and costs a compilation, never the load.
    pub fn get<T>(
        &self,
        engine: &wasmtime::Engine,
        wasm: &[u8],
        compile: impl FnOnce() -> anyhow::Result<Vec<u8>>,
        load: impl Fn(&[u8]) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let path = self.dir.join(format!("{}.bin", key(engine, wasm)));
        if let Ok(bytes) = std::fs::read(&path) {
            let loaded = unseal(&bytes)
                .map_err(|broken| anyhow::anyhow!("{}", broken.describe()))
                .and_then(&load);
            match loaded {
                Ok(loaded) => return Ok(loaded),
                Err(err) => {
                    if !BAD_ENTRY_LOGGED.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "compile cache: discarding {} and compiling again: it {err:#}",
                            path.display()
                        );
                    }
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let compiled = compile()?;
        let loaded = load(&compiled)?;
        if let Err(err) = self.store(&path, compiled) {
            tracing::warn!(
                "compile cache: cannot write {} (OMNIA_COMPILE_CACHE): {err:#}",
                path.display()
            );
        }
        Ok(loaded)
    }

    /// Writes the sealed entry to a temporary file, then renames it into place.
    fn store(&self, path: &Path, compiled: Vec<u8>) -> std::io::Result<()> {
        std::fs::create_dir_all(self.dir)?;
        let temporary = path.with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(&temporary, seal(compiled))?;
        std::fs::rename(&temporary, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })
    }
}

/// The entry name of `wasm` compiled by `engine`: the SHA-256 of the engine's compatibility
/// hash (wasmtime's version and every setting that changes the code) and of the bytes.
#[cfg(feature = "jit")]
fn key(engine: &wasmtime::Engine, wasm: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    // `DefaultHasher::new()` has fixed keys: the same value hashes the same in every process.
    let mut compatibility = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut compatibility);
    let mut hasher = Sha256::new();
    hasher.update(b"omnia-compile-cache-v1\0");
    hasher.update(compatibility.finish().to_le_bytes());
    hasher.update(wasm);
    format!("{:x}", hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_holds_until_a_byte_changes() {
        let sealed = seal(b"machine code".to_vec());
        assert_eq!(sealed.len(), 12 + SEAL_LEN);
        assert_eq!(unseal(&sealed), Ok(&b"machine code"[..]));
        for i in 0..sealed.len() - MAGIC.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x20;
            assert_eq!(unseal(&bad), Err(Broken::Mismatch), "byte {i}");
        }
        for len in 0..sealed.len() {
            assert_eq!(unseal(&sealed[..len]), Err(Broken::NoSeal), "cut to {len}");
        }
        assert_eq!(unseal(b"no seal at all"), Err(Broken::NoSeal));
    }
}
