//! The disruption controller (upstream's pkg/controller/disruption): keeps
//! each PodDisruptionBudget's status (expected and healthy pods, and how
//! many disruptions are allowed now), which the eviction subresource reads
//! and spends.
//!
//! [`plan::plan`] decides; [`register`] wires the budget, pod and owner
//! informers to a queue of budgets; `sync` looks up the scales the plan
//! needs and writes the status through the status subresource with the
//! cached resourceVersion, so a write never undoes an eviction's spending
//! that it did not see (it conflicts and is retried instead).

pub mod plan;
pub mod scale;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};

use super::{Ctx, Result};
use crate::events::Recorder;
use crate::podutil;
use crate::runtime::{run_workers, Informers, Key, WorkQueue};
use plan::Scale;
use scale::Owners;

pub const NAME: &str = "disruption-controller";

struct State {
    ctx: Ctx,
    pdbs: Store<PodDisruptionBudget>,
    pods: Store<Pod>,
    owners: Owners,
    recorder: Recorder,
}

/// Queue every budget in `ns` whose selector picks `labels`.
fn enqueue_budgets_of(q: &WorkQueue<Key>, pdbs: &Store<PodDisruptionBudget>, pod: &Pod) {
    let ns = pod.namespace();
    for b in pdbs.state().iter().filter(|b| b.namespace() == ns) {
        let sel = b.spec.as_ref().and_then(|s| s.selector.as_ref());
        if podutil::selector_matches(sel, pod.metadata.labels.as_ref()) {
            q.add(Key::of(&b.metadata));
        }
    }
}

/// Queue every budget of a namespace (an owner's scale changed).
fn enqueue_namespace(q: &WorkQueue<Key>, pdbs: &Store<PodDisruptionBudget>, ns: Option<&str>) {
    for b in pdbs.state().iter().filter(|b| b.namespace().as_deref() == ns) {
        q.add(Key::of(&b.metadata));
    }
}

/// A change of an owner kind wakes its namespace's budgets when it was
/// added, removed or rescaled (status churn does not).
fn on_owner_change<K>(inf: &mut Informers, q: &WorkQueue<Key>, pdbs: &Store<PodDisruptionBudget>, replicas: fn(&K) -> Option<i32>)
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (q, pdbs) = (q.clone(), pdbs.clone());
    inf.get::<K>().on_change(move |old, new| {
        let rescaled = match (old, new) {
            (Some(o), Some(n)) => replicas(o) != replicas(n),
            _ => true,
        };
        if let Some(obj) = new.or(old).filter(|_| rescaled) {
            enqueue_namespace(&q, &pdbs, obj.meta().namespace.as_deref());
        }
    });
}

pub fn register(inf: &mut Informers, ctx: &Ctx) {
    let queue: WorkQueue<Key> = WorkQueue::default();
    let pdbs = inf.store::<PodDisruptionBudget>();
    inf.get::<PodDisruptionBudget>().enqueue_self(&queue);
    {
        let (q, pdbs) = (queue.clone(), pdbs.clone());
        inf.get::<Pod>().on_change(move |old, new| {
            for p in [old, new].into_iter().flatten() {
                enqueue_budgets_of(&q, &pdbs, p);
            }
        });
    }
    on_owner_change::<ReplicationController>(inf, &queue, &pdbs, |o| o.spec.as_ref()?.replicas);
    on_owner_change::<ReplicaSet>(inf, &queue, &pdbs, |o| o.spec.as_ref()?.replicas);
    on_owner_change::<Deployment>(inf, &queue, &pdbs, |o| o.spec.as_ref()?.replicas);
    on_owner_change::<StatefulSet>(inf, &queue, &pdbs, |o| o.spec.as_ref()?.replicas);
    let state = Arc::new(State {
        ctx: ctx.clone(),
        pdbs,
        pods: inf.store(),
        owners: Owners {
            rcs: inf.store(),
            replicasets: inf.store(),
            deployments: inf.store(),
            statefulsets: inf.store(),
        },
        recorder: Recorder::new(ctx.client.clone(), NAME),
    });
    let synced = vec![
        inf.synced::<PodDisruptionBudget>(),
        inf.synced::<Pod>(),
        inf.synced::<ReplicationController>(),
        inf.synced::<ReplicaSet>(),
        inf.synced::<Deployment>(),
        inf.synced::<StatefulSet>(),
    ];
    run_workers(NAME, queue, ctx.opts.concurrent_syncs, ctx.metrics.clone(), synced, move |key| {
        let state = state.clone();
        async move { sync(&state, &key).await }
    });
}

/// The scales of the selected pods' controllers, by controller uid. The
/// first API failure is returned beside what was found (the plan then fails
/// safe for the pods it could not look up).
async fn scales(st: &State, pdb: &PodDisruptionBudget, pods: &[Arc<Pod>]) -> (HashMap<String, Scale>, Option<kube::Error>) {
    let ns = pdb.namespace().unwrap_or_default();
    let mut out = HashMap::new();
    let mut failure = None;
    for pod in plan::selected_pods(pdb, pods) {
        let Some(cref) = podutil::controller_of(&pod.metadata) else { continue };
        if out.contains_key(&cref.uid) {
            continue;
        }
        let scale = match st.owners.cached(&ns, cref) {
            Some(s) => s,
            None => match super::timed(scale::via_subresource(&st.ctx.client, &ns, cref)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    let s = Scale::Failed(e.to_string());
                    failure.get_or_insert(e);
                    s
                }
                Err(timeout) => Scale::Failed(timeout.to_string()),
            },
        };
        out.insert(cref.uid.clone(), scale);
    }
    (out, failure)
}

async fn sync(st: &State, key: &Key) -> Result<Option<Duration>> {
    let Some(pdb) = st.pdbs.get(&ObjectRef::new(&key.name).within(key.ns())) else {
        return Ok(None);
    };
    let pods: Vec<Arc<Pod>> = st
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(key.ns()))
        .collect();
    let (scales, lookup_failure) = scales(st, &pdb, &pods).await;
    let plan = plan::plan(&pdb, &pods, &scales, Timestamp::now());
    for ev in &plan.events {
        match &ev.pod {
            None => st.recorder.record(pdb.as_ref(), ev.type_, ev.reason, &ev.message),
            Some(name) => {
                if let Some(p) = st.pods.get(&ObjectRef::new(name).within(key.ns())) {
                    st.recorder.record(p.as_ref(), ev.type_, ev.reason, &ev.message);
                }
            }
        }
    }
    if let Some(e) = &plan.error {
        tracing::warn!(budget = %key, error = %e, "failed to compute the budget's status; allowing no disruption");
    }
    if let Some(status) = plan.status {
        let mut next = (*pdb).clone();
        next.status = Some(status);
        let api: Api<PodDisruptionBudget> = Api::namespaced(st.ctx.client.clone(), key.ns());
        match super::timed(api.replace_status(&key.name, &PostParams::default(), &next)).await? {
            Ok(_) => {}
            Err(e) if super::is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(e) = lookup_failure {
        // Upstream relies on the next event; a failed request is retried.
        return Err(e.into());
    }
    Ok(plan.recheck)
}
