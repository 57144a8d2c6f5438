//! kube-proxy's metrics (pkg/proxy/metrics) under their upstream names.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

pub struct Metrics {
    registry: Registry,
    pub sync_duration: Histogram,
    pub last_sync: Gauge<f64, AtomicU64>,
    pub rules: Gauge,
    pub endpoints: Gauge,
    pub chains_written: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kubeproxy");
        let sync_duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let last_sync = Gauge::<f64, AtomicU64>::default();
        let rules = Gauge::default();
        let endpoints = Gauge::default();
        let chains_written = Gauge::default();
        // prometheus-client appends the unit; upstream's names already carry it.
        registry.register("sync_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds", sync_duration.clone());
        registry.register("sync_proxy_rules_last_timestamp_seconds", "The last time proxy rules were successfully synced", last_sync.clone());
        registry.register("sync_proxy_rules_nftables_total", "Number of nftables rules programmed by the last sync", rules.clone());
        registry.register("sync_proxy_rules_endpoints_total", "Number of endpoints programmed by the last sync", endpoints.clone());
        registry.register("sync_proxy_rules_nftables_chains_written", "Chains written by the last sync (all of them on a full sync)", chains_written.clone());
        Metrics { registry, sync_duration, last_sync, rules, endpoints, chains_written }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn upstream_names() {
        let m = super::Metrics::new();
        m.sync_duration.observe(0.01);
        let text = m.encode();
        for name in ["kubeproxy_sync_proxy_rules_duration_seconds_bucket", "kubeproxy_sync_proxy_rules_last_timestamp_seconds", "kubeproxy_sync_proxy_rules_nftables_total", "kubeproxy_sync_proxy_rules_endpoints_total"] {
            assert!(text.contains(name), "{name} in {text}");
        }
    }
}
