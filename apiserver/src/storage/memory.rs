//! An in-memory backend with etcd's semantics (global revisions, history, compaction), so the
//! registry and watch cache can be tested without an etcd.

use super::*;
use futures::FutureExt;
use parking_lot::Mutex;
use super::lease::LeaseManager;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

#[derive(Clone)]
struct Version {
    revision: i64,
    create_revision: i64,
    /// None = deleted at `revision`.
    value: Option<Bytes>,
}

struct State {
    revision: i64,
    compacted: i64,
    /// Every key's versions, oldest first.
    keys: BTreeMap<String, Vec<Version>>,
    /// Every event, for watches that start in the past.
    log: Vec<StorageEvent>,
    /// Leases as etcd keeps them: an expiry and the keys attached.
    leases: HashMap<i64, (Instant, BTreeSet<String>)>,
    key_lease: HashMap<String, i64>,
    next_lease: i64,
}

pub struct MemoryStorage {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<StorageEvent>,
    /// Simulates an unreachable backend in tests.
    down: std::sync::atomic::AtomicBool,
    lease_manager: LeaseManager,
    /// Started with the first lease: deletes the keys of expired leases.
    sweeper: std::sync::OnceLock<AbortOnDrop>,
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStorage {
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(65536);
        MemoryStorage {
            state: Arc::new(Mutex::new(State {
                revision: 1,
                compacted: 0,
                keys: BTreeMap::new(),
                log: Vec::new(),
                leases: HashMap::new(),
                key_lease: HashMap::new(),
                next_lease: 1,
            })),
            events,
            down: Default::default(),
            lease_manager: LeaseManager::default(),
            sweeper: Default::default(),
        }
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    fn check_up(&self) -> StorageResult<()> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            Err(StorageError::Unavailable("memory storage is down".into()))
        } else {
            Ok(())
        }
    }

    fn latest(state: &State, key: &str) -> Option<KeyValue> {
        let v = state.keys.get(key)?.last()?;
        v.value.as_ref().map(|value| KeyValue {
            key: key.into(),
            value: value.clone(),
            mod_revision: v.revision,
            create_revision: v.create_revision,
        })
    }

    fn at(state: &State, key: &str, revision: i64) -> Option<KeyValue> {
        let v = state.keys.get(key)?.iter().rev().find(|v| v.revision <= revision)?;
        v.value.as_ref().map(|value| KeyValue {
            key: key.into(),
            value: value.clone(),
            mod_revision: v.revision,
            create_revision: v.create_revision,
        })
    }

    fn write(&self, state: &mut State, key: &str, value: Option<Bytes>, create_revision: i64) -> i64 {
        Self::write_to(&self.events, state, key, value, create_revision, None, false)
    }

    /// A write; as in etcd, a put attaches the key to `lease` or detaches it from any.
    /// `in_last_txn` writes at the last write's revision, as one etcd transaction would.
    fn write_to(
        events: &broadcast::Sender<StorageEvent>,
        state: &mut State,
        key: &str,
        value: Option<Bytes>,
        create_revision: i64,
        lease: Option<i64>,
        in_last_txn: bool,
    ) -> i64 {
        if let Some(old) = state.key_lease.remove(key) {
            if let Some((_, keys)) = state.leases.get_mut(&old) {
                keys.remove(key);
            }
        }
        if let (Some(id), true) = (lease, value.is_some()) {
            if let Some((_, keys)) = state.leases.get_mut(&id) {
                keys.insert(key.to_string());
                state.key_lease.insert(key.to_string(), id);
            }
        }
        if !in_last_txn {
            state.revision += 1;
        }
        let revision = state.revision;
        let prev = Self::latest(state, key);
        state.keys.entry(key.into()).or_default().push(Version { revision, create_revision, value: value.clone() });
        let event = StorageEvent {
            kind: if value.is_some() { EventKind::Put } else { EventKind::Delete },
            key: key.into(),
            value: value.or_else(|| prev.as_ref().map(|p| p.value.clone())).unwrap_or_default(),
            mod_revision: revision,
            prev: prev.map(|p| p.value),
        };
        state.log.push(event.clone());
        let _ = events.send(event);
        revision
    }

    /// A lease of `ttl` (shared as etcd's are), and the sweeper that expires leases.
    async fn lease(&self, ttl: Duration) -> i64 {
        self.sweeper.get_or_init(|| {
            let (state, events) = (Arc::downgrade(&self.state), self.events.clone());
            AbortOnDrop(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tick.tick().await;
                    let Some(state) = state.upgrade() else { return };
                    Self::expire(&events, &mut state.lock(), Instant::now());
                }
            }))
        });
        let state = self.state.clone();
        let granted = self.lease_manager.lease_for(ttl, |seconds| async move {
            let mut st = state.lock();
            let id = st.next_lease;
            st.next_lease += 1;
            st.leases.insert(id, (Instant::now() + Duration::from_secs(seconds as u64), BTreeSet::new()));
            Ok::<_, std::convert::Infallible>(id)
        });
        match granted.await {
            Ok(id) => id,
            Err(never) => match never {},
        }
    }

    /// Revokes the leases expired at `now`, deleting each lease's keys in one transaction
    /// (one revision), as etcd does.
    fn expire(events: &broadcast::Sender<StorageEvent>, st: &mut State, now: Instant) {
        let expired: Vec<i64> = st.leases.iter().filter(|(_, (at, _))| *at <= now).map(|(id, _)| *id).collect();
        for id in expired {
            let Some((_, keys)) = st.leases.remove(&id) else { continue };
            let mut first = true;
            for key in keys {
                st.key_lease.remove(&key);
                if Self::latest(st, &key).is_some() {
                    Self::write_to(events, st, &key, None, 0, None, !first);
                    first = false;
                }
            }
        }
    }

    /// How many leases are live (for tests of lease sharing).
    pub fn lease_count(&self) -> usize {
        self.state.lock().leases.len()
    }

    fn create_in(&self, key: String, value: Bytes, lease: Option<i64>) -> StorageResult<i64> {
        self.check_up()?;
        let mut st = self.state.lock();
        if Self::latest(&st, &key).is_some() {
            return Err(StorageError::AlreadyExists { key });
        }
        let rev = st.revision + 1;
        Ok(Self::write_to(&self.events, &mut st, &key, Some(value), rev, lease, false))
    }

    fn update_in(&self, key: String, value: Bytes, expected_revision: i64, lease: Option<i64>) -> StorageResult<i64> {
        self.check_up()?;
        let mut st = self.state.lock();
        match Self::latest(&st, &key) {
            Some(kv) if kv.mod_revision == expected_revision => {
                Ok(Self::write_to(&self.events, &mut st, &key, Some(value), kv.create_revision, lease, false))
            }
            other => Err(StorageError::Conflict { key, current: other.map(Box::new) }),
        }
    }
}

