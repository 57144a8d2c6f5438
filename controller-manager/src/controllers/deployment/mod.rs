//! The Deployment controller: roll ReplicaSets named by the pod-template
//! hash, as upstream's deployment controller.

pub mod rollout;
pub mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{Ctx, Result, SyncError};
use crate::events::{EventType, Recorder};
use crate::podutil::{self, controller_of};
use crate::runtime::{run_workers, Informers, Key, WorkQueue};
use rollout::RsView;

pub const NAME: &str = "deployment-controller";
pub const HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// The template without the hash label, for comparing a Deployment's
/// template with a ReplicaSet's (upstream's EqualIgnoreHash).
fn normalized(t: &PodTemplateSpec) -> serde_json::Value {
    let mut t = t.clone();
    if let Some(m) = t.metadata.as_mut() {
        if let Some(l) = m.labels.as_mut() {
            l.remove(HASH_LABEL);
            if l.is_empty() {
                m.labels = None;
            }
        }
        if m.annotations.as_ref().is_some_and(|a| a.is_empty()) {
            m.annotations = None;
        }
    }
    serde_json::to_value(&t).unwrap_or_default()
}

pub fn templates_equal(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    normalized(a) == normalized(b)
}

/// The pod-template-hash of a template and collision count.
pub fn template_hash(t: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(&normalized(t)).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(c.to_string().as_bytes());
    }
    podutil::safe_encode(podutil::fnv32a(&bytes))
}

pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations().get(REVISION).and_then(|r| r.parse().ok()).unwrap_or(0)
}

/// The new ReplicaSet for a Deployment (upstream's NewRSNewReplicas
/// decides its first size).
pub fn new_replicaset(d: &Deployment, hash: &str, revision: i64, replicas: i32) -> Option<ReplicaSet> {
    let spec = d.spec.as_ref()?;
    let mut template = spec.template.clone();
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.into());
    let mut selector: LabelSelector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.into());
    let mut annotations: BTreeMap<String, String> = d
        .annotations()
        .iter()
        .filter(|(k, _)| !k.starts_with("deployment.kubernetes.io/") && *k != "kubectl.kubernetes.io/last-applied-configuration")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(REVISION.into(), revision.to_string());
    annotations.insert(DESIRED_REPLICAS.into(), rollout::replicas(d).to_string());
    annotations.insert(MAX_REPLICAS.into(), (rollout::replicas(d) + max_surge(d)).to_string());
    Some(ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{}", d.name_any(), hash)),
            namespace: d.namespace(),
            labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
            annotations: Some(annotations),
            owner_references: Some(vec![podutil::controller_ref(d)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    })
}

fn max_surge(d: &Deployment) -> i32 {
    if rollout::is_recreate(d) {
        0
    } else {
        rollout::fenceposts(d).0
    }
}

fn view(rs: &ReplicaSet) -> RsView {
    RsView {
        name: rs.name_any(),
        spec: status::spec_replicas(rs),
        actual: status::actual(rs),
        available: status::available(rs),
        created: rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
    }
}

/// Target replicas for every ReplicaSet, new first then olds (oldest first).
pub fn targets(d: &Deployment, new: &RsView, olds: &[RsView]) -> (i32, Vec<RsView>) {
    if rollout::is_recreate(d) {
        return rollout::recreate(d, new, olds);
    }
    let new_target = rollout::new_rs_target(d, new, olds);
    if new_target > new.spec {
        // As upstream: scale up now, scale old ones down on the next sync.
        return (new_target, olds.to_vec());
    }
    let after = RsView {
        spec: new_target,
        ..new.clone()
    };
    (new_target, rollout::scale_down_olds(d, &after, olds))
}

/// Old ReplicaSets beyond revisionHistoryLimit, oldest revision first.
pub fn history_to_delete<'a>(d: &Deployment, olds: &[&'a ReplicaSet]) -> Vec<&'a ReplicaSet> {
    let limit = d.spec.as_ref().and_then(|s| s.revision_history_limit).unwrap_or(10).max(0) as usize;
    let mut idle: Vec<&ReplicaSet> = olds
        .iter()
        .copied()
        .filter(|r| status::spec_replicas(r) == 0 && status::actual(r) == 0 && r.metadata.deletion_timestamp.is_none())
        .collect();
    if idle.len() <= limit {
        return vec![];
    }
    idle.sort_by_key(|r| revision(r));
    let n = idle.len() - limit;
    idle.truncate(n);
    idle
}

struct State {
    ctx: Ctx,
    deployments: Store<Deployment>,
    replicasets: Store<ReplicaSet>,
    recorder: Recorder,
}

