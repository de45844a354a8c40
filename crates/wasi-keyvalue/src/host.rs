//! The `wasi:keyvalue` host functions, over any [`KeyValueStore`].
//!
//! Guest-visible resources are [`BucketHandle`] (an open bucket) and [`CasHandle`] (a value
//! read for a compare-and-swap). Every failure of the store becomes the WIT `error` variant
//! (the guest decides what to do, the runtime keeps serving); only a broken resource handle,
//! which a correct guest cannot produce, traps.

use std::sync::Arc;

use wasmtime::component::{HasData, Resource, ResourceTable};

use crate::backend::{self, Bucket, KeyValueStore, Versioned, check_bucket_name};

pub mod p3;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "omnia:wasi-keyvalue/host",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::BucketHandle,
            "wasi:keyvalue/atomics.cas": super::CasHandle,
        },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => super::HostError,
        },
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};

/// An open bucket, as held in a store's resource table.
pub struct BucketHandle {
    name: Arc<str>,
    bucket: Arc<dyn Bucket>,
}

/// A compare-and-swap in progress: the key and what it held when the handle was made.
pub struct CasHandle {
    bucket: Arc<dyn Bucket>,
    bucket_name: Arc<str>,
    key: String,
    seen: Versioned,
}

/// An error of a host function: `wasi:keyvalue/store.error` for the guest, or a trap.
pub type HostError = omnia::HostError<backend::Error>;

pub(crate) type HostResult<T> = omnia::HostResult<T, backend::Error>;

impl omnia::host_error::GuestError for backend::Error {}

fn to_wit(err: backend::Error) -> store::Error {
    match err {
        backend::Error::NoSuchStore => store::Error::NoSuchStore,
        backend::Error::AccessDenied => store::Error::AccessDenied,
        backend::Error::Other(message) => store::Error::Other(message),
    }
}

/// The per-call view of a store's data that the host functions work on.
pub struct KeyValueView<'a> {
    /// The configured store.
    pub store: &'a Arc<dyn KeyValueStore>,
    /// The bucket `open("")` opens.
    pub default_bucket: &'a str,
    /// The buckets the guest may open by name; `None`: any.
    pub granted: Option<&'a [String]>,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

impl KeyValueView<'_> {
    /// The bucket `open(identifier)` opens (both shapes): the empty identifier is the guest's
    /// default bucket, as in `wasmtime serve -S keyvalue`; any other must be a valid name and,
    /// for a guest restricted to its grants, a granted one (`access-denied` otherwise).
    pub(crate) fn bucket_name(&self, identifier: String) -> HostResult<String> {
        if identifier.is_empty() {
            return Ok(self.default_bucket.to_owned());
        }
        check_bucket_name(&identifier)?;
        if let Some(granted) = self.granted
            && !granted.contains(&identifier)
        {
            if let Some(suppressed) = DENIED_LOG.check() {
                tracing::warn!(
                    bucket = identifier,
                    "keyvalue: a guest opened bucket {identifier:?}, which it is not granted (its \
                     manifest's [guest.grants] keyvalue = {{ buckets = [...] }}){}",
                    omnia::telemetry::suppressed_note(suppressed)
                );
            }
            return Err(HostError::Guest(backend::Error::AccessDenied));
        }
        Ok(identifier)
    }

    /// The bucket behind `handle` and its name (shared with the async shape, [`p3`]).
    pub(crate) fn bucket(
        &self,
        handle: &Resource<BucketHandle>,
    ) -> HostResult<(Arc<dyn Bucket>, Arc<str>)> {
        let handle = self.table.get(handle)?;
        Ok((Arc::clone(&handle.bucket), Arc::clone(&handle.name)))
    }
}

/// Rate limit of the log line of a bucket a guest is not granted.
static DENIED_LOG: omnia::telemetry::LogLimit =
    omnia::telemetry::LogLimit::new(1, std::time::Duration::from_secs(10));

/// Logs a store failure, naming the operation and the bucket.
fn log_failure(err: &backend::Error, op: &str, bucket: &str) {
    if matches!(err, backend::Error::Other(_)) {
        omnia::metrics::BACKEND_ERRORS.inc();
    }
    tracing::warn!(bucket, op, error = %err, "keyvalue: operation failed");
}

/// What a compare-and-swap came to (the `swap` of both shapes).
pub(crate) enum Swapped {
    /// The key held what the handle saw, and now holds the new value.
    Done,
    /// Another writer got there first: a handle holding the value the key has now, to retry.
    Lost(CasHandle),
    /// The store failed (logged).
    Failed(backend::Error),
}

/// Writes `value` if the key still holds what `cas` saw.
pub(crate) async fn swap(cas: CasHandle, value: Vec<u8>) -> Swapped {
    let CasHandle {
        bucket,
        bucket_name,
        key,
        seen,
    } = cas;
    match bucket.swap(&key, &seen, value).await {
        Ok(true) => return Swapped::Done,
        Ok(false) => {}
        Err(err) => {
            log_failure(&err, "swap", &bucket_name);
            return Swapped::Failed(err);
        }
    }
    match bucket.current(&key).await {
        Ok(seen) => Swapped::Lost(CasHandle {
            bucket,
            bucket_name,
            key,
            seen,
        }),
        Err(err) => {
            log_failure(&err, "cas", &bucket_name);
            Swapped::Failed(err)
        }
    }
}

