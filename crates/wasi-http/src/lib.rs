//! # wasi:http for Omnia
//!
//! [`WasiHttpCtx`] is the `"http"` entry of [`omnia::runtime!`]:
//!
//! * as a [`Host`], it links `wasi:http/types` and `wasi:http/outgoing-handler` (0.2) and
//!   `wasi:http/types` and `wasi:http/client` (0.3), backed by `wasmtime-wasi-http`;
//! * as a [`Server`], it serves HTTP/1.1 and HTTP/2 (prior knowledge) with hyper and calls the
//!   guest's handler: a 0.2 `wasi:http/incoming-handler` once per request, each in a fresh
//!   instance made from the one pre-instantiated component (see [`server`]); a 0.3
//!   `wasi:http/handler` many times per instance, concurrently (see [`server::reuse`]);
//! * outgoing requests go through an allow-list (`OMNIA_HTTP_ALLOWED_HOSTS`), denied by default
//!   (see [`outgoing`]).
//!
//! Its settings are listed by [`HttpConfig::settings`] (and `omnia run --help`):
//! `OMNIA_HTTP_ADDR` (`--listen`), `OMNIA_HTTP_MAX_BODY` (`--max-body`),
//! `OMNIA_HTTP_MAX_CONNECTIONS` (`--max-connections`), `OMNIA_HTTP_CLIENT_SHARE`
//! (`--client-share`) and `OMNIA_HTTP_TRUSTED_PROXIES` (`--trusted-proxies`, see
//! [`server::clients`]), `OMNIA_HTTP_ALLOWED_HOSTS`
//! (`--allow-hosts`, see [`outgoing::AllowList`]), `OMNIA_HTTP_THREADS` (the serving threads,
//! see [`omnia::listener`]), and the instance reuse of 0.3 guests:
//! `OMNIA_HTTP_INSTANCE_REUSE`, `OMNIA_HTTP_INSTANCE_CONCURRENCY`, `OMNIA_HTTP_INSTANCE_IDLE`.
//! The connection timeouts are the core's (`OMNIA_HTTP_HEADER_TIMEOUT`,
//! `OMNIA_HTTP_IDLE_TIMEOUT`), shared with the admin endpoint.

pub mod local;
pub mod outgoing;
pub mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use omnia::config::{
    Setting, parse_addr, parse_count, parse_positive_count, parse_positive_duration, parse_size,
    var,
};
use omnia::{Backend, FromEnv, Host, HostView, Server, Serving, State};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings;
use wasmtime_wasi_http::p3::bindings::http as p3;
use wasmtime_wasi_http::{WasiHttp, WasiHttpCtxView};

use crate::outgoing::{AllowList, OutgoingPolicy};
use crate::server::clients::TrustedProxies;

/// The most serving threads `OMNIA_HTTP_THREADS` may ask for.
const MAX_THREADS: usize = 1024;

