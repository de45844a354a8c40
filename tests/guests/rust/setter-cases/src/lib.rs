//! The values both echo guests try the request setters with (`/setters`): valid and invalid
//! paths, authorities, schemes and methods. `tests/tests/http.rs` checks the answers, and the
//! conformance run compares them with `wasmtime serve`. The guests differ only in how they make
//! a request and call a setter (WASI 0.2's `outgoing-request`, 0.3's `request`).

/// A request setter.
#[derive(Clone, Copy, Debug)]
pub enum Setter {
    /// `set-path-with-query`.
    PathWithQuery,
    /// `set-authority`.
    Authority,
    /// `set-scheme` (with `scheme::other`).
    Scheme,
    /// `set-method` (with `method::other`).
    Method,
}

/// Each setter, its name in the table, and the values it is tried with.
const CASES: &[(Setter, &str, &[&str])] = &[
    (
        Setter::PathWithQuery,
        "path-with-query",
        &[
            "/", "/a/b?x=1", "?x=1", "", "a/b/c", "../x", "*", "http://evil.example/x",
            "//evil.example/x", "/a b", "/a\u{7f}", "/%41", "/\u{fc}", "/a#frag",
        ],
    ),
    (
        Setter::Authority,
        "authority",
        &["example.com", "example.com:8080", "[::1]:80", "user@example.com", "", "a b", "x:99999"],
    ),
    (Setter::Scheme, "scheme", &["ftp", "bad scheme", ""]),
    (Setter::Method, "method", &["PURGE", "bad method", ""]),
];

/// The table of answers: a line `setter "value": ok` or `... err` for each case, `accepts`
/// telling whether a fresh request's setter took the value.
pub fn table(mut accepts: impl FnMut(Setter, &str) -> bool) -> String {
    let mut out = String::new();
    for (setter, name, values) in CASES {
        for value in *values {
            let answer = if accepts(*setter, value) { "ok" } else { "err" };
            out.push_str(&format!("{name} {value:?}: {answer}\n"));
        }
    }
    out
}
