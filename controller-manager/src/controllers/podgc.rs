//! Pod GC: deletes terminated pods beyond --terminated-pod-gc-threshold
//! (oldest first) and pods bound to nodes that no longer exist.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::DeleteParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};

use super::{Ctx, Result};
use crate::runtime::Informers;

pub const NAME: &str = "pod-garbage-collector-controller";
const PERIOD: Duration = Duration::from_secs(20);

/// Terminated pods to delete so that at most `threshold` remain.
pub fn terminated_to_delete(pods: &[Arc<Pod>], threshold: usize) -> Vec<Arc<Pod>> {
    if threshold == 0 {
        return vec![];
    }
    let mut done: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| apimachinery::phase::is_pod_terminal(p))
        .cloned()
        .collect();
    if done.len() <= threshold {
        return vec![];
    }
    done.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let n = done.len() - threshold;
    done.truncate(n);
    done
}

/// Pods bound to a node missing from the cache (confirmed against the API
/// before deleting).
pub fn orphaned(pods: &[Arc<Pod>], node_exists: impl Fn(&str) -> bool) -> Vec<Arc<Pod>> {
    pods.iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty() && !node_exists(n))
        })
        .cloned()
        .collect()
}

pub fn register(inf: &mut Informers, ctx: &Ctx) {
    let pods: Store<Pod> = inf.store();
    let nodes: Store<Node> = inf.store();
    let synced = vec![inf.synced::<Pod>(), inf.synced::<Node>()];
    let ctx = ctx.clone();
    tokio::spawn(async move {
        crate::runtime::wait_synced(&synced).await;
        loop {
            let ok = gc(&ctx, &pods, &nodes)
                .await
                .map_err(|e| tracing::warn!(error = %e, "pod gc failed"))
                .is_ok();
            ctx.metrics.reconciled(NAME, ok);
            tokio::time::sleep(PERIOD).await;
        }
    });
}

async fn gc(ctx: &Ctx, pods: &Store<Pod>, nodes: &Store<Node>) -> Result<()> {
    let all = pods.state();
    let force = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    let node_api: Api<Node> = Api::all(ctx.client.clone());
    let candidates = orphaned(&all, |n| nodes.get(&ObjectRef::new(n)).is_some());
    for p in candidates {
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
        if node_api.get_opt(&node).await?.is_some() {
            continue;
        }
        delete(ctx, &p, &force).await?;
    }
    for p in terminated_to_delete(&all, ctx.opts.terminated_pod_gc_threshold) {
        delete(ctx, &p, &DeleteParams::default()).await?;
    }
    Ok(())
}

async fn delete(ctx: &Ctx, p: &Pod, dp: &DeleteParams) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &p.namespace().unwrap_or_default());
    match api.delete(&p.name_any(), dp).await {
        Ok(_) => Ok(()),
        Err(e) if super::is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podutil::fixtures::{pod, with_phase};
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::{SignedDuration, Timestamp};

    #[test]
    fn oldest_terminated_pods_beyond_the_threshold_go() {
        let mk = |name: &str, age: i64, phase: &str| {
            let mut p = with_phase(pod(name, &[]), phase, false);
            p.metadata.creation_timestamp = Some(Time(Timestamp::now() - SignedDuration::from_secs(age)));
            Arc::new(p)
        };
        let pods = vec![
            mk("old", 100, "Succeeded"),
            mk("new", 1, "Failed"),
            mk("mid", 50, "Succeeded"),
            mk("live", 500, "Running"),
        ];
        let del: Vec<String> = terminated_to_delete(&pods, 1).iter().map(|p| p.name_any()).collect();
        assert_eq!(del, vec!["old", "mid"]);
        assert!(terminated_to_delete(&pods, 3).is_empty());
    }

    #[test]
    fn pods_on_missing_nodes_are_orphans() {
        let mut p = pod("a", &[]);
        p.spec = Some(PodSpec {
            node_name: Some("gone".into()),
            ..Default::default()
        });
        let pods = vec![Arc::new(p), Arc::new(pod("unscheduled", &[]))];
        assert_eq!(orphaned(&pods, |n| n != "gone").len(), 1);
        assert!(orphaned(&pods, |_| true).is_empty());
    }
}
