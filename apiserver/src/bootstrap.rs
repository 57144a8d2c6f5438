//! Objects every cluster starts with: the system namespaces, the system PriorityClasses and
//! the default RBAC policy (`crate::authz::bootstrap_policy`).
//! Retried in the background until etcd answers.

use crate::admission::SYSTEM_PRIORITY_CLASSES;
use crate::registry::{Registry, WriteOptions};
use crate::status::ApiError;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

async fn ensure(reg: &Registry) -> Result<(), ApiError> {
    let opts = WriteOptions::default();
    let nss = reg.store("", "v1", "namespaces").ok_or_else(|| ApiError::Internal("no namespaces".into()))?;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        match nss.create(None, json!({"metadata": {"name": ns}}), &opts).await {
            Ok(_) | Err(ApiError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let pcs = reg.store("scheduling.k8s.io", "v1", "priorityclasses").ok_or_else(|| ApiError::Internal("no priorityclasses".into()))?;
    for (name, value) in SYSTEM_PRIORITY_CLASSES {
        let pc = json!({"metadata": {"name": name}, "value": value, "description": "Used for system critical pods that must not be moved from their current node.", "preemptionPolicy": "PreemptLowerPriority"});
        match pcs.create(None, pc, &opts).await {
            Ok(_) | Err(ApiError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    crate::authz::bootstrap_policy::ensure(reg).await
}

/// Starts creating them; the flag turns true once they all exist, and /readyz waits for it
/// (upstream's poststarthook/bootstrap-controller), so no client sees a cluster without
/// its `default` namespace.
pub fn spawn(reg: Arc<Registry>) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        while let Err(e) = ensure(&reg).await {
            tracing::info!(error = %e, "bootstrap objects not created yet; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        flag.store(true, Ordering::SeqCst);
    });
    done
}
