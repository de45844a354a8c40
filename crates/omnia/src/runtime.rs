//! [`Runtime`]: the [`State`] every trigger serves from.

use std::sync::Arc;

use wasmtime::component::InstancePre;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;

use crate::config::RuntimeConfig;
use crate::grants::Grants;
use crate::guest_output::{GuestOutput, Target, output_limit};
use crate::limits::{GuestLimits, MemoryBudget, WorkSlots};
use crate::manifest::routes::HttpRoutes;
use crate::metrics;
use crate::store::{StoreCore, StoreView};
use crate::telemetry::{LogLimit, suppressed_note};
use crate::trace::Work;
use crate::traits::State;

/// Rate limit of the warning that a granted directory went away.
static GRANT_LOG: LogLimit = LogLimit::new(1, std::time::Duration::from_mins(1));

/// The component, pre-instantiated once, plus what it takes to make a store for each request or
/// message, and the limits every trigger shares: one pool of work slots and one memory budget.
/// Cheap to clone.
pub struct Runtime<T: 'static> {
    inner: Arc<Inner<T>>,
}

struct Inner<T: 'static> {
    pre: InstancePre<T>,
    config: RuntimeConfig,
    slots: WorkSlots,
    budget: Arc<MemoryBudget>,
    /// The rate limit of the guest's stdout and stderr, shared by every instance.
    output: Arc<LogLimit>,
    /// What each store is granted (`--env`, `--dir`, the network).
    grants: Grants,
    /// The HTTP routes of the guest, if a manifest gives it some.
    http_routes: Option<HttpRoutes<String>>,
    make_ctx: Box<dyn Fn(StoreCore) -> T + Send + Sync>,
}

impl<T: 'static> Clone for Runtime<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: StoreView> Runtime<T> {
    /// A runtime serving `pre`, each store with `grants`, HTTP requests on `http_routes` (all
    /// if `None`); `make_ctx` adds the capabilities' data to each store's core.
    pub fn new(
        pre: InstancePre<T>,
        config: RuntimeConfig,
        grants: Grants,
        http_routes: Option<HttpRoutes<String>>,
        make_ctx: impl Fn(StoreCore) -> T + Send + Sync + 'static,
    ) -> Self {
        metrics::MEMORY_BUDGET_BYTES.set(i64::try_from(config.memory_budget).unwrap_or(i64::MAX));
        Self {
            inner: Arc::new(Inner {
                pre,
                slots: WorkSlots::new(config.max_concurrency),
                budget: MemoryBudget::new(config.memory_budget),
                output: output_limit(config.guest_output_rate),
                grants,
                http_routes,
                config,
                make_ctx: Box::new(make_ctx),
            }),
        }
    }

    /// The process-wide memory budget.
    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.inner.budget
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

    fn slots(&self) -> &WorkSlots {
        &self.inner.slots
    }

    fn new_store(&self, work: Work) -> Store<T> {
        let output = |target| GuestOutput::new(target, Arc::clone(&self.inner.output));
        let mut wasi = WasiCtx::builder();
        wasi.stdout(output(Target::Stdout))
            .stderr(output(Target::Stderr));
        if let Err(err) = self.inner.grants.apply(&mut wasi)
            && let Some(suppressed) = GRANT_LOG.check()
        {
            tracing::warn!("{err:#}{}", suppressed_note(suppressed));
        }
        let wasi = wasi.build();
        let limits = GuestLimits::new(self.inner.config.max_memory, Arc::clone(&self.inner.budget));
        let core = StoreCore::new(wasi, limits, work);
        metrics::INSTANTIATIONS.inc();
        serving_store(self.engine(), (self.inner.make_ctx)(core))
    }

    fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    fn http_routes(&self) -> Option<&HttpRoutes<String>> {
        self.inner.http_routes.as_ref()
    }
}
