//! Outgoing requests from guests, filtered by an allow-list; those to another guest of the
//! application (`<id>.omnia.local`) are served in-process (see [`crate::local`]).
//!
//! Guests may only reach hosts named in `OMNIA_HTTP_ALLOWED_HOSTS`; with the variable unset
//! nothing is allowed. A denied request fails in the guest with the `wasi:http` error
//! `HTTP-request-denied`, and the runtime logs the host and the setting to change.

use omnia::trace::{TRACEPARENT, TraceContext};
use std::fmt;
use std::sync::Arc;

use anyhow::{Result, bail};
use wasmtime_wasi_http::{Error, RequestOptions, WasiHttpHooks};

/// Where guests may send HTTP requests.
///
/// A comma-separated list of patterns:
/// * `api.example.com`: that host on any port;
/// * `api.example.com:8443`, `127.0.0.1:9000`, `[::1]:9000`: that host on that port only;
/// * `*.example.com`: any subdomain of `example.com` (not `example.com` itself);
/// * `*`: any host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    patterns: Vec<Pattern>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    host: String,
    port: Option<u16>,
}

impl AllowList {
    /// Parses the `OMNIA_HTTP_ALLOWED_HOSTS` form.
    pub fn parse(s: &str) -> Result<Self> {
        Self::from_entries(s.split(',').map(str::trim).filter(|i| !i.is_empty()))
    }

    /// The list of `entries`, each one pattern as `OMNIA_HTTP_ALLOWED_HOSTS` lists them (a
    /// guest's `http = { hosts = [...] }`).
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let patterns = entries
            .into_iter()
            .map(Pattern::parse)
            .collect::<Result<_>>()?;
        Ok(Self { patterns })
    }

    /// Whether `host` (without brackets for IPv6) on `port` may be called.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        self.patterns.iter().any(|p| p.matches(&host, port))
    }
}

impl Pattern {
    fn parse(item: &str) -> Result<Self> {
        let bad = || {
            format!(
                "bad entry {item:?}: expected host, host:port, *.domain or *, e.g. \
                 api.example.com,127.0.0.1:8080"
            )
        };
        let (host, port) = if let Some(rest) = item.strip_prefix('[') {
            let Some((host, after)) = rest.split_once(']') else {
                bail!(bad())
            };
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => bail!(bad()),
            }
        } else {
            match item.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') => (host, Some(port)),
                _ => (item, None), // no port, or a bare IPv6 address
            }
        };
        let port = match port {
            Some(p) => Some(p.parse::<u16>().map_err(|_| anyhow::anyhow!(bad()))?),
            None => None,
        };
        if !valid_host_pattern(host) {
            bail!(bad());
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        if self.host == "*" {
            return true;
        }
        match self.host.strip_prefix("*.") {
            Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
            None => host == self.host,
        }
    }
}

/// `*`, a host name, an IP address, or `*.` followed by a host name: no empty labels, and a
/// wildcard only as the whole first label (`*.`, `*.*.example.com` and `a*.example.com` are
/// refused).
fn valid_host_pattern(host: &str) -> bool {
    if host == "*" {
        return true;
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    if name.contains(':') {
        return name.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self
            .patterns
            .iter()
            .map(|p| match p.port {
                Some(port) => format!("{}:{port}", p.host),
                None => p.host.clone(),
            })
            .collect();
        f.write_str(&items.join(","))
    }
}

/// The `wasi:http` hooks of a store: the allow-list check in front of the default client, and
/// trace propagation: a request the guest sends without a `traceparent` gets the one of the
/// work it is part of (the request or message span), so the callee joins the trace.
#[derive(Clone, Debug)]
pub struct OutgoingPolicy {
    allowed: Arc<AllowList>,
    /// Where the list comes from, for the denial's log line: `OMNIA_HTTP_ALLOWED_HOSTS`, or a
    /// guest's grants.
    source: &'static str,
    /// The trace context of the store's work (set by the view, see `http_view`).
    pub(crate) trace: Option<TraceContext>,
    /// How many local calls led to the store's work (see [`crate::local`]).
    pub(crate) depth: u32,
}

impl OutgoingPolicy {
    /// A policy enforcing `allowed`, from `OMNIA_HTTP_ALLOWED_HOSTS`.
    pub fn new(allowed: AllowList) -> Self {
        Self {
            allowed: Arc::new(allowed),
            source: "OMNIA_HTTP_ALLOWED_HOSTS",
            trace: None,
            depth: 0,
        }
    }

    /// A policy enforcing a guest's own grants (`[guest.grants] http = { hosts = [...] }`).
    pub fn granted(allowed: AllowList) -> Self {
        Self {
            source: "the guest's grants (http = { hosts = [...] })",
            ..Self::new(allowed)
        }
    }
}

type WasiBody = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, Error>;
type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutgoingPolicy {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let uri = request.uri();
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            tracing::warn!(
                host = uri.host().unwrap_or_default(),
                "outgoing request refused: its URL carries user-info (user:password@); send \
                 credentials in an Authorization header instead"
            );
            return Box::new(async { Err(Error::HttpRequestUriInvalid) });
        }
        let host = uri.host().unwrap_or_default().to_string();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if !self.allowed.allows(&host, port) {
            tracing::warn!(
                host = %host,
                port,
                "outgoing request to {host}:{port} denied: add it to {} (now {:?}) to allow it",
                self.source,
                self.allowed.to_string()
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        if let Some(trace) = &self.trace
            && !request.headers().contains_key(TRACEPARENT)
            && let Ok(value) = http::HeaderValue::from_str(&trace.traceparent())
        {
            request.headers_mut().insert(TRACEPARENT, value);
        }
        if let Some(guest) = crate::local::guest_of(&host) {
            let answer = crate::local::call(&guest, request, self.depth);
            return Box::new(async move {
                let response = answer.await?;
                Ok((
                    response,
                    Box::new(async { Ok(()) })
                        as Box<dyn Future<Output = Result<(), Error>> + Send>,
                ))
            });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_denies_everything() {
        let list = AllowList::parse("").unwrap();
        assert!(!list.allows("127.0.0.1", 80));
        assert!(!list.allows("example.com", 443));
    }

    #[test]
    fn hosts_ports_and_wildcards() {
        let list =
            AllowList::parse("api.example.com, 127.0.0.1:9000, *.svc.local, [::1]:81").unwrap();
        assert!(list.allows("api.example.com", 443));
        assert!(list.allows("API.example.com", 80));
        assert!(!list.allows("example.com", 443));
        assert!(list.allows("127.0.0.1", 9000));
        assert!(!list.allows("127.0.0.1", 9001));
        assert!(list.allows("a.svc.local", 80));
        assert!(list.allows("a.b.svc.local", 80));
        assert!(!list.allows("svc.local", 80));
        assert!(!list.allows("evilsvc.local", 80));
        assert!(list.allows("[::1]", 81));
        assert!(list.allows("::1", 81));
        assert!(!list.allows("::1", 80));
        assert!(AllowList::parse("*").unwrap().allows("anything", 1));
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in [
            "host:notaport",
            "ho st",
            "[::1",
            "a/b",
            "host:70000",
            "*.",
            "*.*.example.com",
            "a*.example.com",
            "example..com",
            ".example.com",
            "[1:2:zz::]",
        ] {
            assert!(AllowList::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
