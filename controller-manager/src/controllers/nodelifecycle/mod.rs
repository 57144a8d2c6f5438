//! The node lifecycle controller: nodes whose Lease is not renewed within
//! --node-monitor-grace-period go Ready=Unknown and get the unreachable
//! taints; their pods are marked not ready and are evicted when their
//! NoExecute tolerations run out (upstream's taint-eviction controller).

pub mod taints;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, PodCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{Ctx, Result};
use crate::events::{EventType, Recorder};
use crate::runtime::Informers;
use taints::{NOT_READY, UNREACHABLE};

pub const NAME: &str = "node-lifecycle-controller";
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
const NODE_CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Ready,
    /// The kubelet reports Ready=False (or Unknown itself).
    NotReady,
    /// No heartbeat within the grace period.
    Unreachable,
}

/// The latest heartbeat of a node: its Lease renewal or its Ready
/// condition's heartbeat, whichever is newer.
pub fn heartbeat(node: &Node, lease: Option<&Lease>) -> Option<Timestamp> {
    let lease_t = lease.and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0));
    let cond_t = ready(node).and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0));
    lease_t.into_iter().chain(cond_t).max()
}

fn ready(node: &Node) -> Option<&NodeCondition> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")
}

/// Health from what the kubelet said and when we last saw its heartbeat
/// change (our own clock, as upstream's probeTimestamp, so clock skew
/// between machines does not matter).
pub fn health(node: &Node, observed_change: Timestamp, now: Timestamp, grace: Duration) -> Health {
    if now.duration_since(observed_change) > SignedDuration::try_from(grace).unwrap_or(SignedDuration::MAX) {
        return Health::Unreachable;
    }
    match ready(node).map(|c| c.status.as_str()) {
        Some("True") => Health::Ready,
        _ => Health::NotReady,
    }
}

