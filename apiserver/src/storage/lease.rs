//! Sharing leases between writes with a TTL (upstream etcd3 leaseManager): granting one lease
//! per Event would cost etcd a lease per object, so a lease granted for a write is reused by
//! the writes that follow within a small fraction of the TTL. Each lease is granted that much
//! longer, so no key expires early; a key may outlive its TTL by at most the reuse window.

use std::future::Future;
use std::time::{Duration, Instant};

/// How leases are shared (upstream's defaults: 5% of the TTL, at most 60 s, 1000 keys).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeasePolicy {
    pub reuse_fraction: f64,
    pub max_reuse: Duration,
    /// Keys attached to one lease at most: revoking a huge lease is a huge etcd transaction.
    pub max_keys: u64,
}

impl Default for LeasePolicy {
    fn default() -> Self {
        LeasePolicy { reuse_fraction: 0.05, max_reuse: Duration::from_secs(60), max_keys: 1000 }
    }
}

impl LeasePolicy {
    /// How long after its grant a lease for `ttl` may still be handed out.
    pub fn reuse_window(&self, ttl: Duration) -> Duration {
        ttl.mul_f64(self.reuse_fraction).min(self.max_reuse)
    }

    /// The TTL, in whole seconds as etcd grants them, of a new lease for writes with `ttl`.
    pub fn grant_seconds(&self, ttl: Duration) -> i64 {
        let total = ttl + self.reuse_window(ttl);
        total.as_secs() as i64 + i64::from(total.subsec_nanos() > 0)
    }
}

/// The lease last granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granted {
    pub id: i64,
    pub expires: Instant,
    pub keys: u64,
}

/// Whether a write at `now` that must live `ttl` may join `prev`: the lease outlives the
/// TTL, but not by more than the reuse window, and is not full.
pub fn reusable(policy: &LeasePolicy, prev: &Granted, ttl: Duration, now: Instant) -> bool {
    let wanted = now + ttl;
    let valid = wanted < prev.expires;
    let sufficient = wanted + policy.reuse_window(ttl) >= prev.expires;
    valid && sufficient && prev.keys < policy.max_keys
}

/// Hands out leases, granting a new one only when the last cannot be shared.
#[derive(Default)]
pub struct LeaseManager {
    policy: LeasePolicy,
    /// Held across a grant, so that concurrent writes wait for one grant and share it.
    last: tokio::sync::Mutex<Option<Granted>>,
}

impl LeaseManager {
    pub fn new(policy: LeasePolicy) -> Self {
        LeaseManager { policy, last: Default::default() }
    }

    /// The lease for one write with `ttl`; `grant(seconds)` asks the backend for a new one.
    pub async fn lease_for<E, F, Fut>(&self, ttl: Duration, grant: F) -> Result<i64, E>
    where
        F: FnOnce(i64) -> Fut,
        Fut: Future<Output = Result<i64, E>>,
    {
        let mut last = self.last.lock().await;
        let now = Instant::now();
        if let Some(prev) = last.as_mut().filter(|p| reusable(&self.policy, p, ttl, now)) {
            prev.keys += 1;
            return Ok(prev.id);
        }
        let id = grant(self.policy.grant_seconds(ttl)).await?;
        // Counted unrounded (etcd's whole seconds only add to it): rounding up would put the
        // expiry past the reuse window and no later write could share the lease.
        *last = Some(Granted { id, expires: now + ttl + self.policy.reuse_window(ttl), keys: 1 });
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_within_the_reuse_window_share_a_lease() {
        let p = LeasePolicy::default();
        let ttl = Duration::from_secs(3600);
        assert_eq!(p.reuse_window(ttl), Duration::from_secs(60));
        assert_eq!(p.reuse_window(Duration::from_secs(100)), Duration::from_secs(5));
        assert_eq!(p.grant_seconds(Duration::from_secs(10)), 11);
        assert_eq!(p.grant_seconds(Duration::from_millis(2500)), 3);
        let t0 = Instant::now();
        let g = Granted { id: 1, expires: t0 + Duration::from_secs(3660), keys: 1 };
        assert!(reusable(&p, &g, ttl, t0));
        assert!(reusable(&p, &g, ttl, t0 + Duration::from_secs(59)));
        // Past the window the key would outlive the lease.
        assert!(!reusable(&p, &g, ttl, t0 + Duration::from_secs(60)));
        // A much shorter TTL would outlive its own expiry by too much.
        assert!(!reusable(&p, &g, Duration::from_secs(60), t0));
        assert!(!reusable(&p, &Granted { keys: 1000, ..g }, ttl, t0));
    }

    #[tokio::test]
    async fn concurrent_writes_wait_for_one_grant() {
        let m = std::sync::Arc::new(LeaseManager::default());
        let grants = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (m, grants) = (m.clone(), grants.clone());
            tasks.push(tokio::spawn(async move {
                m.lease_for(Duration::from_secs(3600), |_| async move {
                    Ok::<_, ()>(grants.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1)
                })
                .await
                .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 1);
        }
        assert_eq!(grants.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A TTL whose window is not whole seconds is shared as well.
        let m = LeaseManager::default();
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(m.lease_for(Duration::from_secs(10), |_| async move { Ok::<_, ()>(i) }).await.unwrap());
        }
        assert_eq!(ids, [0, 0, 0]);
    }
}
