//! [`Application`]: the guests one process serves, and what routes work to each.
//!
//! `omnia run app.wasm` serves an application of one guest that takes every request and the
//! configured topics; `omnia run omnia.toml` serves the guests its manifest lists, each with its
//! own routes (see [`crate::manifest`]). A trigger is given the whole application: it serves
//! the guests that export its interface, and routes each request or message to one of them.
//! Everything the guests share (work slots, the memory budget, the listener) is shared through
//! the application; what each guest owns (its component, grants, limits) is in its [`State`].
//!
//! A reload ([`Application::replace`]) makes a new *generation* of guests and routes; each
//! trigger follows [`Application::reloads`] and serves new work from the new generation, while
//! work in flight finishes on the one it started on (it holds that generation's guests).

use std::sync::Arc;

use anyhow::{Context as _, Result};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::config::RuntimeConfig;
use crate::lifecycle::Shutdown;
use crate::limits::WorkSlots;
use crate::manifest::routes::HttpRoutes;
use crate::traits::State;

/// The guests of one process, with their routes: one generation of them, and the way to the
/// next ([`Application::reloads`]). Cheap to clone.
pub struct Application<S> {
    inner: Arc<Inner<S>>,
    generations: Arc<watch::Sender<Arc<Inner<S>>>>,
}

struct Inner<S> {
    guests: Vec<S>,
    topics: Vec<Option<Vec<String>>>,
    http_routes: Option<HttpRoutes<usize>>,
    config: RuntimeConfig,
    slots: WorkSlots,
}

impl<S> Inner<S> {
    /// One generation of `guests`, with `http_routes`, `config` and `slots`.
    fn new(
        guests: Vec<AppGuest<S>>,
        http_routes: Option<HttpRoutes<usize>>,
        config: RuntimeConfig,
        slots: WorkSlots,
    ) -> Arc<Self> {
        let (guests, topics) = guests.into_iter().map(|g| (g.state, g.topics)).unzip();
        Arc::new(Self {
            guests,
            topics,
            http_routes,
            config,
            slots,
        })
    }
}

impl<S> Clone for Application<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            generations: Arc::clone(&self.generations),
        }
    }
}

/// The generations that follow the one a trigger started with (see [`Application::reloads`]).
pub struct Reloads<S> {
    next: watch::Receiver<Arc<Inner<S>>>,
    generations: Arc<watch::Sender<Arc<Inner<S>>>>,
}

impl<S> Reloads<S> {
    /// The next generation, once [`Application::replace`] made one (the newest, if several were
    /// made meanwhile); `None` once `shutdown` is requested, so a trigger can follow reloads
    /// with `while let Some(app) = reloads.next(&mut shutdown).await`.
    pub async fn next(&mut self, shutdown: &mut Shutdown) -> Option<Application<S>> {
        tokio::select! {
            changed = self.next.changed() => changed.ok()?,
            () = shutdown.requested() => return None,
        }
        let inner = Arc::clone(&self.next.borrow_and_update());
        Some(Application {
            inner,
            generations: Arc::clone(&self.generations),
        })
    }
}

/// One guest of an [`Application`] as it is given: its state and its message topics.
pub struct AppGuest<S> {
    /// The guest.
    pub state: S,
    /// The topics it is routed (a manifest's `routes.messaging`); `None`: the messaging
    /// trigger's own configuration (`OMNIA_MESSAGING_TOPICS`), for a guest run on its own.
    pub topics: Option<Vec<String>>,
}

impl<S: State> Application<S> {
    /// An application of `guests`, each request for which `http_routes` (by index into
    /// `guests`) has a route going to that guest; without a table, every request goes to the
    /// one guest that serves HTTP. `config` holds the process-wide settings and `slots` the
    /// work slots every guest and trigger shares.
    pub fn new(
        guests: Vec<AppGuest<S>>,
        http_routes: Option<HttpRoutes<usize>>,
        config: RuntimeConfig,
        slots: WorkSlots,
    ) -> Self {
        let inner = Inner::new(guests, http_routes, config, slots);
        let (generations, _) = watch::channel(Arc::clone(&inner));
        Self {
            inner,
            generations: Arc::new(generations),
        }
    }