impl Storage for MemoryStorage {
    fn create(&self, key: &str, value: Bytes) -> BoxFuture<'_, StorageResult<i64>> {
        let key = key.to_string();
        async move { self.create_in(key, value, None) }.boxed()
    }

    fn create_with_ttl(&self, key: &str, value: Bytes, ttl: Duration) -> BoxFuture<'_, StorageResult<i64>> {
        let key = key.to_string();
        async move {
            self.check_up()?;
            let lease = self.lease(ttl).await;
            self.create_in(key, value, Some(lease))
        }
        .boxed()
    }

    fn get(&self, key: &str) -> BoxFuture<'_, StorageResult<Option<KeyValue>>> {
        let key = key.to_string();
        async move {
            self.check_up()?;
            Ok(Self::latest(&self.state.lock(), &key))
        }
        .boxed()
    }

    fn list(&self, prefix: &str, opts: ListOptions) -> BoxFuture<'_, StorageResult<ListResult>> {
        let prefix = prefix.to_string();
        async move {
            self.check_up()?;
            let st = self.state.lock();
            let revision = if opts.revision > 0 { opts.revision } else { st.revision };
            if revision < st.compacted {
                return Err(StorageError::Compacted { requested: revision, compacted: st.compacted });
            }
            let start = opts.start_key.clone().unwrap_or_else(|| prefix.clone());
            let mut items = Vec::new();
            let mut more = false;
            for key in st.keys.range(start..).map(|(k, _)| k).take_while(|k| k.starts_with(&prefix)) {
                if let Some(kv) = Self::at(&st, key, revision) {
                    if opts.limit > 0 && items.len() as i64 >= opts.limit {
                        more = true;
                        break;
                    }
                    items.push(kv);
                }
            }
            Ok(ListResult { items, revision, more })
        }
        .boxed()
    }

    fn update(&self, key: &str, value: Bytes, expected_revision: i64) -> BoxFuture<'_, StorageResult<i64>> {
        let key = key.to_string();
        async move { self.update_in(key, value, expected_revision, None) }.boxed()
    }

    fn update_with_ttl(&self, key: &str, value: Bytes, expected_revision: i64, ttl: Duration) -> BoxFuture<'_, StorageResult<i64>> {
        let key = key.to_string();
        async move {
            self.check_up()?;
            let lease = self.lease(ttl).await;
            self.update_in(key, value, expected_revision, Some(lease))
        }
        .boxed()
    }

    fn delete(&self, key: &str, expected_revision: Option<i64>) -> BoxFuture<'_, StorageResult<(KeyValue, i64)>> {
        let key = key.to_string();
        async move {
            self.check_up()?;
            let mut st = self.state.lock();
            let Some(kv) = Self::latest(&st, &key) else {
                return Err(StorageError::NotFound { key });
            };
            if expected_revision.is_some_and(|r| r != kv.mod_revision) {
                return Err(StorageError::Conflict { key, current: Some(Box::new(kv)) });
            }
            let rev = self.write(&mut st, &key, None, 0);
            Ok((kv, rev))
        }
        .boxed()
    }

    fn watch(
        &self,
        prefix: &str,
        start_revision: i64,
        progress: Arc<tokio::sync::Notify>,
    ) -> BoxFuture<'_, StorageResult<EventStream>> {
        let prefix = prefix.to_string();
        async move {
            self.check_up()?;
            let st = self.state.lock();
            if start_revision > 0 && start_revision < st.compacted {
                return Err(StorageError::Compacted { requested: start_revision, compacted: st.compacted });
            }
            let past: Vec<StorageEvent> = st
                .log
                .iter()
                .filter(|e| e.mod_revision >= start_revision && e.key.starts_with(&prefix))
                .cloned()
                .collect();
            let last_past = st.revision;
            let rx = self.events.subscribe();
            drop(st);
            // Progress events go through the same broadcast, sent under the state lock, so they
            // come after every change they vouch for.
            let state = self.state.clone();
            let events = self.events.clone();
            let task = tokio::spawn(async move {
                loop {
                    progress.notified().await;
                    let st = state.lock();
                    let _ = events.send(StorageEvent {
                        kind: EventKind::Progress,
                        key: String::new(),
                        value: Bytes::new(),
                        mod_revision: st.revision,
                        prev: None,
                    });
                }
            });
            let guard = AbortOnDrop(task);
            let live = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(move |r| {
                let prefix = prefix.clone();
                async move {
                    match r {
                        Ok(e) if e.kind == EventKind::Progress => Some(Ok(e)),
                        Ok(e) if e.key.starts_with(&prefix) && e.mod_revision > last_past => Some(Ok(e)),
                        Ok(_) => None,
                        Err(_) => Some(Err(StorageError::Internal("watch fell behind".into()))),
                    }
                }
            });
            let live = live.map(move |e| {
                let _ = &guard;
                e
            });
            Ok(futures::stream::iter(past.into_iter().map(Ok)).chain(live).boxed())
        }
        .boxed()
    }

    fn probe(&self, prefix: &str) -> BoxFuture<'_, StorageResult<Probe>> {
        let prefix = prefix.to_string();
        async move {
            self.check_up()?;
            let st = self.state.lock();
            let live = st
                .keys
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .filter_map(|(_, versions)| versions.last().filter(|v| v.value.is_some()));
            let (count, max_mod_revision) = live.fold((0, 0), |(n, m), v| (n + 1, m.max(v.revision)));
            Ok(Probe { revision: st.revision, count, max_mod_revision })
        }
        .boxed()
    }

    fn current_revision(&self) -> BoxFuture<'_, StorageResult<i64>> {
        async move {
            self.check_up()?;
            Ok(self.state.lock().revision)
        }
        .boxed()
    }

    fn compact(&self, revision: i64) -> BoxFuture<'_, StorageResult<()>> {
        async move {
            let mut st = self.state.lock();
            st.compacted = st.compacted.max(revision);
            let compacted = st.compacted;
            st.log.retain(|e| e.mod_revision >= compacted);
            Ok(())
        }
        .boxed()
    }

    fn compacted_revision(&self) -> i64 {
        self.state.lock().compacted
    }
}

use futures::StreamExt;

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_backend_passes_the_storage_suite() {
        let s: DynStorage = Arc::new(MemoryStorage::new());
        super::super::tests::run_all(s).await;
    }
}
