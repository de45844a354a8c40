//! The HTTP route table: which component of an application serves a request, chosen by the
//! request's path and, if a route asks for one, its host.
//!
//! The components of an application share one listener, so every request must go to exactly
//! one of them, and someone reading the manifest must be able to tell which one without
//! running it. The rules are the ones users already know: a route is a path prefix that matches
//! on segment boundaries and the longest matching prefix wins, as upstream omnia's
//! `routes.http` does; `/...` is the catch-all and `/api/...` means "`/api` and everything
//! under it", as in Spin's `spin.toml`. A route may also name one host. Before the request path
//! is compared it is normalised as RFC 3986 says (section 6.2.2), so `/%61pi` or
//! `/public/../admin` reaches the component that owns `/api` or `/admin`, and not the one a
//! naive string comparison would pick.
//!
//! # Routes
//!
//! | Route | matches | does not match |
//! |---|---|---|
//! | `/api` | `/api`, `/api/`, `/api/users/7`, `/api?page=2` | `/apix`, `/ap`, `/api%2Fx`, `//api` |
//! | `/api/` or `/api/...` | the same as `/api`: one route written three ways | |
//! | `/` or `/...` | every path: the catch-all | |
//! | `/api` with host `shop.example.com` | the paths `/api` matches, on requests for `shop.example.com` in any case, on any port, with or without a trailing dot | other hosts, requests that carry no host |
//!
//! The host a request is for is its URI's authority if it has one (an HTTP/2 `:authority`, or
//! an HTTP/1.1 request in absolute form) and its `Host` header otherwise; see
//! [`request_host`]. A route's host is a name or an IP address compared exactly: there are no
//! wildcard hosts.
//!
//! # Which route wins
//!
//! 1. The longest prefix that matches: with `/api` and `/api/users`, `/api/users/7` goes to
//!    `/api/users`, and `/api/orders` to `/api`.
//! 2. At equal prefixes, a route with a host beats the one without: with `/` and `/` for
//!    `shop.example.com`, requests for `shop.example.com` go to the latter and all others to
//!    the former.
//! 3. So a longer prefix beats a shorter route with a host: with `/api/users` (any host) and
//!    `/api` for `shop.example.com`, `shop.example.com/api/users/7` goes to `/api/users`. Give
//!    the host its own `/api/users` route if it should take those too.
//! 4. Nothing matches (no catch-all): no component serves the request, and the trigger
//!    answers `404 Not Found`.
//!
//! Two routes with the same host (or both without one) and the same prefix are refused when the
//! table is built, so the winner never depends on the order of the manifest.
//!
//! # How the request path is read
//!
//! Only for choosing the route: the component is given the request exactly as it came, with its
//! original path and query.
//!
//! | Request | is routed as | because |
//! |---|---|---|
//! | `/api/users?next=/admin` | `/api/users` | the query is not part of the path |
//! | (empty) | `/` | an empty path is `/` |
//! | `/%61pi`, `/api/%7Eme` | `/api`, `/api/~me` | percent-encoded letters, digits, `-`, `.`, `_` and `~` are the characters themselves |
//! | `/api%2Fx`, `/api%2fx` | `/api%2Fx`: one segment, not under `/api` | any other encoding stays encoded (hex digits in upper case): an encoded `/` is data, not a separator |
//! | `/api/../admin`, `/api/./users` | `/admin`, `/api/users` | `.` and `..` segments are removed (RFC 3986 section 5.2.4) |
//! | `/api/%2E%2E/admin` | `/admin` | decoding comes first, then `..` is removed |
//! | `/../api` | `/api` | `..` stops at the root |
//! | `/api//x`, `//api` | `/api//x` (under `/api`), `//api` (not under it) | repeated slashes are kept |
//! | `*` (`OPTIONS *`) | nothing | only a path that starts with `/` is routed |
//!
//! Repeated slashes are kept because RFC 3986 keeps them (an empty segment is a segment) and
//! the component sees the original path: merging them here would route `//admin` by a path the
//! component is never shown. A proxy in front that merges them (nginx's `merge_slashes`) is the
//! place to choose otherwise.
//!
//! # What the component is told
//!
//! Besides the original request, two headers (set by the trigger, which first removes any the
//! client sent):
//!
//! | Header | value | for `/api` and `/api/users/7?x=1` | for `/` and `/about` |
//! |---|---|---|---|
//! | [`MATCHED_ROUTE_HEADER`] (`omnia-matched-route`) | the route's prefix | `/api` | `/` |
//! | [`PATH_INFO_HEADER`] (`omnia-path-info`) | the rest of the routed path: empty or starting with `/`, no query | `/users/7` | `/about` |
//!
//! These are the routed (normalised) path, not the original one: for `/%61pi/x` they are `/api`
//! and `/x`.
//!
//! # Routes that are refused
//!
//! A route is checked when it is read ([`HttpRoute::new`]) and the table when it is built
//! ([`HttpRoutes::new`]); every error says how to fix it.
//!
//! | Written | refused because |
//! |---|---|
//! | `api`, (empty) | a route is a path: it starts with `/` |
//! | `/api?v=2`, `/api#top` | routing ignores queries and fragments |
//! | `/api/../admin`, `/./api` | `.` and `..` segments never reach routing: write the path they resolve to |
//! | `/api//x` | an empty segment is almost always a typo |
//! | `/%61pi` | letters, digits, `-`, `.`, `_` and `~` are written plainly (requests are decoded) |
//! | `/100%`, `/a%zz` | `%` starts a two-digit hex escape (`%25` is a literal `%`) |
//! | `/café`, `/a b` | characters a URL path cannot carry are written percent-encoded (`/caf%C3%A9`) |
//! | `/users/:id`, `/users/{id}`, `/api/*`, `/api/.../x` | a route is a prefix, not a pattern: route `/users` and read the rest from `omnia-path-info` |
//! | host `example.com:8080`, `*.example.com`, `example.com/api`, (empty) | a host is matched on any port, exactly, with no path |
//! | `/api` twice for one host (or for none), written alike or not (`/api`, `/api/`, `/api/...`) | the winner would depend on the manifest's order |
//!
//! # Compared with Spin and upstream omnia
//!
//! * **Spin** (`spin.toml`): `/api/...` and `/...` mean here what they mean there. A route
//!   without `/...` is a prefix here but one exact path in Spin, and Spin's `:name` captures
//!   are refused: a prefix already matches every path under it. Spin's
//!   `spin-path-matched-route` and `spin-path-info` headers are `omnia-matched-route` and
//!   `omnia-path-info` here.
//! * **upstream omnia** (`routes.http` of `omnia.toml`): the same longest prefix on segment
//!   boundaries. There `/api/` matches only paths under `/api/` and not `/api` itself; here it
//!   is the same route as `/api`. Upstream's table compares the path it is given as it is
//!   (no decoding, no `..` removal) and has no host routes.
//!
//! # Cost
//!
//! The table is sorted once, when it is built. A lookup walks it in order and stops at the
//! first route that matches (routes are few: one or a few per component). It allocates the
//! [`Matched::path_info`] string and nothing else, unless the path has a `%` escape or a `.` or
//! `..` segment: then the normalised copy of the path is made (one allocation for each of the
//! two steps the path needs) and its buffer becomes the path info.
//!
//! # Example
//!
//! ```
//! use omnia::manifest::routes::{HttpRoute, HttpRoutes};
//!
//! let routes = HttpRoutes::new(vec![
//!     (HttpRoute::parse("/...")?, "site"),
//!     (HttpRoute::parse("/api")?, "api"),
//!     (HttpRoute::new(Some("admin.example.com"), "/")?, "admin"),
//! ])?;
//!
//! let matched = routes.route(Some("example.com"), "/api/users/7?page=2").unwrap();
//! assert_eq!(*matched.component, "api");
//! assert_eq!(matched.prefix, "/api");
//! assert_eq!(matched.path_info, "/users/7");
//!
//! assert_eq!(*routes.route(Some("example.com"), "/apix").unwrap().component, "site");
//! assert_eq!(*routes.route(Some("Admin.Example.com:8443"), "/").unwrap().component, "admin");
//!
//! let error = HttpRoute::parse("/users/:id").unwrap_err();
//! assert!(error.to_string().contains("write `/users`"));
//! # Ok::<(), omnia::manifest::routes::RouteError>(())
//! ```

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// The request header that tells the component the prefix of the route it was chosen by:
/// `/api` for the route `/api` (however it was written), `/` for the catch-all.
///
/// Spin's is `spin-path-matched-route`. The trigger sets it on every routed request and removes
/// any the client sent.
pub const MATCHED_ROUTE_HEADER: &str = "omnia-matched-route";