pub fn register(inf: &mut Informers, ctx: &Ctx) {
    let queue: WorkQueue<Key> = WorkQueue::default();
    let deployments = inf.store::<Deployment>();
    let replicasets = inf.store::<ReplicaSet>();
    inf.get::<Deployment>().enqueue_self(&queue);
    {
        let q = queue.clone();
        let ds = deployments.clone();
        inf.get::<ReplicaSet>().on_change(move |old, new| {
            for rs in [old, new].into_iter().flatten() {
                let ns = rs.namespace().unwrap_or_default();
                match controller_of(&rs.metadata) {
                    Some(c) if c.kind == "Deployment" => q.add(Key::namespaced(&ns, &c.name)),
                    Some(_) => {}
                    None => {
                        for d in ds.state().iter().filter(|d| d.namespace().as_deref() == Some(ns.as_str())) {
                            if podutil::selector_matches(d.spec.as_ref().map(|s| &s.selector), rs.metadata.labels.as_ref()) {
                                q.add(Key::of(&d.metadata));
                            }
                        }
                    }
                }
            }
        });
    }
    let state = Arc::new(State {
        ctx: ctx.clone(),
        deployments,
        replicasets,
        recorder: Recorder::new(ctx.client.clone(), NAME),
    });
    let metrics = ctx.metrics.clone();
    let workers = ctx.opts.concurrent_syncs;
    let synced = vec![inf.synced::<Deployment>(), inf.synced::<ReplicaSet>()];
    run_workers(NAME, queue, workers, metrics, synced, move |key| {
        let state = state.clone();
        async move { sync(&state, &key).await }
    });
}