/// Settings of the HTTP capability, read from `OMNIA_HTTP_*`.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `OMNIA_HTTP_ADDR`: the listen address.
    pub addr: SocketAddr,
    /// `OMNIA_HTTP_MAX_BODY`: the largest request body, in bytes.
    pub max_body: usize,
    /// `OMNIA_HTTP_MAX_CONNECTIONS`: how many client connections may be open at once.
    pub max_connections: usize,
    /// `OMNIA_HTTP_ALLOWED_HOSTS`: where guests may send requests.
    pub allowed_hosts: AllowList,
    /// `OMNIA_HTTP_INSTANCE_REUSE`: how many requests one instance of a 0.3 guest serves before
    /// it is replaced.
    pub instance_reuse: usize,
    /// `OMNIA_HTTP_INSTANCE_CONCURRENCY`: how many requests one instance of a 0.3 guest serves
    /// at once.
    pub instance_concurrency: usize,
    /// `OMNIA_HTTP_INSTANCE_IDLE`: how long an idle instance of a 0.3 guest is kept for the next
    /// request.
    pub instance_idle: Duration,
    /// `OMNIA_HTTP_THREADS`: how many threads serve connections, each with a single-threaded
    /// runtime and (for a 0.3 guest) instances of its own; 0 serves them on the main
    /// (multi-threaded) runtime.
    pub threads: usize,
    /// `OMNIA_HTTP_BODY_TIMEOUT`: how long the guest may wait for a request body's data in all,
    /// beyond what `body_min_rate` allows (see [`server`]).
    pub body_timeout: Duration,
    /// `OMNIA_HTTP_BODY_MIN_RATE`: bytes a second a body must keep up to earn more waiting time.
    pub body_min_rate: usize,
    /// `OMNIA_HTTP_CLIENT_SHARE`: the most work slots one client may hold at once (`None`: half
    /// of `OMNIA_MAX_CONCURRENCY`), see [`server::clients`].
    pub client_share: Option<usize>,
    /// `OMNIA_HTTP_TRUSTED_PROXIES`: the proxies whose `X-Forwarded-For` or `Forwarded` names the
    /// client.
    pub trusted_proxies: TrustedProxies,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_body: 16 << 20,
            max_connections: omnia::listener::default_max_connections(),
            allowed_hosts: AllowList::default(),
            // wasmtime serve's defaults for WASIp3 components.
            instance_reuse: 128,
            instance_concurrency: 16,
            instance_idle: Duration::from_secs(1),
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            body_timeout: Duration::from_secs(10),
            body_min_rate: 16 << 10,
            client_share: None,
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

impl FromEnv for HttpConfig {
    fn from_env() -> Result<Self> {
        let d = Self::default();
        // Raised once at start-up by `omnia::run` (see `raise_open_file_limit`).
        let open_files = omnia::listener::open_file_limit();
        Ok(Self {
            addr: var("OMNIA_HTTP_ADDR", parse_addr)?.unwrap_or(d.addr),
            max_body: var("OMNIA_HTTP_MAX_BODY", parse_size)?.unwrap_or(d.max_body),
            max_connections: var("OMNIA_HTTP_MAX_CONNECTIONS", |s| {
                let n = parse_count(s)?;
                if n == 0 || n as u64 > open_files {
                    bail!(
                        "expected a number from 1 to {open_files} (the open-file limit, \
                         `ulimit -n`), got {s:?}"
                    );
                }
                Ok(n)
            })?
            .unwrap_or(d.max_connections),
            allowed_hosts: var("OMNIA_HTTP_ALLOWED_HOSTS", AllowList::parse)?
                .unwrap_or(d.allowed_hosts),
            instance_reuse: var("OMNIA_HTTP_INSTANCE_REUSE", parse_positive_count)?
                .unwrap_or(d.instance_reuse),
            instance_concurrency: var("OMNIA_HTTP_INSTANCE_CONCURRENCY", parse_positive_count)?
                .unwrap_or(d.instance_concurrency),
            instance_idle: var("OMNIA_HTTP_INSTANCE_IDLE", parse_positive_duration)?
                .unwrap_or(d.instance_idle),
            threads: var("OMNIA_HTTP_THREADS", |s| {
                let n = parse_count(s)?;
                if n > MAX_THREADS {
                    bail!("expected a number from 0 to {MAX_THREADS}, got {s:?}");
                }
                Ok(n)
            })?
            .unwrap_or(d.threads),
            body_timeout: var("OMNIA_HTTP_BODY_TIMEOUT", parse_positive_duration)?
                .unwrap_or(d.body_timeout),
            body_min_rate: var("OMNIA_HTTP_BODY_MIN_RATE", |s| {
                let rate = parse_size(s)?;
                if rate == 0 {
                    bail!("expected a size above zero, e.g. 16KiB, got {s:?}");
                }
                Ok(rate)
            })?
            .unwrap_or(d.body_min_rate),
            client_share: var("OMNIA_HTTP_CLIENT_SHARE", parse_positive_count)?.or(d.client_share),
            trusted_proxies: var("OMNIA_HTTP_TRUSTED_PROXIES", TrustedProxies::parse)?
                .unwrap_or(d.trusted_proxies),
        })
    }

