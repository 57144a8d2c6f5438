//! The StatefulSet controller: pods with stable names `<set>-<ordinal>`,
//! created in order and deleted in reverse order (OrderedReady), or all at
//! once (Parallel), with RollingUpdate from the highest ordinal down.
//! Each ordinal gets a claim per volumeClaimTemplate, `<template>-<set>-<n>`,
//! created before its pod and kept when the pod goes; the
//! persistentVolumeClaimRetentionPolicy decides which owner (the set, or a
//! scaled-down pod) the garbage collector deletes it with.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::history::{self, Step};
use super::{Ctx, Result, SyncError};
use crate::events::{EventType, Recorder};
use crate::podutil;
use crate::runtime::{run_workers, Informers, Key, WorkQueue};

pub const NAME: &str = "statefulset-controller";
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
pub const REVISION_HASH: &str = "controller-revision-hash";

/// The ordinal of a pod named `<set>-<n>`.
pub fn ordinal(set: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

/// One revision of the set's pod template: the ControllerRevision's name
/// (pods wear it as `controller-revision-hash`) and the template it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    pub name: String,
    pub template: PodTemplateSpec,
}

/// The revisions a sync works with, as getStatefulSetRevisions finds them:
/// the one the set's pods run now, and the one it is rolling out.
#[derive(Debug, Clone, PartialEq)]
pub struct Revisions {
    pub current: Revision,
    pub update: Revision,
}

/// The ControllerRevision that snapshots the set's template now (upstream's
/// newRevision), numbered `revision`.
pub fn snapshot(sts: &StatefulSet, revision: i64) -> ControllerRevision {
    let template = sts.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    let collisions = sts.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0);
    history::new_revision(sts, labels, history::template_patch(&template), revision, Some(collisions))
}

/// Which revision pods still run: the status's currentRevision while it
/// exists, else (a new set, or its revision pruned) the update revision.
pub fn revisions(sts: &StatefulSet, existing: &[Arc<ControllerRevision>], update: &ControllerRevision) -> Revisions {
    let template = sts.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let update = Revision {
        name: update.name_any(),
        template,
    };
    let wanted = sts.status.as_ref().and_then(|s| s.current_revision.as_deref());
    let current = existing
        .iter()
        .filter(|r| Some(r.name_any().as_str()) == wanted && r.name_any() != update.name)
        .find_map(|r| {
            Some(Revision {
                name: r.name_any(),
                template: history::template_of(r)?,
            })
        })
        .unwrap_or_else(|| update.clone());
    Revisions { current, update }
}

#[derive(Debug, PartialEq)]
pub enum Action {
    Create(i32),
    Delete(String),
}

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub status: StatefulSetStatus,
}

fn running_and_ready(p: &Pod) -> bool {
    podutil::phase(p) == "Running" && podutil::is_ready(p)
}

