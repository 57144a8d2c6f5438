//! The StatefulSet controller: pods with stable names `<set>-<ordinal>`,
//! created in order and deleted in reverse order (OrderedReady), or all at
//! once (Parallel), with RollingUpdate from the highest ordinal down.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
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
    Some(pod)
}

struct State {
    ctx: Ctx,
    sets: Store<StatefulSet>,
    pods: Store<Pod>,
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
        revisions: inf.store(),
        recorder: Recorder::new(ctx.client.clone(), NAME),
    });
    let metrics = ctx.metrics.clone();
    let workers = ctx.opts.concurrent_syncs;
    let synced = vec![inf.synced::<StatefulSet>(), inf.synced::<Pod>(), inf.synced::<ControllerRevision>()];
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
    for a in &plan.actions {
        match a {
            Action::Create(i) => {
                let Some(pod) = pod_for(&sts, revision_for(&sts, &revs, *i), *i) else { continue };
                let name = pod.name_any();
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
}
