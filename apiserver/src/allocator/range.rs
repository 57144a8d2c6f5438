//! One allocation range kept in storage (upstream's storage-backed allocator over a
//! RangeAllocation object): every change reads the bitmap, changes it and writes it back with
//! a compare on its mod revision, so two apiservers sharing etcd never hand out one value
//! twice; a conflict retries from a fresh read.

use super::bitmap::Bitmap;
use super::AllocError;
use crate::storage::{guaranteed_update, DynStorage, StorageError, UpdateDecision, UpdateOutcome};
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};

pub struct RangeStore {
    storage: DynStorage,
    key: String,
    /// The range as written in the object (`10.96.0.0/16`, `30000-32767`).
    range: String,
    size: usize,
}

/// What a stored RangeAllocation holds.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub range: String,
    pub bitmap: Bitmap,
}

fn decode(size: usize, raw: &[u8]) -> Result<Snapshot, AllocError> {
    let v: Value = serde_json::from_slice(raw).map_err(|e| AllocError::Corrupt(e.to_string()))?;
    let data = v.get("data").and_then(Value::as_str).unwrap_or("");
    let bytes = base64::engine::general_purpose::STANDARD.decode(data).map_err(|e| AllocError::Corrupt(e.to_string()))?;
    Ok(Snapshot { range: v.get("range").and_then(Value::as_str).unwrap_or("").to_string(), bitmap: Bitmap::from_bytes(size, &bytes) })
}

fn encode(range: &str, bitmap: &Bitmap) -> Bytes {
    let data = base64::engine::general_purpose::STANDARD.encode(bitmap.bytes());
    let v = json!({"kind": "RangeAllocation", "apiVersion": "v1", "metadata": {}, "range": range, "data": data});
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

impl RangeStore {
    pub fn new(storage: DynStorage, key: String, range: String, size: usize) -> Self {
        RangeStore { storage, key, range, size }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Changes the bitmap with `f` under compare-and-swap; `f` may run more than once.
    /// A stored object for another range is started afresh (repair fills it again).
    pub async fn update<R, F>(&self, mut f: F) -> Result<R, AllocError>
    where
        F: FnMut(&mut Bitmap) -> Result<(R, bool), AllocError>,
    {
        let mut out = None;
        let res = guaranteed_update::<AllocError, _>(&*self.storage, &self.key, |current| {
            let mut bitmap = match current {
                Some(kv) => {
                    let snap = decode(self.size, &kv.value)?;
                    if snap.range == self.range { snap.bitmap } else { Bitmap::new(self.size) }
                }
                None => Bitmap::new(self.size),
            };
            let (r, changed) = f(&mut bitmap)?;
            out = Some(r);
            Ok(if changed || current.is_none() { UpdateDecision::Write(encode(&self.range, &bitmap)) } else { UpdateDecision::Unchanged })
        })
        .await?;
        let _: UpdateOutcome = res;
        out.ok_or_else(|| AllocError::Corrupt("no result".into()))
    }

    /// Takes `offset`.
    pub async fn allocate(&self, offset: usize) -> Result<(), AllocError> {
        self.update(|b| if b.set(offset) { Ok(((), true)) } else { Err(AllocError::Allocated) }).await
    }

    /// Takes a free offset outside the static band when it can.
    pub async fn allocate_next(&self) -> Result<usize, AllocError> {
        let band = super::bitmap::static_band(self.size);
        self.update(|b| {
            let i = b.free_random(band).ok_or(AllocError::Full)?;
            b.set(i);
            Ok((i, true))
        })
        .await
    }

    /// Frees `offset`; freeing a free offset is no error.
    pub async fn release(&self, offset: usize) -> Result<(), AllocError> {
        self.update(|b| {
            let changed = b.clear(offset);
            Ok(((), changed))
        })
        .await
    }

    /// The stored bitmap and its mod revision (0: none stored yet).
    pub async fn snapshot_at(&self) -> Result<(Bitmap, i64), AllocError> {
        match self.storage.get(&self.key).await? {
            Some(kv) => {
                let snap = decode(self.size, &kv.value)?;
                let b = if snap.range == self.range { snap.bitmap } else { Bitmap::new(self.size) };
                Ok((b, kv.mod_revision))
            }
            None => Ok((Bitmap::new(self.size), 0)),
        }
    }

    /// Replaces the stored bitmap only if it is still at `revision` (0: absent); false when
    /// someone wrote in between.
    pub async fn replace(&self, bitmap: &Bitmap, revision: i64) -> Result<bool, AllocError> {
        let bytes = encode(&self.range, bitmap);
        let res = if revision == 0 { self.storage.create(&self.key, bytes).await } else { self.storage.update(&self.key, bytes, revision).await };
        match res {
            Ok(_) => Ok(true),
            Err(StorageError::Conflict { .. } | StorageError::AlreadyExists { .. } | StorageError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The stored bitmap, empty when there is none yet (or it is for another range).
    pub async fn snapshot(&self) -> Result<Bitmap, AllocError> {
        match self.storage.get(&self.key).await? {
            Some(kv) => {
                let snap = decode(self.size, &kv.value)?;
                Ok(if snap.range == self.range { snap.bitmap } else { Bitmap::new(self.size) })
            }
            None => Ok(Bitmap::new(self.size)),
        }
    }
}

impl From<StorageError> for AllocError {
    fn from(e: StorageError) -> Self {
        AllocError::Storage(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStorage;
    use std::sync::Arc;

    fn store(storage: DynStorage) -> RangeStore {
        RangeStore::new(storage, "/registry/ranges/test".into(), "0-9".into(), 10)
    }

    #[tokio::test]
    async fn allocations_persist_and_conflict_is_refused() {
        let mem: DynStorage = Arc::new(MemoryStorage::new());
        let a = store(mem.clone());
        a.allocate(3).await.unwrap();
        assert!(matches!(a.allocate(3).await, Err(AllocError::Allocated)));
        // A second allocator over the same storage (another apiserver) sees it.
        let b = store(mem.clone());
        assert!(matches!(b.allocate(3).await, Err(AllocError::Allocated)));
        b.release(3).await.unwrap();
        a.allocate(3).await.unwrap();
        assert_eq!(a.snapshot().await.unwrap().taken().collect::<Vec<_>>(), vec![3]);
    }

    #[tokio::test]
    async fn concurrent_allocators_never_share_an_offset() {
        let mem: DynStorage = Arc::new(MemoryStorage::new());
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let s = store(mem.clone());
            tasks.push(tokio::spawn(async move { s.allocate_next().await }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap().unwrap());
        }
        got.sort();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert!(matches!(store(mem).allocate_next().await, Err(AllocError::Full)));
    }

    #[tokio::test]
    async fn a_stale_write_is_retried_from_a_fresh_read() {
        let mem: DynStorage = Arc::new(MemoryStorage::new());
        let a = store(mem.clone());
        a.allocate(1).await.unwrap();
        // Someone else writes between our read and our write: the first attempt's compare
        // fails, the retry sees offset 2 taken as well.
        let other = store(mem.clone());
        let mut first = true;
        let got = a
            .update(|b| {
                if first {
                    first = false;
                    let o = store(mem.clone());
                    let _ = futures::executor::block_on(o.allocate(2));
                }
                b.set(5);
                Ok((b.taken().collect::<Vec<_>>(), true))
            })
            .await
            .unwrap();
        assert_eq!(got, vec![1, 2, 5]);
        assert_eq!(other.snapshot().await.unwrap().count(), 3);
        let kv = mem.get("/registry/ranges/test").await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&kv.value).contains("RangeAllocation"));
    }
}
