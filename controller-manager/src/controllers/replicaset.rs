//! The ReplicaSet controller: keep `spec.replicas` active pods that match
//! the selector and are controlled by the ReplicaSet.
//!
//! The ReplicationController controller is this one too, as upstream's:
//! [`Replicated`] converts an RC to a ReplicaSet for [`plan`] and converts
//! the status back (see `replicationcontroller`).

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{Ctx, Result, SyncError};
use crate::events::{EventType, Recorder};
use crate::podutil::{self, controller_of};
use crate::runtime::{run_workers, Expectations, Informers, Key, WorkQueue};

pub const NAME: &str = "replicaset-controller";
/// Upstream's burstReplicas: at most this many creations or deletions per sync.
pub const BURST_REPLICAS: usize = 500;
/// How soon a sync waiting for its cache looks again without an event.
pub const RECHECK: Duration = Duration::from_millis(500);

/// What one sync of a ReplicaSet should do.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Orphans that match the selector: set our controller reference.
    pub adopt: Vec<Arc<Pod>>,
    /// Pods we control that no longer match: drop our reference.
    pub release: Vec<Arc<Pod>>,
    pub create: usize,
    /// Pods to delete, most expendable first.
    pub delete: Vec<Arc<Pod>>,
    pub status: ReplicaSetStatus,
}

/// Decide from a ReplicaSet and the pods of its namespace.
pub fn plan(rs: &ReplicaSet, pods: &[Arc<Pod>], now: Timestamp) -> Plan {
    let uid = rs.metadata.uid.as_deref().unwrap_or_default();
    let spec = rs.spec.as_ref();
    let selector = spec.map(|s| &s.selector);
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let mut out = Plan::default();
    let mut owned: Vec<Arc<Pod>> = Vec::new();
    for pod in pods {
        let matches = podutil::selector_matches(selector, pod.metadata.labels.as_ref());
        match controller_of(&pod.metadata) {
            Some(c) if c.uid == uid => {
                if matches {
                    owned.push(pod.clone());
                } else if !deleting {
                    out.release.push(pod.clone());
                }
            }
            None if matches && !deleting && pod.metadata.deletion_timestamp.is_none() => {
                out.adopt.push(pod.clone());
                owned.push(pod.clone());
            }
            _ => {}
        }
    }
    let active: Vec<Arc<Pod>> = owned.into_iter().filter(|p| podutil::is_active(p)).collect();
    let want = spec.and_then(|s| s.replicas).unwrap_or(1).max(0) as usize;
    if !deleting {
        if active.len() < want {
            out.create = (want - active.len()).min(BURST_REPLICAS);
        } else if active.len() > want {
            let mut ranked = active.clone();
            ranked.sort_by_key(|p| deletion_rank(p));
            ranked.truncate((active.len() - want).min(BURST_REPLICAS));
            out.delete = ranked;
        }
    }
    out.status = status(rs, &active, now);
    out
}

type Rank = (bool, u8, bool, Reverse<Option<Timestamp>>, Reverse<i32>, Reverse<Option<Timestamp>>);

/// Upstream's ActivePods ordering: unscheduled before scheduled, pending
/// before unknown before running, not ready before ready, ready for less
/// time first, more restarts first, newer first.
fn deletion_rank(p: &Pod) -> Rank {
    let assigned = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some_and(|n| !n.is_empty());
    let phase = match podutil::phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    };
    let ready = podutil::is_ready(p);
    let ready_since = podutil::ready_condition(p)
        .filter(|_| ready)
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (
        assigned,
        phase,
        ready,
        Reverse(ready_since),
        Reverse(podutil::restarts(p)),
        Reverse(created),
    )
}

fn status(rs: &ReplicaSet, active: &[Arc<Pod>], now: Timestamp) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let count = |f: &dyn Fn(&Pod) -> bool| active.iter().filter(|p| f(p)).count() as i32;
    ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(count(&|p| apimachinery::labels::set_matches(&template_labels, &p.metadata.labels.as_ref()))),
        ready_replicas: Some(count(&podutil::is_ready)),
        available_replicas: Some(count(&|p| podutil::is_available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
        terminating_replicas: None,
    }
}

