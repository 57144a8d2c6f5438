//! backoffQ: pods that failed recently wait 1 s, doubling per attempt up
//! to 10 s, before going back to activeQ.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::QueuedPodInfo;

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The backoff after `attempts` failed attempts.
pub fn backoff_duration(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(16);
    (INITIAL_BACKOFF * (1u32 << exp)).min(MAX_BACKOFF)
}

pub fn backoff_expiry(qp: &QueuedPodInfo) -> Instant {
    qp.timestamp + backoff_duration(qp.attempts)
}

#[derive(Default)]
pub struct BackoffQ {
    order: BTreeMap<(Instant, u64), String>,
    pods: HashMap<String, ((Instant, u64), QueuedPodInfo)>,
    seq: u64,
}

impl BackoffQ {
    pub fn push(&mut self, qp: QueuedPodInfo) {
        let key = qp.info.key.clone();
        self.remove(&key);
        self.seq += 1;
        let order = (backoff_expiry(&qp), self.seq);
        self.order.insert(order, key.clone());
        self.pods.insert(key, (order, qp));
    }

    /// Pops every pod whose backoff has expired at `now`.
    pub fn pop_expired(&mut self, now: Instant) -> Vec<QueuedPodInfo> {
        let mut out = Vec::new();
        while let Some(entry) = self.order.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            if let Some((_, qp)) = self.pods.remove(&key) {
                out.push(qp);
            }
        }
        out
    }

    pub fn remove(&mut self, key: &str) -> Option<QueuedPodInfo> {
        let (order, qp) = self.pods.remove(key)?;
        self.order.remove(&order);
        Some(qp)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut QueuedPodInfo> {
        self.pods.get_mut(key).map(|(_, qp)| qp)
    }

    pub fn next_expiry(&self) -> Option<Instant> {
        self.order.keys().next().map(|(t, _)| *t)
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::tests::queued;

    #[test]
    fn backoff_doubles_up_to_ten_seconds() {
        let secs: Vec<u64> = (1..=6).map(|a| backoff_duration(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff_duration(0), Duration::from_secs(1));
    }

    #[test]
    fn pops_only_expired() {
        let t0 = Instant::now();
        let mut q = BackoffQ::default();
        let mut a = queued("a", 0, t0);
        a.attempts = 1;
        let mut b = queued("b", 0, t0);
        b.attempts = 3;
        q.push(a);
        q.push(b);
        assert!(q.pop_expired(t0).is_empty());
        let first: Vec<_> = q
            .pop_expired(t0 + Duration::from_secs(1))
            .into_iter()
            .map(|p| p.info.name().to_string())
            .collect();
        assert_eq!(first, vec!["a"]);
        assert_eq!(q.next_expiry(), Some(t0 + Duration::from_secs(4)));
        assert_eq!(q.pop_expired(t0 + Duration::from_secs(4)).len(), 1);
        assert!(q.is_empty());
    }
}
