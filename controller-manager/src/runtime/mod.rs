//! The generic controller runtime: shared informers, a rate-limited work
//! queue, and workers that run one controller's sync function per key.

pub mod expectations;
pub mod informer;
pub mod workqueue;

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

pub use expectations::Expectations;
pub use informer::{wait_synced, Informer, Informers, Relister, Synced};
pub use workqueue::{Backoff, WorkQueue};

use crate::metrics::Metrics;

/// The queue key of a namespaced or cluster-scoped object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub namespace: Option<String>,
    pub name: String,
}

impl Key {
    pub fn of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Key {
        Key {
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }
    pub fn namespaced(ns: &str, name: &str) -> Key {
        Key {
            namespace: Some(ns.to_string()),
            name: name.to_string(),
        }
    }
    pub fn cluster(name: &str) -> Key {
        Key {
            namespace: None,
            name: name.to_string(),
        }
    }
    pub fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }
}

impl Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

/// What a sync asks for next.
pub type SyncResult<E> = Result<Option<Duration>, E>;

/// Run `workers` workers that pull keys from `queue` and call `sync`, once every informer in
/// `synced` has listed (a loop acting on a partial cache would create or delete wrongly).
/// Success forgets the key's back-off (and re-queues it after the returned
/// delay, if any); failure re-queues it with exponential back-off.
pub fn run_workers<F, Fut, E>(
    name: &'static str,
    queue: WorkQueue<Key>,
    workers: usize,
    metrics: Metrics,
    synced: Vec<Synced>,
    sync: F,
) where
    F: Fn(Key) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = SyncResult<E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let q = queue.clone();
    metrics.register_queue(name, move || q.len());
    tokio::spawn(async move {
        wait_synced(&synced).await;
        spawn_workers(name, queue, workers, metrics, sync);
    });
}

fn spawn_workers<F, Fut, E>(name: &'static str, queue: WorkQueue<Key>, workers: usize, metrics: Metrics, sync: F)
where
    F: Fn(Key) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = SyncResult<E>> + Send + 'static,
    E: Display + Send + 'static,
{
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let sync = sync.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            while let Some(key) = queue.get().await {
                let result = sync(key.clone()).await;
                metrics.reconciled(name, result.is_ok());
                match result {
                    Ok(next) => {
                        queue.forget(&key);
                        if let Some(d) = next {
                            queue.add_after(key.clone(), d);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(controller = name, key = %key, error = %e, "sync failed; backing off");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        });
    }
}
