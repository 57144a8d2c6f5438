//! The DaemonSet controller: one pod per eligible node, bound through node
//! affinity on metadata.name (the scheduler places it), with RollingUpdate.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodTemplateSpec, Toleration};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::json;

use apimachinery::labels::set_matches;
use apimachinery::taints::tolerations_tolerate_taint;
use super::history::{self, Step};
use super::{Ctx, Result, SyncError};
use crate::events::{EventType, Recorder};
use crate::podutil;
use crate::runtime::{run_workers, Expectations, Informers, Key, WorkQueue};

pub const NAME: &str = "daemonset-controller";
pub const REVISION_HASH: &str = "controller-revision-hash";

/// Upstream's AddOrUpdateDaemonPodTolerations: daemons survive node
/// conditions that would evict ordinary pods.
pub fn daemon_tolerations(mut tols: Vec<Toleration>, host_network: bool) -> Vec<Toleration> {
    let mut add = |key: &str, effect: &str| {
        if !tols
            .iter()
            .any(|t| t.key.as_deref() == Some(key) && t.effect.as_deref() == Some(effect))
        {
            tols.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some(effect.into()),
                ..Default::default()
            });
        }
    };
    add("node.kubernetes.io/not-ready", "NoExecute");
    add("node.kubernetes.io/unreachable", "NoExecute");
    add("node.kubernetes.io/disk-pressure", "NoSchedule");
    add("node.kubernetes.io/memory-pressure", "NoSchedule");
    add("node.kubernetes.io/pid-pressure", "NoSchedule");
    add("node.kubernetes.io/unschedulable", "NoSchedule");
    if host_network {
        add("node.kubernetes.io/network-unavailable", "NoSchedule");
    }
    tols
}

/// Should a daemon pod run on this node: nodeSelector matches and every
/// NoSchedule/NoExecute taint is tolerated.
pub fn should_run(ds: &DaemonSet, node: &Node) -> bool {
    let spec = ds.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    if let Some(sel) = spec.and_then(|s| s.node_selector.as_ref()) {
        if !set_matches(sel, &node.metadata.labels.as_ref()) {
            return false;
        }
    }
    let tols = daemon_tolerations(
        spec.and_then(|s| s.tolerations.clone()).unwrap_or_default(),
        spec.and_then(|s| s.host_network).unwrap_or(false),
    );
    node.spec
        .iter()
        .flat_map(|s| s.taints.iter().flatten())
        .filter(|t| t.effect != "PreferNoSchedule")
        .all(|t| tolerations_tolerate_taint(&tols, t))
}

/// The node a daemon pod is for: its nodeName, or the metadata.name its
/// affinity pins it to while unscheduled.
pub fn pod_node(p: &Pod) -> Option<String> {
    let spec = p.spec.as_ref()?;
    if let Some(n) = spec.node_name.clone().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|f| f.key == "metadata.name" && f.operator == "In")
        .and_then(|f| f.values.as_ref()?.first().cloned())
}

/// The DaemonSet's `controller-revision-hash`: FNV-1a of the template and
/// the collision count, as upstream's ComputeHash. Upstream hashes Go's spew
/// dump of the struct, which cannot be reproduced here, so we hash the
/// template's Go-style JSON instead: stable, but not upstream's value.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut bytes = history::go_json(&serde_json::to_value(template).unwrap_or_default()).into_bytes();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&(c as u32 as u64).to_le_bytes());
    }
    podutil::safe_encode(podutil::fnv32a(&bytes))
}

/// Upstream's snapshot: the revision `<ds>-<hash>`, labelled with the
/// template's labels and the hash its pods wear.
pub fn snapshot(ds: &DaemonSet, revision: i64) -> ControllerRevision {
    let template = ds.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let hash = template_hash(&template, ds.status.as_ref().and_then(|s| s.collision_count));
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    let mut rev = history::new_revision(ds, labels, history::template_patch(&template), revision, None);
    rev.metadata.name = Some(history::revision_name(&ds.name_any(), &hash));
    let l = rev.metadata.labels.get_or_insert_with(BTreeMap::new);
    l.remove(history::HASH_LABEL);
    l.insert(REVISION_HASH.into(), hash);
    rev
}

