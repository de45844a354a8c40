//! [`MemoryStore`]: the embedded default backend.
//!
//! Buckets live in the process, shared by every instance (each request's fresh instance sees
//! what earlier ones wrote) and lost when the process exits. Every operation takes one short
//! lock on its bucket, so increments and compare-and-swaps are atomic.
//!
//! An optional size limit (`OMNIA_KEYVALUE_MEMORY_MAX`, see [`MemoryOptions`]) bounds the keys
//! and values of all buckets together; a write past it fails with an `error::other` that names
//! the setting, and the store keeps serving reads and deletes.
//!
//! `list-keys` pages in insertion order: each key gets a sequence number when it is created,
//! and the cursor is the last sequence number returned. A page therefore never skips a key
//! that exists throughout the listing, whatever else is written or deleted meanwhile.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::bail;
use async_trait::async_trait;
use omnia::FromEnv;
use omnia::config::{Setting, parse_size, var};

use crate::backend::{
    Bucket, Error, KeyPage, KeyValueStore, PAGE_SIZE, Result, Versioned, add_counter, parse_counter,
};

/// Settings of the in-memory store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryOptions {
    /// `OMNIA_KEYVALUE_MEMORY_MAX`: the most bytes of keys and values all buckets may hold
    /// together; unlimited when `None`.
    pub max_bytes: Option<usize>,
}

impl FromEnv for MemoryOptions {
    fn from_env() -> anyhow::Result<Self> {
        let max_bytes = var("OMNIA_KEYVALUE_MEMORY_MAX", |s| {
            let size = parse_size(s)?;
            if size == 0 {
                bail!("expected a size above zero such as 64MiB, got {s:?}");
            }
            Ok(size)
        })?;
        Ok(Self { max_bytes })
    }

    fn settings() -> Vec<Setting> {
        vec![Setting {
            env: "OMNIA_KEYVALUE_MEMORY_MAX",
            flag: None,
            value: "SIZE",
            default: "unlimited",
            help: "most bytes of keys and values the in-memory key-value store holds; writes past it fail",
        }]
    }
}

/// The in-memory key-value store. Clones share the same buckets.
#[derive(Clone, Default)]
pub struct MemoryStore {
    buckets: Arc<Mutex<HashMap<String, Arc<MemoryBucket>>>>,
    usage: Arc<Usage>,
}

impl MemoryStore {
    /// An empty store without a size limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with the limit of `options`.
    pub fn with_options(options: MemoryOptions) -> Self {
        Self {
            buckets: Arc::default(),
            usage: Arc::new(Usage {
                used: AtomicUsize::new(0),
                max: options.max_bytes,
            }),
        }
    }
}

#[async_trait]
impl KeyValueStore for MemoryStore {
    async fn open(&self, name: &str) -> Result<Arc<dyn Bucket>> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.entry(name.to_owned()).or_insert_with(|| {
            Arc::new(MemoryBucket {
                entries: Mutex::new(Entries::new(Arc::clone(&self.usage))),
            })
        });
        Ok(Arc::clone(bucket) as Arc<dyn Bucket>)
    }
}

/// Bytes of keys and values held by all buckets of a store, and the most allowed.
#[derive(Default)]
struct Usage {
    used: AtomicUsize,
    max: Option<usize>,
}

impl Usage {
    /// Accounts for an entry going from `old` to `new` bytes, if it fits.
    fn charge(&self, old: usize, new: usize) -> Result<()> {
        let fits = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let next = used.saturating_sub(old).saturating_add(new);
                (new <= old || self.max.is_none_or(|max| next <= max)).then_some(next)
            })
            .is_ok();
        if fits {
            Ok(())
        } else {
            Err(Error::other(format!(
                "the in-memory key-value store is full (OMNIA_KEYVALUE_MEMORY_MAX={} bytes): \
                 delete keys or raise the limit",
                self.max.unwrap_or_default()
            )))
        }
    }
}

/// One bucket of a [`MemoryStore`].
struct MemoryBucket {
    entries: Mutex<Entries>,
}

struct Entries {
    by_key: HashMap<String, Entry>,
    /// Keys by the sequence number they were created with: the `list-keys` order.
    by_seq: BTreeMap<u64, String>,
    /// The last sequence number or revision handed out (both come from this one counter).
    last: u64,
    usage: Arc<Usage>,
}

struct Entry {
    value: Vec<u8>,
    seq: u64,
    revision: u64,
}

impl Entries {
    fn new(usage: Arc<Usage>) -> Self {
        Self {
            by_key: HashMap::new(),
            by_seq: BTreeMap::new(),
            last: 0,
            usage,
        }
    }

    fn set(&mut self, key: &str, value: Vec<u8>) -> Result<()> {
        let old = self
            .by_key
            .get(key)
            .map_or(0, |e| key.len() + e.value.len());
        self.usage.charge(old, key.len() + value.len())?;
        self.last += 1;
        let next = self.last;
        if let Some(entry) = self.by_key.get_mut(key) {
            entry.value = value;
            entry.revision = next;
        } else {
            self.by_seq.insert(next, key.to_owned());
            let entry = Entry {
                value,
                seq: next,
                revision: next,
            };
            self.by_key.insert(key.to_owned(), entry);
        }
        Ok(())
    }

