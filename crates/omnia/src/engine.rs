//! The [`Engine`]s: at most one of each [`Kind`] per process ([`Engines`]), configured for
//! serving untrusted guests.
//!
//! * **Pooling allocator** when the platform allows it (instances are created per request, and
//!   pooling makes that a few microseconds); if reserving the pool fails (small address space,
//!   `ulimit -v`), Omnia logs why and falls back to on-demand allocation.
//! * **Epoch interruption** with one ticker thread: every [`EPOCH_TICK`] each running guest
//!   yields to the async executor, so a guest in an infinite loop neither starves other
//!   requests nor escapes its deadline.
//! * **Memory limit** per instance, enforced both by the pool's slot size and by each store's
//!   limiter.
//! * **Two kinds** ([`Kind`]): WASI 0.3 components need the component model's async features,
//!   and with them every call goes through wasmtime's concurrent event loop; WASI 0.2 components
//!   and WASI 0.1 modules do not, and run faster without it (a 0.2 HTTP hello serves about twice
//!   the requests). A guest is loaded into an engine of the kind it needs (see
//!   [`crate::component::load`]).
//!
//! The settings that shape compiled code are identical with and without the `jit` feature, so
//! a `.bin` written by `omnia compile` loads in an AOT-only build.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::{Config, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::RuntimeConfig;

/// How often the epoch advances; a running guest yields to the executor at least this often.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The guests an engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// WASI 0.2 components and WASI 0.1 modules: no component-model async, so each call runs
    /// straight on its fiber.
    Sync,
    /// WASI 0.3 components: component-model async (async exports and imports, streams, futures),
    /// and calls that run concurrently in one instance.
    Async,
}

/// The engines of one application: at most one of each [`Kind`], built on first use and shared
/// by every guest that needs it (each engine has its own instance pool and compiled code
/// cache, so an application of twenty 0.2 guests needs one engine, not twenty).
pub struct Engines {
    config: RuntimeConfig,
    sync: OnceLock<Engine>,
    async_: OnceLock<Engine>,
}

impl Engines {
    /// No engine yet; each will be built for `config`.
    pub fn new(config: &RuntimeConfig) -> Self {
        Self {
            config: config.clone(),
            sync: OnceLock::new(),
            async_: OnceLock::new(),
        }
    }

    /// The settings the engines are built for.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The engine of `kind`, built if this is the first time it is asked for.
    pub fn get(&self, kind: Kind) -> Result<Engine> {
        let cell = match kind {
            Kind::Sync => &self.sync,
            Kind::Async => &self.async_,
        };
        if let Some(engine) = cell.get() {
            return Ok(engine.clone());
        }
        let engine = build(&self.config, kind)?;
        Ok(cell.get_or_init(|| engine).clone())
    }
}

/// Builds an engine of `kind` for `config`: pooling if possible, on-demand otherwise.
pub fn build(config: &RuntimeConfig, kind: Kind) -> Result<Engine> {
    let mut pooled = base_config(kind);
    pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(config)));
    let engine = match Engine::new(&pooled) {
        Ok(engine) => engine,
        Err(err) => {
            tracing::warn!(
                "pooling allocator unavailable ({err:#}); falling back to on-demand allocation"
            );
            Engine::new(&base_config(kind))
                .map_err(anyhow::Error::from)
                .context("creating the wasmtime engine")?
        }
    };
    start_epoch_ticker(&engine, kind);
    Ok(engine)
}

/// The kind of `engine`, one [`build`] made.
pub fn kind(engine: &Engine) -> Kind {
    lock(&TICKED)
        .iter()
        .find(|(weak, _)| weak.upgrade().is_some_and(|e| Engine::same(&e, engine)))
        .map_or(Kind::Sync, |(_, kind)| *kind)
}

/// The engine settings shared by every build (JIT or AOT-only) and by `omnia compile`.
fn base_config(kind: Kind) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    match kind {
        // WASI 0.3 guests: async lifts and lowers, streams and futures, and the async built-ins
        // that guest toolchains emit (as `wasmtime -W component-model-async` enables).
        Kind::Async => {
            config.wasm_component_model_async(true);
            config.wasm_component_model_more_async_builtins(true);
            config.wasm_component_model_async_stackful(true);
            config.wasm_component_model_error_context(true);
        }
        // Without it, wasmtime runs every call through the concurrent event loop.
        Kind::Sync => {
            config.concurrency_support(false);
        }
    }
    config.epoch_interruption(true);
    config
}

