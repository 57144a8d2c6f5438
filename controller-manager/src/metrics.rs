//! /metrics: work-queue depth, reconcile counts and errors by controller.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub name: String,
}

type DepthFn = Box<dyn Fn() -> usize + Send + Sync>;

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    reconciles: Family<ControllerLabel, Counter>,
    errors: Family<ControllerLabel, Counter>,
    depth: Family<ControllerLabel, Gauge>,
    queues: Arc<Mutex<Vec<(String, DepthFn)>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let reconciles = Family::<ControllerLabel, Counter>::default();
        let errors = Family::<ControllerLabel, Counter>::default();
        let depth = Family::<ControllerLabel, Gauge>::default();
        registry.register("controller_reconcile", "Reconciles by controller", reconciles.clone());
        registry.register("controller_reconcile_errors", "Failed reconciles by controller", errors.clone());
        registry.register("workqueue_depth", "Keys waiting in each controller's work queue", depth.clone());
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            reconciles,
            errors,
            depth,
            queues: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl Metrics {
    pub fn register_queue(&self, name: &str, depth: impl Fn() -> usize + Send + Sync + 'static) {
        self.queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.to_string(), Box::new(depth)));
    }

    pub fn reconciled(&self, name: &str, ok: bool) {
        let l = ControllerLabel { name: name.to_string() };
        self.reconciles.get_or_create(&l).inc();
        if !ok {
            self.errors.get_or_create(&l).inc();
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        for (name, f) in self.queues.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            self.depth.get_or_create(&ControllerLabel { name: name.clone() }).set(f() as i64);
        }
        let mut out = String::new();
        let reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if encode(&mut out, &reg).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_errors_and_depth() {
        let m = Metrics::default();
        m.register_queue("replicaset", || 3);
        m.reconciled("replicaset", true);
        m.reconciled("replicaset", false);
        let text = m.render();
        assert!(text.contains("controller_reconcile_total{name=\"replicaset\"} 2"), "{text}");
        assert!(text.contains("controller_reconcile_errors_total{name=\"replicaset\"} 1"), "{text}");
        assert!(text.contains("workqueue_depth{name=\"replicaset\"} 3"), "{text}");
    }
}
