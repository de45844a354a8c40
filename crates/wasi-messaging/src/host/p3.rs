//! Upstream omnia's async shape of `wasi:messaging@0.2.0-draft`, for WASI 0.3 components.
//!
//! Components written for upstream omnia import the same package, interfaces and types as the
//! proposal's, but `client.connect`, `producer.send`, `request-reply.request` and
//! `request-reply.reply` are `async func`s (so the guest can do other work meanwhile), and the
//! `incoming-handler.handle` they export is one too. The same broker serves both shapes, with
//! the same checks, logging and trace propagation: these functions take what they need out of
//! the store ([`MessagingView`]) without holding it across an `await`, then call the same
//! functions as the synchronous shape in [`super`]. The resources' accessors are plain
//! `func`s in both shapes and share one implementation.
//!
//! A linker holds one shape of a name, so each component is linked with the shape it imports
//! (see the crate's `Host` implementation). The trigger calls either shape's `handle` the same
//! way: wasmtime runs an `async func` export concurrently in the WASI 0.3 engine.

use wasmtime::component::{Accessor, HasData, Resource};

use super::{
    ClientHandle, HostError, HostResult, MessagingView, RequestOptions, reply, request, send,
    to_wit,
};
use crate::backend::Message;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit-p3",
        world: "omnia:wasi-messaging-p3/host",
        imports: { default: trappable },
        with: {
            "wasi:messaging/types.client": crate::host::ClientHandle,
            "wasi:messaging/types.message": crate::backend::Message,
            "wasi:messaging/request-reply.request-options": crate::host::RequestOptions,
        },
        trappable_error_type: {
            "wasi:messaging/types.error" => crate::host::HostError,
        },
    });
}

use bindings::wasi::messaging::{producer, request_reply, types};

/// Marks [`MessagingView`] as the data the async host functions reach through their accessor.
struct MessagingAsync;

impl HasData for MessagingAsync {
    type Data<'a> = MessagingView<'a>;
}

impl types::Host for MessagingView<'_> {
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<types::Error> {
        err.convert(|err| match to_wit(err) {
            super::types::Error::Timeout => types::Error::Timeout,
            super::types::Error::Connection(m) => types::Error::Connection(m),
            super::types::Error::PermissionDenied(m) => types::Error::PermissionDenied(m),
            super::types::Error::Other(m) => types::Error::Other(m),
        })
    }
}

impl<T> types::HostClientWithStore<T> for MessagingAsync {
    async fn connect(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> HostResult<Resource<ClientHandle>> {
        accessor.with(|mut access| access.get().connect(name))
    }
}

impl types::HostClient for MessagingView<'_> {
    fn disconnect(&mut self, _client: Resource<ClientHandle>) -> HostResult<()> {
        Ok(())
    }

    fn drop(&mut self, client: Resource<ClientHandle>) -> wasmtime::Result<()> {
        self.table.delete(client)?;
        Ok(())
    }
}

message_methods!(types::HostMessage);
request_options_methods!(request_reply::HostRequestOptions);

impl producer::Host for MessagingView<'_> {}

impl<T> producer::HostWithStore<T> for MessagingAsync {
    async fn send(
        accessor: &Accessor<T, Self>,
        _client: Resource<ClientHandle>,
        topic: String,
        message: Resource<Message>,
    ) -> HostResult<()> {
        let (broker, message) =
            accessor.with(|mut access| access.get().outgoing(&topic, message))?;
        send(&broker, &topic, message).await
    }
}

impl request_reply::Host for MessagingView<'_> {}

impl<T> request_reply::HostWithStore<T> for MessagingAsync {
    async fn request(
        accessor: &Accessor<T, Self>,
        _client: Resource<ClientHandle>,
        topic: String,
        message: Resource<Message>,
        options: Option<Resource<RequestOptions>>,
    ) -> HostResult<Vec<Resource<Message>>> {
        let (broker, message, options) =
            accessor.with(|mut access| access.get().request_parts(&topic, &message, options))?;
        let replies = request(&broker, &topic, message, options).await?;
        accessor.with(|mut access| access.get().push_all(replies))
    }

    async fn reply(
        accessor: &Accessor<T, Self>,
        reply_to: Resource<Message>,
        message: Resource<Message>,
    ) -> HostResult<()> {
        let (broker, to, message) =
            accessor.with(|mut access| access.get().reply_parts(&reply_to, message))?;
        reply(&broker, to.as_deref(), message).await
    }
}

/// Links upstream's async `wasi:messaging/{types, producer, request-reply}` into `linker`,
/// reading each store's data through `view`. Needs the WASI 0.3 engine.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> MessagingView<'_>,
) -> anyhow::Result<()> {
    types::add_to_linker::<_, MessagingAsync>(linker, view)?;
    producer::add_to_linker::<_, MessagingAsync>(linker, view)?;
    request_reply::add_to_linker::<_, MessagingAsync>(linker, view)?;
    Ok(())
}