/// The pool, sized from `OMNIA_MAX_CONCURRENCY`: the one limit every trigger shares (see
/// [`crate::limits::WorkSlots`]), so a busy runtime refuses work before it could run out of
/// instance slots or stacks.
fn pooling(config: &RuntimeConfig) -> PoolingAllocationConfig {
    // One component instance per in-flight request, plus headroom for instances that are
    // still being torn down.
    let slots = u32::try_from(config.max_concurrency.saturating_mul(2)).unwrap_or(u32::MAX);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        // Every instance runs its calls on an async stack of its own (and a GC heap, for
        // guests that use GC types).
        .total_stacks(slots)
        .total_gc_heaps(slots)
        // Guests built by componentize-py and componentize-js carry tens of core instances
        // and several memories and tables.
        .total_core_instances(slots.saturating_mul(16))
        .total_memories(slots.saturating_mul(4))
        .total_tables(slots.saturating_mul(8))
        .max_memories_per_component(16)
        .max_tables_per_component(64)
        .max_core_instances_per_component(64)
        .max_memory_size(config.max_memory)
        // Profiled under load (see the benchmark issue): a quarter of the CPU went to
        // `madvise` decommits of each finished instance's memory and the TLB-shootdown IPIs
        // they cause, and a fifth to page faults re-populating the next instance. Resetting
        // the first pages with memset keeps them resident (no syscall, no fault); the kernel's
        // PAGEMAP_SCAN, where available, finds exactly the dirty pages to reset.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(wasmtime::Enabled::Auto);
    pool
}

/// Bytes of each linear memory and table reset in place, rather than decommitted, when an
/// instance ends.
const KEEP_RESIDENT: usize = 1 << 20;

/// Engines whose epoch the ticker advances, with their kind.
static TICKED: Mutex<Vec<(EngineWeak, Kind)>> = Mutex::new(Vec::new());

/// Advances `engine`'s epoch every [`EPOCH_TICK`], on one background thread shared by every
/// engine of the process (an engine that is dropped is forgotten).
fn start_epoch_ticker(engine: &Engine, kind: Kind) {
    static TICKER: OnceLock<()> = OnceLock::new();
    lock(&TICKED).push((engine.weak(), kind));
    TICKER.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("omnia-epoch".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(EPOCH_TICK);
                    lock(&TICKED).retain(|(weak, _)| match weak.upgrade() {
                        Some(engine) => {
                            engine.increment_epoch();
                            true
                        }
                        None => false,
                    });
                }
            });
        if let Err(err) = spawned {
            tracing::error!("cannot start the epoch ticker thread: {err}");
        }
    });
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(all(test, feature = "jit"))]
mod tests {
    use super::*;

    /// An engine made after the first one is ticked too: a guest in an infinite loop in it
    /// reaches its epoch deadline instead of running forever.
    #[test]
    fn every_engine_is_ticked() {
        let config = RuntimeConfig {
            compile_cache: None,
            ..RuntimeConfig::default()
        };
        let first = build(&config, Kind::Sync).unwrap();
        let second = build(&config, Kind::Async).unwrap();
        assert_eq!(kind(&first), Kind::Sync);
        assert_eq!(kind(&second), Kind::Async);
        let module =
            wasmtime::Module::new(&second, r#"(module (func (export "spin") (loop (br 0))))"#)
                .unwrap();
        let mut store = wasmtime::Store::new(&second, ());
        store.set_epoch_deadline(5);
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let spin = instance
            .get_typed_func::<(), ()>(&mut store, "spin")
            .unwrap();
        let err = spin.call(&mut store, ()).unwrap_err();
        assert_eq!(
            err.downcast_ref::<wasmtime::Trap>(),
            Some(&wasmtime::Trap::Interrupt)
        );
    }
}
