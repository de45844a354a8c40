//! # wasi:messaging for Omnia
//!
//! Guests consume and produce messages through `wasi:messaging@0.2.0-draft` (the WIT is
//! `wit/deps/messaging`): the runtime subscribes to the configured topics and calls the guest's
//! `incoming-handler` once per message (see [`server`] for what happens on failure), and the
//! guest publishes (`producer.send`), sends requests and replies (`request-reply`). WASI 0.3
//! components written for upstream omnia get its async shape of the same interfaces
//! ([`host::p3`], WIT in `wit-p3`), over the same broker.
//!
//! The crate has four layers:
//!
//! * [`backend`]: the [`Broker`] / [`Inbox`] / [`Delivery`] traits a backend implements. This
//!   crate knows nothing about NATS: `omnia-nats` implements these traits.
//! * [`MemoryBroker`]: the embedded default, in the process (a guest can publish to topics the
//!   same runtime consumes, with no external service).
//! * [`config`]: the subscriptions (topics, queue groups, JetStream consumers, retries), from
//!   the environment or a TOML file.
//! * [`host`] and [`server`]: the host functions, and the trigger; [`WasiMessaging`] is the
//!   entry type [`omnia::runtime!`] lists under `"messaging"`.
//!
//! ```ignore
//! omnia::runtime!({
//!     "http": WasiHttpCtx,
//!     "messaging": MessagingDefault,          // in process
//!     // "messaging": omnia_nats::NatsMessaging, // or NATS, from NATS_URL
//! });
//! ```

pub mod backend;
pub mod config;
pub mod host;
mod memory;
pub mod server;

use std::marker::PhantomData;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use omnia::config::Setting;
use omnia::{Backend, FromEnv, Host, HostView, Server, Serving, State};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

pub use backend::{Broker, Delivery, Error, Inbox, Message};
pub use config::{Subscription, Subscriptions};
pub use memory::MemoryBroker;

/// The `"messaging"` entry of a runtime: `wasi:messaging` served by the broker `B` connects
/// to, and the trigger subscribed as configured.
pub struct WasiMessaging<B> {
    broker: Arc<dyn Broker>,
    subscriptions: Arc<Subscriptions>,
    /// The topics a guest may publish to (see [`Backend::for_guest`]); `None`: any.
    publish: Option<Arc<[String]>>,
    backend: PhantomData<fn() -> B>,
}

/// A guest's grants of messaging (`[guest.grants] messaging = { publish = ["orders.>"] }`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MessagingGrants {
    /// The topics (NATS subject patterns: `*` a token, `>` the rest) it may publish to and
    /// send requests on.
    #[serde(default)]
    publish: Vec<String>,
}

/// The in-process messaging entry: `wasi:messaging` backed by [`MemoryBroker`].
pub type MessagingDefault = WasiMessaging<MemoryBroker>;

impl<B> WasiMessaging<B> {
    /// An entry serving `broker` with `subscriptions`.
    pub fn new(broker: Arc<dyn Broker>, subscriptions: Subscriptions) -> Self {
        Self {
            broker,
            subscriptions: Arc::new(subscriptions),
            publish: None,
            backend: PhantomData,
        }
    }

    /// The broker this entry serves.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    /// What the trigger subscribes to.
    pub fn subscriptions(&self) -> &Subscriptions {
        &self.subscriptions
    }
}

impl<B> Clone for WasiMessaging<B> {
    fn clone(&self) -> Self {
        Self {
            broker: Arc::clone(&self.broker),
            subscriptions: Arc::clone(&self.subscriptions),
            publish: self.publish.clone(),
            backend: PhantomData,
        }
    }
}

/// Options of a [`WasiMessaging`] entry: the subscriptions, and its backend's options.
#[derive(Debug, Clone)]
pub struct MessagingOptions<O> {
    /// What the trigger subscribes to.
    pub subscriptions: Subscriptions,
    /// The backend's own options.
    pub backend: O,
}

impl<O: FromEnv> FromEnv for MessagingOptions<O> {
    fn from_env() -> Result<Self> {
        Ok(Self {
            subscriptions: Subscriptions::from_env()?,
            backend: O::from_env()?,
        })
    }

    fn settings() -> Vec<Setting> {
        let mut settings = Subscriptions::settings();
        settings.extend(O::settings());
        settings
    }
}

impl<B: Backend + Broker> Backend for WasiMessaging<B> {
    type Options = MessagingOptions<B::Options>;

    async fn connect_with(options: Self::Options) -> Result<Self> {
        let broker = B::connect_with(options.backend).await?;
        Ok(Self::new(Arc::new(broker), options.subscriptions))
    }

    /// A guest restricted to its grants publishes (and sends requests) only to the topics it
    /// is granted; it may always reply to a request it handles.
    fn for_guest(&self, guest: &omnia::GuestScope<'_>) -> Result<Self> {
        if !guest.restricted() {
            return Ok(self.clone());
        }
        let grants: MessagingGrants = guest.grants()?;
        for pattern in &grants.publish {
            config::check_subject(pattern, true)
                .with_context(|| format!("publish: {pattern:?}"))?;
        }
        Ok(Self {
            publish: Some(grants.publish.into()),
            ..self.clone()
        })
    }

    fn backends() -> Vec<&'static str> {
        B::backends()
    }
}

impl Backend for MemoryBroker {
    type Options = ();

    async fn connect_with((): ()) -> Result<Self> {
        Ok(Self::new())
    }
}

/// The [`host::MessagingView`] of a store that holds a [`WasiMessaging`].
pub(crate) fn store_view<T: HostView<WasiMessaging<B>>, B: 'static>(
    store: &mut T,
) -> host::MessagingView<'_> {
    let (entry, core) = store.host();
    host::MessagingView {
        broker: &entry.broker,
        table: &mut core.table,
        trace: core.work.trace,
        publish: entry.publish.as_deref(),
    }
}

impl<T: HostView<WasiMessaging<B>>, B: 'static> Host<T> for WasiMessaging<B> {
    fn used_by(engine: &Engine, component: &Component) -> bool {
        omnia::component::imports_interface(engine, component, "wasi:messaging/")
            || server::exports_handler(engine, component)
    }

    fn add_to_linker(linker: &mut Linker<T>, component: &Component) -> Result<()> {
        // Upstream omnia's async shape has the standard names, so a linker holds one or the
        // other: the component's own imports pick (only a WASI 0.3 component can import
        // `async func`s, and it runs in the engine that supports them).
        if omnia::component::imports_async_func(linker.engine(), component, "wasi:messaging/") {
            host::p3::add_to_linker(linker, store_view::<T, B>)
        } else {
            host::add_to_linker(linker, store_view::<T, B>)
        }
    }
}

impl<S, B> Server<S> for WasiMessaging<B>
where
    S: State,
    S::StoreCtx: HostView<WasiMessaging<B>>,
    B: Send + Sync + 'static,
{
    fn exported_by(engine: &Engine, component: &Component) -> bool {
        server::exports_handler(engine, component)
    }

    async fn bind(&self, app: omnia::Application<S>, shutdown: omnia::Shutdown) -> Result<Serving> {
        server::bind(app, self.clone(), shutdown).await
    }
}
