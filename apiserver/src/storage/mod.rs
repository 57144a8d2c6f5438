//! The storage interface every resource is kept behind (upstream k8s.io/apiserver/pkg/storage):
//! keys and opaque values, revisions from the backend, optimistic concurrency on mod revision.
//! `etcd` is the real backend; `memory` keeps the same contract for unit tests. `ttl` puts
//! expiring prefixes (Events) in front of either, `lease` shares leases between such writes,
//! and `paging` reads a whole prefix a page at a time.

pub mod etcd;
pub mod lease;
pub mod memory;
pub mod paging;
pub mod ttl;
/// The backend conformance suite; both backends run it (memory in unit tests, etcd in
/// `tests/storage_etcd.rs`).
#[doc(hidden)]
pub mod tests;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use std::sync::Arc;

/// One stored value with its revisions (the resourceVersion is `mod_revision`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    pub mod_revision: i64,
    pub create_revision: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
    /// No change: the backend has seen everything up to `mod_revision` (etcd progress notify).
    Progress,
}

/// A change seen by a watch. For a delete, `value` is the last value before deletion and
/// `mod_revision` the revision of the deletion itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageEvent {
    pub kind: EventKind,
    pub key: String,
    pub value: Bytes,
    pub mod_revision: i64,
    /// The value before this change, when there was one.
    pub prev: Option<Bytes>,
}

#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// 0 = the latest revision.
    pub revision: i64,
    /// Start at this key (inclusive), for continuation.
    pub start_key: Option<String>,
    /// 0 = no limit. A backend may return fewer keys, with `more`, when that many would not
    /// fit in one response; an unlimited list is paged inside the backend, at one revision.
    pub limit: i64,
}

#[derive(Clone, Debug)]
pub struct ListResult {
    pub items: Vec<KeyValue>,
    /// The revision the list was read at.
    pub revision: i64,
    /// More keys remain after the last item.
    pub more: bool,
}

/// A cheap summary of a prefix at one revision: enough for a cache to prove it is up to date.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Probe {
    /// The revision the summary was read at.
    pub revision: i64,
    /// How many keys exist under the prefix.
    pub count: i64,
    /// The highest mod revision among those keys (0 when there are none).
    pub max_mod_revision: i64,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StorageError {
    #[error("key not found: {key}")]
    NotFound { key: String },
    #[error("key exists: {key}")]
    AlreadyExists { key: String },
    /// The compare on mod_revision failed; `current` is the value now stored, if any.
    #[error("conflict on {key}")]
    Conflict { key: String, current: Option<Box<KeyValue>> },
    #[error("required revision {requested} has been compacted (compacted up to {compacted})")]
    Compacted { requested: i64, compacted: i64 },
    /// Nothing was sent, or nothing could have taken effect: the caller may retry at once.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The request went out and no answer came in time: it may or may not have taken effect.
    #[error("storage request timed out: {0}")]
    Timeout(String),
    #[error("storage error: {0}")]
    Internal(String),
}

pub type StorageResult<T> = Result<T, StorageError>;
pub type EventStream = BoxStream<'static, StorageResult<StorageEvent>>;

/// The backend contract. Revisions are global and increase with every write.
pub trait Storage: Send + Sync + 'static {
    /// Creates `key` if it does not exist; returns the new revision.
    fn create(&self, key: &str, value: Bytes) -> BoxFuture<'_, StorageResult<i64>>;
    /// As `create`, the key then expiring about `ttl` after the write: the backend deletes it
    /// (a Delete event as any other). Writes made close together may share one lease, so a
    /// key may live up to a small fraction of `ttl` longer (see [`lease`]).
    fn create_with_ttl(&self, key: &str, value: Bytes, ttl: std::time::Duration) -> BoxFuture<'_, StorageResult<i64>>;
    fn get(&self, key: &str) -> BoxFuture<'_, StorageResult<Option<KeyValue>>>;
    /// Keys under `prefix` in key order, read at one revision.
    fn list(&self, prefix: &str, opts: ListOptions) -> BoxFuture<'_, StorageResult<ListResult>>;
    /// Replaces `key` only if its mod revision is still `expected_revision`; returns the new revision.
    fn update(&self, key: &str, value: Bytes, expected_revision: i64) -> BoxFuture<'_, StorageResult<i64>>;
    /// As `update`, with the expiry of `create_with_ttl` counted from this write.
    fn update_with_ttl(
        &self,
        key: &str,
        value: Bytes,
        expected_revision: i64,
        ttl: std::time::Duration,
    ) -> BoxFuture<'_, StorageResult<i64>>;
    /// Deletes `key`, only if its mod revision is `expected_revision` when given. Returns the
    /// deleted value and the revision of the deletion.
    fn delete(&self, key: &str, expected_revision: Option<i64>) -> BoxFuture<'_, StorageResult<(KeyValue, i64)>>;
    /// Changes under `prefix` from `start_revision` (inclusive); `Compacted` if that is gone.
    /// Each notification of `progress` asks for a `Progress` event once the watch is caught up.
    fn watch(
        &self,
        prefix: &str,
        start_revision: i64,
        progress: Arc<tokio::sync::Notify>,
    ) -> BoxFuture<'_, StorageResult<EventStream>>;
    /// The key count and newest mod revision under `prefix`, read at the current revision.
    fn probe(&self, prefix: &str) -> BoxFuture<'_, StorageResult<Probe>>;
    /// The backend's current revision.
    fn current_revision(&self) -> BoxFuture<'_, StorageResult<i64>>;
    /// Drops history up to `revision`. A revision already compacted (by anyone) is not an
    /// error: the history is gone either way.
    fn compact(&self, revision: i64) -> BoxFuture<'_, StorageResult<()>>;
    /// The highest revision this client knows history was compacted to (by its own `compact`
    /// calls, or seen in a backend answer); 0 when none. Reads and watches from below it fail.
    fn compacted_revision(&self) -> i64;
}

