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

use normalise::{bare_host, is_under, normalise_host, normalise_prefix, normalise_request_path};

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

    /// The same routes, each component `c` named by `f(c)` instead (an id by an index, say).
    #[must_use]
    pub fn map<D>(self, mut f: impl FnMut(C) -> D) -> HttpRoutes<D> {
        HttpRoutes {
            entries: self
                .entries
                .into_iter()
                .map(|(route, component)| (route, f(component)))
                .collect(),
        }
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

mod error;
mod normalise;
#[cfg(test)]
mod tests;

pub use error::RouteError;
