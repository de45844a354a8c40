//! Who a request comes from, and the share of the work slots each client may hold.
//!
//! Without a share, one client can take every slot: two HTTP/2 connections with 200 streams on
//! a slow route left nothing for anyone else (every other request got 503). So each client may
//! hold at most `OMNIA_HTTP_CLIENT_SHARE` slots at once (by default half of
//! `OMNIA_MAX_CONCURRENCY`); past it, its requests get 503 with `Retry-After` while other
//! clients are still served. A connection belongs to one client, so its HTTP/2 streams count
//! against that client's share.
//!
//! The client is the peer's IP address. Behind a load balancer or an ingress every request
//! comes from the proxy, so `OMNIA_HTTP_TRUSTED_PROXIES` lists the proxies (addresses or CIDR
//! blocks) whose `X-Forwarded-For` (or, without it, `Forwarded: for=`) is believed: the client
//! is the rightmost address in it that is not a trusted proxy. From any other peer the headers
//! are ignored, so a client cannot dodge its share by naming someone else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result, bail};
use http::HeaderMap;

/// `OMNIA_HTTP_TRUSTED_PROXIES`: the proxies whose forwarding headers name the client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    blocks: Vec<(IpAddr, u8)>,
}

impl TrustedProxies {
    /// Parses `10.0.0.0/8, 192.168.1.7, fd00::/8`: addresses or CIDR blocks, comma-separated.
    pub fn parse(s: &str) -> Result<Self> {
        let mut blocks = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (addr, len) = item.split_once('/').unwrap_or((item, ""));
            let addr: IpAddr = addr.parse().with_context(|| {
                format!(
                    "bad entry {item:?}: expected an IP address or a CIDR block, e.g. 10.0.0.0/8"
                )
            })?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let len = if len.is_empty() {
                max
            } else {
                match len.parse::<u8>() {
                    Ok(len) if len <= max => len,
                    _ => bail!("bad entry {item:?}: the prefix length must be 0 to {max}"),
                }
            };
            blocks.push((addr, len));
        }
        Ok(Self { blocks })
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.blocks
            .iter()
            .any(|&(block, len)| in_block(ip, canonical(block), len))
    }

    /// The client of a request from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return canonical(peer);
        }
        let forwarded = forwarded_for(headers);
        // Right to left: each hop appended the address it received from.
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !self.trusts(*ip))
            .map_or(canonical(peer), canonical)
    }
}

/// The addresses of `X-Forwarded-For`, or else of the `for=` parameters of `Forwarded` (RFC
/// 7239), in order; entries that are not addresses (`unknown`, obfuscated names) are skipped.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let values = |name| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>()
    };
    let xff = values("x-forwarded-for");
    if !xff.is_empty() {
        return xff.into_iter().filter_map(parse_node).collect();
    }
    values("forwarded")
        .into_iter()
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.eq_ignore_ascii_case("for")
                    .then(|| value.trim_matches('"'))
            })
        })
        .filter_map(parse_node)
        .collect()
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1` or `[2001:db8::1]:80` as an address.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    node.rsplit_once(':')?.0.parse().ok()
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

fn in_block(ip: IpAddr, block: IpAddr, len: u8) -> bool {
    match (ip, block) {
        (IpAddr::V4(ip), IpAddr::V4(block)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(block) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(block)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(block) & mask
        }
        _ => false,
    }
}

/// How many slots each client holds, with the most one may hold.
#[derive(Debug)]
pub struct ClientShares {
    limit: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

impl ClientShares {
    /// At most `limit` slots per client.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// The most slots one client may hold.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// One more slot for `client`, if it holds fewer than its share; given back when the
    /// returned guard is dropped.
    pub fn take(self: &Arc<Self>, client: IpAddr) -> Option<ClientShare> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(client).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ClientShare {
            shares: Arc::clone(self),
            client,
        })
    }
}

/// One slot of a client's share.
#[derive(Debug)]
pub struct ClientShare {
    shares: Arc<ClientShares>,
    client: IpAddr,
}

impl Drop for ClientShare {
    fn drop(&mut self) {
        let mut held = self
            .shares
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        let xff = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(none.client(ip("10.1.2.3"), &xff), ip("10.1.2.3"));

        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7, fd00::/8").unwrap();
        assert_eq!(proxies.client(ip("10.1.2.3"), &xff), ip("203.0.113.9"));
        // A spoofed first entry is passed over: the rightmost untrusted address is the client.
        let chain = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.9.9.9")]);
        assert_eq!(proxies.client(ip("192.168.1.7"), &chain), ip("203.0.113.9"));
        assert_eq!(proxies.client(ip("192.168.1.8"), &chain), ip("192.168.1.8"));
        let forwarded = headers(&[("forwarded", "for=\"[2001:db8::5]:443\";proto=https")]);
        assert_eq!(proxies.client(ip("fd00::1"), &forwarded), ip("2001:db8::5"));
        let mapped = headers(&[("x-forwarded-for", "::ffff:198.51.100.4, unknown")]);
        assert_eq!(
            proxies.client(ip("::ffff:10.0.0.1"), &mapped),
            ip("198.51.100.4")
        );
        // Only proxies in the header: the peer stands.
        let all_trusted = headers(&[("x-forwarded-for", "10.0.0.2")]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &all_trusted), ip("10.0.0.1"));
    }

    #[test]
    fn bad_proxy_lists_are_refused() {
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "proxy.local",
            "10.0.0.0/x",
            "1.2.3",
        ] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            TrustedProxies::parse(" ").unwrap(),
            TrustedProxies::default()
        );
    }

    #[test]
    fn shares_are_counted_per_client_and_given_back() {
        let shares = ClientShares::new(2);
        let a = ip("203.0.113.1");
        let first = shares.take(a).unwrap();
        let _second = shares.take(a).unwrap();
        assert!(shares.take(a).is_none(), "a third slot for the same client");
        assert!(shares.take(ip("203.0.113.2")).is_some(), "another client");
        drop(first);
        assert!(shares.take(a).is_some(), "a slot given back");
    }
}