    fn delete(&mut self, key: &str) {
        if let Some(entry) = self.by_key.remove(key) {
            self.by_seq.remove(&entry.seq);
            let _ = self.usage.charge(key.len() + entry.value.len(), 0);
        }
    }
}

impl MemoryBucket {
    fn entries(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Bucket for MemoryBucket {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.entries().by_key.get(key).map(|e| e.value.clone()))
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.entries().set(key, value)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.entries().delete(key);
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.entries().by_key.contains_key(key))
    }

    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage> {
        let entries = self.entries();
        let start = cursor.unwrap_or(0).saturating_add(1);
        let mut rest = entries.by_seq.range(start..);
        let page: Vec<(u64, String)> = rest
            .by_ref()
            .take(PAGE_SIZE)
            .map(|(seq, key)| (*seq, key.clone()))
            .collect();
        let cursor = match (rest.next(), page.last()) {
            (Some(_), Some((seq, _))) => Some(*seq),
            _ => None,
        };
        Ok(KeyPage {
            keys: page.into_iter().map(|(_, key)| key).collect(),
            cursor,
        })
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        let mut entries = self.entries();
        let current = match entries.by_key.get(key) {
            Some(entry) => parse_counter(key, &entry.value)?,
            None => 0,
        };
        let next = add_counter(key, current, delta)?;
        entries.set(key, next.to_string().into_bytes())?;
        Ok(next)
    }

    async fn current(&self, key: &str) -> Result<Versioned> {
        Ok(match self.entries().by_key.get(key) {
            Some(entry) => Versioned {
                value: Some(entry.value.clone()),
                revision: entry.revision,
            },
            None => Versioned {
                value: None,
                revision: 0,
            },
        })
    }

    async fn swap(&self, key: &str, expected: &Versioned, value: Vec<u8>) -> Result<bool> {
        let mut entries = self.entries();
        let revision = entries.by_key.get(key).map_or(0, |e| e.revision);
        if revision != expected.revision {
            return Ok(false);
        }
        entries.set(key, value)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn bucket() -> Arc<dyn Bucket> {
        MemoryStore::new().open("b").await.expect("open")
    }

    #[tokio::test]
    async fn list_keys_survives_deletes_between_pages() {
        let b = bucket().await;
        let total = PAGE_SIZE * 2 + 7;
        for i in 0..total {
            b.set(&format!("k{i}"), vec![]).await.expect("set");
        }
        let first = b.list_keys(None).await.expect("page");
        assert_eq!(first.keys.len(), PAGE_SIZE);
        // Delete keys already listed: the rest must still all come.
        for key in &first.keys[..10] {
            b.delete(key).await.expect("delete");
        }
        let mut seen: Vec<String> = first.keys.clone();
        let mut cursor = first.cursor;
        while let Some(c) = cursor {
            let page = b.list_keys(Some(c)).await.expect("page");
            seen.extend(page.keys);
            cursor = page.cursor;
        }
        assert_eq!(seen.len(), total);
    }

    #[tokio::test]
    async fn swap_detects_a_rewrite_of_the_same_value() {
        let b = bucket().await;
        b.set("k", b"a".to_vec()).await.expect("set");
        let seen = b.current("k").await.expect("current");
        b.set("k", b"a".to_vec()).await.expect("set");
        assert!(!b.swap("k", &seen, b"x".to_vec()).await.expect("swap"));
        let seen = b.current("k").await.expect("current");
        assert!(b.swap("k", &seen, b"x".to_vec()).await.expect("swap"));
        assert_eq!(b.get("k").await.expect("get"), Some(b"x".to_vec()));
    }

    #[tokio::test]
    async fn size_limit_spans_buckets_and_frees_on_delete() {
        let store = MemoryStore::with_options(MemoryOptions {
            max_bytes: Some(100),
        });
        let a = store.open("a").await.expect("open");
        let b = store.open("b").await.expect("open");
        a.set("k", vec![0; 60]).await.expect("fits");
        let full = b.set("k", vec![0; 60]).await.expect_err("over the limit");
        assert!(
            full.to_string().contains("OMNIA_KEYVALUE_MEMORY_MAX"),
            "{full}"
        );
        a.set("k", vec![0; 10])
            .await
            .expect("shrinking always fits");
        b.set("k", vec![0; 60])
            .await
            .expect("fits after the shrink");
        b.delete("k").await.expect("delete");
        a.set("k", vec![0; 90])
            .await
            .expect("fits after the delete");
    }

    #[tokio::test]
    async fn swap_on_a_missing_key_creates_it_once() {
        let b = bucket().await;
        let seen = b.current("new").await.expect("current");
        assert_eq!(seen.value, None);
        assert!(b.swap("new", &seen, b"1".to_vec()).await.expect("swap"));
        assert!(!b.swap("new", &seen, b"2".to_vec()).await.expect("swap"));
    }
}
