//! Keys that expire: upstream gives a kind's strategy a TTL (Events: `--event-ttl`) and its
//! store writes every create and update of that kind with a lease. Here the same rule is
//! a backend in front of the real one, so the generic store stays unaware of it.

use super::*;
use std::time::Duration;

/// Writes under each prefix carry that prefix's TTL; everything else passes through.
pub struct ExpiringKeys {
    inner: DynStorage,
    rules: Vec<(String, Duration)>,
}

impl ExpiringKeys {
    pub fn new(inner: DynStorage, rules: Vec<(String, Duration)>) -> Self {
        ExpiringKeys { inner, rules }
    }

    fn ttl_for(&self, key: &str) -> Option<Duration> {
        self.rules.iter().find(|(prefix, _)| key.starts_with(prefix.as_str())).map(|(_, ttl)| *ttl)
    }
}

impl Storage for ExpiringKeys {
    fn create(&self, key: &str, value: Bytes) -> BoxFuture<'_, StorageResult<i64>> {
        match self.ttl_for(key) {
            Some(ttl) => self.inner.create_with_ttl(key, value, ttl),
            None => self.inner.create(key, value),
        }
    }

    fn create_with_ttl(&self, key: &str, value: Bytes, ttl: Duration) -> BoxFuture<'_, StorageResult<i64>> {
        self.inner.create_with_ttl(key, value, ttl)
    }

    fn get(&self, key: &str) -> BoxFuture<'_, StorageResult<Option<KeyValue>>> {
        self.inner.get(key)
    }

    fn list(&self, prefix: &str, opts: ListOptions) -> BoxFuture<'_, StorageResult<ListResult>> {
        self.inner.list(prefix, opts)
    }

    fn update(&self, key: &str, value: Bytes, expected_revision: i64) -> BoxFuture<'_, StorageResult<i64>> {
        match self.ttl_for(key) {
            Some(ttl) => self.inner.update_with_ttl(key, value, expected_revision, ttl),
            None => self.inner.update(key, value, expected_revision),
        }
    }

    fn update_with_ttl(&self, key: &str, value: Bytes, expected_revision: i64, ttl: Duration) -> BoxFuture<'_, StorageResult<i64>> {
        self.inner.update_with_ttl(key, value, expected_revision, ttl)
    }

    fn delete(&self, key: &str, expected_revision: Option<i64>) -> BoxFuture<'_, StorageResult<(KeyValue, i64)>> {
        self.inner.delete(key, expected_revision)
    }

    fn watch(&self, prefix: &str, start_revision: i64, progress: Arc<tokio::sync::Notify>) -> BoxFuture<'_, StorageResult<EventStream>> {
        self.inner.watch(prefix, start_revision, progress)
    }

    fn probe(&self, prefix: &str) -> BoxFuture<'_, StorageResult<Probe>> {
        self.inner.probe(prefix)
    }

    fn current_revision(&self) -> BoxFuture<'_, StorageResult<i64>> {
        self.inner.current_revision()
    }

    fn compact(&self, revision: i64) -> BoxFuture<'_, StorageResult<()>> {
        self.inner.compact(revision)
    }

    fn compacted_revision(&self) -> i64 {
        self.inner.compacted_revision()
    }
}

/// Events of every served version (core/v1 and events.k8s.io/v1) live `ttl`, as upstream's
/// `--event-ttl`; the prefixes come from the resource table.
pub fn events_expire(inner: DynStorage, etcd_prefix: &str, ttl: Duration) -> DynStorage {
    let mut rules: Vec<(String, Duration)> = crate::resources::RESOURCES
        .iter()
        .filter(|row| row.info.kind == "Event")
        .map(|row| (row.key_prefix(etcd_prefix, None), ttl))
        .collect();
    rules.dedup();
    Arc::new(ExpiringKeys::new(inner, rules))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStorage;

    #[tokio::test]
    async fn only_keys_under_a_rule_get_a_lease() {
        let mem = Arc::new(MemoryStorage::new());
        let s = ExpiringKeys::new(mem.clone(), vec![("/r/events/".into(), Duration::from_secs(3600))]);
        s.create("/r/configmaps/a", Bytes::from_static(b"{}")).await.unwrap();
        assert_eq!(mem.lease_count(), 0);
        for i in 0..20 {
            let rev = s.create(&format!("/r/events/e{i}"), Bytes::from_static(b"{}")).await.unwrap();
            s.update(&format!("/r/events/e{i}"), Bytes::from_static(b"{}"), rev).await.unwrap();
        }
        // Forty writes within the reuse window: one lease.
        assert_eq!(mem.lease_count(), 1);
    }
}