/// When a pod that is ready but not yet available becomes available, so
/// the status can be refreshed then.
pub fn next_availability_check(rs: &ReplicaSet, pods: &[Arc<Pod>], now: Timestamp) -> Option<Duration> {
    let min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
    if min_ready <= 0 {
        return None;
    }
    pods.iter()
        .filter(|p| podutil::is_ready(p) && !podutil::is_available(p, min_ready, now))
        .filter_map(|p| podutil::ready_condition(p)?.last_transition_time.as_ref().map(|t| t.0))
        .map(|since| (since + SignedDuration::from_secs(min_ready as i64)).duration_since(now))
        .filter_map(|d| Duration::try_from(d).ok())
        .min()
        .map(|d| d + Duration::from_millis(100))
}

/// A kind this controller keeps replicas of: ReplicaSet itself, or one it
/// converts to a ReplicaSet (ReplicationController).
pub trait Replicated:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + k8s_openapi::Resource
    + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The controller's name: event source, queue and metrics label.
    const CONTROLLER: &'static str;
    /// The object as a ReplicaSet: metadata, spec and status.
    fn to_replicaset(&self) -> ReplicaSet;
    /// The status subresource body for a ReplicaSet status.
    fn status_json(status: &ReplicaSetStatus) -> std::result::Result<serde_json::Value, serde_json::Error>;
}

impl Replicated for ReplicaSet {
    const CONTROLLER: &'static str = NAME;
    fn to_replicaset(&self) -> ReplicaSet {
        self.clone()
    }
    fn status_json(status: &ReplicaSetStatus) -> std::result::Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(status)
    }
}

struct State<R: Replicated> {
    ctx: Ctx,
    replicasets: Store<R>,
    pods: Store<Pod>,
    expectations: Expectations<Key>,
    recorder: Recorder,
}

/// Queue the ReplicaSets a pod change concerns: its controller, or for an
/// orphan every ReplicaSet whose selector matches it (for adoption).
fn pod_owners<R: Replicated>(rs_store: &Store<R>, pod: &Pod) -> Vec<Key> {
    let ns = pod.namespace().unwrap_or_default();
    match controller_of(&pod.metadata) {
        Some(c) if c.kind == R::KIND => vec![Key::namespaced(&ns, &c.name)],
        Some(_) => vec![],
        None => rs_store
            .state()
            .iter()
            .map(|r| r.to_replicaset())
            .filter(|rs| rs.namespace().as_deref() == Some(ns.as_str()))
            .filter(|rs| podutil::selector_matches(rs.spec.as_ref().map(|s| &s.selector), pod.metadata.labels.as_ref()))
            .map(|rs| Key::of(&rs.metadata))
            .collect(),
    }
}

pub fn register(inf: &mut Informers, ctx: &Ctx) {
    register_for::<ReplicaSet>(inf, ctx)
}

/// Wire the controller for one replicated kind.
pub fn register_for<R: Replicated>(inf: &mut Informers, ctx: &Ctx) {
    let queue: WorkQueue<Key> = WorkQueue::default();
    let replicasets = inf.store::<R>();
    let pods = inf.store::<Pod>();
    inf.get::<R>().enqueue_self(&queue);
    {
        let q = queue.clone();
        let rs_store = replicasets.clone();
        inf.get::<Pod>().on_change(move |old, new| {
            for p in [old, new].into_iter().flatten() {
                for k in pod_owners(&rs_store, p) {
                    q.add(k);
                }
            }
        });
    }
    let state = Arc::new(State {
        ctx: ctx.clone(),
        replicasets,
        pods,
        expectations: Expectations::with_relister(inf.relister::<Pod>()),
        recorder: Recorder::new(ctx.client.clone(), R::CONTROLLER),
    });
    let metrics = ctx.metrics.clone();
    let workers = ctx.opts.concurrent_syncs;
    let synced = vec![inf.synced::<R>(), inf.synced::<Pod>()];
    run_workers(R::CONTROLLER, queue, workers, metrics, synced, move |key| {
        let state = state.clone();
        async move { sync(&state, &key).await }
    });
}

