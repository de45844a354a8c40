//! The backend trait every key-value store implements.
//!
//! The host side of `wasi:keyvalue` ([`crate::host`]) only ever talks to a [`KeyValueStore`]
//! (which opens buckets) and the [`Bucket`]s it returns, so a backend crate (`omnia-redis`,
//! `omnia-nats`) implements these two traits and nothing else; [`crate::MemoryStore`] is the
//! embedded default. The traits are object-safe (through `async_trait`) because a binary picks
//! its backend at start-up, from configuration.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

/// How many keys one `list-keys` page holds (a backend may return fewer).
pub const PAGE_SIZE: usize = 1000;

/// Why a key-value operation failed: the WIT `error` variant the guest receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The store does not know the bucket (for example, a NATS KV bucket that does not exist
    /// while on-demand creation is off).
    NoSuchStore,
    /// The backend refused the operation (authentication or permissions).
    AccessDenied,
    /// Anything else: the backend is unreachable, a value is not a number, a name cannot be
    /// represented. The message is shown to the guest, so it names what failed and why.
    Other(String),
}

impl Error {
    /// An [`Error::Other`] with `message`.
    pub fn other(message: impl fmt::Display) -> Self {
        Self::Other(message.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchStore => f.write_str("no such store"),
            Self::AccessDenied => f.write_str("access denied"),
            Self::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

/// The result of a key-value operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One page of `list-keys`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// The keys of this page.
    pub keys: Vec<String>,
    /// Where the next page starts; `None` when this is the last page.
    pub cursor: Option<u64>,
}

/// A key's value as read by a compare-and-swap, with what the backend needs to detect a
/// concurrent change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The value, `None` if the key did not exist.
    pub value: Option<Vec<u8>>,
    /// The backend's version of the key (a revision number), or 0 if it compares values.
    pub revision: u64,
}

/// A key-value store: a namespace of buckets.
#[async_trait]
pub trait KeyValueStore: Send + Sync + 'static {
    /// Opens the bucket `name`. The name has already been checked by
    /// [`check_bucket_name`].
    async fn open(&self, name: &str) -> Result<Arc<dyn Bucket>>;
}

/// One bucket: a set of keys, each with a byte-string value.
///
/// Values are opaque bytes, except for [`Bucket::increment`], which keeps a counter as decimal
/// ASCII text (what Redis `INCRBY` does), so `get` after `increment` returns e.g. `b"42"`.
#[async_trait]
pub trait Bucket: Send + Sync + 'static {
    /// The value of `key`, `None` if it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Sets `key` to `value`, creating it if needed.
    async fn set(&self, key: &str, value: Vec<u8>) -> Result<()>;

    /// Removes `key`; removing a missing key succeeds.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Whether `key` exists.
    async fn exists(&self, key: &str) -> Result<bool>;

    /// One page of keys, starting at `cursor` (`None`: the first page). Paging through a bucket
    /// returns every key that exists throughout, possibly some more than once.
    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage>;

    /// Atomically adds `delta` (which may be negative) to the decimal counter at `key` (a
    /// missing key counts as 0) and returns the new value. Counters are signed 64-bit on every
    /// backend, as Redis's are.
    async fn increment(&self, key: &str, delta: i64) -> Result<i64>;

    /// Reads `key` for a compare-and-swap.
    async fn current(&self, key: &str) -> Result<Versioned>;

    /// Sets `key` to `value` if it is still as `expected` (read by [`Bucket::current`]);
    /// returns `false`, changing nothing, if it changed meanwhile.
    async fn swap(&self, key: &str, expected: &Versioned, value: Vec<u8>) -> Result<bool>;

    /// The values of `keys`, in order, `None` for missing keys. The default reads one key at a
    /// time; backends with a multi-key read override it.
    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<(String, Vec<u8>)>>> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            let value = self.get(&key).await?;
            values.push(value.map(|value| (key, value)));
        }
        Ok(values)
    }

    /// Sets every pair (not atomically as a whole). The default writes one key at a time.
    async fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<()> {
        for (key, value) in pairs {
            self.set(&key, value).await?;
        }
        Ok(())
    }

    /// Removes every key (not atomically as a whole). The default removes one key at a time.
    async fn delete_many(&self, keys: Vec<String>) -> Result<()> {
        for key in keys {
            self.delete(&key).await?;
        }
        Ok(())
    }
}

/// The longest bucket name accepted.
pub const MAX_BUCKET_NAME: usize = 64;

/// Checks a bucket name against the rule every backend can represent: 1 to
/// [`MAX_BUCKET_NAME`] characters from `A-Z a-z 0-9 _ -` (NATS KV's rule; Redis uses the name
/// in a key prefix). Checked once, before any backend sees the name, so a guest gets the same
/// answer whichever backend is configured.
pub fn check_bucket_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= MAX_BUCKET_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "invalid bucket name {name:?}: use 1 to {MAX_BUCKET_NAME} characters from A-Z a-z 0-9 _ -"
        )))
    }
}

/// The counter stored at `key`: decimal text, an optional `-` then digits, in the signed 64-bit
/// range; anything else is an error naming `key`.
pub fn parse_counter(key: &str, value: &[u8]) -> Result<i64> {
    let digits = value.strip_prefix(b"-").unwrap_or(value);
    let decimal = !digits.is_empty() && digits.iter().all(u8::is_ascii_digit);
    std::str::from_utf8(value)
        .ok()
        .filter(|_| decimal)
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| {
            Error::Other(format!(
                "cannot increment key {key:?}: its value is not a decimal number in the signed \
                 64-bit range"
            ))
        })
}

/// Adds `delta` to `current`, or an error naming `key` when the sum leaves the signed 64-bit
/// range.
pub fn add_counter(key: &str, current: i64, delta: i64) -> Result<i64> {
    current.checked_add(delta).ok_or_else(|| {
        Error::Other(format!(
            "cannot increment key {key:?}: {current} + {delta} is outside the signed 64-bit range"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for ok in ["a", "default", "A_b-9", &"x".repeat(MAX_BUCKET_NAME)] {
            assert_eq!(check_bucket_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a.b",
            "a:b",
            "a/b",
            "é",
            &"x".repeat(MAX_BUCKET_NAME + 1),
        ] {
            let Err(Error::Other(message)) = check_bucket_name(bad) else {
                panic!("{bad:?} accepted");
            };
            assert!(message.contains("A-Z a-z 0-9 _ -"), "{message}");
        }
    }

    #[test]
    fn counters() {
        assert_eq!(parse_counter("k", b"42"), Ok(42));
        assert_eq!(parse_counter("k", b"-1"), Ok(-1));
        assert!(parse_counter("k", b"-").is_err());
        assert!(parse_counter("k", b"9223372036854775808").is_err());
        assert!(parse_counter("k", b"+1").is_err());
        assert!(parse_counter("k", b"").is_err());
        assert!(parse_counter("k", b"4 2").is_err());
        assert!(parse_counter("k", b"\xff").is_err());
        assert_eq!(add_counter("k", 1, 2), Ok(3));
        assert!(add_counter("k", i64::MAX, 1).is_err());
        assert!(add_counter("k", i64::MIN, -1).is_err());
        assert_eq!(add_counter("k", 1, -3), Ok(-2));
    }
}