    fn settings() -> Vec<Setting> {
        vec![
            Setting {
                env: "OMNIA_HTTP_ADDR",
                flag: Some("listen"),
                value: "ADDR",
                default: "0.0.0.0:8080",
                help: "HTTP listen address (127.0.0.1:0 picks a free port)",
            },
            Setting {
                env: "OMNIA_HTTP_MAX_BODY",
                flag: Some("max-body"),
                value: "SIZE",
                default: "16MiB",
                help: "largest request body; larger ones get 413",
            },
            Setting {
                env: "OMNIA_HTTP_MAX_CONNECTIONS",
                flag: Some("max-connections"),
                value: "N",
                default: "3/4 of the open-file limit, at most 16384",
                help: "open client connections; at the cap the longest-idle one is closed to make room",
            },
            Setting {
                env: "OMNIA_HTTP_ALLOWED_HOSTS",
                flag: Some("allow-hosts"),
                value: "HOSTS",
                default: "none (deny all)",
                help: "hosts guests may call: api.example.com, 127.0.0.1:9000, *.example.com or *, comma-separated",
            },
            Setting {
                env: "OMNIA_HTTP_BODY_TIMEOUT",
                flag: None,
                value: "DURATION",
                default: "10s",
                help: "how long the guest may wait for a request body in all, plus 1 s per OMNIA_HTTP_BODY_MIN_RATE bytes received; slower bodies get 408",
            },
            Setting {
                env: "OMNIA_HTTP_BODY_MIN_RATE",
                flag: None,
                value: "SIZE",
                default: "16KiB",
                help: "bytes a second a request body must keep up to earn more waiting time",
            },
            Setting {
                env: "OMNIA_HTTP_CLIENT_SHARE",
                flag: Some("client-share"),
                value: "N",
                default: "half of OMNIA_MAX_CONCURRENCY",
                help: "requests one client (IP address) may have in flight at once; more get 503",
            },
            Setting {
                env: "OMNIA_HTTP_TRUSTED_PROXIES",
                flag: Some("trusted-proxies"),
                value: "ADDRS",
                default: "none",
                help: "proxies (IPs or CIDR blocks, comma-separated) whose X-Forwarded-For or Forwarded names the client",
            },
            Setting {
                env: "OMNIA_HTTP_THREADS",
                flag: None,
                value: "N",
                default: "the number of CPUs",
                help: "threads serving connections, each with its own event loop (and WASI 0.3 instances); 0: the main multi-threaded runtime",
            },
            Setting {
                env: "OMNIA_HTTP_INSTANCE_REUSE",
                flag: None,
                value: "N",
                default: "128",
                help: "WASI 0.3 guests: requests one instance serves before it is replaced (0.2 guests: always 1)",
            },
            Setting {
                env: "OMNIA_HTTP_INSTANCE_CONCURRENCY",
                flag: None,
                value: "N",
                default: "16",
                help: "WASI 0.3 guests: requests one instance serves at once; a failing instance fails at most these",
            },
            Setting {
                env: "OMNIA_HTTP_INSTANCE_IDLE",
                flag: None,
                value: "DURATION",
                default: "1s",
                help: "WASI 0.3 guests: how long an idle instance is kept for the next request",
            },
        ]
    }
}

/// The `"http"` capability: per-store `wasi:http` state plus the shared configuration.
#[derive(Clone, Debug)]
pub struct WasiHttpCtx {
    inner: wasmtime_wasi_http::WasiHttpCtx,
    policy: OutgoingPolicy,
    config: Arc<HttpConfig>,
}

