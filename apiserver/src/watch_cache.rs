//! One cache per resource (upstream's cacher): a single storage watch keeps a decoded copy of
//! every object plus a window of recent events; watchers and lists are served from it.
//!
//! Freshness is proven, never assumed from etcd's requested progress notifications: etcd 3.4
//! sends those on a control stream that can overtake events still queued for the watch
//! (etcd-io/etcd#15220), and trusting one drops those events. Instead a consistent read either
//! waits for the events, or probes the backend: when no key under the prefix changed after the
//! cache's last event and the key count matches, the cache equals the backend at the probe's
//! revision.

use crate::storage::{DynStorage, EventKind, StorageError, StorageEvent};
use bytes::Bytes;
use parking_lot::RwLock;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, Notify};

/// How many past events a watcher can resume from.
const HISTORY: usize = 10_000;

/// Slots of the live event ring each cache allocates up front (about 40 bytes each). A
/// watcher that falls further behind than this resumes from `history` (`resume`), so the
/// ring need not be as long as the history: at 16,384 slots the rings of 45 resources
/// alone took over 20 MB of the idle apiserver.
const LIVE_RING: usize = 1_024;

/// How many of the newest events keep their encoded watch frames. Live watchers send an
/// event within this window; older frames would double the history's memory (the soak's
/// RSS levelled at 169 MB with every frame kept), and a watcher resuming from further back
/// encodes its frames again.
const FRAME_WINDOW: usize = 1_024;

/// An object as the cache keeps it: its JSON encoding with the resourceVersion set, plus a
/// small copy of the fields selectors and admission read. A decoded `Value` of a pod takes
/// several times the memory of its JSON, so the whole object is decoded only on demand.
#[derive(Debug)]
pub struct CachedObject {
    pub key: String,
    /// name, namespace, labels, deletionTimestamp and every field-selector field, at their
    /// usual paths (so selectors match on it as on the whole object).
    pub fields: Value,
    pub json: Bytes,
    pub rv: i64,
}

impl CachedObject {
    /// The whole object, decoded from its JSON.
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }
}

/// Paths kept in [`CachedObject::fields`] besides the field selectors': labels for label
/// selectors, what namespace admission checks, and a PriorityClass's globalDefault.
const KEPT: &[&str] = &["/metadata/labels", "/metadata/deletionTimestamp", "/globalDefault"];

/// The small copy of `v` that [`CachedObject::fields`] holds.
fn selectable_fields(v: &Value) -> Value {
    let mut out = Value::Object(Default::default());
    for ptr in crate::selectors::field::selectable_pointers().chain(KEPT.iter().copied()) {
        let Some(found) = v.pointer(ptr) else { continue };
        let mut cur = &mut out;
        let mut parts = ptr.trim_start_matches('/').split('/').peekable();
        while let Some(part) = parts.next() {
            let Some(map) = cur.as_object_mut() else { break };
            if parts.peek().is_none() {
                map.insert(part.to_string(), found.clone());
                break;
            }
            cur = map.entry(part).or_insert_with(|| Value::Object(Default::default()));
        }
    }
    out
}

/// A stored value decoded with its resourceVersion stamped; None for a value that is not an object.
pub fn decode_value(value: &[u8], rv: i64) -> Option<Value> {
    let mut v: Value = serde_json::from_slice(value).ok()?;
    let meta = v.as_object_mut()?.entry("metadata").or_insert_with(|| Value::Object(Default::default()));
    meta.as_object_mut()?.insert("resourceVersion".into(), Value::String(rv.to_string()));
    Some(v)
}

pub type Obj = Arc<CachedObject>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

#[derive(Debug)]
pub struct CacheEvent {
    pub kind: EventType,
    pub object: Obj,
    /// The object before this change (selectors need it to turn a change into ADDED/DELETED).
    pub prev: Option<Obj>,
    pub rv: i64,
    /// The event's place in the cache's sequence, set when published: several events can
    /// share a revision (etcd deletes all keys of an expired lease in one transaction).
    pub seq: u64,
    /// The JSON watch frame of this event per type a watcher may send it as (a selector can
    /// turn MODIFIED into ADDED or DELETED): encoded by the first watcher, shared by the rest.
    /// Released once the event is FRAME_WINDOW events old (see `publish`): live watchers have
    /// sent it by then, and a frame is a second copy of the object kept for the history's life.
    frames: parking_lot::Mutex<[Option<Bytes>; 3]>,
}

