//! Loading guests: `.wasm` (compiled with Cranelift, feature `jit`, through the compile cache)
//! or a precompiled `.bin` written by `omnia compile` (sealed, see [`crate::artifact`]).
//!
//! A guest is a component (WASI 0.2 or 0.3, served or run as a command) or a core module (WASI
//! 0.1, run as a command only, see [`crate::command`]). The file's bytes decide, not its name:
//! wasmtime recognises its own precompiled artifacts, the WebAssembly header's layer field tells a
//! component from a core module, and text (`.wat`) is taken for a component. Every failure names
//! the file and says what to do.

use std::path::Path;

use anyhow::{Context, Result, bail};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ComponentNamedList, InstancePre, Lift, Lower};
use wasmtime::{Engine, Module, Precompiled};

use crate::artifact;
use crate::engine::{Engines, Kind};

/// A loaded guest.
pub enum Guest {
    /// A component: WASI 0.2 or 0.3 interfaces.
    Component(Component),
    /// A core module: WASI 0.1 (`wasi_snapshot_preview1`) imports, run as a command.
    Module(Module),
}

/// The names of `component`'s exports.
pub fn export_names(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Whether `component` exports an interface whose versioned name starts with `prefix`, e.g.
/// `"wasi:http/incoming-handler@0.2"` for any 0.2.x version.
pub fn exports_interface(engine: &Engine, component: &Component, prefix: &str) -> bool {
    component
        .component_type()
        .exports(engine)
        .any(|(name, _)| name.starts_with(prefix))
}

/// Checks, before anything is served, that `func` of the component's export whose name starts
/// with `prefix` has the type a trigger calls it with: parameters `P` and results `R`, as the
/// trigger's bindings call it. Without this the bindings find out at the first instantiation,
/// and every request or message fails the same way. The error names the export, the function,
/// the component's signature and what the runtime expects.
///
/// # Errors
///
/// The export or the function is missing, or has another type.
pub fn check_export_func<T, P, R>(pre: &InstancePre<T>, prefix: &str, func: &str) -> Result<()>
where
    P: ComponentNamedList + Lower,
    R: ComponentNamedList + Lift,
{
    let engine = pre.engine();
    let guest = pre.component().component_type();
    let Some((name, export)) = guest
        .exports(engine)
        .find(|(name, _)| name.starts_with(prefix))
    else {
        bail!("the component has no export {prefix}.x");
    };
    let ComponentItem::ComponentInstance(instance) = export.ty else {
        bail!("the component's export {name} is not an interface");
    };
    let Some(ComponentItem::ComponentFunc(ty)) = instance.get_export(engine, func).map(|e| e.ty)
    else {
        bail!("the component's export {name} has no function `{func}`");
    };
    ty.typecheck::<P, R>(&pre.instance_type()).map_err(|err| {
        let leaf = err
            .chain()
            .last()
            .map(ToString::to_string)
            .unwrap_or_default();
        anyhow::anyhow!(
            "the component's export {name} has another shape: function `{func}`: the component \
             has `{}`; {}. Rebuild the component against the WIT this runtime provides",
            crate::link_error::signature(engine, &guest, &ty),
            crate::link_error::runtime_side(&leaf)
        )
    })
}

/// Whether `component` imports an interface whose name starts with `prefix`, e.g.
/// `"wasi:keyvalue/"` for any interface of that package.
pub fn imports_interface(engine: &Engine, component: &Component, prefix: &str) -> bool {
    component
        .component_type()
        .imports(engine)
        .any(|(name, _)| name.starts_with(prefix))
}

/// Whether an interface `component` imports, whose name starts with `prefix`, has an
/// `async func` (a resource's methods and static functions included). Upstream omnia's shapes
/// of some interfaces have the standard names but `async func`s; this tells which shape a
/// component was built for (see [`Host::add_to_linker`](crate::Host::add_to_linker)).
pub fn imports_async_func(engine: &Engine, component: &Component, prefix: &str) -> bool {
    component
        .component_type()
        .imports(engine)
        .filter(|(name, _)| name.starts_with(prefix))
        .any(|(_, import)| {
            match import.ty {
            ComponentItem::ComponentInstance(instance) => {
                instance.exports(engine).any(|(_, export)| {
                    matches!(export.ty, ComponentItem::ComponentFunc(func) if func.async_())
                })
            }
            ComponentItem::ComponentFunc(func) => func.async_(),
            _ => false,
        }
        })
}

/// Loads the guest at `path`, a file of at most `OMNIA_MAX_COMPONENT_SIZE` bytes, into the
/// engine of the [`Kind`] it needs: [`Kind::Sync`] unless it is a WASI 0.3 component (a
/// component that the synchronous engine refuses), [`Kind::Async`] then.
pub fn load(engines: &Engines, path: &Path) -> Result<(Engine, Guest)> {
    let config = engines.config();
    let bytes = read(path, config.max_component_size)?;
    let precompiled = precompiled(path, &bytes)?;
    let load_in = |kind| -> Result<(Engine, Guest)> {
        let engine = engines.get(kind)?;
        let guest = match precompiled {
            Some((kind, artefact)) => load_precompiled(&engine, path, artefact, kind)?,
            None => load_wasm(&engine, path, &bytes, config.compile_cache.as_deref())?,
        };
        Ok((engine, guest))
    };
    let sync_err = match load_in(Kind::Sync) {
        Ok(loaded) => return Ok(loaded),
        Err(err) => err,
    };
    // Only a component can need the async engine, and only one this build can load.
    let component = match precompiled {
        Some((kind, _)) => kind == Precompiled::Component,
        None => cfg!(feature = "jit") && !is_core_module(path, &bytes)?,
    };
    if !component {
        return Err(sync_err);
    }
    // A component neither engine takes: the async engine's reason is about the component
    // itself, not a feature the other one lacks.
    load_in(Kind::Async)
}

/// Reads a component file: a regular file (not a FIFO, device or directory, which could block
/// or never end) of at most `max_size` bytes.
pub fn read(path: &Path, max_size: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;

    let shown = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {shown}"))?;
    let kind = meta.file_type();
    let what = if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("a device")
    } else {
        None
    };
    if let Some(what) = what {
        bail!(
            "{shown} is {what}, not a file: pass a .wasm component or a .bin from `omnia compile`"
        );
    }
    let too_big = || {
        anyhow::anyhow!(
            "{shown} is larger than OMNIA_MAX_COMPONENT_SIZE ({max_size} bytes): raise that \
             setting if this component really is that large"
        )
    };
    if meta.len() > max_size as u64 {
        return Err(too_big());
    }
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {shown}"))?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max_size as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {shown}"))?;
    if bytes.len() > max_size {
        return Err(too_big());
    }
    Ok(bytes)
}

