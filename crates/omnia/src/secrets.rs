//! Keeping credentials out of logs and error messages.
//!
//! Connection URLs carry passwords and tokens in several places: the user-info of each server
//! in a comma-separated list (`nats://a:pw@h1,nats://b:pw@h2`), query parameters of socket URLs
//! (`redis+unix:///run/redis.sock?pass=pw`), and values so malformed that no parser accepts them.
//! [`redact_url`] hides every such secret in a value before it is shown; [`Secrets`] remembers the
//! secrets of a value so that any other text (a library's error message, which may echo the URL)
//! can be scrubbed of them too.

use std::fmt;

/// Query parameters whose value is a credential.
const SECRET_PARAMS: &[&str] = &["pass", "password", "token", "secret", "auth", "nkey", "jwt"];

/// What replaces a hidden secret.
pub const HIDDEN: &str = "***";

/// `value` (one URL, or several separated by commas) with every password and token replaced by
/// `***`: `redis://app:secret@host` becomes `redis://app:***@host`, `nats://tok@h` becomes
/// `nats://***@h`, `redis+unix:///s.sock?pass=pw` becomes `redis+unix:///s.sock?pass=***`.
///
/// Values that are not valid URLs are redacted by their shape, so that a typo never prints a
/// password: everything before the last `@` of a URL counts as its user-info, whatever it holds
/// (`redis://:pw/x@h` and `redis//:pw@h` show no `pw`). A value with a `@` in its path is
/// redacted more than it needs to be, never less.
pub fn redact_url(value: &str) -> String {
    urls(value)
        .iter()
        .map(|url| redact_one(url))
        .collect::<Vec<_>>()
        .join(",")
}

/// The URLs of a comma-separated list. A piece that neither starts a URL of its own (`://`)
/// nor follows a complete one (with its `@`) belongs to the one before: it is a comma inside
/// a password (`redis://u:a,b@h`).
fn urls(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for piece in value.split(',') {
        match out.last_mut() {
            Some(last) if !piece.contains("://") && !last.contains('@') && piece.contains('@') => {
                last.push(',');
                last.push_str(piece);
            }
            _ => out.push(piece.to_owned()),
        }
    }
    out
}

/// Where the user-info of `url` is, as a byte range: from the start of its authority (after
/// `://`, or after `//` when the colon is missing, or the start) to its last `@`.
fn user_info(url: &str) -> Option<std::ops::Range<usize>> {
    let at = url.rfind('@')?;
    let head = &url[..at];
    let start = head
        .find("://")
        .map(|i| i + 3)
        .or_else(|| head.find("//").map(|i| i + 2))
        .unwrap_or(0);
    Some(start..at)
}

/// The secret values of the query of `tail` (the part of a URL after its user-info).
fn query_secrets(tail: &str) -> impl Iterator<Item = (&str, &str)> {
    tail.split_once('?')
        .map_or("", |(_, query)| query)
        .split(['&', '#'])
        .filter_map(|param| param.split_once('='))
        .filter(|(key, _)| is_secret_param(key))
}

fn redact_one(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let tail = match user_info(url) {
        Some(range) => {
            out.push_str(&url[..range.start]);
            match url[range.clone()].split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(HIDDEN);
                }
                None => out.push_str(HIDDEN),
            }
            &url[range.end..]
        }
        None => url,
    };
    let mut rest = tail.to_owned();
    for (key, secret) in query_secrets(tail) {
        rest = rest.replace(&format!("{key}={secret}"), &format!("{key}={HIDDEN}"));
    }
    out.push_str(&rest);
    out
}

fn is_secret_param(key: &str) -> bool {
    SECRET_PARAMS.iter().any(|s| key.eq_ignore_ascii_case(s))
}

