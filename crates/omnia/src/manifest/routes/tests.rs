//! The route table's cases, in three spellings, and every refusal.

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

/// The "Spin-style reading": every route written as Spin writes it routes alike.
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