impl CacheEvent {
    pub fn new(kind: EventType, object: Obj, prev: Option<Obj>, rv: i64) -> Self {
        CacheEvent { kind, object, prev, rv, seq: 0, frames: Default::default() }
    }

    /// `{"type":"<kind>","object":<object>}\n`, built once per event and type.
    pub fn json_frame(&self, kind: EventType) -> Bytes {
        let slot = match kind {
            EventType::Added => 0,
            EventType::Modified => 1,
            EventType::Deleted => 2,
        };
        let mut frames = self.frames.lock();
        frames[slot]
            .get_or_insert_with(|| {
                let json = &self.object.json;
                let mut out = Vec::with_capacity(json.len() + 32);
                out.extend_from_slice(b"{\"type\":\"");
                out.extend_from_slice(kind.as_str().as_bytes());
                out.extend_from_slice(b"\",\"object\":");
                out.extend_from_slice(json);
                out.extend_from_slice(b"}\n");
                Bytes::from(out)
            })
            .clone()
    }
}

struct State {
    objects: BTreeMap<String, Obj>,
    /// The revision of the last event applied; watchers' positions are counted in it.
    revision: i64,
    /// A later revision at which `objects` were proven equal to the backend's, or 0.
    fresh: i64,
    history: VecDeque<Arc<CacheEvent>>,
    /// Events after this revision are all in `history`.
    oldest: i64,
    /// The `seq` of the last event published.
    seq: u64,
    ready: bool,
}

/// What a watcher gets when it starts: the past it asked for, then the live feed.
pub struct Subscription {
    pub initial: Vec<Arc<CacheEvent>>,
    pub live: broadcast::Receiver<Arc<CacheEvent>>,
    /// Live events at or below this revision are skipped (a requested revision the cache
    /// had not reached yet; 0 for a snapshot).
    pub start_rv: i64,
    /// Live events up to this `seq` are already in the initial part (or older than it).
    pub start_seq: u64,
    /// The revision the initial part is proven to reflect (at least `start_rv`): a
    /// watch-list's initial-events-end bookmark carries it.
    pub snapshot_rv: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("too old resource version: {requested} ({oldest})")]
    TooOld { requested: i64, oldest: i64 },
    #[error("the watch cache is not ready yet")]
    NotReady,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub struct WatchCache {
    prefix: String,
    kind: &'static str,
    api_version: String,
    storage: DynStorage,
    state: RwLock<State>,
    events: broadcast::Sender<Arc<CacheEvent>>,
    revision_tx: tokio::sync::watch::Sender<i64>,
    /// Handed to the storage watch; never notified (see the module comment).
    progress: Arc<Notify>,
    /// One freshness probe at a time: the waiters queued behind it reuse its result.
    probing: tokio::sync::Mutex<std::time::Instant>,
}

/// Decodes a stored value and stamps its resourceVersion; None for a value that is not an object.
pub fn decode(key: &str, value: &[u8], rv: i64) -> Option<Obj> {
    let mut v: Value = serde_json::from_slice(value).ok()?;
    let meta = v.as_object_mut()?.entry("metadata").or_insert_with(|| Value::Object(Default::default()));
    let meta = meta.as_object_mut()?;
    let had_rv = meta.contains_key("resourceVersion");
    let rv_text = rv.to_string();
    meta.insert("resourceVersion".into(), Value::String(rv_text.clone()));
    // The stored bytes plus the resourceVersion spliced in are what serializing `v` would give
    // (the value was written by serde_json), one serialization less per event.
    let json = match metadata_end(value).filter(|_| !had_rv) {
        Some((end, has_members)) => {
            let mut out = Vec::with_capacity(value.len() + rv_text.len() + 24);
            out.extend_from_slice(&value[..end]);
            if has_members {
                out.push(b',');
            }
            out.extend_from_slice(b"\"resourceVersion\":\"");
            out.extend_from_slice(rv_text.as_bytes());
            out.push(b'"');
            out.extend_from_slice(&value[end..]);
            out
        }
        None => serde_json::to_vec(&v).ok()?,
    };
    Some(Arc::new(CachedObject { key: key.into(), fields: selectable_fields(&v), json: Bytes::from(json), rv }))
}