/// The secrets found in a configuration value, for scrubbing them out of any text.
///
/// ```
/// let secrets = omnia::secrets::Secrets::of_url("nats://u:hunter22@h1:4222,nats://tok3n@h2");
/// assert_eq!(
///     secrets.scrub("auth failed for u:hunter22 and tok3n"),
///     "auth failed for u:*** and ***"
/// );
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// The passwords and tokens of `value` (one URL or several separated by commas), found as
    /// [`redact_url`] finds them.
    pub fn of_url(value: &str) -> Self {
        let mut found = Vec::new();
        for url in urls(value) {
            let tail = match user_info(&url) {
                Some(range) => {
                    let info = &url[range.clone()];
                    found.push(info.split_once(':').map_or(info, |(_, pw)| pw).to_owned());
                    &url[range.end..]
                }
                None => url.as_str(),
            };
            found.extend(query_secrets(tail).map(|(_, secret)| secret.to_owned()));
        }
        Self::new(found)
    }

    /// Explicit secrets (a token, a password from its own variable).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut found: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        // Longest first, so a secret that contains another is hidden whole.
        found.sort_by_key(|s| std::cmp::Reverse(s.len()));
        found.dedup();
        Self(found)
    }

    /// Adds the secrets of `other`.
    #[must_use]
    pub fn and(self, other: Secrets) -> Self {
        Self::new(self.0.into_iter().chain(other.0))
    }

    /// `text` with every secret replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.0 {
            text = text.replace(secret.as_str(), HIDDEN);
            let encoded = percent_decode(secret);
            if encoded != *secret {
                text = text.replace(encoded.as_str(), HIDDEN);
            }
        }
        text
    }

    /// `err` with every secret scrubbed from its message chain.
    pub fn scrub_error(&self, err: &anyhow::Error) -> anyhow::Error {
        anyhow::Error::msg(self.scrub(&format!("{err:#}")))
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} hidden)", self.0.len())
    }
}

/// `s` with its `%xx` escapes decoded (URL user-info is percent-encoded; libraries may echo
/// either form).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(percent_decode("Bearer%20abc%3D"), "Bearer abc=");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn urls() {
        for (url, redacted) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
            ("redis://app:p@ss@h", "redis://app:***@h"),
            ("nats://token@h:4222", "nats://***@h:4222"),
            // A `@` in a path cannot be told from one ending a malformed user-info.
            ("nats://h/x@y", "nats://***@y"),
            ("not a url", "not a url"),
            (
                "nats://a:one@h1:4222,nats://b:two@h2:4222",
                "nats://a:***@h1:4222,nats://b:***@h2:4222",
            ),
            (
                "redis+unix:///run/redis.sock?db=1&pass=secret",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            ("unix:///s.sock?password=pw", "unix:///s.sock?password=***"),
            ("user:pw@host:4222", "user:***@host:4222"),
            ("redis://u:pw @ bad url", "redis://u:***@ bad url"),
        ] {
            assert_eq!(redact_url(url), redacted, "{url}");
        }
    }

    /// Malformed URLs with passwords (issue: passwords in the clear when a URL is malformed):
    /// none may show its secret, and the secrets found are the ones hidden.
    #[test]
    fn malformed_urls_show_no_password() {
        for (url, redacted) in [
            (
                "redis://:s3cret/x@127.0.0.1:1/",
                "redis://:***@127.0.0.1:1/",
            ),
            ("redis://:s3c#ret@127.0.0.1:1/", "redis://:***@127.0.0.1:1/"),
            ("redis://:s3c?ret@127.0.0.1:1/", "redis://:***@127.0.0.1:1/"),
            ("redis//:s3cret@127.0.0.1:1", "redis//:***@127.0.0.1:1"),
            ("redis:/:s3cret@127.0.0.1", "redis:***@127.0.0.1"),
            ("redis:s3cret@127.0.0.1", "redis:***@127.0.0.1"),
            ("redis://u:a,b@h", "redis://u:***@h"),
            (
                "redis://u:s3cret@h:notaport/x",
                "redis://u:***@h:notaport/x",
            ),
            ("redis://u:s3cret@@h", "redis://u:***@h"),
            (
                "nats//u:s3cret@127.0.0.1:4222",
                "nats//u:***@127.0.0.1:4222",
            ),
            ("nats://u:s3cret@h1,h2@", "nats://u:***@h1,***@"),
            ("nats://s3c/ret@h:4222", "nats://***@h:4222"),
            ("http://h:4318?token=s3cret#x", "http://h:4318?token=***#x"),
            (" redis://u:s3cret@h ", " redis://u:***@h "),
        ] {
            assert_eq!(redact_url(url), redacted, "{url}");
            let secrets = Secrets::of_url(url);
            assert!(!secrets.scrub(url).contains("s3c"), "{url}: {secrets:?}");
        }
    }

    #[test]
    fn scrubbing() {
        let secrets = Secrets::of_url("nats://a:one1@h1,nats://tok2@h2,unix:///s?pass=three3");
        assert_eq!(secrets.scrub("one1 tok2 three3 keep"), "*** *** *** keep");
        let encoded = Secrets::of_url("redis://u:p%40ss@h");
        assert_eq!(encoded.scrub("p@ss and p%40ss"), "*** and ***");
        assert_eq!(Secrets::of_url("redis://h").scrub("text"), "text");
        let both = Secrets::new(["longer-secret".to_string(), "secret".to_string()]);
        assert_eq!(both.scrub("x longer-secret y"), "x *** y");
    }
}