/// constructHistory: the revision that holds the template now (renumbered
/// to the newest if it is an old one, as after a rollback), or a new one;
/// and the others.
pub fn plan_history(ds: &DaemonSet, sorted: &[Arc<ControllerRevision>]) -> (Step, Vec<Arc<ControllerRevision>>) {
    let template = ds.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let patch = history::go_json(&history::template_patch(&template));
    let (cur, old): (Vec<_>, Vec<_>) = sorted.iter().cloned().partition(|r| history::data_bytes(r) == patch);
    let next = old.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
    // Of duplicates (upstream dedups them), the newest wins.
    let step = match cur.last() {
        None => Step::Create(snapshot(ds, next)),
        Some(r) if r.revision < next => Step::Renumber(r.clone(), next),
        Some(r) => Step::Keep(r.clone()),
    };
    (step, old)
}

/// cleanupHistory: beyond revisionHistoryLimit old revisions, delete the
/// oldest whose hash no pod wears.
pub fn prune_history(old: &[Arc<ControllerRevision>], live_hashes: &BTreeSet<String>, limit: i32) -> Vec<String> {
    let mut excess = old.len().saturating_sub(limit.max(0) as usize);
    let mut out = Vec::new();
    for r in old {
        if excess == 0 {
            break;
        }
        if r.labels().get(REVISION_HASH).is_some_and(|h| live_hashes.contains(h)) {
            continue;
        }
        out.push(r.name_any());
        excess -= 1;
    }
    out
}

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Nodes that need a daemon pod.
    pub create_on: Vec<String>,
    pub delete: Vec<String>,
    pub status: DaemonSetStatus,
}

pub fn plan(ds: &DaemonSet, hash: &str, nodes: &[Arc<Node>], pods: &[Arc<Pod>], now: Timestamp) -> Plan {
    let mut out = Plan::default();
    let min_ready = ds.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let mut by_node: BTreeMap<String, Vec<&Arc<Pod>>> = BTreeMap::new();
    for p in pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        if podutil::phase(p) == "Failed" {
            // Upstream deletes failed daemon pods so they are recreated.
            out.delete.push(p.name_any());
            continue;
        }
        if let Some(n) = pod_node(p) {
            by_node.entry(n).or_default().push(p);
        }
    }
    let (mut desired, mut current, mut mis, mut ready, mut available, mut updated) = (0, 0, 0, 0, 0, 0);
    let mut old_available: Vec<&Arc<Pod>> = Vec::new();
    let mut unavailable = 0;
    for node in nodes {
        let name = node.name_any();
        let mut here = by_node.remove(&name).unwrap_or_default();
        here.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
        if should_run(ds, node) {
            desired += 1;
            match here.split_first() {
                None => {
                    out.create_on.push(name);
                    unavailable += 1;
                }
                Some((keep, extra)) => {
                    current += 1;
                    out.delete.extend(extra.iter().map(|p| p.name_any()));
                    let is_new = keep.labels().get(REVISION_HASH).map(String::as_str) == Some(hash);
                    let avail = podutil::is_available(keep, min_ready, now);
                    ready += podutil::is_ready(keep) as i32;
                    available += avail as i32;
                    updated += is_new as i32;
                    if !avail {
                        unavailable += 1;
                        if !is_new {
                            // An old pod that is not serving anyway can go at once.
                            out.delete.push(keep.name_any());
                        }
                    } else if !is_new {
                        old_available.push(keep);
                    }
                }
            }
        } else if !here.is_empty() {
            mis += 1;
            out.delete.extend(here.iter().map(|p| p.name_any()));
        }
    }
    // Pods on nodes that no longer exist.
    for (_, ps) in by_node {
        out.delete.extend(ps.iter().map(|p| p.name_any()));
    }
    let strategy = ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    if strategy.and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate") == "RollingUpdate" {
        let max_unavailable = match strategy
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.max_unavailable.as_ref())
        {
            Some(IntOrString::Int(i)) => *i,
            Some(IntOrString::String(s)) => (desired as i64 * s.trim_end_matches('%').parse::<i64>().unwrap_or(0) / 100) as i32,
            None => 1,
        }
        .max(1);
        let budget = (max_unavailable - unavailable).max(0) as usize;
        out.delete.extend(old_available.iter().take(budget).map(|p| p.name_any()));
    }
    out.status = DaemonSetStatus {
        desired_number_scheduled: desired,
        current_number_scheduled: current,
        number_misscheduled: mis,
        number_ready: ready,
        number_available: Some(available),
        number_unavailable: Some((desired - available).max(0)),
        updated_number_scheduled: Some(updated),
        observed_generation: ds.metadata.generation,
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    out
}