impl WasiHttpCtx {
    /// A context with explicit settings.
    pub fn new(config: HttpConfig) -> Self {
        Self {
            inner: wasmtime_wasi_http::WasiHttpCtx::new(),
            policy: OutgoingPolicy::new(config.allowed_hosts.clone()),
            config: Arc::new(config),
        }
    }

    /// The settings this context was made with.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }
}

/// A guest's grants of HTTP (`[guest.grants] http = { hosts = ["api.example.com"] }`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpGrants {
    /// The hosts its outgoing requests may reach, as `OMNIA_HTTP_ALLOWED_HOSTS` lists them.
    #[serde(default)]
    hosts: Vec<String>,
}

impl Backend for WasiHttpCtx {
    type Options = HttpConfig;

    async fn connect_with(options: HttpConfig) -> Result<Self> {
        Ok(Self::new(options))
    }

    /// A guest restricted to its grants reaches the hosts it is granted, and no other
    /// (`OMNIA_HTTP_ALLOWED_HOSTS` is for a guest run on its own).
    fn for_guest(&self, guest: &omnia::GuestScope<'_>) -> Result<Self> {
        if !guest.restricted() {
            return Ok(self.clone());
        }
        let grants: HttpGrants = guest.grants()?;
        if let Some(host) = grants.hosts.iter().find(|host| host.contains(',')) {
            anyhow::bail!("hosts: {host:?}: one host per entry");
        }
        // Read as OMNIA_HTTP_ALLOWED_HOSTS's entries are: trimmed, empty ones skipped.
        let entries = grants.hosts.iter().map(|host| host.trim());
        let allowed =
            AllowList::from_entries(entries.filter(|host| !host.is_empty())).context("hosts")?;
        Ok(Self {
            inner: wasmtime_wasi_http::WasiHttpCtx::new(),
            policy: OutgoingPolicy::granted(allowed),
            config: Arc::clone(&self.config),
        })
    }
}

/// The `wasi:http` view of a store that holds a [`WasiHttpCtx`].
pub(crate) fn http_view<T: HostView<WasiHttpCtx>>(store: &mut T) -> WasiHttpCtxView<'_> {
    let (http, core) = store.host();
    http.policy.trace = core.work.trace;
    http.policy.depth = core.work.depth;
    WasiHttpCtxView {
        ctx: &mut http.inner,
        table: &mut core.table,
        hooks: &mut http.policy,
    }
}

impl<T: HostView<WasiHttpCtx>> Host<T> for WasiHttpCtx {
    fn used_by(engine: &Engine, component: &Component) -> bool {
        server::exports_handler(engine, component)
            || omnia::component::imports_interface(engine, component, "wasi:http/")
    }

    fn add_to_linker(linker: &mut Linker<T>, _component: &Component) -> Result<()> {
        let options = bindings::LinkOptions::default();
        bindings::http::outgoing_handler::add_to_linker::<_, WasiHttp>(linker, http_view::<T>)?;
        bindings::http::types::add_to_linker::<_, WasiHttp>(
            linker,
            &options.into(),
            http_view::<T>,
        )?;
        if omnia::engine::kind(linker.engine()) == omnia::engine::Kind::Async {
            p3::client::add_to_linker::<_, WasiHttp>(linker, http_view::<T>)?;
            p3::types::add_to_linker::<_, WasiHttp>(linker, http_view::<T>)?;
        }
        Ok(())
    }
}

impl<S> Server<S> for WasiHttpCtx
where
    S: State,
    S::StoreCtx: HostView<WasiHttpCtx>,
{
    fn exported_by(engine: &Engine, component: &Component) -> bool {
        server::exports_handler(engine, component)
    }

    async fn bind(&self, app: omnia::Application<S>, shutdown: omnia::Shutdown) -> Result<Serving> {
        server::bind(app, Arc::clone(&self.config), shutdown).await
    }
}