    /// Makes `guests` and `http_routes` the application's next generation (a reload), with
    /// the same settings and work slots: every trigger following [`Self::reloads`] serves new
    /// work from it.
    pub fn replace(&self, guests: Vec<AppGuest<S>>, http_routes: Option<HttpRoutes<usize>>) {
        self.generations.send_replace(Inner::new(
            guests,
            http_routes,
            self.inner.config.clone(),
            self.inner.slots.clone(),
        ));
    }

    /// The generations made after this one, for a trigger to follow.
    pub fn reloads(&self) -> Reloads<S> {
        Reloads {
            next: self.generations.subscribe(),
            generations: Arc::clone(&self.generations),
        }
    }

    /// The newest generation.
    #[must_use]
    pub fn newest(&self) -> Self {
        Self {
            inner: Arc::clone(&self.generations.borrow()),
            generations: Arc::clone(&self.generations),
        }
    }

    /// The guests, in the manifest's order.
    pub fn guests(&self) -> &[S] {
        &self.inner.guests
    }

    /// `result`, its error naming `guest` when the application has several (one guest on its
    /// own needs no name), for what a trigger finds wrong with a guest as it binds.
    ///
    /// # Errors
    ///
    /// `result`'s.
    pub fn named<T>(&self, guest: &S, result: Result<T>) -> Result<T> {
        if self.guests().len() > 1 {
            result.with_context(|| format!("guest {:?}", guest.id()))
        } else {
            result
        }
    }

    /// The topics guest `index` is routed; `None` for a guest run without a manifest, which
    /// takes the messaging trigger's configured subscriptions.
    pub fn topics(&self, index: usize) -> Option<&[String]> {
        self.inner.topics.get(index)?.as_deref()
    }

    /// The HTTP route table, each route naming a guest by its index in [`guests`](Self::guests);
    /// `None`: every request goes to the one guest that serves HTTP.
    pub fn http_routes(&self) -> Option<&HttpRoutes<usize>> {
        self.inner.http_routes.as_ref()
    }

    /// The process-wide settings (listener timeouts, concurrency, shutdown grace); a guest's
    /// own limits are in its [`State::config`].
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// The work slots every guest and trigger shares (`OMNIA_MAX_CONCURRENCY`).
    pub fn slots(&self) -> &WorkSlots {
        &self.inner.slots
    }
}

/// One guest of an application, as a capability restricts itself to it (see
/// [`Backend::for_guest`](crate::Backend::for_guest)).
#[derive(Debug, Clone, Copy)]
pub struct GuestScope<'a> {
    /// The guest's id.
    pub id: &'a str,
    /// Its grants of this capability: the manifest's `[guest.grants.<capability>]` table.
    pub grants: Option<&'a toml::Table>,
    /// Whether the guest shares the process with other guests.
    pub shared: bool,
}

impl GuestScope<'_> {
    /// Whether the guest gets only what it is granted: in an application of several guests
    /// (what is not granted is denied), or when its manifest grants it something. A guest on
    /// its own without grants has what the runtime is configured with, as `omnia run app.wasm`.
    pub fn restricted(&self) -> bool {
        self.shared || self.grants.is_some()
    }

    /// The grants, read as `T` (a `serde` type with `deny_unknown_fields`, so a misspelt key
    /// is an error naming it); `T::default()` without a table.
    ///
    /// # Errors
    ///
    /// The table does not have the shape of `T`.
    pub fn grants<T: DeserializeOwned + Default>(&self) -> Result<T> {
        match self.grants {
            Some(table) => T::deserialize(toml::Value::Table(table.clone()))
                .context("not the shape this capability's grants have"),
            None => Ok(T::default()),
        }
    }
}
