//! Why a route is refused, in words that say how to fix it.

use std::fmt;

use super::normalise::{
    collapse_slashes, decode_unreserved, percent_encode_invalid, remove_dot_segments, strip_port,
    without_trailing_slash,
};
use super::{HttpRoute, PATH_INFO_HEADER};

/// Why a route or a route table was refused. Every message names the route and says how to
/// fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteError {
    /// The prefix is empty.
    EmptyPrefix,
    /// The prefix does not start with `/`.
    NoLeadingSlash {
        /// The prefix as written.
        prefix: String,
    },
    /// The prefix has a query (`?`) or a fragment (`#`).
    QueryOrFragment {
        /// The prefix as written.
        prefix: String,
        /// `?` or `#`.
        found: char,
    },
    /// The prefix has a `.` or `..` segment.
    DotSegment {
        /// The prefix as written.
        prefix: String,
    },
    /// The prefix has an empty segment (`//`).
    EmptySegment {
        /// The prefix as written.
        prefix: String,
    },
    /// The prefix percent-encodes a character that is written plainly in a path (a letter, a
    /// digit, `-`, `.`, `_` or `~`).
    EncodedUnreserved {
        /// The prefix as written.
        prefix: String,
        /// The escape, such as `%61`.
        encoded: String,
        /// The character it encodes, such as `a`.
        plain: char,
    },
    /// A `%` in the prefix is not followed by two hex digits.
    BadPercent {
        /// The prefix as written.
        prefix: String,
    },
    /// The prefix has a character a URL path carries only percent-encoded.
    InvalidChar {
        /// The prefix as written.
        prefix: String,
        /// The first such character.
        found: char,
    },
    /// A segment of the prefix is a pattern (`*`, `:id`, `{id}`, `<id>`, or `...` before the
    /// end) in the syntax of some other router.
    Pattern {
        /// The prefix as written.
        prefix: String,
        /// The segment.
        segment: String,
    },
    /// The host is empty.
    EmptyHost,
    /// The host has a port.
    HostWithPort {
        /// The host as written.
        host: String,
    },
    /// The host has a path.
    HostWithPath {
        /// The host as written.
        host: String,
    },
    /// The host has a `*`.
    WildcardHost {
        /// The host as written.
        host: String,
    },
    /// The host is neither a name nor an IP address.
    InvalidHost {
        /// The host as written.
        host: String,
    },
    /// Two entries of a table have the same route.
    Duplicate {
        /// The route.
        route: HttpRoute,
        /// The component of the entry listed first.
        first: String,
        /// The component of the other entry.
        second: String,
    },
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyPrefix => f.write_str(
                "a route cannot be empty: write `/` (or `/...`) for every path, or a prefix \
                 such as `/api`",
            ),
            Self::NoLeadingSlash { prefix } => write!(
                f,
                "route `{prefix}` does not start with `/`: a route is a path, write `/{}`",
                prefix.trim_start_matches('/')
            ),
            Self::QueryOrFragment { prefix, found } => {
                let path = prefix.split(['?', '#']).next().unwrap_or_default();
                let part = if *found == '?' { "query" } else { "fragment" };
                write!(
                    f,
                    "route `{prefix}` has a {part} (`{found}`): routes match the path only and \
                     every {part} is ignored, write `{}`",
                    if path.is_empty() { "/" } else { path }
                )
            }
            Self::DotSegment { prefix } => write!(
                f,
                "route `{prefix}` has a `.` or `..` segment, which is removed from request \
                 paths before routing: write the path it stands for, `{}`",
                without_trailing_slash(&remove_dot_segments(prefix))
            ),
            Self::EmptySegment { prefix } => write!(
                f,
                "route `{prefix}` has an empty segment (`//`): write `{}`",
                collapse_slashes(prefix)
            ),
            Self::EncodedUnreserved {
                prefix,
                encoded,
                plain,
            } => write!(
                f,
                "route `{prefix}` percent-encodes `{plain}` as `{encoded}`: letters, digits, \
                 `-`, `.`, `_` and `~` are decoded in request paths before routing, write \
                 them plainly: `{}`",
                decode_unreserved(prefix)
            ),
            Self::BadPercent { prefix } => write!(
                f,
                "route `{prefix}` has a `%` that is not followed by two hex digits: write a \
                 literal `%` as `%25`"
            ),
            Self::InvalidChar { prefix, found } => write!(
                f,
                "route `{prefix}` has `{}`, which a URL path carries only percent-encoded: \
                 write `{}`",
                found.escape_debug(),
                percent_encode_invalid(prefix)
            ),
            Self::Pattern { prefix, segment } => pattern_message(f, prefix, segment),
            Self::EmptyHost => f.write_str(
                "a route's host cannot be empty: leave the host out to match every host",
            ),
            Self::HostWithPort { host } => write!(
                f,
                "route host `{host}` has a port, but a route matches its host on any port: \
                 write `{}`",
                strip_port(host)
            ),
            Self::HostWithPath { host } => {
                let (name, path) = host.split_once('/').unwrap_or((host, ""));
                write!(
                    f,
                    "route host `{host}` has a path: write the host `{name}` and put the path \
                     `/{path}` in the route"
                )
            }
            Self::WildcardHost { host } => write!(
                f,
                "route host `{host}` has a `*`, but hosts are matched exactly: give each host \
                 its own route, or leave the host out to match every host"
            ),
            Self::InvalidHost { host } => write!(
                f,
                "route host `{}` is not a host name (letters, digits, `-` and `_` in labels \
                 separated by `.`) or an IP address (`10.0.0.1`, `[::1]`)",
                host.escape_debug()
            ),
            Self::Duplicate {
                route,
                first,
                second,
            } => duplicate_message(f, route, first, second),
        }
    }
}

fn pattern_message(f: &mut fmt::Formatter<'_>, prefix: &str, segment: &str) -> fmt::Result {
    // The segments before the pattern.
    let mut before = String::new();
    for s in prefix.get(1..).unwrap_or_default().split('/') {
        if s == segment {
            break;
        }
        before.push('/');
        before.push_str(s);
    }
    let route = if before.is_empty() { "/" } else { &before };
    if segment == "..." {
        write!(
            f,
            "route `{prefix}` has `...` before its end: `/...` may only end a route, write \
             `{before}/...` (or `{route}`) for everything under `{route}`"
        )
    } else {
        write!(
            f,
            "route `{prefix}` has the pattern `{segment}`, but a route is a plain prefix that \
             matches every path under it: write `{route}` and read the rest of the path from \
             the `{PATH_INFO_HEADER}` header"
        )
    }
}

fn duplicate_message(
    f: &mut fmt::Formatter<'_>,
    route: &HttpRoute,
    first: &str,
    second: &str,
) -> fmt::Result {
    let spellings = match route.prefix() {
        "/" => "`/` and `/...` are one route".to_owned(),
        prefix => format!("`{prefix}`, `{prefix}/` and `{prefix}/...` are one route"),
    };
    if first == second {
        write!(
            f,
            "component `{first}` has the route {route} twice ({spellings}): remove one"
        )
    } else {
        write!(
            f,
            "components `{first}` and `{second}` both have the route {route} ({spellings}): \
             give one of them another prefix or a host"
        )
    }
}

impl std::error::Error for RouteError {}
