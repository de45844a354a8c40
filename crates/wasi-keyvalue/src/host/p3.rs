//! Upstream omnia's async shape of `wasi:keyvalue` (`0.2.0-draft2`), for WASI 0.3 components.
//!
//! Components written for upstream omnia import `wasi:keyvalue@0.2.0-draft2`, where every
//! function is an `async func`. The same backend serves both shapes: these functions take what
//! they need out of the store ([`KeyValueView`]) without holding it across an `await`, then call
//! the same [`Bucket`](crate::backend::Bucket) operations, with the same logging, as the
//! synchronous shape in [`super`]. The two shapes differ only in their types: the list-keys
//! cursor is a string here (the backend's page number, written in decimal), and `increment`
//! takes and returns an `s64`, as the backends count.
//!
//! Async host functions need an engine with concurrency support, so this shape is linked only
//! into the WASI 0.3 engine (see [`omnia::engine::Kind`]).

use wasmtime::component::{Accessor, HasData, Resource};

use super::{BucketHandle, CasHandle, HostError, HostResult, KeyValueView, Swapped, logged, swap};
use crate::backend;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit-p3",
        world: "omnia:wasi-keyvalue-p3/host",
        imports: { default: trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::host::BucketHandle,
            "wasi:keyvalue/atomics.cas": crate::host::CasHandle,
        },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => crate::host::HostError,
        },
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};

/// The WIT form of a backend error.
fn to_wit(err: backend::Error) -> store::Error {
    match err {
        backend::Error::NoSuchStore => store::Error::NoSuchStore,
        backend::Error::AccessDenied => store::Error::AccessDenied,
        backend::Error::Other(message) => store::Error::Other(message),
    }
}

/// Marks [`KeyValueView`] as the data the async host functions reach through their accessor.
struct KeyValueAsync;

impl HasData for KeyValueAsync {
    type Data<'a> = KeyValueView<'a>;
}

impl<T> store::HostWithStore<T> for KeyValueAsync {
    async fn open(
        accessor: &Accessor<T, Self>,
        identifier: String,
    ) -> HostResult<Resource<BucketHandle>> {
        let (kv, identifier) = accessor.with(|mut access| {
            let view = access.get();
            // As the synchronous shape does.
            let identifier = view.bucket_name(identifier)?;
            HostResult::Ok((std::sync::Arc::clone(view.store), identifier))
        })?;
        let bucket = logged(kv.open(&identifier).await, "open", &identifier)?;
        let handle = BucketHandle {
            name: identifier.into(),
            bucket,
        };
        Ok(accessor.with(|mut access| access.get().table.push(handle))?)
    }
}

impl store::Host for KeyValueView<'_> {
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<store::Error> {
        err.convert(to_wit)
    }
}