async fn sync(st: &State, key: &Key) -> Result<Option<Duration>> {
    let Some(d) = st.deployments.get(&ObjectRef::new(&key.name).within(key.ns())) else {
        return Ok(None);
    };
    let ns = key.ns();
    let uid = d.uid().unwrap_or_default();
    let rs_api: Api<ReplicaSet> = Api::namespaced(st.ctx.client.clone(), ns);
    let Some(spec) = d.spec.as_ref() else { return Ok(None) };
    let selector = Some(&spec.selector);
    let deleting = d.metadata.deletion_timestamp.is_some();
    let mut owned: Vec<Arc<ReplicaSet>> = Vec::new();
    for rs in st.replicasets.state().into_iter().filter(|r| r.namespace().as_deref() == Some(ns)) {
        let matches = podutil::selector_matches(selector, rs.metadata.labels.as_ref());
        match controller_of(&rs.metadata) {
            Some(c) if c.uid == uid => {
                if matches || deleting {
                    owned.push(rs);
                } else {
                    set_owner_refs(
                        &rs_api,
                        &rs,
                        rs.owner_references().iter().filter(|o| o.uid != uid).cloned().collect(),
                    )
                    .await?;
                }
            }
            None if matches && !deleting && rs.metadata.deletion_timestamp.is_none() => {
                let mut refs = rs.owner_references().to_vec();
                refs.push(podutil::controller_ref(d.as_ref()));
                set_owner_refs(&rs_api, &rs, refs).await?;
                owned.push(rs);
            }
            _ => {}
        }
    }
    let now = Timestamp::now();
    if deleting {
        return write_status(st, &d, &owned, None, now).await;
    }
    let paused = spec.paused.unwrap_or(false);
    let mut new_rs = owned
        .iter()
        .find(|r| {
            r.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| templates_equal(t, &spec.template))
        })
        .cloned();
    let mut olds: Vec<Arc<ReplicaSet>> = owned
        .iter()
        .filter(|r| Some(r.uid()) != new_rs.as_ref().map(|n| n.uid()))
        .cloned()
        .collect();
    olds.sort_by_key(|r| r.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let max_old_revision = olds.iter().map(|r| revision(r)).max().unwrap_or(0);

    if new_rs.is_none() && !paused {
        new_rs = Some(create_new_rs(st, &d, &rs_api, &olds, max_old_revision).await?);
    } else if let Some(n) = new_rs.as_ref().filter(|n| revision(n) <= max_old_revision && !paused) {
        // A rollback made an old ReplicaSet current again: it becomes the newest revision.
        let patch = json!({"metadata": {"annotations": {REVISION: (max_old_revision + 1).to_string()}}});
        rs_api.patch(&n.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    }

    let old_views: Vec<RsView> = olds.iter().map(|r| view(r)).collect();
    if let Some(new) = new_rs.as_ref() {
        let nv = view(new);
        let active_olds = old_views.iter().any(|o| o.spec > 0);
        let (new_target, old_targets) = if paused {
            // Paused: only follow `kubectl scale` when no rollout is under way.
            if active_olds {
                (nv.spec, old_views.clone())
            } else {
                (rollout::replicas(&d), old_views.clone())
            }
        } else {
            targets(&d, &nv, &old_views)
        };
        if new_target != nv.spec {
            scale(st, &d, &rs_api, new, new_target).await?;
        }
        for (rs, t) in olds.iter().zip(old_targets.iter()) {
            if t.spec != status::spec_replicas(rs) {
                scale(st, &d, &rs_api, rs, t.spec).await?;
            }
        }
        if !paused && !active_olds {
            let old_refs: Vec<&ReplicaSet> = olds.iter().map(|r| r.as_ref()).collect();
            for rs in history_to_delete(&d, &old_refs) {
                let dp = DeleteParams {
                    propagation_policy: Some(kube::api::PropagationPolicy::Background),
                    ..Default::default()
                };
                match rs_api.delete(&rs.name_any(), &dp).await {
                    Ok(_) => {}
                    Err(e) if super::is_not_found(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let rev = revision(new).max(max_old_revision + if revision(new) <= max_old_revision { 1 } else { 0 });
        if d.annotations().get(REVISION) != Some(&rev.to_string()) && !paused {
            let dapi: Api<Deployment> = Api::namespaced(st.ctx.client.clone(), ns);
            let patch = json!({"metadata": {"annotations": {REVISION: rev.to_string()}}});
            dapi.patch(&d.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
        }
    }
    let all: Vec<Arc<ReplicaSet>> = owned
        .clone()
        .into_iter()
        .chain(new_rs.clone().filter(|n| !owned.iter().any(|o| o.uid() == n.uid())))
        .collect();
    write_status(st, &d, &all, new_rs.as_deref(), now).await
}

async fn set_owner_refs(api: &Api<ReplicaSet>, rs: &ReplicaSet, refs: Vec<OwnerReference>) -> Result<()> {
    let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": rs.metadata.resource_version}});
    match api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(e) if super::is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn create_new_rs(
    st: &State,
    d: &Deployment,
    api: &Api<ReplicaSet>,
    olds: &[Arc<ReplicaSet>],
    max_old_revision: i64,
) -> Result<Arc<ReplicaSet>> {
    let spec = d.spec.as_ref().ok_or_else(|| SyncError::Invalid("deployment has no spec".into()))?;
    let mut collision = d.status.as_ref().and_then(|s| s.collision_count);
    let old_views: Vec<RsView> = olds.iter().map(|r| view(r)).collect();
    let zero = RsView {
        name: String::new(),
        spec: 0,
        actual: 0,
        available: 0,
        created: None,
    };
    let replicas = if rollout::is_recreate(d) {
        rollout::recreate(d, &zero, &old_views).0
    } else {
        rollout::new_rs_target(d, &zero, &old_views)
    };
    for _ in 0..5 {
        let hash = template_hash(&spec.template, collision);
        let rs =
            new_replicaset(d, &hash, max_old_revision + 1, replicas).ok_or_else(|| SyncError::Invalid("deployment has no spec".into()))?;
        match api.create(&PostParams::default(), &rs).await {
            Ok(created) => {
                if replicas > 0 {
                    st.recorder.record(
                        d,
                        EventType::Normal,
                        "ScalingReplicaSet",
                        &format!("Scaled up replica set {} from 0 to {}", created.name_any(), replicas),
                    );
                }
                return Ok(Arc::new(created));
            }
            Err(e) if super::is_already_exists(&e) => {
                let existing = api.get(&rs.name_any()).await?;
                let ours = podutil::is_controlled_by(&existing.metadata, &d.uid().unwrap_or_default());
                let same = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| templates_equal(t, &spec.template));
                if ours && same {
                    return Ok(Arc::new(existing));
                }
                // A hash collision: bump collisionCount, as upstream, and try the next name.
                collision = Some(collision.unwrap_or(0) + 1);
                let dapi: Api<Deployment> = Api::namespaced(st.ctx.client.clone(), &d.namespace().unwrap_or_default());
                dapi.patch_status(
                    &d.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"status": {"collisionCount": collision}})),
                )
                .await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(SyncError::Invalid("too many pod-template-hash collisions".into()))
}

async fn scale(st: &State, d: &Deployment, api: &Api<ReplicaSet>, rs: &ReplicaSet, to: i32) -> Result<()> {
    let from = status::spec_replicas(rs);
    let patch = json!({
        "metadata": {"annotations": {DESIRED_REPLICAS: rollout::replicas(d).to_string(), MAX_REPLICAS: (rollout::replicas(d) + max_surge(d)).to_string()}},
        "spec": {"replicas": to}
    });
    api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    let dir = if to > from { "up" } else { "down" };
    st.recorder.record(
        d,
        EventType::Normal,
        "ScalingReplicaSet",
        &format!("Scaled {dir} replica set {} from {from} to {to}", rs.name_any()),
    );
    Ok(())
}

async fn write_status(
    st: &State,
    d: &Deployment,
    all: &[Arc<ReplicaSet>],
    new: Option<&ReplicaSet>,
    now: Timestamp,
) -> Result<Option<Duration>> {
    let refs: Vec<&ReplicaSet> = all.iter().map(|r| r.as_ref()).collect();
    let mut s = status::calculate(d, &refs, new, now);
    let requeue = status::sync_progressing(d, &mut s, new.map(|n| n.name_any()).as_deref(), now);
    if d.status.as_ref() != Some(&s) {
        let api: Api<Deployment> = Api::namespaced(st.ctx.client.clone(), &d.namespace().unwrap_or_default());
        let v = serde_json::to_value(&s).map_err(|source| SyncError::Encode {
            what: "deployment status",
            source,
        })?;
        match api
            .patch_status(&d.name_any(), &PatchParams::default(), &Patch::Merge(&json!({ "status": v })))
            .await
        {
            Ok(_) => {}
            Err(e) if super::is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(requeue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn dep() -> Deployment {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("d-uid".into()),
                annotations: Some([(CHANGE_CAUSE.to_string(), "v2".to_string())].into()),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(3),
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "c".into(),
                            image: Some("nginx".into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn new_replicaset_is_named_and_labelled_by_the_template_hash() {
        let d = dep();
        let hash = template_hash(&d.spec.as_ref().unwrap().template, None);
        let rs = new_replicaset(&d, &hash, 4, 1).unwrap();
        assert_eq!(rs.name_any(), format!("web-{hash}"));
        let spec = rs.spec.as_ref().unwrap();
        assert_eq!(spec.selector.match_labels.as_ref().unwrap().get(HASH_LABEL), Some(&hash));
        assert_eq!(
            spec.template
                .as_ref()
                .unwrap()
                .metadata
                .as_ref()
                .unwrap()
                .labels
                .as_ref()
                .unwrap()
                .get(HASH_LABEL),
            Some(&hash)
        );
        assert_eq!(rs.annotations().get(REVISION).map(String::as_str), Some("4"));
        assert_eq!(rs.annotations().get(CHANGE_CAUSE).map(String::as_str), Some("v2"));
        assert_eq!(controller_of(&rs.metadata).unwrap().kind, "Deployment");
        // The RS template equals the deployment's once the hash is ignored.
        assert!(templates_equal(spec.template.as_ref().unwrap(), &d.spec.as_ref().unwrap().template));
    }

    #[test]
    fn hash_changes_with_the_template_and_collision_count() {
        let d = dep();
        let t = &d.spec.as_ref().unwrap().template;
        let mut t2 = t.clone();
        t2.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
        assert_ne!(template_hash(t, None), template_hash(&t2, None));
        assert_ne!(template_hash(t, None), template_hash(t, Some(1)));
        assert_eq!(template_hash(t, None), template_hash(t, None));
    }

    #[test]
    fn history_beyond_the_limit_is_deleted_oldest_first() {
        let mut d = dep();
        d.spec.as_mut().unwrap().revision_history_limit = Some(1);
        let mk = |rev: i64, replicas: i32| ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("rs{rev}")),
                annotations: Some([(REVISION.to_string(), rev.to_string())].into()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: None,
        };
        let (a, b, c) = (mk(1, 0), mk(2, 0), mk(3, 1));
        let del = history_to_delete(&d, &[&b, &a, &c]);
        assert_eq!(del.iter().map(|r| r.name_any()).collect::<Vec<_>>(), vec!["rs1"]);
    }

    #[test]
    fn rolling_update_scales_up_first_then_down() {
        let d = dep();
        let new = RsView {
            name: "new".into(),
            spec: 0,
            actual: 0,
            available: 0,
            created: None,
        };
        let old = RsView {
            name: "old".into(),
            spec: 3,
            actual: 3,
            available: 3,
            created: None,
        };
        let (n, olds) = targets(&d, &new, std::slice::from_ref(&old));
        assert_eq!((n, olds[0].spec), (1, 3), "25% surge of 3 rounds up to 1");
        let new = RsView {
            spec: 1,
            actual: 1,
            available: 1,
            ..new
        };
        let (n, olds) = targets(&d, &new, &[old]);
        assert_eq!(n, 1);
        assert_eq!(olds[0].spec, 2);
    }
}