pub fn plan(sts: &StatefulSet, revs: &Revisions, pods: &[Arc<Pod>], now: Timestamp) -> Plan {
    let set = sts.name_any();
    let spec = sts.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let parallel = spec.pod_management_policy.as_deref() == Some("Parallel");
    let update_rev = revs.update.name.clone();
    let mut by_ord: BTreeMap<i32, &Arc<Pod>> = BTreeMap::new();
    for p in pods {
        if let Some(i) = ordinal(&set, &p.name_any()) {
            by_ord.insert(i, p);
        }
    }
    let mut out = Plan::default();
    let mut blocked = false;
    // Creation and repair, lowest ordinal first.
    for i in 0..replicas {
        match by_ord.get(&i) {
            None => {
                out.actions.push(Action::Create(i));
                if !parallel {
                    blocked = true;
                    break;
                }
            }
            Some(p) if p.metadata.deletion_timestamp.is_some() => {
                if !parallel {
                    blocked = true;
                    break;
                }
            }
            Some(p) if podutil::phase(p) == "Failed" => {
                // Recreate failed pods under the same name.
                out.actions.push(Action::Delete(p.name_any()));
                if !parallel {
                    blocked = true;
                    break;
                }
            }
            Some(p) if !running_and_ready(p) && !parallel => {
                blocked = true;
                break;
            }
            Some(_) => {}
        }
    }
    // Scale down, highest ordinal first, one at a time unless Parallel.
    if !blocked {
        let condemned: Vec<&&Arc<Pod>> = by_ord.range(replicas..).rev().map(|(_, p)| p).collect();
        for p in &condemned {
            if p.metadata.deletion_timestamp.is_some() {
                if !parallel {
                    blocked = true;
                    break;
                }
                continue;
            }
            out.actions.push(Action::Delete(p.name_any()));
            if !parallel {
                blocked = true;
                break;
            }
        }
    }
    // RollingUpdate: replace the highest outdated pod at or above the partition.
    let strategy = spec.update_strategy.as_ref();
    let rolling = strategy.and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate") == "RollingUpdate";
    if !blocked && rolling {
        let partition = strategy
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0);
        let all_ready = by_ord
            .range(..replicas)
            .all(|(_, p)| running_and_ready(p) && p.metadata.deletion_timestamp.is_none());
        if all_ready {
            if let Some((_, p)) = by_ord
                .range(partition..replicas)
                .rev()
                .find(|(_, p)| p.labels().get(REVISION_HASH) != Some(&update_rev))
            {
                out.actions.push(Action::Delete(p.name_any()));
            }
        }
    }
    let live: Vec<&&Arc<Pod>> = by_ord.values().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let updated = live.iter().filter(|p| p.labels().get(REVISION_HASH) == Some(&update_rev)).count() as i32;
    let old_status = sts.status.clone().unwrap_or_default();
    let ready = live.iter().filter(|p| podutil::is_ready(p)).count() as i32;
    let all = live.len() as i32;
    // completeRollingUpdate: once every pod runs the update revision and is
    // ready, it becomes the current one.
    let current_rev = if updated == all && (ready == all || !rolling) {
        update_rev.clone()
    } else {
        revs.current.name.clone()
    };
    out.status = StatefulSetStatus {
        replicas: all,
        ready_replicas: Some(ready),
        available_replicas: Some(live.iter().filter(|p| podutil::is_available(p, min_ready, now)).count() as i32),
        current_replicas: Some(live.iter().filter(|p| p.labels().get(REVISION_HASH) == Some(&current_rev)).count() as i32),
        updated_replicas: Some(updated),
        current_revision: Some(current_rev),
        update_revision: Some(update_rev),
        observed_generation: sts.metadata.generation,
        collision_count: old_status.collision_count,
        conditions: old_status.conditions,
    };
    out
}

/// newVersionedStatefulSetPod: ordinals below a RollingUpdate partition are
/// (re)created at the current revision, the others at the update revision.
pub fn revision_for<'a>(sts: &StatefulSet, revs: &'a Revisions, i: i32) -> &'a Revision {
    let strategy = sts.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    let partition = strategy
        .filter(|s| s.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate")
        .and_then(|s| s.rolling_update.as_ref()?.partition)
        .unwrap_or(0);
    if i < partition {
        &revs.current
    } else {
        &revs.update
    }
}