/// How wasmtime's artefacts (ELF files) start.
const ELF_MAGIC: &[u8] = b"\x7fELF";

/// For a `.bin` (an ELF file, as wasmtime writes them), its kind and its artefact, once its
/// seal (see [`artifact`]) shows it intact; `None` for anything else (WebAssembly, text).
fn precompiled<'a>(path: &Path, bytes: &'a [u8]) -> Result<Option<(Precompiled, &'a [u8])>> {
    if !bytes.starts_with(ELF_MAGIC) {
        return Ok(None);
    }
    let refuse = |what: &str| {
        anyhow::anyhow!(
            "{} {what}; it was not run: precompile it again with `omnia compile`",
            path.display()
        )
    };
    let artefact = artifact::unseal(bytes).map_err(|broken| refuse(broken.describe()))?;
    let kind = Engine::detect_precompiled(artefact)
        .ok_or_else(|| refuse("is not a component or module precompiled by wasmtime"))?;
    Ok(Some((kind, artefact)))
}

/// Loads the artefact of a `.bin` from `omnia compile`.
fn load_precompiled(
    engine: &Engine,
    path: &Path,
    artefact: &[u8],
    kind: Precompiled,
) -> Result<Guest> {
    deserialize(engine, artefact, kind).with_context(|| {
        format!(
            "{} was precompiled by a different omnia version or engine configuration; \
             recompile it from the .wasm with `omnia compile` of this build",
            path.display()
        )
    })
}