/// What to change on a node.
#[derive(Debug, Default, PartialEq)]
pub struct NodePlan {
    /// New status conditions, when they must change.
    pub conditions: Option<Vec<NodeCondition>>,
    /// New taints, when they must change.
    pub taints: Option<Vec<Taint>>,
    pub mark_pods_not_ready: bool,
    /// (reason, message) for a NodeNotReady / NodeReady event.
    pub event: Option<(&'static str, String)>,
}

pub fn plan(node: &Node, h: Health, now: Timestamp) -> NodePlan {
    let mut out = NodePlan::default();
    let name = node.name_any();
    if h == Health::Unreachable {
        let mut conds = node.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
        let mut changed = false;
        for ty in NODE_CONDITIONS {
            match conds.iter_mut().find(|c| c.type_ == *ty) {
                Some(c) if c.status == "Unknown" => {}
                Some(c) => {
                    c.status = "Unknown".into();
                    c.reason = Some("NodeStatusUnknown".into());
                    c.message = Some("Kubelet stopped posting node status.".into());
                    c.last_transition_time = Some(Time(now));
                    changed = true;
                }
                None => {
                    conds.push(NodeCondition {
                        type_: ty.to_string(),
                        status: "Unknown".into(),
                        reason: Some("NodeStatusNeverUpdated".into()),
                        message: Some("Kubelet never posted node status.".into()),
                        last_heartbeat_time: Some(Time(now)),
                        last_transition_time: Some(Time(now)),
                    });
                    changed = true;
                }
            }
        }
        if changed {
            out.conditions = Some(conds);
            out.mark_pods_not_ready = true;
            out.event = Some(("NodeNotReady", format!("Node {name} status is now: NodeNotReady")));
        }
    }
    let current: Vec<Taint> = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let want_key = match h {
        Health::Ready => None,
        Health::NotReady => Some(NOT_READY),
        Health::Unreachable => Some(UNREACHABLE),
    };
    let mut next: Vec<Taint> = current
        .iter()
        .filter(|t| (t.key != UNREACHABLE && t.key != NOT_READY) || Some(t.key.as_str()) == want_key)
        .cloned()
        .collect();
    if let Some(k) = want_key {
        for effect in ["NoSchedule", "NoExecute"] {
            if !next.iter().any(|t| t.key == k && t.effect == effect) {
                next.push(taints::taint(k, effect, now));
            }
        }
    }
    if next != current {
        out.taints = Some(next);
    }
    if h == Health::NotReady && ready(node).is_some_and(|c| c.status != "True") && current.iter().all(|t| t.key != NOT_READY) {
        out.mark_pods_not_ready = true;
        out.event
            .get_or_insert(("NodeNotReady", format!("Node {name} status is now: NodeNotReady")));
    }
    out
}

struct State {
    ctx: Ctx,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    recorder: Recorder,
    observed: Mutex<HashMap<String, (Option<Timestamp>, Timestamp)>>,
}

pub fn register(inf: &mut Informers, ctx: &Ctx) {
    let state = Arc::new(State {
        ctx: ctx.clone(),
        nodes: inf.store(),
        leases: inf.store(),
        pods: inf.store(),
        recorder: Recorder::new(ctx.client.clone(), NAME),
        observed: Mutex::new(HashMap::new()),
    });
    let period = ctx.opts.node_monitor_period;
    let synced = vec![inf.synced::<Node>(), inf.synced::<Lease>(), inf.synced::<Pod>()];
    tokio::spawn(async move {
        crate::runtime::wait_synced(&synced).await;
        let mut last_monitor = tokio::time::Instant::now() - period;
        loop {
            if last_monitor.elapsed() >= period {
                last_monitor = tokio::time::Instant::now();
                let ok = monitor(&state)
                    .await
                    .map_err(|e| tracing::warn!(error = %e, "node monitor failed"))
                    .is_ok();
                state.ctx.metrics.reconciled(NAME, ok);
            }
            if let Err(e) = evict(&state).await {
                tracing::warn!(error = %e, "taint eviction failed");
            }
            tokio::time::sleep(Duration::from_millis(500).min(period)).await;
        }
    });
}

async fn monitor(st: &State) -> Result<()> {
    let now = Timestamp::now();
    let grace = st.ctx.opts.node_monitor_grace_period;
    let node_api: Api<Node> = Api::all(st.ctx.client.clone());
    for node in st.nodes.state() {
        let name = node.name_any();
        let lease = st.leases.get(&ObjectRef::new(&name).within(LEASE_NAMESPACE));
        let hb = heartbeat(&node, lease.as_deref());
        let observed = {
            let mut m = st.observed.lock().unwrap_or_else(|p| p.into_inner());
            let e = m.entry(name.clone()).or_insert((hb, now));
            if e.0 != hb {
                *e = (hb, now);
            }
            e.1
        };
        let p = plan(&node, health(&node, observed, now, grace), now);
        if let Some(conds) = &p.conditions {
            node_api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"status": {"conditions": conds}})),
                )
                .await?;
        }
        if let Some(t) = &p.taints {
            let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version}, "spec": {"taints": t}});
            node_api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        }
        if let Some((reason, msg)) = &p.event {
            st.recorder.record(node.as_ref(), EventType::Normal, reason, msg);
        }
        if p.mark_pods_not_ready {
            mark_pods_not_ready(st, &name, now).await?;
        }
    }
    Ok(())
}

fn on_node<'a>(pods: &'a [Arc<Pod>], node: &str) -> impl Iterator<Item = &'a Arc<Pod>> + 'a {
    let node = node.to_string();
    pods.iter()
        .filter(move |p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str()))
}

