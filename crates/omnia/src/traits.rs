//! The extension points of Omnia.
//!
//! A capability crate (`omnia-wasi-http`, a key-value crate, ...) provides one *entry type* that
//! [`runtime!`](crate::runtime) lists under a key. That type is:
//!
//! * a [`Backend`]: connected once at start-up, from the environment ([`FromEnv`]), then cloned
//!   into every store;
//! * a [`Host`]: it links its WIT interfaces into the [`Linker`];
//! * for triggers only, a [`Server`]: it accepts work (HTTP requests, messages) and runs the
//!   guest for each item through a [`State`].

use std::future::Future;
use std::pin::Pin;

use anyhow::Result;
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Engine, Store};

use crate::application::Application;
use crate::config::SettingGroup;
use crate::lifecycle::Shutdown;
use crate::limits::WorkSlots;
use crate::store::{StoreCore, StoreView};

pub use crate::config::FromEnv;

/// Links a WASI interface into a [`Linker`] whose store data is `T`.
///
/// Implementations add the host functions for their interface, reading their per-store data
/// through [`HostView`](crate::HostView).
pub trait Host<T>: Send + Sync + 'static {
    /// Adds this interface's imports to `linker`, which links `component`.
    ///
    /// Most entries ignore `component`. An entry that serves one interface name in two shapes
    /// (a function `func` in one and `async func` in the other, which one linker cannot hold
    /// together) links the shape `component` imports;
    /// [`component::imports_async_func`](crate::component::imports_async_func) tells which.
    fn add_to_linker(linker: &mut Linker<T>, component: &Component) -> Result<()>;

    /// Whether `component` uses this capability: imports one of its interfaces, or exports
    /// the one its trigger calls. Only the capabilities a component uses are connected at
    /// start-up, so a guest without key-value starts even while Redis is down.
    /// [`component::imports_interface`](crate::component::imports_interface) helps.
    fn used_by(engine: &Engine, component: &Component) -> bool;
}

/// A connection to an external service (or an embedded default), made once at start-up.
///
/// The value is cloned into every store, so it should be a cheap handle (an `Arc`, a connection
/// manager).
pub trait Backend: Clone + Sized + Send + Sync + 'static {
    /// The options [`Backend::connect_with`] takes.
    type Options: FromEnv + Send;

    /// Connects with explicit options.
    fn connect_with(options: Self::Options) -> impl Future<Output = Result<Self>> + Send;

    /// Connects with options read from the environment.
    fn connect() -> impl Future<Output = Result<Self>> + Send {
        async { Self::connect_with(Self::Options::from_env()?).await }
    }

    /// The backends this entry can choose from at start-up, for `omnia --version` (e.g.
    /// `["memory", "redis"]`); empty when there is no choice.
    fn backends() -> Vec<&'static str> {
        Vec::new()
    }

    /// A `tracing` layer this entry adds to the runtime's logging (a telemetry exporter), made
    /// from its options before anything is logged. `None` for most entries.
    fn tracing_layer(options: &Self::Options) -> Result<Option<crate::telemetry::BoxedLayer>> {
        let _ = options;
        Ok(None)
    }

    /// This entry as one guest sees it: restricted to what `guest` is granted (its
    /// `[guest.grants.<name>]` table), sharing the connection. Called once per guest at
    /// start-up; the result is cloned into each of that guest's stores.
    ///
    /// The default takes no grants: the entry is the same for every guest, and a grants table
    /// is refused. An entry that holds something guests must not share (buckets, hosts, keys,
    /// topics) overrides it, denying what is not granted when
    /// [`GuestScope::restricted`](crate::GuestScope::restricted).
    ///
    /// # Errors
    ///
    /// The grants are not what this entry takes.
    fn for_guest(&self, guest: &crate::GuestScope<'_>) -> Result<Self> {
        if guest.grants.is_some() {
            anyhow::bail!("this capability takes no grants");
        }
        Ok(self.clone())
    }

    /// Flushes and closes what the entry holds, after the triggers have drained (the runtime
    /// awaits it before exiting, within the shutdown grace period).
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// One guest, shared by every request or message it serves: it makes stores and holds the
/// pre-instantiated component. The guests of one process are an
/// [`Application`](crate::Application).
pub trait State: Clone + Send + Sync + 'static {
    /// The data of each store.
    type StoreCtx: StoreView;

    /// The guest's id (the manifest's, or the file's stem for a guest run on its own): the
    /// `component` label of its metrics, named in its log lines.
    fn id(&self) -> &str;

    /// The engine every store belongs to.
    fn engine(&self) -> &Engine;

    /// The component, type-checked and linked once at start-up.
    fn instance_pre(&self) -> &InstancePre<Self::StoreCtx>;

    /// The slots of work in flight, shared by every trigger: take one per request or message
    /// before making its store.
    fn slots(&self) -> &WorkSlots;

    /// The guest's own cap on its work in flight (`[guest.limits] concurrency`): take a place
    /// in it with the work slot, and hold both as long.
    fn cap(&self) -> &crate::limits::GuestCap;

    /// The guest's own limits as its manifest gives them (`None` for each it leaves to the
    /// runtime's or the trigger's setting), for the limits a trigger applies itself (a WASI 0.3
    /// instance's concurrency and reuse).
    fn limits(&self) -> &crate::manifest::GuestLimits;

    /// A fresh store for one request or message (`work`: its span and trace context, see
    /// [`trace::start_span`](crate::trace::start_span)), with the memory limits (per instance
    /// and the process-wide budget) and the epoch deadline callback set.
    fn new_store(&self, work: crate::trace::Work) -> Store<Self::StoreCtx>;

    /// The runtime's settings with this guest's own limits (deadline, memory per instance).
    fn config(&self) -> &crate::RuntimeConfig;
}