/// The request header that tells the component the rest of the routed path after the matched
/// prefix ([`Matched::path_info`]): `/users/7` for `/api/users/7?x=1` routed by `/api`, empty
/// for `/api` itself, the whole path for the catch-all.
///
/// Spin's is `spin-path-info`. The trigger sets it on every routed request and removes any the
/// client sent.
pub const PATH_INFO_HEADER: &str = "omnia-path-info";

/// One HTTP route: a path prefix and, optionally, the one host it is for.
///
/// Built from what a manifest says with [`HttpRoute::new`] or [`HttpRoute::parse`], which
/// check it and keep one spelling of it: the prefix without a trailing `/` or `/...` (`/` for
/// the catch-all) and with upper-case hex in its `%` escapes; the host in lower case without a
/// trailing dot. Routes that are written differently but mean the same are equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpRoute {
    host: Option<String>,
    prefix: String,
}

impl HttpRoute {
    /// A route for `prefix` (`/api`, `/api/`, `/api/...`, `/` or `/...`) on `host` (a name or
    /// an IP address, without a port), or on every host if `host` is `None`.
    ///
    /// # Errors
    ///
    /// A [`RouteError`] if the prefix or the host is not one a route can have (see the module
    /// documentation for the list).
    pub fn new(host: Option<&str>, prefix: &str) -> Result<Self, RouteError> {
        let host = host.map(normalise_host).transpose()?;
        let prefix = normalise_prefix(prefix)?;
        Ok(Self { host, prefix })
    }

