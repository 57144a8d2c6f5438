//! unschedulablePods: pods no node fits. They leave on a cluster event that
//! could make them fit, or after at most five minutes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::QueuedPodInfo;

pub const MAX_UNSCHEDULABLE_DURATION: Duration = Duration::from_secs(300);

#[derive(Default)]
pub struct UnschedulablePods {
    pods: HashMap<String, QueuedPodInfo>,
}

impl UnschedulablePods {
    pub fn insert(&mut self, qp: QueuedPodInfo) {
        self.pods.insert(qp.info.key.clone(), qp);
    }

    pub fn remove(&mut self, key: &str) -> Option<QueuedPodInfo> {
        self.pods.remove(key)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut QueuedPodInfo> {
        self.pods.get_mut(key)
    }

    pub fn drain_all(&mut self) -> Vec<QueuedPodInfo> {
        self.pods.drain().map(|(_, qp)| qp).collect()
    }

    /// Removes the pods that have waited longer than the maximum.
    pub fn drain_stale(&mut self, now: Instant) -> Vec<QueuedPodInfo> {
        let stale: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, qp)| now.duration_since(qp.timestamp) > MAX_UNSCHEDULABLE_DURATION)
            .map(|(k, _)| k.clone())
            .collect();
        stale.iter().filter_map(|k| self.pods.remove(k)).collect()
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
    fn stale_after_five_minutes() {
        let t0 = Instant::now();
        let mut u = UnschedulablePods::default();
        u.insert(queued("old", 0, t0));
        u.insert(queued("new", 0, t0 + Duration::from_secs(200)));
        assert!(u.drain_stale(t0 + Duration::from_secs(300)).is_empty());
        let stale: Vec<_> = u
            .drain_stale(t0 + Duration::from_secs(301))
            .into_iter()
            .map(|p| p.info.name().to_string())
            .collect();
        assert_eq!(stale, vec!["old"]);
        assert_eq!(u.len(), 1);
    }
}
