//! Compacting etcd's history (upstream's etcd3 compactor): every interval, one apiserver
//! compacts to the revision seen one interval earlier, so a client always has at least an
//! interval to resume a watch or finish a paged list.
//!
//! Apiservers sharing an etcd agree through one key, [`COMPACT_REV_KEY`]: each remembers the
//! key's mod revision from its last look and writes it with a compare on that; the one whose
//! write succeeds is the only one that compacts this interval. The others learn the key's new
//! state (and, from its value, the revision compacted to) and try again next interval.

use crate::storage::{DynStorage, StorageError};
use bytes::Bytes;
use std::time::Duration;

/// The key the compaction revision is kept in (upstream's name, at the root of etcd).
pub const COMPACT_REV_KEY: &str = "compact_rev_key";

/// What one apiserver knows between intervals.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Compactor {
    /// The key's mod revision at the last look; None before the first.
    seen: Option<i64>,
    /// The revision read at the last look: what the next winner compacts to.
    revision: i64,
}

/// What one interval did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// This apiserver won the interval and compacted to this revision.
    Compacted(i64),
    /// This apiserver won the interval with nothing to compact yet (its first look).
    Started,
    /// Another apiserver wrote the key first; this one compacts next interval if none does.
    Lost,
}

impl Compactor {
    /// One interval's attempt.
    pub async fn step(&mut self, storage: &dyn crate::storage::Storage) -> Result<Outcome, StorageError> {
        let value = Bytes::from(self.revision.to_string());
        let written = match self.seen {
            None => storage.create(COMPACT_REV_KEY, value).await,
            Some(expected) => storage.update(COMPACT_REV_KEY, value, expected).await,
        };
        match written {
            Ok(revision) => {
                let target = self.revision;
                // The write's own revision is the newest one: the next interval compacts to it.
                *self = Compactor { seen: Some(revision), revision };
                if target == 0 {
                    return Ok(Outcome::Started);
                }
                storage.compact(target).await?;
                tracing::debug!(revision = target, "etcd: compacted");
                Ok(Outcome::Compacted(target))
            }
            Err(StorageError::Conflict { current, .. }) => {
                self.lost(storage, current.map(|c| *c)).await?;
                Ok(Outcome::Lost)
            }
            Err(StorageError::AlreadyExists { .. }) => {
                let current = storage.get(COMPACT_REV_KEY).await?;
                self.lost(storage, current).await?;
                Ok(Outcome::Lost)
            }
            Err(e) => Err(e),
        }
    }

    /// Another apiserver compacted (or the key is new to us): remember the key's state and
    /// what the winner compacted to, so this apiserver's reads answer 410 below it too.
    async fn lost(&mut self, storage: &dyn crate::storage::Storage, current: Option<crate::storage::KeyValue>) -> Result<(), StorageError> {
        self.seen = current.as_ref().map(|kv| kv.mod_revision);
        self.revision = storage.current_revision().await?;
        let compacted = current.and_then(|kv| std::str::from_utf8(&kv.value).ok()?.parse::<i64>().ok()).unwrap_or(0);
        if compacted > storage.compacted_revision() {
            storage.compact(compacted).await?;
        }
        Ok(())
    }
}

/// Compacts every `interval` until the process ends; an interval of zero disables it.
pub fn start(storage: DynStorage, interval: Duration) {
    if interval.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let mut compactor = Compactor::default();
        loop {
            tokio::time::sleep(interval).await;
            if let Err(e) = compactor.step(&*storage).await {
                tracing::warn!(error = %e, "etcd: compaction failed");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStorage;
    use crate::storage::Storage;

    #[tokio::test]
    async fn one_of_two_apiservers_compacts_each_interval_to_the_previous_revision() {
        let s = MemoryStorage::new();
        let (mut a, mut b) = (Compactor::default(), Compactor::default());
        assert_eq!(a.step(&s).await.unwrap(), Outcome::Started);
        assert_eq!(b.step(&s).await.unwrap(), Outcome::Lost);
        let seen_by_a = a.revision;
        s.create("/x", Bytes::from_static(b"1")).await.unwrap();
        // Interval 2: a still holds the key's state and wins; b's view is stale.
        assert_eq!(a.step(&s).await.unwrap(), Outcome::Compacted(seen_by_a));
        assert_eq!(b.step(&s).await.unwrap(), Outcome::Lost);
        assert_eq!(s.compacted_revision(), seen_by_a);
        // Interval 3: b looked last (a's write is what it saw), so b wins this time.
        let seen_by_b = b.revision;
        assert!(matches!(b.step(&s).await.unwrap(), Outcome::Compacted(r) if r == seen_by_b));
        assert!(matches!(a.step(&s).await.unwrap(), Outcome::Lost));
    }
}
