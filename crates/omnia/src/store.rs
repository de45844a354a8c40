//! Store data: what every store holds, and how a capability reaches its own part of it.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::limits::GuestLimits;
use crate::trace::Work;

/// The part of every store's data that Omnia itself owns: the WASI context (what the guest is
/// granted), the resource table, and the store's resource limits.
pub struct StoreCore {
    /// WASI p2 context: stdio, env, preopened dirs, sockets policy.
    pub wasi: WasiCtx,
    /// Handles of every resource the guest holds.
    pub table: ResourceTable,
    /// Memory limits (per instance, and this store's share of the process-wide budget),
    /// enforced by the store's limiter.
    pub limits: GuestLimits,
    /// The request or message this store serves: its span and trace context (empty for a
    /// command).
    pub work: Work,
}

impl StoreCore {
    /// A core with the given WASI context, limits and work, and an empty resource table.
    pub fn new(wasi: WasiCtx, limits: GuestLimits, work: Work) -> Self {
        Self {
            wasi,
            table: ResourceTable::new(),
            limits,
            work,
        }
    }

    /// The view `wasmtime-wasi` works on.
    pub fn wasi_view(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Store data of an Omnia runtime. [`runtime!`](crate::runtime) implements it (and
/// [`WasiView`]) for the store type it generates.
pub trait StoreView: WasiView + Send + 'static {
    /// The core part of the store data.
    fn core(&mut self) -> &mut StoreCore;
}

/// Gives a capability `E` its own per-store data together with the [`StoreCore`], as two disjoint
/// borrows (host functions need both the capability's state and the resource table).
pub trait HostView<E>: StoreView {
    /// The capability's data and the core.
    fn host(&mut self) -> (&mut E, &mut StoreCore);
}