/// Loads an artefact of wasmtime's, its seal checked.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, artefact: &[u8], kind: Precompiled) -> Result<Guest> {
    // SAFETY: `deserialize` loads the bytes as machine code. Wasmtime checks that they are one
    // of its own artifacts for this exact version and engine configuration and refuses anything
    // else; the seal shows they are the bytes `omnia compile` (or the compile cache) wrote.
    // What neither can check is that an artifact was not crafted by hand and sealed, so omnia
    // trusts `.bin` files the way a shell trusts executables: only run ones you built.
    let loaded = match kind {
        Precompiled::Component => {
            unsafe { Component::deserialize(engine, artefact) }.map(Guest::Component)
        }
        Precompiled::Module => unsafe { Module::deserialize(engine, artefact) }.map(Guest::Module),
    };
    Ok(loaded?)
}

/// Compiles a `.wasm` (or takes its code from the compile cache in `cache`).
fn load_wasm(engine: &Engine, path: &Path, bytes: &[u8], cache: Option<&Path>) -> Result<Guest> {
    let is_module = is_core_module(path, bytes)?;
    #[cfg(feature = "jit")]
    {
        let kind = if is_module {
            Precompiled::Module
        } else {
            Precompiled::Component
        };
        let compile = || compile(engine, path, bytes, is_module);
        let load = |artefact: &[u8]| deserialize(engine, artefact, kind);
        match cache {
            Some(dir) => artifact::Cache::new(dir).get(engine, bytes, compile, load),
            None => load(&compile()?),
        }
    }
    #[cfg(not(feature = "jit"))]
    {
        let _ = (engine, is_module, cache);
        bail!(
            "{} is a WebAssembly file, but this omnia build has no compiler (built without the \
             `jit` feature): precompile it with `omnia compile {} -o app.bin` on a build with \
             `jit`, then run the .bin",
            path.display(),
            path.display()
        )
    }
}

/// Reads the header: WebAssembly magic, then the layer: a core module (`true`) or a component.
/// In text, `(module` starts a core module and anything else is taken for a component (the
/// parser reports its own errors).
fn is_core_module(path: &Path, bytes: &[u8]) -> Result<bool> {
    const MAGIC: &[u8] = b"\0asm";
    if let Ok(text) = std::str::from_utf8(bytes) {
        let code = text
            .lines()
            .map(str::trim_start)
            .filter(|line| !line.is_empty() && !line.starts_with(";;"))
            .collect::<Vec<_>>()
            .join(" ");
        if code.starts_with('(') {
            return Ok(code.starts_with("(module"));
        }
    }
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        bail!(
            "{} is not WebAssembly (no `\\0asm` header): pass a .wasm component or module, or a \
             .bin from `omnia compile`",
            path.display()
        );
    }
    // Bytes 4..8: version (2 bytes) and layer (2 bytes); layer 0 is a core module.
    Ok(bytes[6..8] == [0, 0])
}

/// Compiles `bytes`, the core module or component at `path`, into an artefact of `engine`.
#[cfg(feature = "jit")]
fn compile(engine: &Engine, path: &Path, bytes: &[u8], is_module: bool) -> Result<Vec<u8>> {
    let compiled = if is_module {
        engine.precompile_module(bytes)
    } else {
        engine.precompile_component(bytes)
    };
    compiled
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot compile {}", path.display()))
}

/// Precompiles the `.wasm` component or core module at `input` into `output` (a `.bin` for this
/// omnia build's engine of the [`Kind`] the guest needs, see [`load`]).
#[cfg(feature = "jit")]
pub fn precompile(config: &crate::RuntimeConfig, input: &Path, output: &Path) -> Result<()> {
    let bytes = read(input, config.max_component_size)?;
    if bytes.starts_with(ELF_MAGIC) {
        bail!("{} is already precompiled", input.display());
    }
    let is_module = is_core_module(input, &bytes)?;
    let compile_in = |kind| {
        compile(
            &crate::engine::build(config, kind)?,
            input,
            &bytes,
            is_module,
        )
    };
    let compiled = match compile_in(Kind::Sync) {
        // Only a component can need the async engine.
        Err(_) if !is_module => compile_in(Kind::Async)?,
        compiled => compiled?,
    };
    std::fs::write(output, artifact::seal(compiled))
        .with_context(|| format!("cannot write {}", output.display()))
}