pub type DynStorage = Arc<dyn Storage>;

/// What `guaranteed_update` asks of the caller after reading the current value.
pub enum UpdateDecision {
    /// Write this value.
    Write(Bytes),
    /// Leave the object as it is (a no-op update).
    Unchanged,
    /// Delete the object (e.g. the last finalizer of a deleting object went away).
    Delete,
}

/// What `guaranteed_update` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    Written(KeyValue),
    Unchanged(KeyValue),
    Deleted(KeyValue, i64),
}

/// Upstream's GuaranteedUpdate: read, let `try_update` decide, write with a compare on the
/// revision read, and retry from a fresh read on conflict. `try_update` sees `None` when the
/// key is absent and may create it (create-on-update / apply).
pub async fn guaranteed_update<E, F>(storage: &dyn Storage, key: &str, try_update: F) -> Result<UpdateOutcome, E>
where
    E: From<StorageError>,
    F: FnMut(Option<&KeyValue>) -> Result<UpdateDecision, E>,
{
    guaranteed_update_from(storage, key, None, try_update).await
}

/// As [`guaranteed_update`], starting from `suggestion` (the watch cache's copy) instead of
/// a read: the compare on its revision makes a stale copy cost one conflict, never a lost
/// write. What is decided from a possibly stale copy (an error, a no-op) is only final once
/// confirmed against a fresh read, as upstream's GuaranteedUpdate with a cached object.
pub async fn guaranteed_update_from<E, F>(
    storage: &dyn Storage,
    key: &str,
    suggestion: Option<KeyValue>,
    mut try_update: F,
) -> Result<UpdateOutcome, E>
where
    E: From<StorageError>,
    F: FnMut(Option<&KeyValue>) -> Result<UpdateDecision, E>,
{
    let (mut current, mut is_current) = match suggestion {
        Some(kv) => (Some(kv), false),
        None => (storage.get(key).await?, true),
    };
    // As upstream's GuaranteedUpdate: a write without a precondition retries its conflicts
    // until the request's deadline (the default request timeout, 60 s), so under contention
    // it waits instead of failing; only then does it give up with a Conflict.
    let deadline = std::time::Instant::now() + GUARANTEED_UPDATE_DEADLINE;
    while std::time::Instant::now() < deadline {
        let decision = match try_update(current.as_ref()) {
            Ok(d) => d,
            Err(_) if !is_current => {
                current = storage.get(key).await?;
                is_current = true;
                continue;
            }
            Err(e) => return Err(e),
        };
        if matches!(decision, UpdateDecision::Unchanged) && !is_current {
            current = storage.get(key).await?;
            is_current = true;
            continue;
        }
        let result = match (&decision, &current) {
            (UpdateDecision::Unchanged, Some(kv)) => return Ok(UpdateOutcome::Unchanged(kv.clone())),
            (UpdateDecision::Unchanged, None) => return Err(StorageError::NotFound { key: key.into() }.into()),
            (UpdateDecision::Write(v), None) => storage.create(key, v.clone()).await.map(|rev| (v.clone(), rev, rev)),
            (UpdateDecision::Write(v), Some(kv)) => {
                storage.update(key, v.clone(), kv.mod_revision).await.map(|rev| (v.clone(), rev, kv.create_revision))
            }
            (UpdateDecision::Delete, None) => return Err(StorageError::NotFound { key: key.into() }.into()),
            (UpdateDecision::Delete, Some(kv)) => match storage.delete(key, Some(kv.mod_revision)).await {
                Ok((old, rev)) => return Ok(UpdateOutcome::Deleted(old, rev)),
                Err(e) => Err(e),
            },
        };
        match result {
            Ok((value, rev, create_revision)) => {
                return Ok(UpdateOutcome::Written(KeyValue {
                    key: key.into(),
                    value,
                    mod_revision: rev,
                    create_revision,
                }))
            }
            Err(StorageError::Conflict { current: c, .. }) => {
                current = c.map(|b| *b);
                is_current = true;
            }
            Err(StorageError::AlreadyExists { .. }) => {
                current = storage.get(key).await?;
                is_current = true;
            }
            Err(StorageError::NotFound { .. }) => {
                current = None;
                is_current = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StorageError::Conflict { key: key.into(), current: None }.into())
}

/// How long an update keeps retrying its conflicts (upstream's `--request-timeout`).
pub const GUARANTEED_UPDATE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// The end of a prefix range: the prefix with its last byte incremented.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