async fn sync<R: Replicated>(st: &State<R>, key: &Key) -> Result<Option<Duration>> {
    let Some(owner) = st.replicasets.get(&ObjectRef::new(&key.name).within(key.ns())) else {
        st.expectations.forget(key);
        return Ok(None);
    };
    let rs = owner.to_replicaset();
    let ns = key.ns().to_string();
    let pods: Vec<Arc<Pod>> = st
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
        .collect();
    let satisfied = st.expectations.satisfied(
        key,
        |name| st.pods.get(&ObjectRef::new(name).within(&ns)).is_some(),
        |uid| {
            !pods
                .iter()
                .any(|p| p.metadata.uid.as_deref() == Some(uid) && p.metadata.deletion_timestamp.is_none())
        },
    );
    let now = Timestamp::now();
    let plan = plan(&rs, &pods, now);
    if !satisfied {
        // The expectations ask the pod informer to relist if this lasts.
        tracing::debug!(replicaset = %key, "waiting for the cache to show earlier creations/deletions");
    }
    let pod_api: Api<Pod> = Api::namespaced(st.ctx.client.clone(), &ns);
    let mut create_error = None;
    if satisfied {
        let my_ref = podutil::controller_ref(owner.as_ref());
        for p in &plan.adopt {
            adopt(&pod_api, p, &my_ref).await?;
        }
        for p in &plan.release {
            release(&pod_api, p, &my_ref.uid).await?;
        }
        if plan.create > 0 {
            create_error = create_pods(st, key, owner.as_ref(), &rs, &pod_api, plan.create).await.err();
        }
        if !plan.delete.is_empty() {
            delete_pods(st, key, owner.as_ref(), &pod_api, &plan.delete).await?;
        }
    }
    let mut status = plan.status.clone();
    status.conditions = replica_failure(status.conditions.take(), create_error.as_ref(), now);
    update_status::<R>(&st.ctx, &rs, status).await?;
    if let Some(e) = create_error {
        return Err(e);
    }
    if !satisfied {
        // Look again even if no event comes (a missed one is why we wait).
        return Ok(Some(RECHECK));
    }
    Ok(next_availability_check(&rs, &pods, now))
}

/// Set or clear the ReplicaFailure condition. An existing FailedCreate
/// condition is kept as it is (upstream's SetCondition does the same): a
/// fresh message or time on every failed sync would rewrite the status, and
/// the ReplicaSet's own update event would then undo the back-off.
fn replica_failure(conds: Option<Vec<ReplicaSetCondition>>, err: Option<&SyncError>, now: Timestamp) -> Option<Vec<ReplicaSetCondition>> {
    let conds = conds.unwrap_or_default();
    let failing = |c: &ReplicaSetCondition| {
        c.type_ == "ReplicaFailure" && c.status == "True" && c.reason.as_deref() == Some("FailedCreate")
    };
    if err.is_some() && conds.iter().any(failing) {
        return Some(conds);
    }
    let mut conds: Vec<ReplicaSetCondition> = conds.into_iter().filter(|c| c.type_ != "ReplicaFailure").collect();
    if let Some(e) = err {
        conds.push(ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some("FailedCreate".into()),
            message: Some(e.to_string()),
            last_transition_time: Some(Time(now)),
        });
    }
    (!conds.is_empty()).then_some(conds)
}

