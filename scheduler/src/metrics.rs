//! Prometheus metrics named as upstream's: attempts by result, the
//! scheduling attempt latency histogram, and pending pods per queue.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::queue::QueueSizes;

type Labels = Vec<(String, String)>;

fn latency_histogram() -> Histogram {
    // 1 ms .. ~16 s, as upstream's scheduling_attempt_duration_seconds.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    attempts: Family<Labels, Counter>,
    attempt_duration: Family<Labels, Histogram, fn() -> Histogram>,
    pending: Family<Labels, Gauge>,
    preemption_attempts: Counter,
    preemption_victims: Counter,
    /// Bind calls to the API: a slow apiserver shows here, not in attempts.
    extension_point_duration: Family<Labels, Histogram, fn() -> Histogram>,
    events_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let attempts = Family::<Labels, Counter>::default();
        let attempt_duration = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let pending = Family::<Labels, Gauge>::default();
        let preemption_attempts = Counter::default();
        let preemption_victims = Counter::default();
        let extension_point_duration =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let events_dropped = Counter::default();
        registry.register(
            "scheduler_framework_extension_point_duration_seconds",
            "Latency for running all plugins of a specific extension point (here: Bind, the API call)",
            extension_point_duration.clone(),
        );
        registry.register(
            "scheduler_events_dropped",
            "Events dropped because the event queue was full, as upstream's broadcaster does",
            events_dropped.clone(),
        );
        registry.register(
            "scheduler_schedule_attempts",
            "Number of attempts to schedule pods, by the result ('scheduled', 'unschedulable', 'error') and profile",
            attempts.clone(),
        );
        registry.register(
            "scheduler_scheduling_attempt_duration_seconds",
            "Scheduling attempt latency in seconds (scheduling algorithm + binding decision)",
            attempt_duration.clone(),
        );
        registry.register(
            "scheduler_pending_pods",
            "Number of pending pods, by the queue type",
            pending.clone(),
        );
        registry.register(
            "scheduler_preemption_attempts",
            "Total preemption attempts in the cluster till now",
            preemption_attempts.clone(),
        );
        registry.register(
            "scheduler_preemption_victims",
            "Number of selected preemption victims",
            preemption_victims.clone(),
        );
        Metrics {
            registry,
            attempts,
            attempt_duration,
            pending,
            preemption_attempts,
            preemption_victims,
            extension_point_duration,
            events_dropped,
        }
    }
}

impl Metrics {
    pub fn attempt(&self, result: &str, profile: &str, seconds: f64) {
        let labels = vec![
            ("result".to_string(), result.to_string()),
            ("profile".to_string(), profile.to_string()),
        ];
        self.attempts.get_or_create(&labels).inc();
        self.attempt_duration.get_or_create(&labels).observe(seconds);
    }

    pub fn attempts(&self, result: &str, profile: &str) -> u64 {
        let labels = vec![
            ("result".to_string(), result.to_string()),
            ("profile".to_string(), profile.to_string()),
        ];
        self.attempts.get_or_create(&labels).get()
    }

    pub fn bind(&self, success: bool, profile: &str, seconds: f64) {
        let labels = vec![
            ("extension_point".to_string(), "Bind".to_string()),
            ("status".to_string(), if success { "Success" } else { "Error" }.to_string()),
            ("profile".to_string(), profile.to_string()),
        ];
        self.extension_point_duration.get_or_create(&labels).observe(seconds);
    }

    pub fn event_dropped(&self) {
        self.events_dropped.inc();
    }

    pub fn preemption(&self, victims: usize) {
        self.preemption_attempts.inc();
        self.preemption_victims.inc_by(victims as u64);
    }

    pub fn queue_sizes(&self, sizes: QueueSizes) {
        for (queue, n) in [
            ("active", sizes.active),
            ("backoff", sizes.backoff),
            ("unschedulable", sizes.unschedulable),
        ] {
            self.pending
                .get_or_create(&vec![("queue".to_string(), queue.to_string())])
                .set(n as i64);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_attempts_latency_and_queues() {
        let m = Metrics::default();
        m.attempt("scheduled", "default-scheduler", 0.002);
        m.queue_sizes(QueueSizes {
            active: 1,
            backoff: 2,
            unschedulable: 3,
        });
        let text = m.render();
        assert!(
            text.contains("scheduler_schedule_attempts_total{result=\"scheduled\",profile=\"default-scheduler\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("scheduler_scheduling_attempt_duration_seconds_bucket"),
            "{text}"
        );
        assert!(
            text.contains("scheduler_pending_pods{queue=\"unschedulable\"} 3"),
            "{text}"
        );
    }
}
