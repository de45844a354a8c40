//! [`Runtime`]: the [`State`] of one guest, which every trigger serves it from, and [`Shared`],
//! what the guests of an application share.

use std::sync::Arc;

use wasmtime::component::InstancePre;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;

use crate::config::RuntimeConfig;
use crate::grants::Grants;
use crate::guest_output::{GuestOutput, Target, output_limit};
use crate::limits::{GuestCap, GuestLimits, MemoryBudget, WorkSlots};
use crate::metrics;
use crate::store::{StoreCore, StoreView};
use crate::telemetry::{LogLimit, suppressed_note};
use crate::trace::Work;
use crate::traits::State;

/// Rate limit of the warning that a granted directory went away.
static GRANT_LOG: LogLimit = LogLimit::new(1, std::time::Duration::from_mins(1));

/// One guest: its component, pre-instantiated once, plus what it takes to make a store for
/// each request or message (its grants, its limits) and what it shares with the other guests
/// of its application ([`Shared`]). Cheap to clone.
pub struct Runtime<T: 'static> {
    inner: Arc<Inner<T>>,
}

struct Inner<T: 'static> {
    /// The guest's id: the manifest's, or the file's stem for a guest run on its own.
    id: Arc<str>,
    pre: InstancePre<T>,
    /// The runtime's settings with the guest's own limits.
    config: RuntimeConfig,
    shared: Shared,
    /// What each store is granted (`--env`, `--dir`, the network).
    grants: Grants,
    /// The guest's own limits, as the manifest gives them.
    limits: crate::manifest::GuestLimits,
    /// The guest's own cap on its work in flight (`limits.concurrency`).
    cap: GuestCap,
    make_ctx: Box<dyn Fn(StoreCore) -> T + Send + Sync>,
}

/// What every guest of an application shares: one pool of work slots, one memory budget, one
/// rate limit of guest output. Cheap to clone.
#[derive(Clone)]
pub struct Shared {
    slots: WorkSlots,
    budget: Arc<MemoryBudget>,
    /// The rate limit of the guests' stdout and stderr, shared by every instance.
    output: Arc<LogLimit>,
}

impl Shared {
    /// The slots, budget and output limit of `config` (`OMNIA_MAX_CONCURRENCY`,
    /// `OMNIA_MEMORY_BUDGET`, `OMNIA_GUEST_OUTPUT_RATE`).
    pub fn new(config: &RuntimeConfig) -> Self {
        metrics::MEMORY_BUDGET_BYTES.set(i64::try_from(config.memory_budget).unwrap_or(i64::MAX));
        Self {
            slots: WorkSlots::new(config.max_concurrency),
            budget: MemoryBudget::new(config.memory_budget),
            output: output_limit(config.guest_output_rate),
        }
    }

    /// The work slots every guest and trigger shares.
    pub fn slots(&self) -> &WorkSlots {
        &self.slots
    }
}

impl<T: 'static> Clone for Runtime<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: StoreView> Runtime<T> {
    /// The guest `id` serving `pre` under `config` (the runtime's settings with its own
    /// limits), sharing `shared` with the other guests, each store with `grants`, its own
    /// `limits` kept for the triggers; `make_ctx` adds the capabilities' data to each store's
    /// core.
    pub fn new(
        id: &str,
        pre: InstancePre<T>,
        config: RuntimeConfig,
        shared: &Shared,
        grants: Grants,
        limits: crate::manifest::GuestLimits,
        make_ctx: impl Fn(StoreCore) -> T + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                id: id.into(),
                pre,
                config,
                shared: shared.clone(),
                grants,
                limits,
                cap: GuestCap::new(limits.concurrency),
                make_ctx: Box::new(make_ctx),
            }),
        }
    }

    /// What each of its stores is granted.
    pub fn grants(&self) -> &Grants {
        &self.inner.grants
    }

    /// The process-wide memory budget.
    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.inner.shared.budget
    }
}

/// A store with the memory limiter installed, in which a guest that runs for an epoch tick
/// yields to the executor, so other work proceeds and deadlines can fire.
pub(crate) fn serving_store<T: StoreView>(engine: &Engine, ctx: T) -> Store<T> {
    let mut store = Store::new(engine, ctx);
    store.limiter(|ctx| &mut ctx.core().limits);
    yield_on_epoch(&mut store);
    store
}

/// Makes the guest in `store` yield to the executor at every epoch tick.
///
/// The yield is tokio's own, which resumes the task only after the runtime has polled for I/O.
/// A plain wake (wasmtime's `UpdateDeadline::Yield`) puts the task straight back in the run
/// queue, and a runtime that always has a task ready polls for I/O only every 61 polls: with a
/// guest spinning in 10 ms slices, other connections on its thread waited 600 ms and more.
pub(crate) fn yield_on_epoch<T>(store: &mut Store<T>) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|_| {
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ))
    });
}

impl<T: StoreView> State for Runtime<T> {
    type StoreCtx = T;

    fn engine(&self) -> &Engine {
        self.inner.pre.engine()
    }

    fn instance_pre(&self) -> &InstancePre<T> {
        &self.inner.pre
    }

    fn id(&self) -> &str {
        &self.inner.id
    }

    fn slots(&self) -> &WorkSlots {
        &self.inner.shared.slots
    }

    fn cap(&self) -> &GuestCap {
        &self.inner.cap
    }

    fn limits(&self) -> &crate::manifest::GuestLimits {
        &self.inner.limits
    }

    fn new_store(&self, work: Work) -> Store<T> {
        let output = |target| GuestOutput::new(target, Arc::clone(&self.inner.shared.output));
        let mut wasi = WasiCtx::builder();
        wasi.stdout(output(Target::Stdout))
            .stderr(output(Target::Stderr));
        if let Err(err) = self.inner.grants.apply(&mut wasi)
            && let Some(suppressed) = GRANT_LOG.check()
        {
            tracing::warn!("{err:#}{}", suppressed_note(suppressed));
        }
        let wasi = wasi.build();
        let limits = GuestLimits::new(
            self.inner.config.max_memory,
            Arc::clone(&self.inner.shared.budget),
        );
        let core = StoreCore::new(wasi, limits, work);
        metrics::INSTANTIATIONS.inc();
        serving_store(self.engine(), (self.inner.make_ctx)(core))
    }

    fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }
}