async fn adopt(api: &Api<Pod>, pod: &Pod, my_ref: &OwnerReference) -> Result<()> {
    let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
    refs.push(my_ref.clone());
    let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": pod.metadata.resource_version}});
    match api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(e) if super::is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn release(api: &Api<Pod>, pod: &Pod, uid: &str) -> Result<()> {
    let refs: Vec<OwnerReference> = pod
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|o| o.uid != uid)
        .collect();
    let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": pod.metadata.resource_version}});
    match api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(e) if super::is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn create_pods<R: Replicated>(st: &State<R>, key: &Key, owner: &R, rs: &ReplicaSet, api: &Api<Pod>, n: usize) -> Result<()> {
    let Some(template) = rs.spec.as_ref().and_then(|s| s.template.as_ref()) else {
        return Err(SyncError::Invalid(format!("{} has no pod template", R::KIND)));
    };
    let pod = podutil::pod_from_template(template, key.ns(), podutil::controller_ref(owner), &format!("{}-", key.name));
    for batch in super::slow_start_batches(n) {
        let pp = PostParams::default();
        let results = join_all((0..batch).map(|_| super::timed(api.create(&pp, &pod)))).await;
        let mut first_err = None;
        let mut created = Vec::new();
        for r in results {
            match r.and_then(|r| r.map_err(SyncError::from)) {
                Ok(p) => {
                    st.recorder
                        .record(owner, EventType::Normal, "SuccessfulCreate", &format!("Created pod: {}", p.name_any()));
                    created.push(p.name_any());
                }
                Err(e) => {
                    if first_err.is_none() {
                        st.recorder
                            .record(owner, EventType::Warning, "FailedCreate", &format!("Error creating: {e}"));
                        first_err = Some(e);
                    }
                }
            }
        }
        st.expectations.expect(key, created, []);
        if let Some(e) = first_err {
            return Err(e);
        }
    }
    Ok(())
}

async fn delete_pods<R: Replicated>(st: &State<R>, key: &Key, rs: &R, api: &Api<Pod>, pods: &[Arc<Pod>]) -> Result<()> {
    let results = join_all(
        pods.iter()
            .map(|p| async move { (p, super::timed(api.delete(&p.name_any(), &DeleteParams::default())).await) }),
    )
    .await;
    // After the writes, so that the informer's list epoch follows them.
    st.expectations.expect(key, [], pods.iter().filter_map(|p| p.metadata.uid.clone()));
    for (p, r) in results {
        match r? {
            Ok(_) => st
                .recorder
                .record(rs, EventType::Normal, "SuccessfulDelete", &format!("Deleted pod: {}", p.name_any())),
            Err(e) if super::is_not_found(&e) => {}
            Err(e) => {
                st.recorder
                    .record(rs, EventType::Warning, "FailedDelete", &format!("Error deleting: {e}"));
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// Write the status only when it changed; a merge patch, so no conflicts.
pub async fn update_status<R: Replicated>(ctx: &Ctx, rs: &ReplicaSet, status: ReplicaSetStatus) -> Result<()> {
    if rs.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let mut v = R::status_json(&status).map_err(|source| SyncError::Encode {
        what: "replicaset status",
        source,
    })?;
    if status.conditions.is_none() {
        v["conditions"] = serde_json::Value::Null;
    }
    let api: Api<R> = Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    match api
        .patch_status(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&json!({ "status": v })))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if super::is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podutil::fixtures::{pod, with_phase};
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn rs(replicas: i32) -> ReplicaSet {
        let labels: std::collections::BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("rs-uid".into()),
                generation: Some(2),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    ..Default::default()
                },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: None,
                }),
                min_ready_seconds: None,
            }),
            status: None,
        }
    }

    fn owned(mut p: Pod, rs: &ReplicaSet) -> Arc<Pod> {
        p.metadata.owner_references = Some(vec![podutil::controller_ref(rs)]);
        Arc::new(p)
    }

    #[test]
    fn scales_up_to_replicas() {
        let r = rs(3);
        let pods = vec![owned(pod("a", &[("app", "web")]), &r)];
        let p = plan(&r, &pods, Timestamp::now());
        assert_eq!(p.create, 2);
        assert!(p.delete.is_empty());
        assert_eq!(p.status.replicas, 1);
        assert_eq!(p.status.observed_generation, Some(2));
    }

    #[test]
    fn adopts_matching_orphans_and_releases_mismatches() {
        let r = rs(2);
        let pods = vec![
            Arc::new(pod("orphan", &[("app", "web")])),
            owned(pod("relabelled", &[("app", "other")]), &r),
            Arc::new(pod("stranger", &[("app", "other")])),
        ];
        let p = plan(&r, &pods, Timestamp::now());
        assert_eq!(p.adopt.iter().map(|p| p.name_any()).collect::<Vec<_>>(), vec!["orphan"]);
        assert_eq!(p.release.iter().map(|p| p.name_any()).collect::<Vec<_>>(), vec!["relabelled"]);
        assert_eq!(p.create, 1);
    }

    #[test]
    fn does_not_adopt_pods_controlled_by_others() {
        let r = rs(1);
        let mut other = pod("x", &[("app", "web")]);
        other.metadata.owner_references = Some(vec![OwnerReference {
            uid: "someone".into(),
            controller: Some(true),
            ..Default::default()
        }]);
        let p = plan(&r, &[Arc::new(other)], Timestamp::now());
        assert!(p.adopt.is_empty());
        assert_eq!(p.create, 1);
    }

    #[test]
    fn scale_down_deletes_not_ready_then_unscheduled_then_newest() {
        let r = rs(1);
        let mut ready_old = with_phase(pod("ready-old", &[("app", "web")]), "Running", true);
        ready_old.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            node_name: Some("n1".into()),
            ..Default::default()
        });
        ready_old.metadata.creation_timestamp = Some(Time(Timestamp::now() - SignedDuration::from_secs(100)));
        let mut ready_new = ready_old.clone();
        ready_new.metadata.name = Some("ready-new".into());
        ready_new.metadata.creation_timestamp = Some(Time(Timestamp::now()));
        if let Some(c) = ready_new.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            c[0].last_transition_time = Some(Time(Timestamp::now()));
        }
        let mut not_ready = with_phase(pod("not-ready", &[("app", "web")]), "Running", false);
        not_ready.spec = ready_old.spec.clone();
        let unscheduled = with_phase(pod("unscheduled", &[("app", "web")]), "Pending", false);
        let pods: Vec<Arc<Pod>> = [ready_old, ready_new, not_ready, unscheduled]
            .into_iter()
            .map(|p| owned(p, &r))
            .collect();
        let p = plan(&r, &pods, Timestamp::now());
        let names: Vec<String> = p.delete.iter().map(|p| p.name_any()).collect();
        assert_eq!(names, vec!["unscheduled", "not-ready", "ready-new"]);
    }

    #[test]
    fn status_counts_ready_and_available_with_min_ready_seconds() {
        let mut r = rs(2);
        r.spec.as_mut().unwrap().min_ready_seconds = Some(120);
        let pods = vec![
            owned(with_phase(pod("a", &[("app", "web")]), "Running", true), &r),
            owned(with_phase(pod("b", &[("app", "web")]), "Running", false), &r),
        ];
        let now = Timestamp::now();
        let p = plan(&r, &pods, now);
        assert_eq!(p.status.replicas, 2);
        assert_eq!(p.status.ready_replicas, Some(1));
        assert_eq!(p.status.available_replicas, Some(0));
        assert!(next_availability_check(&r, &pods, now).is_some());
    }

    #[test]
    fn terminal_and_deleting_pods_are_replaced() {
        let r = rs(2);
        let pods = vec![
            owned(with_phase(pod("done", &[("app", "web")]), "Failed", false), &r),
            owned(pod("live", &[("app", "web")]), &r),
        ];
        assert_eq!(plan(&r, &pods, Timestamp::now()).create, 1);
    }

    #[test]
    fn a_replicaset_being_deleted_creates_nothing() {
        let mut r = rs(3);
        r.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        let p = plan(&r, &[Arc::new(pod("orphan", &[("app", "web")]))], Timestamp::now());
        assert_eq!(p.create, 0);
        assert!(p.adopt.is_empty());
    }

    #[test]
    fn a_failing_replicaset_keeps_its_failure_condition_unchanged() {
        let t0 = Timestamp::now() - SignedDuration::from_secs(60);
        let err = SyncError::Invalid("forbidden".into());
        let first = replica_failure(None, Some(&err), t0);
        let again = replica_failure(first.clone(), Some(&SyncError::Invalid("other pod name".into())), Timestamp::now());
        assert_eq!(first, again);
        assert_eq!(replica_failure(again, None, Timestamp::now()), None);
    }

    #[test]
    fn creations_are_capped_by_burst_replicas() {
        assert_eq!(plan(&rs(1000), &[], Timestamp::now()).create, BURST_REPLICAS);
    }
}