    /// A route for `prefix` on every host: `HttpRoute::new(None, prefix)`. A manifest carries
    /// a route's host in a key of its own.
    ///
    /// # Errors
    ///
    /// A [`RouteError`] if the prefix is not one a route can have.
    pub fn parse(prefix: &str) -> Result<Self, RouteError> {
        Self::new(None, prefix)
    }

    /// The route that matches every request: `/` on every host.
    pub fn catch_all() -> Self {
        Self {
            host: None,
            prefix: "/".to_owned(),
        }
    }

    /// The host the route is for (lower case, no trailing dot), or `None` for every host.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The prefix, as the component is told it in [`MATCHED_ROUTE_HEADER`]: `/api` for `/api`,
    /// `/api/` and `/api/...`, and `/` for the catch-all.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// What the request path is compared with: the catch-all's is empty, so that every path
    /// (which starts with `/`) matches it on a segment boundary and keeps its `/` in the path
    /// info.
    fn match_prefix(&self) -> &str {
        if self.prefix == "/" { "" } else { &self.prefix }
    }

    /// Whether the route is for the request's host (already stripped of port and trailing dot).
    fn accepts_host(&self, request_host: Option<&str>) -> bool {
        self.host
            .as_deref()
            .is_none_or(|host| request_host.is_some_and(|r| r.eq_ignore_ascii_case(host)))
    }
}

impl FromStr for HttpRoute {
    type Err = RouteError;

    /// The same as [`HttpRoute::parse`].
    fn from_str(prefix: &str) -> Result<Self, RouteError> {
        Self::parse(prefix)
    }
}

impl fmt::Display for HttpRoute {
    /// The route as error messages name it: `` `/api` on any host `` or
    /// `` `/api` on host `shop.example.com` ``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Some(host) => write!(f, "`{}` on host `{host}`", self.prefix),
            None => write!(f, "`{}` on any host", self.prefix),
        }
    }
}

/// What a lookup found: the component that serves the request and what it is told about the
/// route (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched<'a, C> {
    /// The component the route belongs to.
    pub component: &'a C,
    /// The route's prefix ([`HttpRoute::prefix`]), the value of [`MATCHED_ROUTE_HEADER`]: `/`
    /// for the catch-all.
    pub prefix: &'a str,
    /// The rest of the normalised request path after the prefix, the value of
    /// [`PATH_INFO_HEADER`]: empty (the path is the prefix) or starting with `/`, without the
    /// query.
    pub path_info: String,
}

/// The route table of an application's HTTP trigger: routes, each with the component (of type
/// `C`, an id) that serves it, sorted once so that a lookup takes the first match.
#[derive(Debug, Clone)]
pub struct HttpRoutes<C> {
    /// Longest prefix first; at equal prefixes, routes with a host first; then by host and
    /// prefix, so that equal routes are neighbours; declaration order otherwise.
    entries: Vec<(HttpRoute, C)>,
}

impl<C> HttpRoutes<C> {
    /// The table of `routes`, each given with the component that serves it.
    ///
    /// # Errors
    ///
    /// [`RouteError::Duplicate`] if two entries have the same route (the same host, or both
    /// none, and the same prefix however written), naming both components.
    pub fn new(routes: impl IntoIterator<Item = (HttpRoute, C)>) -> Result<Self, RouteError>
    where
        C: fmt::Display,
    {
        let mut entries: Vec<(HttpRoute, C)> = routes.into_iter().collect();
        // Stable: equal routes stay in declaration order, so the error names the first first.
        entries.sort_by(|(a, _), (b, _)| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then_with(|| b.host.is_some().cmp(&a.host.is_some()))
                .then_with(|| a.host.cmp(&b.host))
                .then_with(|| a.prefix.cmp(&b.prefix))
        });
        if let Some(pair) = entries.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(RouteError::Duplicate {
                route: pair[0].0.clone(),
                first: pair[0].1.to_string(),
                second: pair[1].1.to_string(),
            });
        }
        Ok(Self { entries })
    }

    /// The component that serves a request for `host` (the `Host` header or the URI's
    /// authority, see [`request_host`]; a port, a trailing dot and any user info are ignored)
    /// and `path_and_query` (the request target, such as `/api/users?page=2`: the URI's
    /// `path_and_query()`), or `None` if no route matches.
    pub fn route(&self, host: Option<&str>, path_and_query: &str) -> Option<Matched<'_, C>> {
        let path = normalise_request_path(path_and_query)?;
        let host = host.map(bare_host);
        let (route, component) = self
            .entries
            .iter()
            .find(|(route, _)| route.accepts_host(host) && is_under(&path, route.match_prefix()))?;
        let skip = route.match_prefix().len();
        let path_info = match path {
            Cow::Borrowed(path) => path[skip..].to_owned(),
            Cow::Owned(mut path) => {
                path.drain(..skip);
                path
            }
        };
        Some(Matched {
            component,
            prefix: route.prefix(),
            path_info,
        })
    }

    /// The routes and their components, in the order a lookup tries them.
    pub fn entries(&self) -> impl Iterator<Item = (&HttpRoute, &C)> {
        self.entries
            .iter()
            .map(|(route, component)| (route, component))
    }

    /// How many routes the table has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no routes (and so routes nothing).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The host a request is for, as [`HttpRoutes::route`] takes it: the URI's authority if the
