//! An in-memory backend with etcd's semantics (global revisions, history, compaction), so the
//! registry and watch cache can be tested without an etcd.

use super::*;
use futures::FutureExt;
use parking_lot::Mutex;
use std::collections::BTreeMap;
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
}

pub struct MemoryStorage {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<StorageEvent>,
    /// Simulates an unreachable backend in tests.
    down: std::sync::atomic::AtomicBool,
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
            state: Arc::new(Mutex::new(State { revision: 1, compacted: 0, keys: BTreeMap::new(), log: Vec::new() })),
            events,
            down: Default::default(),
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
        state.revision += 1;
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
        let _ = self.events.send(event);
        revision
    }
}

impl Storage for MemoryStorage {
    fn create(&self, key: &str, value: Bytes) -> BoxFuture<'_, StorageResult<i64>> {
        let key = key.to_string();
        async move {
            self.check_up()?;
            let mut st = self.state.lock();
            if Self::latest(&st, &key).is_some() {
                return Err(StorageError::AlreadyExists { key });
            }
            let rev = st.revision + 1;
            Ok(self.write(&mut st, &key, Some(value), rev))
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
            if revision <= st.compacted {
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
        async move {
            self.check_up()?;
            let mut st = self.state.lock();
            let current = Self::latest(&st, &key);
            match current {
                Some(kv) if kv.mod_revision == expected_revision => {
                    Ok(self.write(&mut st, &key, Some(value), kv.create_revision))
                }
                other => Err(StorageError::Conflict { key, current: other.map(Box::new) }),
            }
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
            if start_revision > 0 && start_revision <= st.compacted {
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
            st.log.retain(|e| e.mod_revision > compacted);
            Ok(())
        }
        .boxed()
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