/// The pod for one ordinal at one revision: a stable name, hostname and
/// subdomain.
pub fn pod_for(sts: &StatefulSet, rev: &Revision, i: i32) -> Option<Pod> {
    let spec = sts.spec.as_ref()?;
    let name = format!("{}-{i}", sts.name_any());
    let mut pod = podutil::pod_from_template(
        &rev.template,
        &sts.namespace().unwrap_or_default(),
        podutil::controller_ref(sts),
        "",
    );
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(name.clone());
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), i.to_string());
    labels.insert(REVISION_HASH.into(), rev.name.clone());
    let ps = pod.spec.get_or_insert_with(Default::default);
    ps.hostname = Some(name);
    if let Some(svc) = spec.service_name.clone().filter(|s| !s.is_empty()) {
        ps.subdomain = Some(svc);
    }
    // updateStorage: each claim template is a volume of the same name,
    // replacing a template volume that shares it.
    for t in spec.volume_claim_templates.iter().flatten() {
        let template = t.metadata.name.clone().unwrap_or_default();
        let volumes = ps.volumes.get_or_insert_with(Vec::new);
        volumes.retain(|v| v.name != template);
        volumes.push(Volume {
            name: template.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&template, &sts.name_any(), i),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    Some(pod)
}

/// getPersistentVolumeClaimName: the claim of one template for one ordinal.
pub fn claim_name(template: &str, set: &str, i: i32) -> String {
    format!("{template}-{set}-{i}")
}

/// getPersistentVolumeClaims: the claims ordinal `i` needs, from the set's
/// templates, labelled with the set's selector as upstream does.
pub fn claims_for(sts: &StatefulSet, i: i32) -> Vec<PersistentVolumeClaim> {
    let Some(spec) = sts.spec.as_ref() else { return Vec::new() };
    let selector = spec.selector.match_labels.clone().unwrap_or_default();
    spec.volume_claim_templates
        .iter()
        .flatten()
        .map(|t| {
            let mut c = t.clone();
            let template = t.metadata.name.clone().unwrap_or_default();
            c.metadata.name = Some(claim_name(&template, &sts.name_any(), i));
            c.metadata.namespace = sts.namespace();
            c.metadata.resource_version = None;
            c.metadata.uid = None;
            c.metadata.labels.get_or_insert_with(BTreeMap::new).extend(selector.clone());
            c.status = None;
            c
        })
        .collect()
}

fn plain_ref(api_version: &str, kind: &str, name: String, uid: String) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name,
        uid,
        ..Default::default()
    }
}

/// updateClaimOwnerRefForSetAndPod: the owner references a claim of
/// ordinal `i` should carry under the retention policy, as (refs to keep
/// or add, uids of ours to drop). whenDeleted=Delete makes the set an
/// owner; whenScaled=Delete makes a scaled-down pod the owner instead.
pub fn claim_owners(sts: &StatefulSet, pod: Option<&Pod>, i: i32) -> (Vec<OwnerReference>, Vec<String>) {
    let spec = sts.spec.clone().unwrap_or_default();
    let policy = spec.persistent_volume_claim_retention_policy.unwrap_or_default();
    let delete = |p: Option<String>| p.as_deref() == Some("Delete");
    let (when_deleted, when_scaled) = (delete(policy.when_deleted), delete(policy.when_scaled));
    let condemned = i >= spec.replicas.unwrap_or(1);
    let set_ref = plain_ref("apps/v1", "StatefulSet", sts.name_any(), sts.uid().unwrap_or_default());
    let pod_ref = pod.map(|p| plain_ref("v1", "Pod", p.name_any(), p.uid().unwrap_or_default()));
    let owned_by_pod = when_scaled && condemned && pod_ref.is_some();
    let owned_by_set = when_deleted && !(when_scaled && condemned);
    let mut add = Vec::new();
    let mut drop = Vec::new();
    if owned_by_set {
        add.push(set_ref);
    } else {
        drop.push(set_ref.uid);
    }
    match pod_ref {
        Some(r) if owned_by_pod => add.push(r),
        Some(r) => drop.push(r.uid),
        None => {}
    }
    (add, drop)
}

/// The claim's ownerReferences with ours set as `claim_owners` says, or
/// None when they already are.
pub fn updated_owner_refs(claim: &PersistentVolumeClaim, add: &[OwnerReference], drop: &[String]) -> Option<Vec<OwnerReference>> {
    let old = claim.metadata.owner_references.clone().unwrap_or_default();
    let mut next: Vec<OwnerReference> = old.iter().filter(|r| !drop.contains(&r.uid)).cloned().collect();
    for r in add {
        if !next.iter().any(|o| o.uid == r.uid) {
            next.push(r.clone());
        }
    }
    (next != old).then_some(next)
}