/// The daemon pod for one node.
pub fn pod_for_node(ds: &DaemonSet, hash: &str, node: &str) -> Option<Pod> {
    let spec = ds.spec.as_ref()?;
    let mut pod = podutil::pod_from_template(
        &spec.template,
        &ds.namespace().unwrap_or_default(),
        podutil::controller_ref(ds),
        &format!("{}-", ds.name_any()),
    );
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(REVISION_HASH.into(), hash.to_string());
    let ps = pod.spec.get_or_insert_with(Default::default);
    ps.tolerations = Some(daemon_tolerations(
        ps.tolerations.take().unwrap_or_default(),
        ps.host_network.unwrap_or(false),
    ));
    let aff = ps.affinity.get_or_insert_with(Affinity::default);
    let na = aff.node_affinity.get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.to_string()]),
            }]),
        }],
    });
    Some(pod)
}

struct State {
    ctx: Ctx,
    daemonsets: Store<DaemonSet>,
    nodes: Store<Node>,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
    expectations: Expectations<Key>,
    recorder: Recorder,
}

pub fn register(inf: &mut Informers, ctx: &Ctx) {
    let queue: WorkQueue<Key> = WorkQueue::default();
    let daemonsets = inf.store::<DaemonSet>();
    inf.get::<DaemonSet>().enqueue_self(&queue);
    inf.get::<Pod>().enqueue_controller(&queue, "DaemonSet");
    inf.get::<ControllerRevision>().enqueue_controller(&queue, "DaemonSet");
    {
        let q = queue.clone();
        let dss = daemonsets.clone();
        inf.get::<Node>().on_change(move |old, new| {
            // Only changes that can alter eligibility matter, not heartbeats.
            let relevant = match (old, new) {
                (Some(o), Some(n)) => o.metadata.labels != n.metadata.labels || o.spec != n.spec,
                _ => true,
            };
            if relevant {
                for d in dss.state() {
                    q.add(Key::of(&d.metadata));
                }
            }
        });
    }
    let state = Arc::new(State {
        ctx: ctx.clone(),
        daemonsets,
        nodes: inf.store(),
        pods: inf.store(),
        revisions: inf.store(),
        expectations: Expectations::with_relister(inf.relister::<Pod>()),
        recorder: Recorder::new(ctx.client.clone(), NAME),
    });
    let metrics = ctx.metrics.clone();
    let workers = ctx.opts.concurrent_syncs;
    let synced = vec![
        inf.synced::<DaemonSet>(),
        inf.synced::<Node>(),
        inf.synced::<Pod>(),
        inf.synced::<ControllerRevision>(),
    ];
    run_workers(NAME, queue, workers, metrics, synced, move |key| {
        let state = state.clone();
        async move { sync(&state, &key).await }
    });
}