/// request has one (HTTP/2's `:authority`, or an HTTP/1.1 request target in absolute form,
/// which RFC 9112 section 3.2.2 says takes precedence), else the `Host` header; `None` if
/// neither is there or the header is not text.
pub fn request_host<B>(request: &http::Request<B>) -> Option<&str> {
    request
        .uri()
        .authority()
        .map(http::uri::Authority::as_str)
        .or_else(|| {
            request
                .headers()
                .get(http::header::HOST)
                .and_then(|value| value.to_str().ok())
        })
}

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

/// Checks a route's prefix and returns its one spelling (see [`HttpRoute`]).
fn normalise_prefix(written: &str) -> Result<String, RouteError> {
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
fn is_pattern(segment: &str) -> bool {
    segment.starts_with(':')
        || segment.starts_with('*')
        || segment == "..."
        || (segment.starts_with('{') && segment.ends_with('}'))
        || (segment.starts_with('<') && segment.ends_with('>'))
}

/// Checks a route's host and returns it in lower case without a trailing dot.
fn normalise_host(written: &str) -> Result<String, RouteError> {
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

fn is_ipv6_text(text: &str) -> bool {
    text.contains(':')
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
}

/// One or more digits.
fn is_port(digits: &str) -> bool {
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A request's host without user info, port and trailing dot, borrowed.
fn bare_host(authority: &str) -> &str {
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = strip_port(host);
    host.strip_suffix('.').unwrap_or(host)
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.split_once(':').map_or(host, |(name, _)| name)
    }
}

/// The path a request is routed by (see the module documentation), borrowed when the request's
/// path is already normal; `None` if the path does not start with `/` (`OPTIONS *`).
fn normalise_request_path(path_and_query: &str) -> Option<Cow<'_, str>> {
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
fn is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Decodes `%XX` escapes of unreserved characters and writes the hex digits of the others in
/// upper case (RFC 3986 section 6.2.2.1-2); a `%` that starts no escape is kept.
fn decode_unreserved(path: &str) -> String {
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
fn remove_dot_segments(path: &str) -> String {
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
fn hex_escape(text: &str) -> Option<u8> {
    let bytes = text.as_bytes();
    if bytes.first() != Some(&b'%') {
        return None;
    }
    let digit = |at: usize| char::from(*bytes.get(at)?).to_digit(16);
    let high = digit(1)?;
    let low = digit(2)?;
    u8::try_from(high * 16 + low).ok()
}

fn push_escape(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0xF)]));
}