/// A trigger: accepts work from outside and dispatches it into the guests.
pub trait Server<S: State>: Send + Sync + 'static {
    /// Whether `component` exports the interface this trigger calls.
    fn exported_by(engine: &Engine, component: &Component) -> bool;

    /// Binds the trigger (listens on its address, subscribes to its topics) for the guests of
    /// `app` that export its interface, and returns the future that serves until `shutdown`
    /// fires, then drains in-flight work and returns. The runtime reports itself ready only
    /// once every trigger has bound.
    fn bind(
        &self,
        app: Application<S>,
        shutdown: Shutdown,
    ) -> impl Future<Output = Result<Serving>> + Send;
}

/// What [`Server::bind`] returns: the trigger serving until shutdown.
pub type Serving = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// A trigger to start: its name (the `runtime!` key) and the future that binds it.
pub struct Trigger {
    /// The `runtime!` key of the entry, e.g. `"http"`.
    pub name: &'static str,
    /// Binds the trigger; then the [`Serving`] future serves until shutdown.
    pub bind: Pin<Box<dyn Future<Output = Result<Serving>> + Send>>,
}

/// What [`runtime!`](crate::runtime) generates for one runtime: the connected entries and how to
/// link, store and trigger them. Implemented by the macro; users do not write it.
pub trait Capabilities: Clone + Send + Sync + Sized + 'static {
    /// The store data: the WASI context plus one field per entry.
    type StoreCtx: StoreView;

    /// Every entry's options, read from the environment before anything is connected.
    type Options: Send;

    /// The keys of the entries compiled into this runtime, e.g. `["http"]`.
    fn names() -> Vec<&'static str>;

    /// The distribution profile this binary was built from (`OMNIA_PROFILE` at build time), if
    /// any.
    fn profile() -> Option<&'static str>;

    /// The entries with the backends each can use, for `omnia --version`, e.g.
    /// `["http", "keyvalue[memory,redis]"]`.
    fn describe() -> Vec<String>;

    /// Every setting the runtime and its entries read, grouped by capability, each listed once,
    /// for `omnia run --help` and the documentation.
    fn settings() -> Vec<SettingGroup>;

    /// Reads and checks every entry's options, whether or not the component will use it, so a
    /// bad value is reported before anything is compiled or connected.
    fn options() -> Result<Self::Options>;

    /// Every entry's `tracing` layer (see [`Backend::tracing_layer`]).
    fn tracing_layers(options: &Self::Options) -> Result<Vec<crate::telemetry::BoxedLayer>>;

    /// Flushes and closes every connected entry (see [`Backend::shutdown`]).
    fn shutdown(&self) -> impl Future<Output = ()> + Send;

    /// Connects the backends of the entries any of `components` uses (see
    /// [`Host::used_by`]): one connection per backend, whatever the number of guests.
    fn connect(
        options: Self::Options,
        components: &[Component],
    ) -> impl Future<Output = Result<Self>> + Send;

    /// Links every entry's interfaces, in the shapes `component` imports (see
    /// [`Host::add_to_linker`]).
    fn add_to_linker(linker: &mut Linker<Self::StoreCtx>, component: &Component) -> Result<()>;

    /// Every connected entry as the guest `id` sees it (see [`Backend::for_guest`]): `grants`
    /// are its grants by capability name, `shared` whether other guests share the process.
    ///
    /// # Errors
    ///
    /// An entry refuses its grants; the error names the capability (`grants.keyvalue: ...`).
    fn for_guest(
        &self,
        id: &str,
        grants: &std::collections::BTreeMap<String, toml::Table>,
        shared: bool,
    ) -> Result<Self>;

    /// Makes the data of one store.
    fn store_ctx(&self, core: StoreCore) -> Self::StoreCtx;

    /// The capabilities `component` uses that were not connected at start-up (no guest used
    /// them then): a reload that brings such a guest needs a restart.
    fn unconnected(&self, component: &Component) -> Vec<&'static str>;

    /// The names of the triggers `component` exports an interface for.
    fn exported_triggers(engine: &Engine, component: &Component) -> Vec<&'static str>;

    /// Starts every trigger some guest of `app` exports.
    fn triggers(
        &self,
        app: &Application<crate::Runtime<Self::StoreCtx>>,
        shutdown: &Shutdown,
    ) -> Vec<Trigger>;
}