async fn sync(st: &State, key: &Key) -> Result<Option<Duration>> {
    let Some(ds) = st.daemonsets.get(&ObjectRef::new(&key.name).within(key.ns())) else {
        st.expectations.forget(key);
        return Ok(None);
    };
    let uid = ds.uid().unwrap_or_default();
    let ns = key.ns().to_string();
    let pods = podutil::owned_pods(&st.pods, &ns, &uid);
    let satisfied = st.expectations.pods_satisfied(key, &st.pods, &pods);
    let rapi: Api<ControllerRevision> = Api::namespaced(st.ctx.client.clone(), &ns);
    let (step, old) = plan_history(&ds, &history::owned(&st.revisions, &ns, &uid));
    let cur = match step {
        Step::Keep(r) => (*r).clone(),
        Step::Renumber(r, n) => history::renumber(&rapi, &r.name_any(), n).await?,
        Step::Create(r) => create_revision(&rapi, &ds, r).await?,
    };
    let hash = cur.labels().get(REVISION_HASH).cloned().unwrap_or_else(|| cur.name_any());
    let plan = plan(&ds, &hash, &st.nodes.state(), &pods, Timestamp::now());
    if satisfied && ds.metadata.deletion_timestamp.is_none() {
        let api: Api<Pod> = Api::namespaced(st.ctx.client.clone(), &ns);
        if !plan.delete.is_empty() {
            for name in &plan.delete {
                match api.delete(name, &DeleteParams::default()).await {
                    Ok(_) => st
                        .recorder
                        .record(ds.as_ref(), EventType::Normal, "SuccessfulDelete", &format!("Deleted pod: {name}")),
                    Err(e) if super::is_not_found(&e) => {}
                    Err(e) => {
                        st.expectations.expect(key, [], plan.delete.clone());
                        return Err(e.into());
                    }
                }
            }
            // After the writes, so that the informer's list epoch follows them.
            st.expectations.expect(key, [], plan.delete.clone());
        }
        let pp = PostParams::default();
        let results = join_all(plan.create_on.iter().filter_map(|n| pod_for_node(&ds, &hash, n)).map(|p| {
            let api = api.clone();
            let pp = pp.clone();
            async move { api.create(&pp, &p).await }
        }))
        .await;
        let mut created = Vec::new();
        let mut err = None;
        for r in results {
            match r {
                Ok(p) => {
                    st.recorder.record(
                        ds.as_ref(),
                        EventType::Normal,
                        "SuccessfulCreate",
                        &format!("Created pod: {}", p.name_any()),
                    );
                    created.push(p.name_any());
                }
                Err(e) => {
                    st.recorder
                        .record(ds.as_ref(), EventType::Warning, "FailedCreate", &format!("Error creating: {e}"));
                    err.get_or_insert(e);
                }
            }
        }
        st.expectations.expect(key, created, []);
        if let Some(e) = err {
            return Err(e.into());
        }
    }
    if ds.status.as_ref() != Some(&plan.status) {
        let v = serde_json::to_value(&plan.status).map_err(|source| SyncError::Encode {
            what: "daemonset status",
            source,
        })?;
        let dapi: Api<DaemonSet> = Api::namespaced(st.ctx.client.clone(), &ns);
        match dapi
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&json!({ "status": v })))
            .await
        {
            Ok(_) => {}
            Err(e) if super::is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let live: BTreeSet<String> = pods.iter().filter_map(|p| p.labels().get(REVISION_HASH).cloned()).collect();
    let limit = ds.spec.as_ref().and_then(|s| s.revision_history_limit).unwrap_or(10);
    history::delete_all(&rapi, &prune_history(&old, &live, limit)).await?;
    if !satisfied {
        // Look again without an event: a lost one is a reason to wait.
        return Ok(Some(super::replicaset::RECHECK));
    }
    // minReadySeconds: look again when pods may have become available.
    let min_ready = ds.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
    Ok((min_ready > 0).then(|| Duration::from_secs(min_ready as u64)))
}

