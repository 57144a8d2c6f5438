//! The scheduling queue: activeQ, backoffQ and unschedulablePods, moved
//! between by attempts, cluster events and time (an injectable [`Clock`]).

mod active;
mod backoff;
mod clock;
mod unschedulable;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

pub use active::ActiveQ;
pub use backoff::{backoff_duration, BackoffQ, INITIAL_BACKOFF, MAX_BACKOFF};
pub use clock::{Clock, FakeClock, RealClock};
pub use unschedulable::{UnschedulablePods, MAX_UNSCHEDULABLE_DURATION};

use crate::framework::PodInfo;

/// A pod in the queue with its scheduling history.
#[derive(Debug, Clone)]
pub struct QueuedPodInfo {
    pub info: Arc<PodInfo>,
    /// When it last entered a pool (or was last tried).
    pub timestamp: Instant,
    pub attempts: u32,
    pub initial_attempt: Option<Instant>,
}

/// Pool sizes, for /metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueSizes {
    pub active: usize,
    pub backoff: usize,
    pub unschedulable: usize,
}

pub struct SchedulingQueue {
    clock: Arc<dyn Clock>,
    active: ActiveQ,
    backoff: BackoffQ,
    unschedulable: UnschedulablePods,
    /// Popped and not yet finished (being scheduled or bound).
    in_flight: HashSet<String>,
    scheduling_cycle: u64,
    /// The cycle during which the last move request arrived: a pod that
    /// failed during or before it may have missed the event, so it backs
    /// off instead of parking in unschedulable.
    move_request_cycle: u64,
}

impl SchedulingQueue {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        SchedulingQueue {
            clock,
            active: ActiveQ::default(),
            backoff: BackoffQ::default(),
            unschedulable: UnschedulablePods::default(),
            in_flight: HashSet::new(),
            scheduling_cycle: 0,
            move_request_cycle: 0,
        }
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// A new pending pod.
    pub fn add(&mut self, info: Arc<PodInfo>) {
        let key = info.key.clone();
        if self.in_flight.contains(&key) {
            return;
        }
        self.backoff.remove(&key);
        self.unschedulable.remove(&key);
        let qp = QueuedPodInfo {
            info,
            timestamp: self.clock.now(),
            attempts: 0,
            initial_attempt: None,
        };
        self.active.push(qp);
    }

    /// An updated pending pod: replaced where it is; an unschedulable pod
    /// is given another chance since the update may make it fit.
    pub fn update(&mut self, info: Arc<PodInfo>) {
        let key = info.key.clone();
        if self.in_flight.contains(&key) {
            return;
        }
        if let Some(qp) = self.active.get_mut(&key) {
            qp.info = info.clone();
            let qp = qp.clone();
            self.active.push(qp);
            return;
        }
        if let Some(qp) = self.backoff.get_mut(&key) {
            qp.info = info;
            return;
        }
        if let Some(mut qp) = self.unschedulable.remove(&key) {
            qp.info = info;
            self.move_to_active_or_backoff(qp, self.clock.now());
            return;
        }
        self.add(info);
    }

    pub fn delete(&mut self, key: &str) {
        self.active.remove(key);
        self.backoff.remove(key);
        self.unschedulable.remove(key);
    }

    /// Next pod to try, after flushing due backoffs and stale unschedulables.
    pub fn pop(&mut self) -> Option<(QueuedPodInfo, u64)> {
        self.flush();
        let mut qp = self.active.pop()?;
        let now = self.clock.now();
        qp.attempts += 1;
        qp.initial_attempt.get_or_insert(now);
        self.scheduling_cycle += 1;
        self.in_flight.insert(qp.info.key.clone());
        Some((qp, self.scheduling_cycle))
    }

    /// The attempt is over (bound, requeued or given up).
    pub fn done(&mut self, key: &str) {
        self.in_flight.remove(key);
    }

    pub fn is_in_flight(&self, key: &str) -> bool {
        self.in_flight.contains(key)
    }

    /// A pod no node fits.
    pub fn add_unschedulable(&mut self, mut qp: QueuedPodInfo, pod_cycle: u64) {
        let key = qp.info.key.clone();
        self.in_flight.remove(&key);
        qp.timestamp = self.clock.now();
        if self.move_request_cycle >= pod_cycle {
            self.backoff.push(qp);
        } else {
            self.unschedulable.insert(qp);
        }
    }

    /// A pod that hit an error (or a failed bind): retry after backoff.
    pub fn add_backoff(&mut self, mut qp: QueuedPodInfo) {
        self.in_flight.remove(&qp.info.key);
        qp.timestamp = self.clock.now();
        self.backoff.push(qp);
    }

