//! The control loop: Services and EndpointSlices kept in reflector stores; any change wakes
//! the syncer, which rebuilds the state and hands it to the backend at most once per
//! `min_sync_period` (upstream's --min-sync-period, 1 s there).

use crate::backend::ProxyBackend;
use crate::metrics::Metrics;
use crate::state::{self, ServiceState};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Api;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Config {
    pub node: String,
    pub cluster_cidr: Option<(Ipv4Addr, u8)>,
    pub min_sync_period: Duration,
}

/// Runs until the process ends.
pub async fn run<B: ProxyBackend + Send + 'static>(client: kube::Client, cfg: Config, mut backend: B, metrics: Arc<Metrics>) {
    let notify = Arc::new(tokio::sync::Notify::new());
    let (svc_store, svc_writer) = reflector::store::<Service>();
    let (slice_store, slice_writer) = reflector::store::<EndpointSlice>();
    let n = notify.clone();
    let svcs = reflector(svc_writer, watcher(Api::<Service>::all(client.clone()), watcher::Config::default()))
        .default_backoff()
        .touched_objects()
        .for_each(move |_| {
            n.notify_one();
            async {}
        });
    let n = notify.clone();
    let slices = reflector(slice_writer, watcher(Api::<EndpointSlice>::all(client), watcher::Config::default()))
        .default_backoff()
        .touched_objects()
        .for_each(move |_| {
            n.notify_one();
            async {}
        });
    tokio::spawn(svcs);
    tokio::spawn(slices);
    let _ = svc_store.wait_until_ready().await;
    let _ = slice_store.wait_until_ready().await;
    let (tx, mut rx) = tokio::sync::watch::channel::<Option<ServiceState>>(None);
    // The backend blocks on nft: it gets a thread of its own.
    let m = metrics.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let mut prev: Option<ServiceState> = None;
            while rx.changed().await.is_ok() {
                let Some(st) = rx.borrow_and_update().clone() else { continue };
                let start = Instant::now();
                match backend.sync(&st) {
                    Ok(stats) => {
                        m.sync_duration.observe(start.elapsed().as_secs_f64());
                        m.last_sync.set(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0));
                        m.rules.set(stats.rules_total as i64);
                        m.endpoints.set(stats.endpoints_total as i64);
                        m.chains_written.set(stats.chains_written as i64);
                        if let Some(p) = &prev {
                            crate::conntrack::flush(&crate::conntrack::stale(p, &st));
                        }
                        tracing::debug!(?stats, "synced");
                        prev = Some(st);
                    }
                    Err(e) => tracing::error!(error = %e, "sync failed; the next change retries from scratch"),
                }
            }
        });
    });
    loop {
        let services: Vec<Service> = svc_store.state().iter().map(|s| (**s).clone()).collect();
        let slices: Vec<EndpointSlice> = slice_store.state().iter().map(|s| (**s).clone()).collect();
        let st = state::build(&cfg.node, cfg.cluster_cidr, &services, &slices);
        if tx.borrow().as_ref() != Some(&st) {
            let _ = tx.send(Some(st));
        }
        // Retries a failed sync now and then, even without a change.
        let _ = tokio::time::timeout(Duration::from_secs(30), notify.notified()).await;
        tokio::time::sleep(cfg.min_sync_period).await;
    }
}
