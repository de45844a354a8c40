//! # wasi:keyvalue for Omnia
//!
//! Guests get key-value storage through the standard `wasi:keyvalue@0.2.0-draft` interfaces
//! (`store`, `atomics` with increment and compare-and-swap, `batch`; see `wit/README.md` for
//! the exact WIT), and operators choose where the data lives without touching the guest.
//!
//! The crate has three layers:
//!
//! * [`backend`]: the [`KeyValueStore`] / [`Bucket`] traits a backend implements. This crate
//!   knows nothing about Redis or NATS: `omnia-redis` and `omnia-nats` implement these traits.
//! * [`MemoryStore`]: the embedded default, in the process, shared by every instance.
//! * [`host`]: the `wasi:keyvalue` host functions over any store, and [`WasiKeyValue`], the
//!   entry type [`omnia::runtime!`] lists under `"keyvalue"`.
//!
//! ```ignore
//! omnia::runtime!({
//!     "http": WasiHttpCtx,
//!     "keyvalue": KeyValueDefault,        // in memory
//!     // "keyvalue": omnia_redis::Redis,  // or Redis, from REDIS_URL
//! });
//! ```
//!
//! Every backend behaves the same towards the guest: bucket names are checked here (see
//! [`check_bucket_name`]), counters are decimal text, a failing backend is the WIT `error`
//! variant (never a trap), and `list-keys` pages of at most [`backend::PAGE_SIZE`] keys.

pub mod backend;
pub mod host;
mod memory;

use std::marker::PhantomData;
use std::sync::Arc;

use anyhow::Result;
use omnia::{Backend, Host, HostView};
use wasmtime::component::Linker;

pub use backend::{Bucket, Error, KeyPage, KeyValueStore, Versioned, check_bucket_name};
pub use memory::MemoryStore;

/// The `"keyvalue"` entry of a runtime: `wasi:keyvalue` served by the store `B` connects to.
///
/// `B` is a [`KeyValueStore`] that is also an [`omnia::Backend`] (it knows how to connect from
/// the environment); the entry itself holds the connected store behind a shared pointer, so
/// cloning it into every request's store is cheap.
pub struct WasiKeyValue<B> {
    store: Arc<dyn KeyValueStore>,
    backend: PhantomData<fn() -> B>,
}

/// The in-memory key-value entry: `wasi:keyvalue` backed by [`MemoryStore`].
pub type KeyValueDefault = WasiKeyValue<MemoryStore>;

impl<B> WasiKeyValue<B> {
    /// An entry serving `store`.
    pub fn new(store: impl KeyValueStore) -> Self {
        Self::from_shared(Arc::new(store))
    }

    /// An entry serving an already shared store.
    pub fn from_shared(store: Arc<dyn KeyValueStore>) -> Self {
        Self {
            store,
            backend: PhantomData,
        }
    }

    /// The store this entry serves.
    pub fn store(&self) -> &Arc<dyn KeyValueStore> {
        &self.store
    }
}

impl<B> Clone for WasiKeyValue<B> {
    fn clone(&self) -> Self {
        Self::from_shared(Arc::clone(&self.store))
    }
}

impl<B: Backend + KeyValueStore> Backend for WasiKeyValue<B> {
    type Options = B::Options;

    async fn connect_with(options: B::Options) -> Result<Self> {
        Ok(Self::new(B::connect_with(options).await?))
    }
}

impl Backend for MemoryStore {
    type Options = ();

    async fn connect_with((): ()) -> Result<Self> {
        Ok(Self::new())
    }
}

/// The [`host::KeyValueView`] of a store that holds a [`WasiKeyValue`].
fn view<T: HostView<WasiKeyValue<B>>, B: 'static>(store: &mut T) -> host::KeyValueView<'_> {
    let (entry, core) = store.host();
    host::KeyValueView {
        store: &entry.store,
        table: &mut core.table,
    }
}

impl<T: HostView<WasiKeyValue<B>>, B: 'static> Host<T> for WasiKeyValue<B> {
    fn add_to_linker(linker: &mut Linker<T>) -> Result<()> {
        host::add_to_linker(linker, view::<T, B>)
    }
}

/// The README's quick start (HTTP plus in-memory key-value), compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