struct State {
    ctx: Ctx,
    sets: Store<StatefulSet>,
    pods: Store<Pod>,
    claims: Store<PersistentVolumeClaim>,
    revisions: Store<ControllerRevision>,
    recorder: Recorder,
}

pub fn register(inf: &mut Informers, ctx: &Ctx) {
    let queue: WorkQueue<Key> = WorkQueue::default();
    inf.get::<StatefulSet>().enqueue_self(&queue);
    inf.get::<Pod>().enqueue_controller(&queue, "StatefulSet");
    inf.get::<ControllerRevision>().enqueue_controller(&queue, "StatefulSet");
    let state = Arc::new(State {
        ctx: ctx.clone(),
        sets: inf.store(),
        pods: inf.store(),
        claims: inf.store(),
        revisions: inf.store(),
        recorder: Recorder::new(ctx.client.clone(), NAME),
    });
    let metrics = ctx.metrics.clone();
    let workers = ctx.opts.concurrent_syncs;
    let synced = vec![
        inf.synced::<StatefulSet>(),
        inf.synced::<Pod>(),
        inf.synced::<ControllerRevision>(),
        inf.synced::<PersistentVolumeClaim>(),
    ];
    run_workers(NAME, queue, workers, metrics, synced, move |key| {
        let state = state.clone();
        async move { sync(&state, &key).await }
    });
}

async fn sync(st: &State, key: &Key) -> Result<Option<Duration>> {
    let Some(sts) = st.sets.get(&ObjectRef::new(&key.name).within(key.ns())) else {
        return Ok(None);
    };
    if sts.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let uid = sts.uid().unwrap_or_default();
    let ns = key.ns().to_string();
    let pods = podutil::owned_pods(&st.pods, &ns, &uid);
    let existing = history::owned(&st.revisions, &ns, &uid);
    let rapi: Api<ControllerRevision> = Api::namespaced(st.ctx.client.clone(), &ns);
    let collisions = sts.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0);
    let wanted = snapshot(&sts, history::next_revision(&existing));
    let (update, collisions) = match history::plan_update(&existing, wanted) {
        Step::Keep(r) => ((*r).clone(), collisions),
        Step::Renumber(r, n) => (history::renumber(&rapi, &r.name_any(), n).await?, collisions),
        Step::Create(r) => history::create(&rapi, sts.as_ref(), r, collisions).await?,
    };
    let revs = revisions(&sts, &existing, &update);
    let mut plan = plan(&sts, &revs, &pods, Timestamp::now());
    plan.status.collision_count = Some(collisions);
    let api: Api<Pod> = Api::namespaced(st.ctx.client.clone(), &ns);
    sync_claim_owners(st, &sts, &pods).await?;
    for a in &plan.actions {
        match a {
            Action::Create(i) => {
                let Some(pod) = pod_for(&sts, revision_for(&sts, &revs, *i), *i) else { continue };
                let name = pod.name_any();
                create_claims(st, &sts, *i, &name).await?;
                match api.create(&PostParams::default(), &pod).await {
                    Ok(_) => st.recorder.record(
                        sts.as_ref(),
                        EventType::Normal,
                        "SuccessfulCreate",
                        &format!("create Pod {name} in StatefulSet {} successful", key.name),
                    ),
                    Err(e) if super::is_already_exists(&e) => {}
                    Err(e) => {
                        st.recorder.record(
                            sts.as_ref(),
                            EventType::Warning,
                            "FailedCreate",
                            &format!("create Pod {name} in StatefulSet {} failed error: {e}", key.name),
                        );
                        return Err(e.into());
                    }
                }
            }
            Action::Delete(name) => match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => st.recorder.record(
                    sts.as_ref(),
                    EventType::Normal,
                    "SuccessfulDelete",
                    &format!("delete Pod {name} in StatefulSet {} successful", key.name),
                ),
                Err(e) if super::is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            },
        }
    }
    if sts.status.as_ref() != Some(&plan.status) {
        let v = serde_json::to_value(&plan.status).map_err(|source| SyncError::Encode {
            what: "statefulset status",
            source,
        })?;
        let sapi: Api<StatefulSet> = Api::namespaced(st.ctx.client.clone(), &ns);
        match sapi
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&json!({ "status": v })))
            .await
        {
            Ok(_) => {}
            Err(e) if super::is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // truncateHistory, with the pods as this sync found them.
    let mut live: std::collections::BTreeSet<String> = [revs.current.name.clone(), revs.update.name.clone()].into();
    live.extend(pods.iter().filter_map(|p| p.labels().get(REVISION_HASH).cloned()));
    let limit = sts.spec.as_ref().and_then(|s| s.revision_history_limit).unwrap_or(10);
    history::delete_all(&rapi, &history::prune(&existing, &live, limit)).await?;
    Ok(None)
}

