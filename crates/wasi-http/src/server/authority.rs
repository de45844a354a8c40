//! Validation of the authority a request names (its `Host` header, or the authority of an
//! absolute-form request target), as RFC 9112 §3.2 and RFC 3986 §3.2 define it.
//!
//! hyper checks that a `Host` value is a valid header value and little more, and the `http`
//! crate's `Authority` accepts user-info and any port number. A guest that trusts the authority
//! it is given (to build links, to route) must not see `a b@c:99999`, so the runtime answers 400
//! to anything that is not `host[:port]`: a registered name, an IPv4 address or a bracketed IP
//! literal, then an optional port of at most 65535. User-info (`user:pw@host`) is refused too:
//! RFC 9110 §4.2.4 deprecates it in `http` URIs, and it would hand a password to the guest.

/// Checks that `authority` is `host[:port]` as RFC 3986 defines it, without user-info, with a
/// port no larger than 65535. The error says what is wrong, for the 400's body.
pub(crate) fn check(authority: &str) -> Result<(), &'static str> {
    if authority.contains('@') {
        return Err("the authority must not carry user-info (user:password@)\n");
    }
    let (host, port) = split_port(authority).ok_or("the authority is not host[:port]\n")?;
    if !port.bytes().all(|b| b.is_ascii_digit())
        || (!port.is_empty() && port.parse::<u16>().is_err())
    {
        return Err("the port of the authority is not a number from 0 to 65535\n");
    }
    if valid_host(host) {
        Ok(())
    } else {
        Err("the host of the authority is not a valid name or address\n")
    }
}

/// `host` and `port` (empty when there is none) of `authority`; `None` for an unclosed `[`.
fn split_port(authority: &str) -> Option<(&str, &str)> {
    if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, rest) = authority.split_at(close + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Some((host, port)),
            None if rest.is_empty() => Some((host, "")),
            None => None,
        };
    }
    Some(authority.split_once(':').unwrap_or((authority, "")))
}

/// A registered name, an IPv4 address (a registered name's characters cover it) or an IP
/// literal (`[v6]` or `[vF.future]`).
fn valid_host(host: &str) -> bool {
    if let Some(literal) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return literal.parse::<std::net::Ipv6Addr>().is_ok() || ip_future(literal);
    }
    !host.is_empty() && reg_name(host)
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`.
fn reg_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(unreserved(b) || sub_delim(b)) {
            return false;
        }
        i += 1;
    }
    true
}

/// `IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`.
fn ip_future(literal: &str) -> bool {
    let Some(rest) = literal.strip_prefix(['v', 'V']) else {
        return false;
    };
    let Some((version, address)) = rest.split_once('.') else {
        return false;
    };
    !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_hexdigit())
        && !address.is_empty()
        && address
            .bytes()
            .all(|b| unreserved(b) || sub_delim(b) || b == b':')
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn valid_authorities() {
        for ok in [
            "example.com",
            "example.com:8080",
            "127.0.0.1",
            "127.0.0.1:65535",
            "localhost:",
            "[::1]",
            "[::1]:80",
            "[2001:db8::7]:443",
            "[v1.fe80::a+en1]",
            "xn--bcher-kva.example",
            "a%2Db.example",
            "under_score.local",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn invalid_authorities() {
        for bad in [
            "a b@c:99999",
            "x:999999999999",
            "x:65536",
            "x:-1",
            "x:8o",
            "user:pw@evil.example",
            "@evil.example",
            "",
            ":80",
            "a b",
            "a\tb",
            "host/path",
            "host?q",
            "host#f",
            "[::1",
            "[::1]x",
            "[not-v6]",
            "[::1]:99999",
            "bad%zzhost",
            "bad%2",
            "h\u{e9}te",
            "a:b:c",
        ] {
            assert!(check(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
