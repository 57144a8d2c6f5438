//! activeQ: pods ready to be tried, highest priority first, then the
//! longest waiting.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::QueuedPodInfo;

type Order = (Reverse<i32>, Instant, u64);

#[derive(Default)]
pub struct ActiveQ {
    order: BTreeMap<Order, String>,
    pods: HashMap<String, (Order, QueuedPodInfo)>,
    seq: u64,
}

impl ActiveQ {
    /// Adds or replaces a pod (a replaced pod keeps its place in line
    /// unless its priority changed).
    pub fn push(&mut self, qp: QueuedPodInfo) {
        let key = qp.info.key.clone();
        if let Some((old, _)) = self.pods.remove(&key) {
            self.order.remove(&old);
        }
        self.seq += 1;
        let order = (Reverse(qp.info.priority), qp.timestamp, self.seq);
        self.order.insert(order, key.clone());
        self.pods.insert(key, (order, qp));
    }

    pub fn pop(&mut self) -> Option<QueuedPodInfo> {
        let (_, key) = self.order.pop_first()?;
        self.pods.remove(&key).map(|(_, qp)| qp)
    }

    pub fn remove(&mut self, key: &str) -> Option<QueuedPodInfo> {
        let (order, qp) = self.pods.remove(key)?;
        self.order.remove(&order);
        Some(qp)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut QueuedPodInfo> {
        self.pods.get_mut(key).map(|(_, qp)| qp)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.pods.contains_key(key)
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
    use std::time::Duration;

    #[test]
    fn priority_then_time() {
        let t0 = Instant::now();
        let mut q = ActiveQ::default();
        q.push(queued("late-low", 0, t0 + Duration::from_secs(2)));
        q.push(queued("early-low", 0, t0));
        q.push(queued("high", 100, t0 + Duration::from_secs(5)));
        let order: Vec<String> = std::iter::from_fn(|| q.pop())
            .map(|p| p.info.name().to_string())
            .collect();
        assert_eq!(order, vec!["high", "early-low", "late-low"]);
    }

    #[test]
    fn replace_and_remove() {
        let t0 = Instant::now();
        let mut q = ActiveQ::default();
        q.push(queued("a", 0, t0));
        q.push(queued("a", 0, t0));
        assert_eq!(q.len(), 1);
        assert!(q.remove("default/a").is_some());
        assert!(q.pop().is_none());
    }
}
