//! Reading routes and request paths and hosts into the one spelling they are compared in.

use std::borrow::Cow;

use super::RouteError;

/// Checks a route's prefix and returns its one spelling (see [`HttpRoute`]).
pub(super) fn normalise_prefix(written: &str) -> Result<String, RouteError> {
    let prefix = || written.to_owned();
    if written.is_empty() {
        return Err(RouteError::EmptyPrefix);
    }
    if !written.starts_with('/') {
        return Err(RouteError::NoLeadingSlash { prefix: prefix() });
    }
    if let Some(found) = written.chars().find(|c| matches!(c, '?' | '#')) {
        return Err(RouteError::QueryOrFragment {
            prefix: prefix(),
            found,
        });
    }
    // Without Spin's spelling of "and everything under it", or else without one trailing slash.
    let catch_all = written == "/" || written == "/...";
    let path = if catch_all {
        "/"
    } else {
        written
            .strip_suffix("/...")
            .or_else(|| written.strip_suffix('/'))
            .unwrap_or(written)
    };
    if !catch_all {
        for segment in path.get(1..).unwrap_or_default().split('/') {
            if segment.is_empty() {
                return Err(RouteError::EmptySegment { prefix: prefix() });
            }
            if segment == "." || segment == ".." {
                return Err(RouteError::DotSegment { prefix: prefix() });
            }
            if is_pattern(segment) {
                return Err(RouteError::Pattern {
                    prefix: prefix(),
                    segment: segment.to_owned(),
                });
            }
        }
    }

    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(at) = rest.find(|c: char| c == '%' || !is_path_char(c)) {
        out.push_str(&rest[..at]);
        let found = rest[at..].chars().next().unwrap_or_default();
        if found != '%' {
            return Err(RouteError::InvalidChar {
                prefix: prefix(),
                found,
            });
        }
        let Some(byte) = hex_escape(&rest[at..]) else {
            return Err(RouteError::BadPercent { prefix: prefix() });
        };
        if is_unreserved(byte) {
            return Err(RouteError::EncodedUnreserved {
                prefix: prefix(),
                encoded: rest[at..at + 3].to_owned(),
                plain: char::from(byte),
            });
        }
        push_escape(&mut out, byte);
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A segment written in the pattern syntax of another router (Spin's `:name` captures,
/// axum's `{id}` and `*rest`, Rocket's `<id>`, globs), or Spin's `...` before the end.
pub(super) fn is_pattern(segment: &str) -> bool {
    segment.starts_with(':')
        || segment.starts_with('*')
        || segment == "..."
        || (segment.starts_with('{') && segment.ends_with('}'))
        || (segment.starts_with('<') && segment.ends_with('>'))
}

/// Checks a route's host and returns it in lower case without a trailing dot.
pub(super) fn normalise_host(written: &str) -> Result<String, RouteError> {
    let host = || written.to_owned();
    let name = written.strip_suffix('.').unwrap_or(written);
    if name.is_empty() {
        return Err(if written.is_empty() {
            RouteError::EmptyHost
        } else {
            RouteError::InvalidHost { host: host() }
        });
    }
    if name.contains('/') {
        return Err(RouteError::HostWithPath { host: host() });
    }
    if name.contains('*') {
        return Err(RouteError::WildcardHost { host: host() });
    }
    if let Some(address) = name.strip_prefix('[') {
        // An IPv6 address, possibly followed by a port.
        return match address.split_once(']') {
            Some((inner, "")) if is_ipv6_text(inner) => Ok(name.to_ascii_lowercase()),
            Some((inner, port))
                if is_ipv6_text(inner) && port.strip_prefix(':').is_some_and(is_port) =>
            {
                Err(RouteError::HostWithPort { host: host() })
            }
            _ => Err(RouteError::InvalidHost { host: host() }),
        };
    }
    if let Some((_, port)) = name.split_once(':')
        && is_port(port)
    {
        return Err(RouteError::HostWithPort { host: host() });
    }
    let is_label = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !name.split('.').all(is_label) {
        return Err(RouteError::InvalidHost { host: host() });
    }
    Ok(name.to_ascii_lowercase())
}

pub(super) fn is_ipv6_text(text: &str) -> bool {
    text.contains(':')
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
}

/// One or more digits.
pub(super) fn is_port(digits: &str) -> bool {
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A request's host without user info, port and trailing dot, borrowed.
pub(super) fn bare_host(authority: &str) -> &str {
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = strip_port(host);
    host.strip_suffix('.').unwrap_or(host)
}

pub(super) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.split_once(':').map_or(host, |(name, _)| name)
    }
}

/// The path a request is routed by (see the module documentation), borrowed when the request's
/// path is already normal; `None` if the path does not start with `/` (`OPTIONS *`).
pub(super) fn normalise_request_path(path_and_query: &str) -> Option<Cow<'_, str>> {
    let end = path_and_query
        .find(['?', '#'])
        .unwrap_or(path_and_query.len());
    let path = &path_and_query[..end];
    if path.is_empty() {
        return Some(Cow::Borrowed("/"));
    }
    if !path.starts_with('/') {
        return None;
    }
    let path = if path.contains('%') {
        Cow::Owned(decode_unreserved(path))
    } else {
        Cow::Borrowed(path)
    };
    if path[1..].split('/').any(|s| s == "." || s == "..") {
        return Some(Cow::Owned(remove_dot_segments(&path)));
    }
    Some(path)
}

/// Whether `path` is `prefix` or under it on a segment boundary (every path is under `""`).
pub(super) fn is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Decodes `%XX` escapes of unreserved characters and writes the hex digits of the others in
/// upper case (RFC 3986 section 6.2.2.1-2); a `%` that starts no escape is kept.
pub(super) fn decode_unreserved(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        if let Some(byte) = hex_escape(&rest[at..]) {
            if is_unreserved(byte) {
                out.push(char::from(byte));
            } else {
                push_escape(&mut out, byte);
            }
            rest = &rest[at + 3..];
        } else {
            out.push('%');
            rest = &rest[at + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// RFC 3986 section 5.2.4 for a path that starts with `/`: `.` segments are dropped, `..`
/// drops the segment before it (none at the root), and a path that ends in either ends in `/`.
pub(super) fn remove_dot_segments(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut ends_in_dot = false;
    for segment in path.get(1..).unwrap_or_default().split('/') {
        match segment {
            "." => ends_in_dot = true,
            ".." => {
                if let Some(at) = out.rfind('/') {
                    out.truncate(at);
                }
                ends_in_dot = true;
            }
            _ => {
                out.push('/');
                out.push_str(segment);
                ends_in_dot = false;
            }
        }
    }
    if ends_in_dot || out.is_empty() {
        out.push('/');
    }
    out
}

/// The byte a `%XX` escape at the start of `text` encodes.
pub(super) fn hex_escape(text: &str) -> Option<u8> {
    let bytes = text.as_bytes();
    if bytes.first() != Some(&b'%') {
        return None;
    }
    let digit = |at: usize| char::from(*bytes.get(at)?).to_digit(16);
    let high = digit(1)?;
    let low = digit(2)?;
    u8::try_from(high * 16 + low).ok()
}

pub(super) fn push_escape(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0xF)]));
}

/// RFC 3986 `unreserved`: letters, digits, `-`, `.`, `_`, `~`.
pub(super) fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// A character a path carries as it is: `unreserved`, `sub-delims`, `:`, `@` and `/`.
pub(super) fn is_path_char(c: char) -> bool {
    u8::try_from(c).is_ok_and(|b| {
        is_unreserved(b)
            || matches!(
                b,
                b'!' | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
            )
    })
}

/// `prefix` with every character a path cannot carry percent-encoded (for error messages).
pub(super) fn percent_encode_invalid(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() * 3);
    for c in prefix.chars() {
        if c == '%' || is_path_char(c) {
            out.push(c);
        } else {
            let mut buffer = [0; 4];
            for byte in c.encode_utf8(&mut buffer).bytes() {
                push_escape(&mut out, byte);
            }
        }
    }
    out
}

pub(super) fn collapse_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

pub(super) fn without_trailing_slash(path: &str) -> &str {
    if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    }
}