async fn mark_pods_not_ready(st: &State, node: &str, now: Timestamp) -> Result<()> {
    let pods = st.pods.state();
    for pod in on_node(&pods, node) {
        let Some(mut conds) = pod.status.as_ref().and_then(|s| s.conditions.clone()) else {
            continue;
        };
        let Some(c) = conds.iter_mut().find(|c| c.type_ == "Ready" && c.status != "False") else {
            continue;
        };
        *c = PodCondition {
            type_: "Ready".into(),
            status: "False".into(),
            last_transition_time: Some(Time(now)),
            ..c.clone()
        };
        let api: Api<Pod> = Api::namespaced(st.ctx.client.clone(), &pod.namespace().unwrap_or_default());
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": {"conditions": conds}})),
            )
            .await
        {
            Ok(_) => st
                .recorder
                .record(pod.as_ref(), EventType::Warning, "NodeNotReady", "Node is not ready"),
            Err(e) if super::is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Delete pods whose NoExecute tolerations have run out.
async fn evict(st: &State) -> Result<()> {
    let now = Timestamp::now();
    let pods = st.pods.state();
    for node in st.nodes.state() {
        let taints: Vec<Taint> = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
        if !taints.iter().any(|t| t.effect == "NoExecute") {
            continue;
        }
        for pod in on_node(&pods, &node.name_any()).filter(|p| p.metadata.deletion_timestamp.is_none()) {
            let Some(at) = taints::eviction_time(pod, &taints, now) else {
                continue;
            };
            if at > now {
                continue;
            }
            let ns = pod.namespace().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(st.ctx.client.clone(), &ns);
            match api.delete(&pod.name_any(), &DeleteParams::default()).await {
                Ok(_) => st.recorder.record(
                    pod.as_ref(),
                    EventType::Normal,
                    "TaintManagerEviction",
                    &format!("Marking for deletion Pod {ns}/{}", pod.name_any()),
                ),
                Err(e) if super::is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(ready: &str, taints: Vec<Taint>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_silent_node_becomes_unknown_and_unreachable() {
        let now = Timestamp::now();
        let n = node("True", vec![]);
        let h = health(&n, now - SignedDuration::from_secs(41), now, Duration::from_secs(40));
        assert_eq!(h, Health::Unreachable);
        let p = plan(&n, h, now);
        let conds = p.conditions.unwrap();
        assert!(conds
            .iter()
            .filter(|c| NODE_CONDITIONS.contains(&c.type_.as_str()))
            .all(|c| c.status == "Unknown"));
        assert_eq!(
            conds.iter().find(|c| c.type_ == "Ready").unwrap().reason.as_deref(),
            Some("NodeStatusUnknown")
        );
        let t = p.taints.unwrap();
        assert!(t.iter().any(|t| t.key == UNREACHABLE && t.effect == "NoExecute"));
        assert!(t.iter().any(|t| t.key == UNREACHABLE && t.effect == "NoSchedule"));
        assert!(p.mark_pods_not_ready);
        assert_eq!(p.event.unwrap().0, "NodeNotReady");
    }

    #[test]
    fn a_recent_heartbeat_keeps_the_node_ready() {
        let now = Timestamp::now();
        let n = node("True", vec![]);
        assert_eq!(
            health(&n, now - SignedDuration::from_secs(5), now, Duration::from_secs(40)),
            Health::Ready
        );
        assert_eq!(plan(&n, Health::Ready, now), NodePlan::default());
    }

    #[test]
    fn taints_go_when_the_node_returns() {
        let now = Timestamp::now();
        let other = taints::taint("dedicated", "NoSchedule", now);
        let n = node(
            "True",
            vec![
                taints::taint(UNREACHABLE, "NoExecute", now),
                taints::taint(UNREACHABLE, "NoSchedule", now),
                other.clone(),
            ],
        );
        assert_eq!(plan(&n, Health::Ready, now).taints, Some(vec![other]));
    }

    #[test]
    fn kubelet_reported_not_ready_gets_not_ready_taints() {
        let now = Timestamp::now();
        let p = plan(&node("False", vec![]), Health::NotReady, now);
        let t = p.taints.unwrap();
        assert!(t.iter().all(|t| t.key == NOT_READY));
        assert_eq!(t.len(), 2);
        assert!(p.conditions.is_none());
    }

    #[test]
    fn heartbeat_prefers_the_newer_of_lease_and_condition() {
        use k8s_openapi::api::coordination::v1::LeaseSpec;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
        let now = Timestamp::now();
        let lease = Lease {
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(now)),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(heartbeat(&node("True", vec![]), Some(&lease)), Some(now));
        assert_eq!(heartbeat(&node("True", vec![]), None), None);
    }
}