/// Create the snapshot; a name taken by another template is a hash
/// collision: count it in the status and retry with the next hash.
async fn create_revision(api: &Api<ControllerRevision>, ds: &DaemonSet, rev: ControllerRevision) -> Result<ControllerRevision> {
    let name = rev.name_any();
    match super::timed(api.create(&PostParams::default(), &rev)).await? {
        Ok(r) => Ok(r),
        Err(e) if super::is_already_exists(&e) => {
            let existing = super::timed(api.get(&name)).await??;
            if history::data_bytes(&existing) == history::data_bytes(&rev) {
                return Ok(existing);
            }
            let count = ds.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0) + 1;
            let dapi: Api<DaemonSet> = Api::namespaced(api.clone().into_client(), &ds.namespace().unwrap_or_default());
            let patch = json!({ "status": { "collisionCount": count } });
            super::timed(dapi.patch_status(&ds.name_any(), &PatchParams::default(), &Patch::Merge(&patch))).await??;
            Err(SyncError::Invalid(format!("hash collision on controller revision {name}; collisionCount is now {count}")))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podutil::fixtures::with_phase;
    use k8s_openapi::api::apps::v1::DaemonSetSpec;
    use k8s_openapi::api::core::v1::{NodeSpec, PodSpec, PodTemplateSpec, Taint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn ds(node_selector: Option<BTreeMap<String, String>>) -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta {
                name: Some("agent".into()),
                namespace: Some("default".into()),
                uid: Some("ds-uid".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(DaemonSetSpec {
                selector: LabelSelector::default(),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("app".to_string(), "agent".to_string())].into()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        node_selector,
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    fn h(d: &DaemonSet) -> String {
        template_hash(&d.spec.as_ref().unwrap().template, None)
    }

    fn node(name: &str, labels: &[(&str, &str)], taints: Vec<Taint>) -> Arc<Node> {
        Arc::new(Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..Default::default()
            }),
            status: None,
        })
    }

    #[test]
    fn one_pod_per_eligible_node_pinned_by_affinity() {
        let d = ds(Some([("disk".to_string(), "ssd".to_string())].into()));
        let nodes = vec![
            node("a", &[("disk", "ssd")], vec![]),
            node("b", &[("disk", "hdd")], vec![]),
            node(
                "c",
                &[("disk", "ssd")],
                vec![Taint {
                    key: "dedicated".into(),
                    effect: "NoSchedule".into(),
                    ..Default::default()
                }],
            ),
        ];
        let p = plan(&d, &h(&d), &nodes, &[], Timestamp::now());
        assert_eq!(p.create_on, vec!["a".to_string()]);
        assert_eq!(p.status.desired_number_scheduled, 1);
        let pod = pod_for_node(&d, &h(&d), "a").unwrap();
        assert_eq!(pod_node(&pod).as_deref(), Some("a"));
        assert!(pod.labels().contains_key(REVISION_HASH));
        assert!(pod
            .spec
            .unwrap()
            .tolerations
            .unwrap()
            .iter()
            .any(|t| t.key.as_deref() == Some("node.kubernetes.io/unreachable")));
    }

    #[test]
    fn daemon_pods_tolerate_unreachable_and_unschedulable_nodes() {
        let d = ds(None);
        let n = node(
            "a",
            &[],
            vec![Taint {
                key: "node.kubernetes.io/unreachable".into(),
                effect: "NoExecute".into(),
                ..Default::default()
            }],
        );
        assert!(should_run(&d, &n));
    }

    #[test]
    fn extra_and_misscheduled_pods_are_deleted() {
        let d = ds(Some([("disk".to_string(), "ssd".to_string())].into()));
        let nodes = vec![node("a", &[("disk", "ssd")], vec![]), node("b", &[], vec![])];
        let mk = |name: &str, node: &str| {
            let mut p = pod_for_node(&d, &h(&d), node).unwrap();
            p.metadata.name = Some(name.into());
            Arc::new(p)
        };
        let p = plan(
            &d,
            &h(&d),
            &nodes,
            &[mk("a1", "a"), mk("a2", "a"), mk("b1", "b"), mk("gone1", "gone")],
            Timestamp::now(),
        );
        let mut del = p.delete.clone();
        del.sort();
        assert_eq!(del, vec!["a2", "b1", "gone1"]);
        assert_eq!(p.status.number_misscheduled, 1);
    }

    #[test]
    fn rolling_update_replaces_at_most_max_unavailable() {
        let old = ds(None);
        let mut new = old.clone();
        new.spec.as_mut().unwrap().template.spec.as_mut().unwrap().host_network = Some(true);
        let nodes = vec![node("a", &[], vec![]), node("b", &[], vec![])];
        let ready_old = |n: &str| {
            let mut p = with_phase(pod_for_node(&old, &h(&old), n).unwrap(), "Running", true);
            p.metadata.name = Some(format!("{n}-old"));
            Arc::new(p)
        };
        let p = plan(&new, &h(&new), &nodes, &[ready_old("a"), ready_old("b")], Timestamp::now());
        assert_eq!(p.delete.len(), 1, "maxUnavailable defaults to 1");
        assert_eq!(p.status.updated_number_scheduled, Some(0));
    }

    fn image(d: &DaemonSet, image: &str) -> DaemonSet {
        let mut d = d.clone();
        d.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers =
            vec![serde_json::from_value(serde_json::json!({"name": "c", "image": image})).unwrap()];
        d
    }

    #[test]
    fn daemonset_rollback_renumbers_the_old_revision_instead_of_creating_one() {
        let v1 = image(&ds(None), "agent:1");
        let v2 = image(&ds(None), "agent:2");
        let r1 = match plan_history(&v1, &[]).0 {
            Step::Create(r) => Arc::new(r),
            other => panic!("{other:?}"),
        };
        assert_eq!(r1.revision, 1);
        assert_eq!(r1.name_any(), format!("agent-{}", h(&v1)));
        assert_eq!(r1.labels().get(REVISION_HASH), Some(&h(&v1)));
        assert_eq!(r1.labels().get("app").map(String::as_str), Some("agent"));
        assert_eq!(history::template_of(&r1), Some(v1.spec.as_ref().unwrap().template.clone()));
        assert!(matches!(plan_history(&v1, &[r1.clone()]).0, Step::Keep(ref r) if Arc::ptr_eq(r, &r1)));
        let r2 = match plan_history(&v2, &[r1.clone()]) {
            (Step::Create(r), old) if old == vec![r1.clone()] => Arc::new(r),
            other => panic!("{other:?}"),
        };
        assert_eq!(r2.revision, 2);
        // Back to v1: revision 1 becomes 3, no new object.
        let (step, old) = plan_history(&v1, &[r1.clone(), r2.clone()]);
        assert_eq!(step, Step::Renumber(r1.clone(), 3));
        assert_eq!(old, vec![r2]);
    }

    #[test]
    fn daemonset_history_beyond_the_limit_loses_its_oldest_unworn_revisions() {
        let revs: Vec<_> = (1..=4)
            .map(|i| {
                let mut r = snapshot(&image(&ds(None), &format!("agent:{i}")), i);
                r.revision = i;
                Arc::new(r)
            })
            .collect();
        let worn: BTreeSet<String> = [revs[0].labels()[REVISION_HASH].clone()].into();
        assert_eq!(prune_history(&revs, &worn, 2), vec![revs[1].name_any(), revs[2].name_any()]);
        assert!(prune_history(&revs, &worn, 10).is_empty());
    }

    #[test]
    fn hash_follows_the_template_and_the_collision_count() {
        let d = ds(None);
        let t = &d.spec.as_ref().unwrap().template;
        assert_eq!(template_hash(t, None), template_hash(t, None));
        assert_ne!(template_hash(t, None), template_hash(t, Some(1)));
        assert_ne!(h(&d), h(&image(&d, "x")));
    }
}