impl<T> store::HostBucketWithStore<T> for KeyValueAsync {
    async fn get(
        accessor: &Accessor<T, Self>,
        b: Resource<BucketHandle>,
        key: String,
    ) -> HostResult<Option<Vec<u8>>> {
        let (bucket, name) = accessor.with(|mut access| access.get().bucket(&b))?;
        logged(bucket.get(&key).await, "get", &name)
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        b: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> HostResult<()> {
        let (bucket, name) = accessor.with(|mut access| access.get().bucket(&b))?;
        logged(bucket.set(&key, value).await, "set", &name)
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        b: Resource<BucketHandle>,
        key: String,
    ) -> HostResult<()> {
        let (bucket, name) = accessor.with(|mut access| access.get().bucket(&b))?;
        logged(bucket.delete(&key).await, "delete", &name)
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        b: Resource<BucketHandle>,
        key: String,
    ) -> HostResult<bool> {
        let (bucket, name) = accessor.with(|mut access| access.get().bucket(&b))?;
        logged(bucket.exists(&key).await, "exists", &name)
    }

    async fn list_keys(
        accessor: &Accessor<T, Self>,
        b: Resource<BucketHandle>,
        cursor: Option<String>,
    ) -> HostResult<store::KeyResponse> {
        let (bucket, name) = accessor.with(|mut access| access.get().bucket(&b))?;
        let cursor = match cursor {
            None => None,
            Some(text) => Some(text.parse::<u64>().map_err(|_| {
                HostError::Guest(backend::Error::other(format!(
                    "list-keys: {text:?} is not a cursor this store returned"
                )))
            })?),
        };
        let page = logged(bucket.list_keys(cursor).await, "list-keys", &name)?;
        Ok(store::KeyResponse {
            keys: page.keys,
            cursor: page.cursor.map(|next| next.to_string()),
        })
    }
}

impl store::HostBucket for KeyValueView<'_> {
    fn drop(&mut self, b: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

impl<T> atomics::HostWithStore<T> for KeyValueAsync {
    async fn increment(
        accessor: &Accessor<T, Self>,
        b: Resource<BucketHandle>,
        key: String,
        delta: i64,
    ) -> HostResult<i64> {
        let (bucket, name) = accessor.with(|mut access| access.get().bucket(&b))?;
        logged(bucket.increment(&key, delta).await, "increment", &name)
    }

    async fn swap(
        accessor: &Accessor<T, Self>,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let cas = accessor.with(|mut access| access.get().table.delete(cas))?;
        // `swap` reports store errors inside its own `cas-error`, not as `store.error`.
        Ok(match swap(cas, value).await {
            Swapped::Done => Ok(()),
            Swapped::Lost(fresh) => {
                let fresh = accessor.with(|mut access| access.get().table.push(fresh))?;
                Err(atomics::CasError::CasFailed(fresh))
            }
            Swapped::Failed(err) => Err(atomics::CasError::StoreError(to_wit(err))),
        })
    }
}

impl atomics::Host for KeyValueView<'_> {}

impl<T> atomics::HostCasWithStore<T> for KeyValueAsync {
    async fn new(
        accessor: &Accessor<T, Self>,
        b: Resource<BucketHandle>,
        key: String,
    ) -> HostResult<Resource<CasHandle>> {
        let (bucket, bucket_name) = accessor.with(|mut access| access.get().bucket(&b))?;
        let seen = logged(bucket.current(&key).await, "cas", &bucket_name)?;
        let handle = CasHandle {
            bucket,
            bucket_name,
            key,
            seen,
        };
        Ok(accessor.with(|mut access| access.get().table.push(handle))?)
    }

    async fn current(
        accessor: &Accessor<T, Self>,
        cas: Resource<CasHandle>,
    ) -> HostResult<Option<Vec<u8>>> {
        accessor.with(|mut access| Ok(access.get().table.get(&cas)?.seen.value.clone()))
    }
}

impl atomics::HostCas for KeyValueView<'_> {
    fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl<T> batch::HostWithStore<T> for KeyValueAsync {
    async fn get_many(
        accessor: &Accessor<T, Self>,
        b: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> HostResult<Vec<Option<(String, Vec<u8>)>>> {
        let (bucket, name) = accessor.with(|mut access| access.get().bucket(&b))?;
        logged(bucket.get_many(keys).await, "get-many", &name)
    }

    async fn set_many(
        accessor: &Accessor<T, Self>,
        b: Resource<BucketHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> HostResult<()> {
        let (bucket, name) = accessor.with(|mut access| access.get().bucket(&b))?;
        logged(bucket.set_many(key_values).await, "set-many", &name)
    }

    async fn delete_many(
        accessor: &Accessor<T, Self>,
        b: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> HostResult<()> {
        let (bucket, name) = accessor.with(|mut access| access.get().bucket(&b))?;
        logged(bucket.delete_many(keys).await, "delete-many", &name)
    }
}

impl batch::Host for KeyValueView<'_> {}

/// Links `wasi:keyvalue/{store, atomics, batch}@0.2.0-draft2` into `linker` (an engine with
/// concurrency support: WASI 0.3), reading each store's data through `view`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> KeyValueView<'_>,
) -> anyhow::Result<()> {
    store::add_to_linker::<_, KeyValueAsync>(linker, view)?;
    atomics::add_to_linker::<_, KeyValueAsync>(linker, view)?;
    batch::add_to_linker::<_, KeyValueAsync>(linker, view)?;
    Ok(())
}