/// RFC 3986 `unreserved`: letters, digits, `-`, `.`, `_`, `~`.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// A character a path carries as it is: `unreserved`, `sub-delims`, `:`, `@` and `/`.
fn is_path_char(c: char) -> bool {
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
fn percent_encode_invalid(prefix: &str) -> String {
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

fn collapse_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

fn without_trailing_slash(path: &str) -> &str {
    if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The routes every case of [`CASES`] is looked up in, in one spelling: host, prefix,
    /// component.
    const ROUTES: &[(Option<&str>, &str, &str)] = &[
        (None, "/", "site"),
        (None, "/api", "api"),
        (None, "/api/users", "users"),
        (None, "/api/x", "x"),
        (None, "/admin", "admin"),
        (Some("shop.example.com"), "/", "shop"),
        (Some("shop.example.com"), "/api", "shop-api"),
    ];

    /// The same application without a catch-all.
    const ROUTES_NO_CATCH_ALL: &[(Option<&str>, &str, &str)] = &[
        (None, "/api", "api"),
        (Some("shop.example.com"), "/shop", "shop"),
    ];

    /// Which table a case is looked up in.
    #[derive(Clone, Copy, Debug)]
    enum Table {
        Full,
        NoCatchAll,
    }

    /// (table, request host, request target) -> (component, prefix, path info).
    type Case = (
        Table,
        Option<&'static str>,
        &'static str,
        Option<(&'static str, &'static str, &'static str)>,
    );

    use Table::{Full, NoCatchAll};

    #[rustfmt::skip]
    const CASES: &[Case] = &[
        // Segment boundaries and the longest prefix.
        (Full, None, "/api", Some(("api", "/api", ""))),
        (Full, None, "/api/", Some(("api", "/api", "/"))),
        (Full, None, "/api/a/b", Some(("api", "/api", "/a/b"))),
        (Full, None, "/apix", Some(("site", "/", "/apix"))),
        (Full, None, "/ap", Some(("site", "/", "/ap"))),
        (Full, None, "/api/users", Some(("users", "/api/users", ""))),
        (Full, None, "/api/users/", Some(("users", "/api/users", "/"))),
        (Full, None, "/api/users/7", Some(("users", "/api/users", "/7"))),
        (Full, None, "/api/usersx", Some(("api", "/api", "/usersx"))),
        (Full, None, "/admin", Some(("admin", "/admin", ""))),
        // The catch-all and the empty path.
        (Full, None, "/", Some(("site", "/", "/"))),
        (Full, None, "", Some(("site", "/", "/"))),
        (Full, None, "/elsewhere/deep", Some(("site", "/", "/elsewhere/deep"))),
        // Queries.
        (Full, None, "/api?x=/admin", Some(("api", "/api", ""))),
        (Full, None, "/admin?next=/api/users", Some(("admin", "/admin", ""))),
        (Full, None, "?x=1", Some(("site", "/", "/"))),
        (Full, None, "/api/users?", Some(("users", "/api/users", ""))),
        // Percent-encoding.
        (Full, None, "/%61pi", Some(("api", "/api", ""))),
        (Full, None, "/%61%70%69/users", Some(("users", "/api/users", ""))),
        (Full, None, "/api/%7Eme", Some(("api", "/api", "/~me"))),
        (Full, None, "/api%2Fx", Some(("site", "/", "/api%2Fx"))),
        (Full, None, "/api%2fx", Some(("site", "/", "/api%2Fx"))),
        (Full, None, "/api/x%2Fy", Some(("api", "/api", "/x%2Fy"))),
        (Full, None, "/api/x/%2f", Some(("x", "/api/x", "/%2F"))),
        (Full, None, "/api/100%", Some(("api", "/api", "/100%"))),
        (Full, None, "/api/%zz", Some(("api", "/api", "/%zz"))),
        // Dot segments.
        (Full, None, "/api/../admin", Some(("admin", "/admin", ""))),
        (Full, None, "/api/./users", Some(("users", "/api/users", ""))),
        (Full, None, "/../api", Some(("api", "/api", ""))),
        (Full, None, "/../../admin/x", Some(("admin", "/admin", "/x"))),
        (Full, None, "/api/users/..", Some(("api", "/api", "/"))),
        (Full, None, "/api/users/.", Some(("users", "/api/users", "/"))),
        (Full, None, "/api/%2E%2E/admin", Some(("admin", "/admin", ""))),
        (Full, None, "/api/..%2Fadmin", Some(("api", "/api", "/..%2Fadmin"))),
        (Full, None, "/api/...", Some(("api", "/api", "/..."))),
        (Full, None, "/admin/../../api?x", Some(("api", "/api", ""))),
        // Repeated slashes are kept.
        (Full, None, "/api//users", Some(("api", "/api", "//users"))),
        (Full, None, "//api", Some(("site", "/", "//api"))),
        // Hosts.
        (Full, Some("shop.example.com"), "/", Some(("shop", "/", "/"))),
        (Full, Some("SHOP.Example.COM"), "/cart", Some(("shop", "/", "/cart"))),
        (Full, Some("shop.example.com:8443"), "/api/orders", Some(("shop-api", "/api", "/orders"))),
        (Full, Some("shop.example.com."), "/api", Some(("shop-api", "/api", ""))),
        (Full, Some("user@shop.example.com:80"), "/cart", Some(("shop", "/", "/cart"))),
        (Full, Some("shop.example.com"), "/admin", Some(("admin", "/admin", ""))),
        (Full, Some("other.example.com"), "/api", Some(("api", "/api", ""))),
        (Full, Some("example.com"), "/cart", Some(("site", "/", "/cart"))),
        (Full, Some("shop.example.com.evil"), "/", Some(("site", "/", "/"))),
        (Full, Some("[::1]:8080"), "/api", Some(("api", "/api", ""))),
        // A host route loses to a longer prefix.
        (Full, Some("shop.example.com"), "/api/users/7", Some(("users", "/api/users", "/7"))),
        (Full, Some("shop.example.com"), "/api/x", Some(("x", "/api/x", ""))),
        (Full, Some("shop.example.com"), "/api/xy", Some(("shop-api", "/api", "/xy"))),
        // Not a path.
        (Full, None, "*", None),
        // No catch-all.
        (NoCatchAll, None, "/", None),
        (NoCatchAll, None, "", None),
        (NoCatchAll, None, "/apix", None),
        (NoCatchAll, None, "/api/v1", Some(("api", "/api", "/v1"))),
        (NoCatchAll, None, "/shop", None),
        (NoCatchAll, Some("elsewhere.example.com"), "/shop", None),
        (NoCatchAll, Some("shop.example.com"), "/shop/cart", Some(("shop", "/shop", "/cart"))),
        (NoCatchAll, Some("shop.example.com"), "/", None),
    ];

    /// How a table's prefixes are written.
    #[derive(Clone, Copy, Debug)]
    enum Spelling {
        /// `/api`, `/`: upstream omnia's.
        Plain,
        /// `/api/...`, `/...`: Spin's.
        Spin,
        /// `/api/`, `/`.
        TrailingSlash,
    }

    fn spell(prefix: &str, spelling: Spelling) -> String {
        match (spelling, prefix) {
            (Spelling::Plain | Spelling::TrailingSlash, "/") => "/".to_owned(),
            (Spelling::Plain, _) => prefix.to_owned(),
            (Spelling::Spin, "/") => "/...".to_owned(),
            (Spelling::Spin, _) => format!("{prefix}/..."),
            (Spelling::TrailingSlash, _) => format!("{prefix}/"),
        }
    }

    fn table(
        routes: &[(Option<&str>, &str, &'static str)],
        spelling: Spelling,
    ) -> HttpRoutes<&'static str> {
        let routes = routes
            .iter()
            .map(|&(host, prefix, component)| {
                let route = HttpRoute::new(host, &spell(prefix, spelling)).unwrap();
                (route, component)
            })
            .collect::<Vec<_>>();
        HttpRoutes::new(routes).unwrap()
    }

    /// Runs every case, returning the ones that failed.
    fn run(spelling: Spelling) -> Vec<String> {
        let full = table(ROUTES, spelling);
        let no_catch_all = table(ROUTES_NO_CATCH_ALL, spelling);
        let mut failures = Vec::new();
        for &(which, host, target, expected) in CASES {
            let routes = match which {
                Full => &full,
                NoCatchAll => &no_catch_all,
            };
            let got = routes
                .route(host, target)
                .map(|m| (*m.component, m.prefix.to_owned(), m.path_info));
            let expected = expected.map(|(c, p, i)| (c, p.to_owned(), i.to_owned()));
            if got != expected {
                failures.push(format!(
                    "{spelling:?} {which:?} host {host:?} {target:?}: expected {expected:?}, got {got:?}"
                ));
            }
        }
        failures
    }

    #[test]
    fn routing_table() {
        assert!(CASES.len() >= 20);
        let failures = run(Spelling::Plain);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// The issue's "Spin-style reading": every route written as Spin writes it routes alike.
    #[test]
    fn routing_table_spin_spelling() {
        let failures = run(Spelling::Spin);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn routing_table_trailing_slash_spelling() {
        let failures = run(Spelling::TrailingSlash);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn spellings_are_one_route() {
        for written in ["/api", "/api/", "/api/..."] {
            let route = HttpRoute::parse(written).unwrap();
            assert_eq!(route.prefix(), "/api", "{written}");
            assert_eq!(route, HttpRoute::parse("/api").unwrap());
        }
        for written in ["/", "/..."] {
            assert_eq!(HttpRoute::parse(written).unwrap(), HttpRoute::catch_all());
        }
        assert_eq!(HttpRoute::parse("/a%2fb").unwrap().prefix(), "/a%2Fb");
        assert_eq!("/api/...".parse::<HttpRoute>().unwrap().prefix(), "/api");
        let route = HttpRoute::new(Some("Shop.Example.COM."), "/").unwrap();
        assert_eq!(route.host(), Some("shop.example.com"));
        assert_eq!(route.to_string(), "`/` on host `shop.example.com`");
        let route = HttpRoute::new(Some("[::1]"), "/api").unwrap();
        assert_eq!(route.host(), Some("[::1]"));
        assert_eq!(
            HttpRoute::new(Some("10.0.0.1"), "/").unwrap().host(),
            Some("10.0.0.1")
        );
    }

    #[test]
    fn table_order() {
        let routes = table(ROUTES, Spelling::Plain);
        assert_eq!(routes.len(), ROUTES.len());
        assert!(!routes.is_empty());
        let order: Vec<_> = routes.entries().map(|(_, c)| *c).collect();
        assert_eq!(
            order,
            ["users", "admin", "x", "shop-api", "api", "shop", "site"]
        );
        let empty = HttpRoutes::<&str>::new(Vec::new()).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.route(None, "/"), None);
    }

    #[test]
    fn request_host_prefers_the_authority() {
        let request = http::Request::get("/x")
            .header(http::header::HOST, "shop.example.com:8080")
            .body(())
            .unwrap();
        assert_eq!(request_host(&request), Some("shop.example.com:8080"));
        let request = http::Request::get("http://api.example.com/x")
            .header(http::header::HOST, "shop.example.com")
            .body(())
            .unwrap();
        assert_eq!(request_host(&request), Some("api.example.com"));
        let request = http::Request::get("/x").body(()).unwrap();
        assert_eq!(request_host(&request), None);
    }

    #[test]
    fn path_is_borrowed_when_already_normal() {
        assert!(matches!(
            normalise_request_path("/api/x?y=%61"),
            Some(Cow::Borrowed("/api/x"))
        ));
        assert!(matches!(
            normalise_request_path("/%61"),
            Some(Cow::Owned(_))
        ));
        assert!(matches!(
            normalise_request_path("/a/../b"),
            Some(Cow::Owned(_))
        ));
    }

    fn route_error(host: Option<&str>, prefix: &str) -> String {
        HttpRoute::new(host, prefix).unwrap_err().to_string()
    }

    #[test]
    fn prefix_errors() {
        let cases: &[(&str, RouteError, &str)] = &[
            (
                "",
                RouteError::EmptyPrefix,
                "a route cannot be empty: write `/` (or `/...`) for every path, or a prefix such as `/api`",
            ),
            (
                "api/v1",
                RouteError::NoLeadingSlash {
                    prefix: "api/v1".into(),
                },
                "route `api/v1` does not start with `/`: a route is a path, write `/api/v1`",
            ),
            (
                "/api?v=2",
                RouteError::QueryOrFragment {
                    prefix: "/api?v=2".into(),
                    found: '?',
                },
                "route `/api?v=2` has a query (`?`): routes match the path only and every query is ignored, write `/api`",
            ),
            (
                "/api#top",
                RouteError::QueryOrFragment {
                    prefix: "/api#top".into(),
                    found: '#',
                },
                "route `/api#top` has a fragment (`#`): routes match the path only and every fragment is ignored, write `/api`",
            ),
            (
                "/api/../admin",
                RouteError::DotSegment {
                    prefix: "/api/../admin".into(),
                },
                "route `/api/../admin` has a `.` or `..` segment, which is removed from request paths before routing: write the path it stands for, `/admin`",
            ),
            (
                "/./api/",
                RouteError::DotSegment {
                    prefix: "/./api/".into(),
                },
                "route `/./api/` has a `.` or `..` segment, which is removed from request paths before routing: write the path it stands for, `/api`",
            ),
            (
                "/api//x",
                RouteError::EmptySegment {
                    prefix: "/api//x".into(),
                },
                "route `/api//x` has an empty segment (`//`): write `/api/x`",
            ),
            (
                "//",
                RouteError::EmptySegment {
                    prefix: "//".into(),
                },
                "route `//` has an empty segment (`//`): write `/`",
            ),
        ];
        check_prefix_errors(cases);
    }

    #[test]
    fn prefix_errors_characters_and_patterns() {
        let cases: &[(&str, RouteError, &str)] = &[
            (
                "/%61pi",
                RouteError::EncodedUnreserved {
                    prefix: "/%61pi".into(),
                    encoded: "%61".into(),
                    plain: 'a',
                },
                "route `/%61pi` percent-encodes `a` as `%61`: letters, digits, `-`, `.`, `_` and `~` are decoded in request paths before routing, write them plainly: `/api`",
            ),
            (
                "/~me/%7e",
                RouteError::EncodedUnreserved {
                    prefix: "/~me/%7e".into(),
                    encoded: "%7e".into(),
                    plain: '~',
                },
                "route `/~me/%7e` percent-encodes `~` as `%7e`: letters, digits, `-`, `.`, `_` and `~` are decoded in request paths before routing, write them plainly: `/~me/~`",
            ),
            (
                "/100%",
                RouteError::BadPercent {
                    prefix: "/100%".into(),
                },
                "route `/100%` has a `%` that is not followed by two hex digits: write a literal `%` as `%25`",
            ),
            (
                "/a%zz",
                RouteError::BadPercent {
                    prefix: "/a%zz".into(),
                },
                "route `/a%zz` has a `%` that is not followed by two hex digits: write a literal `%` as `%25`",
            ),
            (
                "/café",
                RouteError::InvalidChar {
                    prefix: "/café".into(),
                    found: 'é',
                },
                "route `/café` has `é`, which a URL path carries only percent-encoded: write `/caf%C3%A9`",
            ),
            (
                "/a b",
                RouteError::InvalidChar {
                    prefix: "/a b".into(),
                    found: ' ',
                },
                "route `/a b` has ` `, which a URL path carries only percent-encoded: write `/a%20b`",
            ),
            (
                "/users/:id",
                RouteError::Pattern {
                    prefix: "/users/:id".into(),
                    segment: ":id".into(),
                },
                "route `/users/:id` has the pattern `:id`, but a route is a plain prefix that matches every path under it: write `/users` and read the rest of the path from the `omnia-path-info` header",
            ),
            (
                "/users/{id}/posts",
                RouteError::Pattern {
                    prefix: "/users/{id}/posts".into(),
                    segment: "{id}".into(),
                },
                "route `/users/{id}/posts` has the pattern `{id}`, but a route is a plain prefix that matches every path under it: write `/users` and read the rest of the path from the `omnia-path-info` header",
            ),
            (
                "/api/*",
                RouteError::Pattern {
                    prefix: "/api/*".into(),
                    segment: "*".into(),
                },
                "route `/api/*` has the pattern `*`, but a route is a plain prefix that matches every path under it: write `/api` and read the rest of the path from the `omnia-path-info` header",
            ),
            (
                "/*",
                RouteError::Pattern {
                    prefix: "/*".into(),
                    segment: "*".into(),
                },
                "route `/*` has the pattern `*`, but a route is a plain prefix that matches every path under it: write `/` and read the rest of the path from the `omnia-path-info` header",
            ),
            (
                "/api/.../x",
                RouteError::Pattern {
                    prefix: "/api/.../x".into(),
                    segment: "...".into(),
                },
                "route `/api/.../x` has `...` before its end: `/...` may only end a route, write `/api/...` (or `/api`) for everything under `/api`",
            ),
        ];
        check_prefix_errors(cases);
    }

    fn check_prefix_errors(cases: &[(&str, RouteError, &str)]) {
        for (prefix, error, message) in cases {
            assert_eq!(&HttpRoute::parse(prefix).unwrap_err(), error, "{prefix}");
            assert_eq!(route_error(None, prefix), *message, "{prefix}");
        }
    }

    #[test]
    fn host_errors() {
        let cases: &[(&str, RouteError, &str)] = &[
            (
                "",
                RouteError::EmptyHost,
                "a route's host cannot be empty: leave the host out to match every host",
            ),
            (
                "shop.example.com:8080",
                RouteError::HostWithPort {
                    host: "shop.example.com:8080".into(),
                },
                "route host `shop.example.com:8080` has a port, but a route matches its host on any port: write `shop.example.com`",
            ),
            (
                "[::1]:8080",
                RouteError::HostWithPort {
                    host: "[::1]:8080".into(),
                },
                "route host `[::1]:8080` has a port, but a route matches its host on any port: write `[::1]`",
            ),
            (
                "shop.example.com/api",
                RouteError::HostWithPath {
                    host: "shop.example.com/api".into(),
                },
                "route host `shop.example.com/api` has a path: write the host `shop.example.com` and put the path `/api` in the route",
            ),
            (
                "*.example.com",
                RouteError::WildcardHost {
                    host: "*.example.com".into(),
                },
                "route host `*.example.com` has a `*`, but hosts are matched exactly: give each host its own route, or leave the host out to match every host",
            ),
            (
                "shop..example.com",
                RouteError::InvalidHost {
                    host: "shop..example.com".into(),
                },
                "route host `shop..example.com` is not a host name (letters, digits, `-` and `_` in labels separated by `.`) or an IP address (`10.0.0.1`, `[::1]`)",
            ),
            (
                "shop example.com",
                RouteError::InvalidHost {
                    host: "shop example.com".into(),
                },
                "route host `shop example.com` is not a host name (letters, digits, `-` and `_` in labels separated by `.`) or an IP address (`10.0.0.1`, `[::1]`)",
            ),
            (
                ".",
                RouteError::InvalidHost { host: ".".into() },
                "route host `.` is not a host name (letters, digits, `-` and `_` in labels separated by `.`) or an IP address (`10.0.0.1`, `[::1]`)",
            ),
            (
                "[::1",
                RouteError::InvalidHost {
                    host: "[::1".into(),
                },
                "route host `[::1` is not a host name (letters, digits, `-` and `_` in labels separated by `.`) or an IP address (`10.0.0.1`, `[::1]`)",
            ),
            (
                "::1",
                RouteError::InvalidHost { host: "::1".into() },
                "route host `::1` is not a host name (letters, digits, `-` and `_` in labels separated by `.`) or an IP address (`10.0.0.1`, `[::1]`)",
            ),
        ];
        for (host, error, message) in cases {
            assert_eq!(
                &HttpRoute::new(Some(host), "/").unwrap_err(),
                error,
                "{host}"
            );
            assert_eq!(route_error(Some(host), "/"), *message, "{host}");
        }
    }

    fn duplicate(routes: &[(Option<&str>, &str, &'static str)]) -> Result<(), RouteError> {
        let routes = routes
            .iter()
            .map(|&(host, prefix, component)| (HttpRoute::new(host, prefix).unwrap(), component))
            .collect::<Vec<_>>();
        HttpRoutes::new(routes).map(|_| ())
    }

    #[test]
    fn duplicate_errors() {
        let error = duplicate(&[
            (None, "/", "site"),
            (None, "/api", "a"),
            (None, "/api/...", "b"),
        ])
        .unwrap_err();
        assert_eq!(
            error,
            RouteError::Duplicate {
                route: HttpRoute::parse("/api").unwrap(),
                first: "a".into(),
                second: "b".into()
            }
        );
        assert_eq!(
            error.to_string(),
            "components `a` and `b` both have the route `/api` on any host (`/api`, `/api/` and \
             `/api/...` are one route): give one of them another prefix or a host"
        );

        let error = duplicate(&[
            (Some("Shop.example.com"), "/", "b"),
            (Some("shop.example.com."), "/...", "a"),
        ])
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "components `b` and `a` both have the route `/` on host `shop.example.com` (`/` and \
             `/...` are one route): give one of them another prefix or a host"
        );

        let error = duplicate(&[(None, "/api/", "a"), (None, "/api", "a")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "component `a` has the route `/api` on any host twice (`/api`, `/api/` and \
             `/api/...` are one route): remove one"
        );

        // Not duplicates: another host, no host, another prefix, an encoded slash.
        duplicate(&[
            (Some("a.example.com"), "/api", "a"),
            (Some("b.example.com"), "/api", "b"),
            (None, "/api", "c"),
            (None, "/api/v2", "d"),
            (None, "/api%2Fv2", "e"),
        ])
        .unwrap();
    }

    #[test]
    fn errors_are_std_errors() {
        let error: Box<dyn std::error::Error> = Box::new(RouteError::EmptyPrefix);
        assert!(error.to_string().starts_with("a route cannot be empty"));
    }
}