    /// A cluster event (node added or changed, pod deleted) may let
    /// unschedulable pods fit: give them all another chance.
    pub fn move_all_to_active_or_backoff(&mut self) {
        let now = self.clock.now();
        for qp in self.unschedulable.drain_all() {
            self.move_to_active_or_backoff(qp, now);
        }
        self.move_request_cycle = self.scheduling_cycle;
    }

    fn move_to_active_or_backoff(&mut self, qp: QueuedPodInfo, now: Instant) {
        if backoff::backoff_expiry(&qp) > now {
            self.backoff.push(qp);
        } else {
            self.active.push(qp);
        }
    }

    fn flush(&mut self) {
        let now = self.clock.now();
        for qp in self.backoff.pop_expired(now) {
            self.active.push(qp);
        }
        for qp in self.unschedulable.drain_stale(now) {
            self.move_to_active_or_backoff(qp, now);
        }
    }

    /// When the next backoff expires, so the loop knows when to wake.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.backoff.next_expiry()
    }

    pub fn sizes(&self) -> QueueSizes {
        QueueSizes {
            active: self.active.len(),
            backoff: self.backoff.len(),
            unschedulable: self.unschedulable.len(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::{pod, pod_info, with_priority};
    use std::time::Duration;

    pub(crate) fn queued(name: &str, priority: i32, t: Instant) -> QueuedPodInfo {
        QueuedPodInfo {
            info: Arc::new(pod_info(with_priority(pod(name, "0", "0"), priority))),
            timestamp: t,
            attempts: 0,
            initial_attempt: None,
        }
    }

    fn info(name: &str) -> Arc<PodInfo> {
        Arc::new(pod_info(pod(name, "0", "0")))
    }

    #[test]
    fn unschedulable_pod_returns_on_cluster_event_after_backoff() {
        let clock = Arc::new(FakeClock::default());
        let mut q = SchedulingQueue::new(clock.clone());
        q.add(info("a"));
        let (qp, cycle) = q.pop().unwrap();
        q.add_unschedulable(qp, cycle);
        assert_eq!(
            q.sizes(),
            QueueSizes {
                active: 0,
                backoff: 0,
                unschedulable: 1
            }
        );
        assert!(q.pop().is_none());

        q.move_all_to_active_or_backoff();
        assert_eq!(q.sizes().backoff, 1, "still backing off from attempt 1");
        assert!(q.pop().is_none());
        clock.advance(Duration::from_secs(1));
        let (qp, _) = q.pop().expect("backoff of 1s expired");
        assert_eq!(qp.attempts, 2);
    }

    #[test]
    fn event_during_the_attempt_sends_the_pod_to_backoff() {
        let clock = Arc::new(FakeClock::default());
        let mut q = SchedulingQueue::new(clock.clone());
        q.add(info("a"));
        let (qp, cycle) = q.pop().unwrap();
        q.move_all_to_active_or_backoff();
        q.add_unschedulable(qp, cycle);
        assert_eq!(q.sizes().backoff, 1);
    }

    #[test]
    fn unschedulable_pods_leave_after_five_minutes() {
        let clock = Arc::new(FakeClock::default());
        let mut q = SchedulingQueue::new(clock.clone());
        q.add(info("a"));
        let (qp, cycle) = q.pop().unwrap();
        q.add_unschedulable(qp, cycle);
        clock.advance(MAX_UNSCHEDULABLE_DURATION);
        assert!(q.pop().is_none());
        clock.advance(Duration::from_secs(1));
        assert!(q.pop().is_some());
    }

    #[test]
    fn in_flight_pods_are_not_queued_twice() {
        let mut q = SchedulingQueue::new(Arc::new(FakeClock::default()));
        q.add(info("a"));
        let (_, _) = q.pop().unwrap();
        q.update(info("a"));
        q.add(info("a"));
        assert!(q.pop().is_none());
        q.done("default/a");
        q.update(info("a"));
        assert!(q.pop().is_some());
    }

    #[test]
    fn errors_back_off_exponentially() {
        let clock = Arc::new(FakeClock::default());
        let mut q = SchedulingQueue::new(clock.clone());
        q.add(info("a"));
        for expected in [1u64, 2, 4] {
            let (qp, _) = q.pop().unwrap();
            q.add_backoff(qp);
            clock.advance(Duration::from_secs(expected) - Duration::from_millis(1));
            assert!(q.pop().is_none(), "still backing off before {expected}s");
            clock.advance(Duration::from_millis(1));
        }
        assert!(q.pop().is_some());
    }

    #[test]
    fn deleted_pods_leave_every_pool() {
        let mut q = SchedulingQueue::new(Arc::new(FakeClock::default()));
        q.add(info("a"));
        q.delete("default/a");
        assert!(q.pop().is_none());
    }
}