/// The index of the closing brace of the top-level `"metadata"` object of a JSON object, and
/// whether that object has members; None when there is none or the bytes are not plain JSON.
fn metadata_end(json: &[u8]) -> Option<(usize, bool)> {
    let ws = |i: &mut usize| {
        while *i < json.len() && json[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let mut i = 0;
    ws(&mut i);
    if json.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut found = None;
    loop {
        ws(&mut i);
        match json.get(i)? {
            b'}' => return found,
            b'"' => {}
            _ => return None,
        }
        let key_end = skip_string(json, i)?;
        let key = &json[i + 1..key_end - 1];
        i = key_end;
        ws(&mut i);
        if json.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        ws(&mut i);
        let start = i;
        i = skip_value(json, i)?;
        if key == b"metadata" {
            // Duplicate keys: the last one wins, as when parsing.
            found = None;
            if json.get(start) == Some(&b'{') {
                let inner = &json[start + 1..i - 1];
                found = Some((i - 1, inner.iter().any(|b| !b.is_ascii_whitespace())));
            }
        }
        ws(&mut i);
        match json.get(i)? {
            b',' => i += 1,
            b'}' => return found,
            _ => return None,
        }
    }
}

/// The index just past the string starting at `i` (a `"`).
fn skip_string(json: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    while i < json.len() {
        match json[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The index just past the JSON value starting at `i`.
fn skip_value(json: &[u8], mut i: usize) -> Option<usize> {
    match json.get(i)? {
        b'"' => skip_string(json, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            while i < json.len() {
                match json[i] {
                    b'"' => {
                        i = skip_string(json, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            while i < json.len() && !matches!(json[i], b',' | b'}' | b']') && !json[i].is_ascii_whitespace() {
                i += 1;
            }
            Some(i)
        }
    }
}

impl WatchCache {
    /// Starts the cache's reflector task; the cache becomes ready after its first list.
    pub fn start(storage: DynStorage, prefix: String, kind: &'static str, api_version: String) -> Arc<Self> {
        let cache = Self::new(storage, prefix, kind, api_version, LIVE_RING, false);
        let weak = Arc::downgrade(&cache);
        tokio::spawn(async move { reflect(weak).await });
        cache
    }

    /// A cache that stays empty and watches nothing, for kinds that are never stored
    /// (TokenReview, SubjectAccessReview): ready at once, and without the event ring, which
    /// costs half a megabyte per cache.
    pub fn never_stored(storage: DynStorage, prefix: String, kind: &'static str, api_version: String) -> Arc<Self> {
        Self::new(storage, prefix, kind, api_version, 1, true)
    }

    fn new(storage: DynStorage, prefix: String, kind: &'static str, api_version: String, history: usize, ready: bool) -> Arc<Self> {
        let (events, _) = broadcast::channel(history);
        let (revision_tx, _) = tokio::sync::watch::channel(0);
        let cache = Arc::new(WatchCache {
            prefix,
            kind,
            api_version,
            storage,
            state: RwLock::new(State {
                objects: BTreeMap::new(),
                revision: 0,
                fresh: 0,
                history: VecDeque::new(),
                oldest: 0,
                seq: 0,
                ready,
            }),
            events,
            revision_tx,
            progress: Arc::new(Notify::new()),
            probing: tokio::sync::Mutex::new(std::time::Instant::now()),
        });
        cache
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// The revision the cache is known to reflect: its last event, or a later proven one.
    pub fn revision(&self) -> i64 {
        let st = self.state.read();
        st.revision.max(st.fresh)
    }

    pub fn is_ready(&self) -> bool {
        self.state.read().ready
    }

    /// Objects under `prefix` (a namespace's or all), in key order, and the cache revision.
    pub fn snapshot(&self, prefix: &str) -> (Vec<Obj>, i64) {
        let st = self.state.read();
        let items = st.objects.range(prefix.to_string()..).take_while(|(k, _)| k.starts_with(prefix)).map(|(_, o)| o.clone()).collect();
        (items, st.revision.max(st.fresh))
    }

    pub fn get(&self, key: &str) -> Option<Obj> {
        self.state.read().objects.get(key).cloned()
    }

    /// Proves the cache current at the backend's revision if it can (see the module comment),
    /// so that an idle cache's revision moves on. At most one probe a second; for bookmarks.
    pub async fn refresh(&self) {
        let Ok(mut last) = self.probing.try_lock() else { return };
        if last.elapsed() < Duration::from_secs(1) {
            return;
        }
        *last = std::time::Instant::now();
        if let Err(e) = self.probe().await {
            tracing::debug!(prefix = %self.prefix, error = %e, "watch cache probe failed");
        }
    }

    /// One probe; the caller holds `probing`.
    async fn probe(&self) -> Result<(), StorageError> {
        let (seen, count) = {
            let st = self.state.read();
            (st.revision, st.objects.len() as i64)
        };
        let p = self.storage.probe(&self.prefix).await?;
        let mut st = self.state.write();
        // An event applied meanwhile voids the comparison; the caller simply tries again.
        if st.ready && st.revision == seen && p.max_mod_revision <= seen && p.count == count && p.revision > st.fresh {
            st.fresh = p.revision;
            let rev = st.revision.max(st.fresh);
            drop(st);
            self.revision_tx.send_replace(rev);
        }
        Ok(())
    }

    /// Waits until the cache reflects `revision`, through its events or a probe, up to `timeout`.
    pub async fn wait_for(&self, revision: i64, timeout: Duration) -> bool {
        let mut rx = self.revision_tx.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.is_ready() && self.revision() >= revision {
                return true;
            }
            if self.is_ready() {
                let mut last = self.probing.lock().await;
                // A probe that ran while this waiter queued may already have proven it.
                if self.revision() >= revision {
                    return true;
                }
                *last = std::time::Instant::now();
                if let Err(e) = self.probe().await {
                    tracing::debug!(prefix = %self.prefix, error = %e, "watch cache probe failed");
                }
                drop(last);
                if self.revision() >= revision {
                    return true;
                }
            }
            // Not proven yet: events for `revision` are on their way; wait for one, then retry.
            let step = tokio::time::Instant::now() + Duration::from_millis(20);
            let _ = tokio::time::timeout_at(step.min(deadline), rx.changed()).await;
            rx.borrow_and_update();
            if tokio::time::Instant::now() >= deadline {
                return self.is_ready() && self.revision() >= revision;
            }
        }
    }

    /// Waits until the cache reflects the backend's current revision: a consistent read.
    pub async fn wait_fresh(&self, timeout: Duration) -> Result<i64, CacheError> {
        let rev = self.storage.current_revision().await?;
        if self.wait_for(rev, timeout).await { Ok(rev) } else { Err(CacheError::NotReady) }
    }

    /// Starts a watch. `from = None` gives synthetic ADDED events for the current state under
    /// `prefix`; `Some(rv)` gives the events after `rv`.
    pub fn subscribe(&self, prefix: &str, from: Option<i64>) -> Result<Subscription, CacheError> {
        let st = self.state.read();
        if !st.ready {
            return Err(CacheError::NotReady);
        }
        let live = self.events.subscribe();
        match from {
            None => {
                let initial = st
                    .objects
                    .range(prefix.to_string()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(_, o)| Arc::new(CacheEvent::new(EventType::Added, o.clone(), None, o.rv)))
                    .collect();
                Ok(Subscription { initial, live, start_rv: 0, start_seq: st.seq, snapshot_rv: st.revision.max(st.fresh) })
            }
            Some(rv) => {
                // Compacted history is gone for every apiserver: answer as a watch on etcd
                // would, even while this cache still holds the events.
                let compacted = self.storage.compacted_revision();
                if rv < compacted {
                    return Err(CacheError::TooOld { requested: rv, oldest: compacted });
                }
                if rv < st.oldest {
                    return Err(CacheError::TooOld { requested: rv, oldest: st.oldest + 1 });
                }
                let initial = st
                    .history
                    .iter()
                    .filter(|e| e.rv > rv && e.object.key.starts_with(prefix))
                    .cloned()
                    .collect();
                Ok(Subscription { initial, live, start_rv: rv, start_seq: st.seq, snapshot_rv: st.revision.max(st.fresh).max(rv) })
            }
        }
    }

    /// For a watcher whose live feed lagged: a new feed, and the events under `prefix`
    /// published after `seq`, from the history. None when the history no longer reaches back
    /// that far (the watcher ends; its client resumes from its last resourceVersion).
    pub fn resume(&self, prefix: &str, seq: u64) -> Option<Subscription> {
        let st = self.state.read();
        if st.history.front().is_some_and(|e| e.seq > seq + 1) {
            return None;
        }
        let live = self.events.subscribe();
        let initial = st.history.iter().filter(|e| e.seq > seq && e.object.key.starts_with(prefix)).cloned().collect();
        Some(Subscription { initial, live, start_rv: 0, start_seq: st.seq, snapshot_rv: st.revision.max(st.fresh) })
    }

    fn publish(&self, st: &mut State, mut event: CacheEvent) {
        st.seq += 1;
        event.seq = st.seq;
        let event = Arc::new(event);
        st.history.push_back(event.clone());
        if let Some(old) = st.history.len().checked_sub(FRAME_WINDOW + 1).and_then(|i| st.history.get(i)) {
            *old.frames.lock() = Default::default();
        }
        while st.history.len() > HISTORY {
            if let Some(e) = st.history.pop_front() {
                st.oldest = e.rv;
            }
        }
        let _ = self.events.send(event);
    }

    fn apply(&self, e: StorageEvent) {
        let mut st = self.state.write();
        // Progress notifications are ignored: they can overtake queued events (module comment).
        // One revision can hold several events (a transaction), so an equal one is applied.
        if e.kind != EventKind::Progress && e.mod_revision >= st.revision {
            let prev = st.objects.get(&e.key).cloned();
            match e.kind {
                EventKind::Put => {
                    if let Some(obj) = decode(&e.key, &e.value, e.mod_revision) {
                        st.objects.insert(e.key.clone(), obj.clone());
                        let kind = if prev.is_some() { EventType::Modified } else { EventType::Added };
                        self.publish(&mut st, CacheEvent::new(kind, obj, prev, e.mod_revision));
                    }
                }
                EventKind::Delete => {
                    st.objects.remove(&e.key);
                    // The deleted object carries the deletion's revision, as upstream reports it.
                    let obj = match &prev {
                        Some(p) => decode(&e.key, &p.json, e.mod_revision),
                        None => decode(&e.key, &e.value, e.mod_revision),
                    };
                    if let Some(obj) = obj {
                        self.publish(&mut st, CacheEvent::new(EventType::Deleted, obj, prev, e.mod_revision));
                    }
                }
                EventKind::Progress => {}
            }
            st.revision = e.mod_revision;
        }
        let rev = st.revision.max(st.fresh);
        drop(st);
        self.revision_tx.send_replace(rev);
    }

    /// The state under the prefix, read from the backend a page at a time at one revision
    /// (each page decoded before the next is read).
    async fn list_pages(&self) -> Result<(BTreeMap<String, Obj>, i64), StorageError> {
        let mut fresh = BTreeMap::new();
        let revision = crate::storage::paging::for_each_page(&*self.storage, &self.prefix, 0, |page| {
            for kv in page {
                if let Some(obj) = decode(&kv.key, &kv.value, kv.mod_revision) {
                    fresh.insert(kv.key, obj);
                }
            }
        })
        .await?;
        Ok((fresh, revision))
    }

    /// Replaces the state with a fresh list, emitting the differences as events so that
    /// watchers stay consistent across a relist.
    fn replace(&self, fresh: BTreeMap<String, Obj>, revision: i64) {
        let mut st = self.state.write();
        if st.ready {
            let old = std::mem::take(&mut st.objects);
            for (k, o) in &fresh {
                match old.get(k) {
                    Some(p) if p.rv == o.rv => {}
                    Some(p) => self.publish(&mut st, CacheEvent::new(EventType::Modified, o.clone(), Some(p.clone()), revision)),
                    None => self.publish(&mut st, CacheEvent::new(EventType::Added, o.clone(), None, revision)),
                }
            }
            for (k, p) in &old {
                if !fresh.contains_key(k) {
                    let gone = decode(k, &p.json, revision).unwrap_or_else(|| p.clone());
                    self.publish(&mut st, CacheEvent::new(EventType::Deleted, gone, Some(p.clone()), revision));
                }
            }
        } else {
            st.oldest = revision;
        }
        st.objects = fresh;
        st.revision = revision;
        st.fresh = st.fresh.max(revision);
        st.ready = true;
        drop(st);
        self.revision_tx.send_replace(revision);
    }
}

/// The reflector: list, then watch from the list's revision; relist on compaction, retry
/// with backoff while the backend is down. Ends when the cache is dropped.
async fn reflect(weak: std::sync::Weak<WatchCache>) {
    use futures::StreamExt;
    let mut need_list = true;
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(cache) = weak.upgrade() else { return };
        if need_list {
            match cache.list_pages().await {
                Ok((objects, revision)) => {
                    cache.replace(objects, revision);
                    need_list = false;
                }
                Err(e) => {
                    tracing::debug!(prefix = %cache.prefix, error = %e, "watch cache list failed");
                    drop(cache);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
        }
        let from = cache.revision() + 1;
        let stream = cache.storage.watch(&cache.prefix, from, cache.progress.clone()).await;
        let mut stream = match stream {
            Ok(s) => s,
            Err(StorageError::Compacted { .. }) => {
                need_list = true;
                continue;
            }
            Err(e) => {
                tracing::debug!(prefix = %cache.prefix, error = %e, "watch cache watch failed");
                drop(cache);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let weak_inner = Arc::downgrade(&cache);
        drop(cache);
        while let Some(item) = stream.next().await {
            let Some(cache) = weak_inner.upgrade() else { return };
            match item {
                Ok(e) => cache.apply(e),
                Err(StorageError::Compacted { .. }) => {
                    need_list = true;
                    break;
                }
                Err(_) => break,
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStorage;
    use crate::storage::Storage;

    async fn cache_with(storage: Arc<MemoryStorage>) -> Arc<WatchCache> {
        let c = WatchCache::start(storage, "/r/pods/".into(), "Pod", "v1".into());
        assert!(c.wait_fresh(Duration::from_secs(5)).await.is_ok());
        c
    }

    fn pod(name: &str) -> Bytes {
        Bytes::from(serde_json::to_vec(&serde_json::json!({"metadata": {"name": name}})).unwrap())
    }

    #[test]
    fn decode_splices_the_resource_version_as_serializing_would() {
        for raw in [
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","labels":{"x":"}{\"]"}},"spec":{"a":[1,{"b":"c"}]}}"#,
            r#"{"metadata":{},"data":{"k":"v"}}"#,
            r#"{"kind":"X","data":{"metadata":{"n":1}},"metadata":{"name":"m","annotations":{"a":"\\"}},"z":true}"#,
            r#"{"kind":"NoMeta"}"#,
            r#"{"metadata":{"name":"has","resourceVersion":"3"}}"#,
            r#" { "metadata" : { "name" : "spaced" } , "n" : -1.5e3 } "#,
        ] {
            let o = decode("/k", raw.as_bytes(), 42).unwrap();
            let value = o.value();
            assert_eq!(value["metadata"]["resourceVersion"], "42", "{raw}");
            let mut want: Value = serde_json::from_str(raw).unwrap();
            want.as_object_mut().unwrap().entry("metadata").or_insert(serde_json::json!({}))["resourceVersion"] = "42".into();
            assert_eq!(value, want, "{raw}");
            if !raw.starts_with(' ') {
                assert_eq!(o.json, serde_json::to_vec(&want).unwrap(), "{raw}");
            }
        }
        let o = decode("/k", br#"{"metadata":{"name":"a","labels":{"x":"1"},"annotations":{"big":"."}},"spec":{"nodeName":"n","containers":[]},"status":{"phase":"Running"}}"#, 7).unwrap();
        assert_eq!(o.fields, serde_json::json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"nodeName": "n"}, "status": {"phase": "Running"}}));
        assert!(decode("/k", b"[1]", 1).is_none());
        assert!(decode("/k", br#"{"metadata":"x"}"#, 1).is_none());
    }

    #[tokio::test]
    async fn lists_and_resumes_from_history() {
        let s = Arc::new(MemoryStorage::new());
        let r1 = s.create("/r/pods/d/a", pod("a")).await.unwrap();
        let c = cache_with(s.clone()).await;
        let (items, _) = c.snapshot("/r/pods/");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].value()["metadata"]["resourceVersion"], r1.to_string());
        let r2 = s.create("/r/pods/d/b", pod("b")).await.unwrap();
        assert!(c.wait_for(r2, Duration::from_secs(5)).await);
        let sub = c.subscribe("/r/pods/", Some(r1)).unwrap();
        assert_eq!(sub.initial.len(), 1);
        assert_eq!(sub.initial[0].kind, EventType::Added);
        assert_eq!(sub.initial[0].rv, r2);
        let sub0 = c.subscribe("/r/pods/d/", None).unwrap();
        assert_eq!(sub0.initial.len(), 2);
    }

    #[tokio::test]
    async fn consistent_read_waits_for_other_prefixes_revisions() {
        let s = Arc::new(MemoryStorage::new());
        let c = cache_with(s.clone()).await;
        // A write elsewhere moves the global revision; progress must catch the cache up.
        s.create("/r/nodes/n1", pod("n1")).await.unwrap();
        let rev = c.wait_fresh(Duration::from_secs(5)).await.unwrap();
        assert!(c.revision() >= rev);
    }

    #[tokio::test]
    async fn too_old_revision_is_reported() {
        let s = Arc::new(MemoryStorage::new());
        let c = cache_with(s.clone()).await;
        let err = c.subscribe("/r/pods/", Some(0)).err();
        assert!(matches!(err, Some(CacheError::TooOld { .. })), "{err:?}");
    }

    #[tokio::test]
    async fn events_sharing_a_revision_all_reach_the_cache_and_its_watchers() {
        let s = Arc::new(MemoryStorage::new());
        s.create("/r/pods/d/a", pod("a")).await.unwrap();
        s.create("/r/pods/d/b", pod("b")).await.unwrap();
        let c = cache_with(s.clone()).await;
        // As etcd revokes a lease: every key deleted in one transaction, at one revision.
        let rev = c.revision() + 100;
        let gone = |k: &str| StorageEvent { kind: EventKind::Delete, key: k.into(), value: pod("x"), mod_revision: rev, prev: None };
        c.apply(gone("/r/pods/d/a"));
        let mut sub = c.subscribe("/r/pods/", None).unwrap();
        assert_eq!(sub.initial.len(), 1);
        c.apply(gone("/r/pods/d/b"));
        assert!(c.get("/r/pods/d/b").is_none());
        let e = sub.live.recv().await.unwrap();
        assert_eq!((e.kind, e.rv), (EventType::Deleted, rev));
        assert!(e.seq > sub.start_seq && e.rv > sub.start_rv);
    }

    #[tokio::test]
    async fn relist_emits_the_difference() {
        let s = Arc::new(MemoryStorage::new());
        s.create("/r/pods/d/a", pod("a")).await.unwrap();
        let c = cache_with(s.clone()).await;
        let mut sub = c.subscribe("/r/pods/", Some(c.revision())).unwrap();
        let (_, rev) = c.snapshot("/r/pods/");
        c.replace(BTreeMap::new(), rev + 1);
        let e = sub.live.recv().await.unwrap();
        assert_eq!(e.kind, EventType::Deleted);
        assert_eq!(e.object.fields["metadata"]["name"], "a");
    }
}
