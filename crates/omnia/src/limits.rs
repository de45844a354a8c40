//! How much guest work may run at once, and how much memory it may hold.
//!
//! * [`WorkSlots`]: one pool of slots for all triggers together (`OMNIA_MAX_CONCURRENCY`). The
//!   HTTP trigger takes a slot or answers 503 at once; a message subscriber waits for one
//!   (back-pressure). Because the pooling allocator is sized from the same number, a busy
//!   runtime refuses work instead of failing to instantiate.
//! * [`MemoryBudget`]: the linear memory of all live instances together
//!   (`OMNIA_MEMORY_BUDGET`). Each store's [`GuestLimits`] reserves memory from it as the guest
//!   grows and gives it back when the store is dropped. Growth past the budget fails in the
//!   guest, and the trigger answers 503 (the server is full, try again) rather than 500: the
//!   process never grows until the kernel's OOM killer picks it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::ResourceLimiter;

use crate::metrics;

/// The slots of guest work in flight, shared by every trigger of a runtime.
#[derive(Clone, Debug)]
pub struct WorkSlots {
    semaphore: Arc<Semaphore>,
    total: usize,
}

/// One slot of [`WorkSlots`], held for as long as a request or message is handled.
pub struct Admission {
    _permit: OwnedSemaphorePermit,
    guard: Option<Box<dyn Send + Sync>>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").finish_non_exhaustive()
    }
}

impl Admission {
    fn new(permit: OwnedSemaphorePermit) -> Self {
        metrics::WORK_IN_FLIGHT.add(1);
        Self {
            _permit: permit,
            guard: None,
        }
    }

    /// This admission, also holding `guard` until it is dropped (the HTTP trigger's share of
    /// the slots per client, a guest's place in its own [`GuestCap`]: what must be given back
    /// with the slot).
    #[must_use]
    pub fn holding(mut self, guard: impl Send + Sync + 'static) -> Self {
        self.guard = Some(match self.guard.take() {
            Some(held) => Box::new((held, guard)),
            None => Box::new(guard),
        });
        self
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        metrics::WORK_IN_FLIGHT.add(-1);
        drop(self.guard.take());
    }
}

/// One guest's own cap on its work in flight (`[guest.limits] concurrency`), within the
/// runtime's [`WorkSlots`]: a place in it is taken with the work slot and held as long
/// (see [`Admission::holding`]). Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct GuestCap(Option<Arc<Semaphore>>);

/// A place within a [`GuestCap`] (nothing to hold for a guest without one).
pub type CapPlace = Option<OwnedSemaphorePermit>;

impl GuestCap {
    /// A cap of `limit` (none if `None`).
    pub fn new(limit: Option<usize>) -> Self {
        Self(limit.map(|n| Arc::new(Semaphore::new(n))))
    }

    /// A place now, or `None` if the guest has its limit in flight.
    pub fn try_take(&self) -> Option<CapPlace> {
        match &self.0 {
            None => Some(None),
            Some(semaphore) => Arc::clone(semaphore).try_acquire_owned().ok().map(Some),
        }
    }

    /// A place, once one is free.
    pub async fn take(&self) -> CapPlace {
        match &self.0 {
            None => None,
            Some(semaphore) => Arc::clone(semaphore).acquire_owned().await.ok(),
        }
    }
}

impl WorkSlots {
    /// `total` slots.
    pub fn new(total: usize) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// A slot if one is free now (HTTP: otherwise answer 503).
    pub fn try_admit(&self) -> Option<Admission> {
        if let Ok(permit) = Arc::clone(&self.semaphore).try_acquire_owned() {
            Some(Admission::new(permit))
        } else {
            metrics::OVERLOAD_REJECTIONS.inc();
            None
        }
    }

    /// Waits for a free slot (messages: back-pressure instead of refusal).
    ///
    /// # Panics
    ///
    /// Never: the semaphore is owned here and never closed.
    pub async fn admit(&self) -> Admission {
        let permit = Arc::clone(&self.semaphore)
            .acquire_owned()
            .await
            .expect("the work-slot semaphore is never closed");
        Admission::new(permit)
    }

