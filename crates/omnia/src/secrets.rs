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
/// Values that are not URLs are redacted the same way, by their shape.
pub fn redact_url(value: &str) -> String {
    value
        .split(',')
        .map(redact_one)
        .collect::<Vec<_>>()
        .join(",")
}

fn redact_one(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    out.push_str(scheme);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => {
            match authority[..at].split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(HIDDEN);
                }
                None => out.push_str(HIDDEN),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    match tail.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((key, _)) if is_secret_param(key) => format!("{key}={HIDDEN}"),
                    _ => param.to_owned(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(tail),
    }
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
    /// The passwords and tokens of `value` (one URL or several separated by commas).
    pub fn of_url(value: &str) -> Self {
        let mut found = Vec::new();
        for url in value.split(',') {
            let rest = url.find("://").map_or(url, |i| &url[i + 3..]);
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(authority_end);
            if let Some(at) = authority.rfind('@') {
                let user_info = &authority[..at];
                let secret = user_info.split_once(':').map_or(user_info, |(_, pw)| pw);
                found.push(secret.to_owned());
            }
            if let Some((_, query)) = tail.split_once('?') {
                for param in query.split(['&', '#']) {
                    if let Some((key, secret)) = param.split_once('=')
                        && is_secret_param(key)
                    {
                        found.push(secret.to_owned());
                    }
                }
            }
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
            ("nats://h/x@y", "nats://h/x@y"),
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
