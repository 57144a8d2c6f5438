//! Coalesced container listing, after upstream's runtime cache: every pod
//! worker asks for "the containers now", and with many pods those asks pile
//! up. Listing tasks makes containerd query every shim, so N workers listing
//! at once cost N×N shim calls. Here one list serves every caller that asked
//! before it began, so an answer is never older than the question.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Mutex;

/// Shares one in-order list among concurrent callers.
pub struct RuntimeCache<T> {
    /// Number of requests made so far; request n is served by a list that
    /// read `requested >= n` before it began.
    requested: AtomicU64,
    /// One list at a time; tokio's mutex is fair, so waiters queue in order.
    listing: Mutex<()>,
    /// The latest successful list and the last request number it covers.
    last: std::sync::Mutex<Option<(u64, Arc<T>)>>,
}

impl<T> Default for RuntimeCache<T> {
    fn default() -> Self {
        RuntimeCache {
            requested: AtomicU64::new(0),
            listing: Mutex::new(()),
            last: std::sync::Mutex::new(None),
        }
    }
}

impl<T> RuntimeCache<T> {
    /// Returns a list that began after this call did, running `list` only when
    /// no such list has finished meanwhile.
    pub async fn get<F, Fut, E>(&self, list: F) -> Result<Arc<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mine = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _turn = self.listing.lock().await;
        if let Some(fresh) = self.covering(mine) {
            return Ok(fresh);
        }
        // Every request counted up to here was made before this list begins.
        let covers = self.requested.load(Ordering::SeqCst);
        let v = Arc::new(list().await?);
        if let Ok(mut last) = self.last.lock() {
            *last = Some((covers, v.clone()));
        }
        Ok(v)
    }

    fn covering(&self, request: u64) -> Option<Arc<T>> {
        let last = self.last.lock().ok()?;
        match &*last {
            Some((covers, v)) if *covers >= request => Some(v.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn concurrent_callers_share_lists_that_began_after_them() {
        let cache: Arc<RuntimeCache<usize>> = Arc::default();
        let lists = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        // The first caller's list blocks until released; ten more callers queue meanwhile.
        let first = {
            let (cache, lists, gate) = (cache.clone(), lists.clone(), gate.clone());
            tokio::spawn(async move {
                cache
                    .get(|| async move {
                        gate.notified().await;
                        Ok::<_, ()>(lists.fetch_add(1, Ordering::SeqCst) + 1)
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        while cache.requested.load(Ordering::SeqCst) < 1 {
            tokio::task::yield_now().await;
        }
        let mut later = Vec::new();
        for _ in 0..10 {
            let (cache, lists) = (cache.clone(), lists.clone());
            later.push(tokio::spawn(async move {
                cache
                    .get(|| async move { Ok::<_, ()>(lists.fetch_add(1, Ordering::SeqCst) + 1) })
                    .await
            }));
        }
        while cache.requested.load(Ordering::SeqCst) < 11 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        assert_eq!(*first.await.unwrap().unwrap(), 1);
        for h in later {
            // They asked while list 1 ran, so list 1 is too old for them: all share list 2.
            assert_eq!(*h.await.unwrap().unwrap(), 2);
        }
        assert_eq!(lists.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_caller_after_a_finished_list_gets_a_new_one() {
        let cache: RuntimeCache<u32> = RuntimeCache::default();
        assert_eq!(*cache.get(|| async { Ok::<_, ()>(1) }).await.unwrap(), 1);
        assert_eq!(*cache.get(|| async { Ok::<_, ()>(2) }).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let cache: RuntimeCache<u32> = RuntimeCache::default();
        assert!(cache.get(|| async { Err::<u32, _>("down") }).await.is_err());
        assert_eq!(*cache.get(|| async { Ok::<_, &str>(3) }).await.unwrap(), 3);
    }
}
