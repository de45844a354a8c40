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
use omnia::config::{Setting, var};
use omnia::{Backend, FromEnv, GuestScope, Host, HostView};
use serde::Deserialize;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

pub use backend::{Bucket, Error, KeyPage, KeyValueStore, Versioned, check_bucket_name};
pub use memory::{MemoryOptions, MemoryStore};

/// The `"keyvalue"` entry of a runtime: `wasi:keyvalue` served by the store `B` connects to.
///
/// `B` is a [`KeyValueStore`] that is also an [`omnia::Backend`] (it knows how to connect from
/// the environment); the entry itself holds the connected store behind a shared pointer, so
/// cloning it into every request's store is cheap.
pub struct WasiKeyValue<B> {
    store: Arc<dyn KeyValueStore>,
    default_bucket: Arc<str>,
    /// The buckets a guest may open by name (see [`Backend::for_guest`]); `None`: any.
    granted: Option<Arc<[String]>>,
    backend: PhantomData<fn() -> B>,
}

/// A guest's grants of key-value (`[guest.grants] keyvalue = { buckets = ["orders"] }`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyValueGrants {
    /// The buckets it may open by name, shared with every guest granted them.
    #[serde(default)]
    buckets: Vec<String>,
}

/// The first character of a guest's own bucket in an application (`_` and its id), which a
/// granted bucket's name may not have: so no grant reaches another guest's own bucket.
pub const OWN_BUCKET_PREFIX: char = '_';

/// The bucket `open("")` opens unless `OMNIA_KEYVALUE_DEFAULT_BUCKET` says otherwise.
pub const DEFAULT_BUCKET: &str = "default";

/// Options of a [`WasiKeyValue`] entry: its backend's, plus what every backend shares.
#[derive(Debug, Clone)]
pub struct KeyValueOptions<O> {
    /// `OMNIA_KEYVALUE_DEFAULT_BUCKET`: the bucket `open("")` opens. Guests written for
    /// `wasmtime serve -S keyvalue` (and other hosts) open the empty identifier, the only one
    /// wasmtime's store accepts.
    pub default_bucket: String,
    /// The backend's own options.
    pub backend: O,
}

impl<O: FromEnv> FromEnv for KeyValueOptions<O> {
    fn from_env() -> Result<Self> {
        let default_bucket = var("OMNIA_KEYVALUE_DEFAULT_BUCKET", |s| {
            check_bucket_name(s)?;
            Ok(s.to_owned())
        })?
        .unwrap_or_else(|| DEFAULT_BUCKET.to_owned());
        Ok(Self {
            default_bucket,
            backend: O::from_env()?,
        })
    }

    fn settings() -> Vec<Setting> {
        let mut settings = vec![Setting {
            env: "OMNIA_KEYVALUE_DEFAULT_BUCKET",
            flag: None,
            value: "NAME",
            default: DEFAULT_BUCKET,
            help: "the bucket a guest opens with the empty identifier \"\" (as wasmtime serve's guests do)",
        }];
        settings.extend(O::settings());
        settings
    }
}

/// The in-memory key-value entry: `wasi:keyvalue` backed by [`MemoryStore`].
pub type KeyValueDefault = WasiKeyValue<MemoryStore>;

impl<B> WasiKeyValue<B> {
    /// An entry serving `store`, whose `open("")` opens [`DEFAULT_BUCKET`].
    pub fn new(store: impl KeyValueStore) -> Self {
        Self::from_shared(Arc::new(store), DEFAULT_BUCKET)
    }

    /// An entry serving an already shared store, whose `open("")` opens `default_bucket`.
    pub fn from_shared(store: Arc<dyn KeyValueStore>, default_bucket: &str) -> Self {
        Self {
            store,
            default_bucket: default_bucket.into(),
            granted: None,
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
        Self {
            store: Arc::clone(&self.store),
            default_bucket: Arc::clone(&self.default_bucket),
            granted: self.granted.clone(),
            backend: PhantomData,
        }
    }
}

impl<B: Backend + KeyValueStore> Backend for WasiKeyValue<B> {
    type Options = KeyValueOptions<B::Options>;

    async fn connect_with(options: Self::Options) -> Result<Self> {
        let store = B::connect_with(options.backend).await?;
        Ok(Self::from_shared(Arc::new(store), &options.default_bucket))
    }

    fn backends() -> Vec<&'static str> {
        B::backends()
    }

    /// A guest restricted to its grants opens by name only the buckets it is granted, shared
    /// with the other guests granted them; in an application of several guests its `open("")`
    /// is a bucket of its own (`_` and its id), so two guests never share data unless both are
    /// granted one bucket.
    fn for_guest(&self, guest: &GuestScope<'_>) -> Result<Self> {
        if !guest.restricted() {
            return Ok(self.clone());
        }
        let grants: KeyValueGrants = guest.grants()?;
        for bucket in &grants.buckets {
            check_bucket_name(bucket).map_err(|err| anyhow::anyhow!("buckets: {err}"))?;
            if bucket.starts_with(OWN_BUCKET_PREFIX) {
                anyhow::bail!(
                    "buckets: {bucket:?}: a name beginning with {OWN_BUCKET_PREFIX:?} is a guest's \
                     own bucket (what it opens as \"\"), which no other guest may be granted; \
                     name shared buckets otherwise"
                );
            }
        }
        let default_bucket = if guest.shared {
            format!("{OWN_BUCKET_PREFIX}{}", guest.id).into()
        } else {
            Arc::clone(&self.default_bucket)
        };
        check_bucket_name(&default_bucket).map_err(|err| anyhow::anyhow!("{err}"))?;
        Ok(Self {
            store: Arc::clone(&self.store),
            default_bucket,
            granted: Some(grants.buckets.into()),
            backend: PhantomData,
        })
    }
}

impl Backend for MemoryStore {
    type Options = MemoryOptions;

    async fn connect_with(options: MemoryOptions) -> Result<Self> {
        Ok(Self::with_options(options))
    }
}

/// The [`host::KeyValueView`] of a store that holds a [`WasiKeyValue`].
fn view<T: HostView<WasiKeyValue<B>>, B: 'static>(store: &mut T) -> host::KeyValueView<'_> {
    let (entry, core) = store.host();
    host::KeyValueView {
        store: &entry.store,
        default_bucket: &entry.default_bucket,
        granted: entry.granted.as_deref(),
        table: &mut core.table,
    }
}

impl<T: HostView<WasiKeyValue<B>>, B: 'static> Host<T> for WasiKeyValue<B> {
    fn used_by(engine: &Engine, component: &Component) -> bool {
        omnia::component::imports_interface(engine, component, "wasi:keyvalue/")
    }

    fn add_to_linker(linker: &mut Linker<T>, _component: &Component) -> Result<()> {
        host::add_to_linker(linker, view::<T, B>)?;
        // Upstream omnia's async shape (`0.2.0-draft2`) beside the standard one: a component's
        // own imports pick one. Async host functions need the WASI 0.3 engine.
        if omnia::engine::kind(linker.engine()) == omnia::engine::Kind::Async {
            host::p3::add_to_linker(linker, view::<T, B>)?;
        }
        Ok(())
    }
}

/// The README's quick start (HTTP plus in-memory key-value), compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
