//! Controller expectations, as upstream's ControllerExpectations: after a
//! controller creates or deletes children, its cache lags the API. Until
//! the cache shows every change it made (or a timeout passes), the
//! controller must not act on counts again, or it would double-create.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Relister;

/// Upstream's ExpectationsTimeout: the last resort when nothing else frees a key.
const TIMEOUT: Duration = Duration::from_secs(300);
/// Pending expectations that see no progress for this long point at a
/// watch that lost events (or a child deleted before we saw it): ask the
/// informer for a full list, which settles them either way.
pub const STALL_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Pending {
    creates: HashSet<String>,
    deletes: HashSet<String>,
    since: Instant,
    /// The last time an expectation was met (or added).
    progress: Instant,
    /// The children informer's list epoch after the latest write.
    epoch: u64,
}

#[derive(Clone)]
pub struct Expectations<K> {
    inner: Arc<Mutex<HashMap<K, Pending>>>,
    timeout: Duration,
    /// The informer of the children, when it can relist.
    relister: Option<Relister>,
}

impl<K: Eq + Hash + Clone> Default for Expectations<K> {
    fn default() -> Self {
        Expectations {
            inner: Arc::new(Mutex::new(HashMap::new())),
            timeout: TIMEOUT,
            relister: None,
        }
    }
}

impl<K: Eq + Hash + Clone> Expectations<K> {
    /// Expectations about children seen through the informer behind
    /// `relister`: they also end once a list begun after the writes has
    /// completed (the cache then shows the writes, or that the children are
    /// already gone again), so no lost watch event can stall a controller.
    pub fn with_relister(relister: Relister) -> Self {
        Expectations {
            relister: Some(relister),
            ..Self::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Pending>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Expect the cache to show these created names and lose these deleted uids.
    /// Call after the writes returned.
    pub fn expect(&self, key: &K, created: impl IntoIterator<Item = String>, deleted: impl IntoIterator<Item = String>) {
        let epoch = self.relister.as_ref().map_or(0, |r| r.epoch());
        let mut m = self.lock();
        let now = Instant::now();
        let p = m.entry(key.clone()).or_insert_with(|| Pending {
            creates: HashSet::new(),
            deletes: HashSet::new(),
            since: now,
            progress: now,
            epoch,
        });
        p.creates.extend(created);
        p.deletes.extend(deleted);
        p.since = now;
        p.progress = now;
        p.epoch = epoch;
    }

    /// True when every expectation of `key` is seen in the cache:
    /// `present(name)` for creations, `gone(uid)` for deletions.
    pub fn satisfied(&self, key: &K, present: impl Fn(&str) -> bool, gone: impl Fn(&str) -> bool) -> bool {
        let mut m = self.lock();
        let Some(p) = m.get_mut(key) else { return true };
        let before = p.creates.len() + p.deletes.len();
        p.creates.retain(|n| !present(n));
        p.deletes.retain(|u| !gone(u));
        if p.creates.len() + p.deletes.len() < before {
            p.progress = Instant::now();
        }
        let relisted = self.relister.as_ref().is_some_and(|r| r.fresh_since(p.epoch));
        if (p.creates.is_empty() && p.deletes.is_empty()) || relisted || p.since.elapsed() > self.timeout {
            m.remove(key);
            return true;
        }
        if p.progress.elapsed() >= STALL_AFTER && self.relister.as_ref().is_some_and(|r| r.request()) {
            tracing::info!(
                creates = p.creates.len(),
                deletes = p.deletes.len(),
                "expected changes are not showing in the cache; relisting"
            );
        }
        false
    }

    /// How long `key` has waited for the cache, if it is waiting.
    pub fn pending_for(&self, key: &K) -> Option<Duration> {
        self.lock().get(key).map(|p| p.since.elapsed())
    }

    pub fn forget(&self, key: &K) {
        self.lock().remove(key);
    }
}

impl Expectations<super::Key> {
    /// The usual check for a controller of pods: a create is seen once the pod is in the cache,
    /// a delete once none of the controller's `owned` pods of that name is still live.
    pub fn pods_satisfied(
        &self,
        key: &super::Key,
        cache: &kube::runtime::reflector::Store<k8s_openapi::api::core::v1::Pod>,
        owned: &[Arc<k8s_openapi::api::core::v1::Pod>],
    ) -> bool {
        use kube::runtime::reflector::ObjectRef;
        use kube::ResourceExt;
        let ns = key.ns();
        self.satisfied(
            key,
            |name| cache.get(&ObjectRef::new(name).within(ns)).is_some(),
            |name| !owned.iter().any(|p| p.name_any() == name && p.metadata.deletion_timestamp.is_none()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satisfied_once_the_cache_shows_every_change() {
        let e: Expectations<&str> = Expectations::default();
        assert!(e.satisfied(&"rs", |_| false, |_| false));
        e.expect(&"rs", ["p1".to_string(), "p2".to_string()], ["u9".to_string()]);
        assert!(!e.satisfied(&"rs", |n| n == "p1", |_| true));
        assert!(!e.satisfied(&"rs", |_| false, |_| true));
        assert!(e.satisfied(&"rs", |n| n == "p2", |_| true));
    }

    #[test]
    fn a_list_begun_after_the_writes_ends_them() {
        let r = Relister::new();
        let e: Expectations<&str> = Expectations::with_relister(r.clone());
        // A list already under way when we write may not show the write.
        let running = r.list_started();
        e.expect(&"rs", ["lost".to_string()], []);
        r.list_completed(running);
        assert!(!e.satisfied(&"rs", |_| false, |_| false));
        let next = r.list_started();
        assert!(!e.satisfied(&"rs", |_| false, |_| false));
        r.list_completed(next);
        assert!(e.satisfied(&"rs", |_| false, |_| false));
    }
}