/// Logs a store failure (see [`log_failure`]) and passes it on.
pub(crate) fn logged<T>(result: backend::Result<T>, op: &str, bucket: &str) -> HostResult<T> {
    result.map_err(|err| {
        log_failure(&err, op, bucket);
        HostError::Guest(err)
    })
}

impl store::Host for KeyValueView<'_> {
    async fn open(&mut self, identifier: String) -> HostResult<Resource<BucketHandle>> {
        let identifier = self.bucket_name(identifier)?;
        let bucket = logged(self.store.open(&identifier).await, "open", &identifier)?;
        Ok(self.table.push(BucketHandle {
            name: identifier.into(),
            bucket,
        })?)
    }

    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<store::Error> {
        err.convert(to_wit)
    }
}

impl store::HostBucket for KeyValueView<'_> {
    async fn get(&mut self, b: Resource<BucketHandle>, key: String) -> HostResult<Option<Vec<u8>>> {
        let (bucket, name) = self.bucket(&b)?;
        logged(bucket.get(&key).await, "get", &name)
    }

    async fn set(
        &mut self,
        b: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> HostResult<()> {
        let (bucket, name) = self.bucket(&b)?;
        logged(bucket.set(&key, value).await, "set", &name)
    }

    async fn delete(&mut self, b: Resource<BucketHandle>, key: String) -> HostResult<()> {
        let (bucket, name) = self.bucket(&b)?;
        logged(bucket.delete(&key).await, "delete", &name)
    }

    async fn exists(&mut self, b: Resource<BucketHandle>, key: String) -> HostResult<bool> {
        let (bucket, name) = self.bucket(&b)?;
        logged(bucket.exists(&key).await, "exists", &name)
    }

    async fn list_keys(
        &mut self,
        b: Resource<BucketHandle>,
        cursor: Option<u64>,
    ) -> HostResult<store::KeyResponse> {
        let (bucket, name) = self.bucket(&b)?;
        let page = logged(bucket.list_keys(cursor).await, "list-keys", &name)?;
        Ok(store::KeyResponse {
            keys: page.keys,
            cursor: page.cursor,
        })
    }

    async fn drop(&mut self, b: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

impl atomics::Host for KeyValueView<'_> {
    async fn increment(
        &mut self,
        b: Resource<BucketHandle>,
        key: String,
        delta: u64,
    ) -> HostResult<u64> {
        let (bucket, name) = self.bucket(&b)?;
        // This shape counts in `u64`; the backends in `s64` (see `Bucket::increment`).
        let delta = i64::try_from(delta).map_err(|_| {
            HostError::Guest(backend::Error::other(format!(
                "cannot increment key {key:?} by {delta}: counters are signed 64-bit"
            )))
        })?;
        let value = logged(bucket.increment(&key, delta).await, "increment", &name)?;
        // Only a guest of the `s64` shape can take a counter below zero; the increment is
        // done, and the error says so.
        u64::try_from(value).map_err(|_| {
            HostError::Guest(backend::Error::other(format!(
                "incremented key {key:?} to {value}: negative, which this interface's u64 \
                 cannot hold"
            )))
        })
    }

    async fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let cas = self.table.delete(cas)?;
        // `swap` reports store errors inside its own `cas-error`, not as `store.error`.
        Ok(match swap(cas, value).await {
            Swapped::Done => Ok(()),
            Swapped::Lost(fresh) => Err(atomics::CasError::CasFailed(self.table.push(fresh)?)),
            Swapped::Failed(err) => Err(atomics::CasError::StoreError(to_wit(err))),
        })
    }
}

impl atomics::HostCas for KeyValueView<'_> {
    async fn new(
        &mut self,
        b: Resource<BucketHandle>,
        key: String,
    ) -> HostResult<Resource<CasHandle>> {
        let (bucket, bucket_name) = self.bucket(&b)?;
        let seen = logged(bucket.current(&key).await, "cas", &bucket_name)?;
        Ok(self.table.push(CasHandle {
            bucket,
            bucket_name,
            key,
            seen,
        })?)
    }

    async fn current(&mut self, cas: Resource<CasHandle>) -> HostResult<Option<Vec<u8>>> {
        Ok(self.table.get(&cas)?.seen.value.clone())
    }

    async fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for KeyValueView<'_> {
    async fn get_many(
        &mut self,
        b: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> HostResult<Vec<Option<(String, Vec<u8>)>>> {
        let (bucket, name) = self.bucket(&b)?;
        logged(bucket.get_many(keys).await, "get-many", &name)
    }

    async fn set_many(
        &mut self,
        b: Resource<BucketHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> HostResult<()> {
        let (bucket, name) = self.bucket(&b)?;
        logged(bucket.set_many(key_values).await, "set-many", &name)
    }

    async fn delete_many(
        &mut self,
        b: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> HostResult<()> {
        let (bucket, name) = self.bucket(&b)?;
        logged(bucket.delete_many(keys).await, "delete-many", &name)
    }
}

/// Marks [`KeyValueView`] as the data the generated `add_to_linker` functions hand out.
struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = KeyValueView<'a>;
}

/// Links `wasi:keyvalue/{store, atomics, batch}` into `linker`, reading each store's data
/// through `view`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> KeyValueView<'_>,
) -> anyhow::Result<()> {
    store::add_to_linker::<_, HasKeyValue>(linker, view)?;
    atomics::add_to_linker::<_, HasKeyValue>(linker, view)?;
    batch::add_to_linker::<_, HasKeyValue>(linker, view)?;
    Ok(())
}
