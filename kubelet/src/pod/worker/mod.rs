//! One worker per pod UID drives the pod through the states of [`state`]:
//! syncing, terminating with a deadline, terminated. A newer desired pod
//! replaces a pending one (a watch channel), and the worker keeps reading it
//! while it terminates, so that a force delete cuts the grace period short.

mod sandbox;
pub mod state;
mod sync;
mod terminate;
#[cfg(test)]
mod tests;

pub use sync::SyncError;
pub use terminate::{cleanup, remove_orphans};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

use crate::context::Kubelet;
use crate::runtime::{ContainerState, ObservedContainer};
use state::{transition, PodState, Update};

/// How often a worker re-checks its pod without being told: exits and back-offs.
const RESYNC: Duration = Duration::from_secs(1);

/// The set of pod workers, keyed by pod UID.
#[derive(Clone)]
pub struct PodWorkers {
    k: Arc<Kubelet>,
    workers: Arc<Mutex<HashMap<String, watch::Sender<Option<Pod>>>>>,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl PodWorkers {
    pub fn new(k: Arc<Kubelet>) -> Self {
        PodWorkers {
            k,
            workers: Default::default(),
            tasks: Default::default(),
        }
    }

    /// Hands the newest desired pod to its worker, starting one if needed.
    pub async fn update(&self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        self.k.pods.write().await.insert(uid.clone(), pod.clone());
        let mut workers = self.workers.lock().await;
        if let Some(tx) = workers.get(&uid) {
            if tx.send(Some(pod.clone())).is_ok() {
                return;
            }
        }
        let (tx, rx) = watch::channel(Some(pod));
        workers.insert(uid.clone(), tx);
        let k = self.k.clone();
        let all = self.workers.clone();
        let handle = tokio::spawn(async move {
            run(k.clone(), uid.clone(), rx).await;
            all.lock().await.remove(&uid);
            k.pods.write().await.remove(&uid);
            k.status.forget(&uid).await;
        });
        if let Ok(mut t) = self.tasks.lock() {
            t.retain(|h| !h.is_finished());
            t.push(handle.abort_handle());
        }
    }

    /// The pod is gone from the API: tear it down without waiting for a grace period.
    pub async fn remove(&self, uid: &str) {
        if let Some(tx) = self.workers.lock().await.get(uid) {
            let _ = tx.send(None);
        }
    }

    /// Stops every worker where it stands, leaving containers running: what a
    /// kubelet crash or restart looks like to the runtime.
    pub fn shutdown(&self) {
        if let Ok(t) = self.tasks.lock() {
            t.iter().for_each(|h| h.abort());
        }
    }

    pub async fn known(&self) -> Vec<String> {
        self.workers.lock().await.keys().cloned().collect()
    }
}

/// Per-pod memory that the runtime doesn't hold.
#[derive(Default)]
pub(super) struct WorkerState {
    waiting: HashMap<String, (String, String)>,
    start_errors: HashMap<String, String>,
    image_backoff: crate::backoff::Backoff,
    image_failed_at: HashMap<String, chrono::DateTime<Utc>>,
    start_time: Option<chrono::DateTime<Utc>>,
    prober: crate::prober::PodProber,
    /// Containers whose output is being copied into their log file.
    logging: std::collections::HashSet<String>,
    /// When the projected volumes were last rewritten from their sources.
    volumes_refreshed: Option<std::time::Instant>,
}

/// How often ConfigMap, Secret and downward-API volumes are rewritten.
pub(super) const VOLUME_RESYNC: Duration = Duration::from_secs(60);

/// A worker's update channel: the newest desired pod (`None` once it is gone
/// from the API) replaces any older one not yet read.
pub(super) struct Updates {
    rx: watch::Receiver<Option<Pod>>,
    open: bool,
}

impl Updates {
    /// The newest desired pod, marking it read.
    pub(super) fn latest(&mut self) -> Option<Pod> {
        self.rx.borrow_and_update().clone()
    }

    /// Waits for a newer desired pod; never returns once the sender is gone
    /// (the kubelet stopping), so that callers' other branches decide.
    pub(super) async fn changed(&mut self) {
        if self.open && self.rx.changed().await.is_ok() {
            return;
        }
        self.open = false;
        std::future::pending::<()>().await
    }
}

/// The worker's loop: read the newest update, take the transition, do what
/// the state asks; it ends with the pod terminated.
async fn run(k: Arc<Kubelet>, uid: String, rx: watch::Receiver<Option<Pod>>) {
    let mut updates = Updates { rx, open: true };
    let mut w = WorkerState::default();
    let mut state = PodState::Syncing;
    // The pod as last seen, for the status and the final delete once it is gone.
    let mut last: Option<Pod> = None;
    loop {
        let desired = updates.latest();
        state = transition(state, Update::of(desired.as_ref()), Instant::now());
        let gone = desired.is_none();
        if let Some(p) = desired {
            last = Some(p);
        }
        let Some(pod) = last.clone() else {
            return;
        };
        match state {
            PodState::Syncing => {
                if let Err(e) = sync::sync(&k, &pod, &mut w).await {
                    tracing::warn!(pod = ?pod.metadata.name, error = %e, "sync failed");
                }
            }
            PodState::Terminating { .. } => {
                terminate::terminate(&k, &uid, pod, gone, &mut w, &mut updates, &mut state).await;
            }
            PodState::Terminated => return,
        }
        if state == PodState::Terminated {
            return;
        }
        if !updates.open {
            return;
        }
        tokio::select! {
            _ = updates.changed() => {}
            _ = tokio::time::sleep(RESYNC) => {}
        }
    }
}

/// The pod's containers, with failed starts shown as exited with 128.
pub(super) async fn observe(
    k: &Kubelet,
    uid: &str,
    state: &WorkerState,
) -> Result<Vec<ObservedContainer>, SyncError> {
    let mut v: Vec<ObservedContainer> = k.runtime.list_pod_containers(uid).await?;
    for c in &mut v {
        if state.start_errors.contains_key(&c.id)
            && matches!(c.state, ContainerState::Unknown | ContainerState::Created)
        {
            c.state = ContainerState::Exited {
                exit_code: 128,
                started_at: None,
                finished_at: c.created_at,
            };
        }
    }
    Ok(v)
}