/// createPersistentVolumeClaims: the ordinal's missing claims, before its
/// pod; a claim still being deleted holds the pod back.
async fn create_claims(st: &State, sts: &StatefulSet, i: i32, pod: &str) -> Result<()> {
    let ns = sts.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(st.ctx.client.clone(), &ns);
    for mut claim in claims_for(sts, i) {
        let name = claim.name_any();
        if let Some(old) = st.claims.get(&ObjectRef::new(&name).within(&ns)) {
            if old.metadata.deletion_timestamp.is_some() {
                return Err(SyncError::Invalid(format!(
                    "pod {pod} of StatefulSet {} waits for claim {name}, which is being deleted",
                    sts.name_any()
                )));
            }
            continue;
        }
        let (add, _) = claim_owners(sts, None, i);
        if !add.is_empty() {
            claim.metadata.owner_references = Some(add);
        }
        match super::timed(api.create(&PostParams::default(), &claim)).await? {
            Ok(_) => st.recorder.record(
                sts,
                EventType::Normal,
                "SuccessfulCreate",
                &format!("create Claim {name} Pod {pod} in StatefulSet {} success", sts.name_any()),
            ),
            Err(e) if super::is_already_exists(&e) => {}
            Err(e) => {
                st.recorder.record(
                    sts,
                    EventType::Warning,
                    "FailedCreate",
                    &format!("create Claim {name} for Pod {pod} in StatefulSet {} failed error: {e}", sts.name_any()),
                );
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// The retention policy on the claims of the set's live pods, so that the
/// garbage collector deletes what the policy says when the set or a
/// scaled-down pod goes.
async fn sync_claim_owners(st: &State, sts: &StatefulSet, pods: &[Arc<Pod>]) -> Result<()> {
    let ns = sts.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(st.ctx.client.clone(), &ns);
    for p in pods {
        let Some(i) = ordinal(&sts.name_any(), &p.name_any()) else { continue };
        let (add, drop) = claim_owners(sts, Some(p), i);
        for want in claims_for(sts, i) {
            let Some(claim) = st.claims.get(&ObjectRef::new(&want.name_any()).within(&ns)) else { continue };
            let Some(refs) = updated_owner_refs(&claim, &add, &drop) else { continue };
            let patch = json!({"metadata": {"ownerReferences": refs}});
            match super::timed(api.patch(&claim.name_any(), &PatchParams::default(), &Patch::Merge(&patch))).await? {
                Ok(_) => {}
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
    use crate::podutil::fixtures::with_phase;
    use k8s_openapi::api::apps::v1::StatefulSetSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn sts(replicas: i32, parallel: bool) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            spec: Some(StatefulSetSpec {
                replicas: Some(replicas),
                service_name: Some("web".into()),
                pod_management_policy: parallel.then(|| "Parallel".to_string()),
                ..Default::default()
            }),
            status: None,
        }
    }

    /// A set whose only revision is its template.
    fn revs(s: &StatefulSet) -> Revisions {
        let r = snapshot(s, 1);
        revisions(s, &[], &r)
    }

    fn ready(s: &StatefulSet, i: i32) -> Arc<Pod> {
        Arc::new(with_phase(pod_for(s, &revs(s).update, i).unwrap(), "Running", true))
    }

    #[test]
    fn ordered_creation_one_at_a_time() {
        let s = sts(3, false);
        assert_eq!(plan(&s, &revs(&s), &[], Timestamp::now()).actions, vec![Action::Create(0)]);
        assert_eq!(plan(&s, &revs(&s), &[ready(&s, 0)], Timestamp::now()).actions, vec![Action::Create(1)]);
        // web-1 exists but is not ready: wait.
        let pending = Arc::new(pod_for(&s, &revs(&s).update, 1).unwrap());
        assert!(plan(&s, &revs(&s), &[ready(&s, 0), pending], Timestamp::now()).actions.is_empty());
    }

    #[test]
    fn parallel_creates_all() {
        let s = sts(3, true);
        assert_eq!(
            plan(&s, &revs(&s), &[], Timestamp::now()).actions,
            vec![Action::Create(0), Action::Create(1), Action::Create(2)]
        );
    }

    #[test]
    fn scale_down_from_the_highest_ordinal() {
        let s = sts(1, false);
        let pods = vec![ready(&s, 0), ready(&s, 1), ready(&s, 2)];
        assert_eq!(plan(&s, &revs(&s), &pods, Timestamp::now()).actions, vec![Action::Delete("web-2".into())]);
    }

    #[test]
    fn stable_identity() {
        let s = sts(1, false);
        let p = pod_for(&s, &revs(&s).update, 4).unwrap();
        assert_eq!(p.name_any(), "web-4");
        assert_eq!(p.labels().get(POD_INDEX_LABEL).map(String::as_str), Some("4"));
        let spec = p.spec.unwrap();
        assert_eq!((spec.hostname.as_deref(), spec.subdomain.as_deref()), (Some("web-4"), Some("web")));
        assert_eq!(ordinal("web", "web-12"), Some(12));
        assert_eq!(ordinal("web", "webx-1"), None);
    }

    #[test]
    fn rolling_update_replaces_the_highest_outdated_pod() {
        let old = sts(2, false);
        let mut new = old.clone();
        new.spec.as_mut().unwrap().template.metadata = Some(ObjectMeta {
            labels: Some([("v".to_string(), "2".to_string())].into()),
            ..Default::default()
        });
        let old_rev = snapshot(&old, 1);
        new.status = Some(StatefulSetStatus {
            current_revision: Some(old_rev.name_any()),
            ..Default::default()
        });
        let existing = vec![Arc::new(old_rev.clone())];
        let update = match history::plan_update(&existing, snapshot(&new, 2)) {
            Step::Create(r) => r,
            other => panic!("a changed template needs a new revision, got {other:?}"),
        };
        let rv = revisions(&new, &existing, &update);
        assert_eq!(rv.current.name, old_rev.name_any());
        // The current template is the old one (no `v` label), read back from its revision.
        assert!(rv.current.template.metadata.as_ref().unwrap().labels.is_none());
        let p = plan(&new, &rv, &[ready(&old, 0), ready(&old, 1)], Timestamp::now());
        assert_eq!(p.actions, vec![Action::Delete("web-1".into())]);
        assert_eq!(p.status.updated_replicas, Some(0));
        assert_eq!(p.status.current_revision, Some(old_rev.name_any()));
        assert_eq!(p.status.update_revision, Some(update.name_any()));
        // Once every pod runs the update revision and is ready, it is current.
        let updated: Vec<_> = (0..2)
            .map(|i| Arc::new(with_phase(pod_for(&new, &rv.update, i).unwrap(), "Running", true)))
            .collect();
        let p = plan(&new, &rv, &updated, Timestamp::now());
        assert_eq!(p.status.current_revision, Some(update.name_any()));
        assert_eq!(p.status.updated_replicas, Some(2));
    }

    #[test]
    fn ordinals_below_the_partition_are_created_at_the_current_revision() {
        let old = sts(3, false);
        let mut new = old.clone();
        let spec = new.spec.as_mut().unwrap();
        spec.template.metadata = Some(ObjectMeta {
            labels: Some([("v".to_string(), "2".to_string())].into()),
            ..Default::default()
        });
        spec.update_strategy = Some(k8s_openapi::api::apps::v1::StatefulSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(k8s_openapi::api::apps::v1::RollingUpdateStatefulSetStrategy {
                partition: Some(2),
                ..Default::default()
            }),
        });
        let rv = Revisions {
            current: revs(&old).update,
            update: revs(&new).update,
        };
        assert_eq!(revision_for(&new, &rv, 1), &rv.current);
        assert_eq!(revision_for(&new, &rv, 2), &rv.update);
        let p = pod_for(&new, revision_for(&new, &rv, 0), 0).unwrap();
        assert_eq!(p.labels().get(REVISION_HASH), Some(&rv.current.name));
        assert!(!p.labels().contains_key("v"));
    }

    fn with_claims(mut s: StatefulSet, when_deleted: &str, when_scaled: &str) -> StatefulSet {
        let spec = s.spec.as_mut().unwrap();
        spec.selector.match_labels = Some([("app".to_string(), "web".to_string())].into());
        spec.volume_claim_templates = Some(vec![serde_json::from_value(serde_json::json!({
            "metadata": {"name": "www"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
        }))
        .unwrap()]);
        spec.persistent_volume_claim_retention_policy = Some(
            k8s_openapi::api::apps::v1::StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_deleted: Some(when_deleted.into()),
                when_scaled: Some(when_scaled.into()),
            },
        );
        s
    }

    #[test]
    fn each_ordinal_mounts_its_own_claim() {
        let s = with_claims(sts(2, false), "Retain", "Retain");
        let claims = claims_for(&s, 1);
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].name_any(), "www-web-1");
        assert_eq!(claims[0].labels().get("app").map(String::as_str), Some("web"));
        let pod = pod_for(&s, &revs(&s).update, 1).unwrap();
        let v = &pod.spec.unwrap().volumes.unwrap()[0];
        assert_eq!(v.name, "www");
        assert_eq!(v.persistent_volume_claim.as_ref().unwrap().claim_name, "www-web-1");
    }

    #[test]
    fn retention_policy_picks_the_claims_owner() {
        let pod = |i: i32| pod_for(&sts(1, false), &revs(&sts(1, false)).update, i).map(|mut p| {
            p.metadata.uid = Some(format!("pod-{i}"));
            p
        });
        let owners = |s: &StatefulSet, i: i32| {
            let p = pod(i).unwrap();
            let (add, _) = claim_owners(s, Some(&p), i);
            add.into_iter().map(|r| r.kind).collect::<Vec<_>>()
        };
        // Retain/Retain: no owner, the claims outlive everything.
        assert!(owners(&with_claims(sts(1, false), "Retain", "Retain"), 0).is_empty());
        // whenDeleted=Delete: the set owns its claims.
        assert_eq!(owners(&with_claims(sts(1, false), "Delete", "Retain"), 0), vec!["StatefulSet"]);
        // whenScaled=Delete: a pod beyond replicas owns its claim, one within does not.
        assert_eq!(owners(&with_claims(sts(1, false), "Retain", "Delete"), 1), vec!["Pod"]);
        assert!(owners(&with_claims(sts(1, false), "Retain", "Delete"), 0).is_empty());
        assert_eq!(owners(&with_claims(sts(1, false), "Delete", "Delete"), 1), vec!["Pod"]);
        assert_eq!(owners(&with_claims(sts(1, false), "Delete", "Delete"), 0), vec!["StatefulSet"]);
        // Only our references change; a foreign owner stays.
        let s = with_claims(sts(1, false), "Retain", "Retain");
        let mut claim = claims_for(&s, 0).remove(0);
        let foreign = plain_ref("v1", "ConfigMap", "x".into(), "cm".into());
        claim.metadata.owner_references = Some(vec![foreign.clone(), plain_ref("apps/v1", "StatefulSet", "web".into(), "u".into())]);
        let (add, drop) = claim_owners(&s, None, 0);
        assert_eq!(updated_owner_refs(&claim, &add, &drop), Some(vec![foreign]));
    }
}