    /// How many slots there are.
    pub fn total(&self) -> usize {
        self.total
    }

    /// How many slots are in use.
    pub fn in_use(&self) -> usize {
        self.total - self.semaphore.available_permits()
    }
}

/// The linear memory all instances of the process may hold together.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Takes `bytes` from the budget if they fit.
    fn reserve(&self, bytes: usize) -> bool {
        let reserved = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok();
        if reserved {
            metrics::GUEST_MEMORY_BYTES.add(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        reserved
    }

    /// Gives `bytes` back.
    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        metrics::GUEST_MEMORY_BYTES.add(-i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Bytes held by live instances.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The budget, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// The resource limiter of one store: the per-instance memory limit plus its share of the
/// process-wide [`MemoryBudget`], returned when the store is dropped.
#[derive(Debug)]
pub struct GuestLimits {
    max_memory: usize,
    budget: Arc<MemoryBudget>,
    reserved: usize,
    last_reservation: usize,
    budget_exhausted: Arc<AtomicBool>,
}

impl GuestLimits {
    /// Limits of `max_memory` bytes per linear memory, drawing on `budget`.
    pub fn new(max_memory: usize, budget: Arc<MemoryBudget>) -> Self {
        Self {
            max_memory,
            budget,
            reserved: 0,
            last_reservation: 0,
            budget_exhausted: Arc::default(),
        }
    }

    /// Whether a growth (or instantiation) was refused because the process-wide budget was
    /// spent: the work failed for lack of room, not because of the guest (answer 503).
    pub fn budget_exhausted(&self) -> bool {
        self.budget_exhausted.load(Ordering::Acquire)
    }

    /// The flag behind [`Self::budget_exhausted`], readable without the store: when one
    /// instance serves several requests, the request that learns of a failure is not the one
    /// holding the store.
    pub fn budget_exhausted_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.budget_exhausted)
    }

    /// Bytes of the budget this store holds.
    pub fn reserved(&self) -> usize {
        self.reserved
    }
}

impl ResourceLimiter for GuestLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory || maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let extra = desired.saturating_sub(current);
        if !self.budget.reserve(extra) {
            if !self.budget_exhausted.swap(true, Ordering::AcqRel) {
                metrics::MEMORY_BUDGET_REFUSALS.inc();
            }
            return Ok(false);
        }
        self.reserved += extra;
        self.last_reservation = extra;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The limiter allowed the growth but the allocation itself failed: give it back. The
        // guest sees memory.grow fail, as with any refused growth.
        self.budget.release(self.last_reservation);
        self.reserved -= self.last_reservation;
        self.last_reservation = 0;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|max| desired <= max))
    }
}

impl Drop for GuestLimits {
    fn drop(&mut self) {
        self.budget.release(self.reserved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_shared_and_returned() {
        let budget = MemoryBudget::new(100);
        let mut a = GuestLimits::new(80, Arc::clone(&budget));
        let mut b = GuestLimits::new(80, Arc::clone(&budget));
        assert!(a.memory_growing(0, 60, None).unwrap());
        assert!(
            !a.memory_growing(60, 90, None).unwrap(),
            "over the instance limit"
        );
        assert!(!a.budget_exhausted());
        assert!(!b.memory_growing(0, 50, None).unwrap(), "over the budget");
        assert!(b.budget_exhausted());
        assert!(
            b.memory_growing(0, 40, None).unwrap(),
            "what is left still fits"
        );
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        b.memory_grow_failed(wasmtime::Error::msg("mmap failed"))
            .unwrap();
        assert_eq!(budget.used(), 0);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn slots_are_shared() {
        let slots = WorkSlots::new(2);
        let other_trigger = slots.clone();
        let a = slots.try_admit().unwrap();
        let _b = other_trigger.try_admit().unwrap();
        assert!(slots.try_admit().is_none());
        assert_eq!(slots.in_use(), 2);
        drop(a);
        let _c = other_trigger.admit().await;
        assert_eq!(slots.in_use(), 2);
    }
}
