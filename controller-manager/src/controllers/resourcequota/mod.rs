//! The resource quota controller (upstream's pkg/controller/resourcequota):
//! keeps each ResourceQuota's status.hard (spec.hard) and status.used (what
//! the namespace uses of each resource named there).
//!
//! [`plan::plan`] decides from the namespace's objects. The kinds counted
//! most are read from shared informers, whose changes queue the quotas of
//! their namespace; any other `count/<resource>.<group>` is listed from the
//! API at sync time. Every quota is also synced every five minutes
//! (upstream's --resource-quota-sync-period), which catches those.

pub mod plan;

use apimachinery::quota as usage;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ReplicationController, ResourceQuota, Secret, Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, ListParams, PostParams};
use kube::discovery::{Discovery, Scope};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::{Ctx, Result};
use crate::runtime::{run_workers, Informers, Key, WorkQueue};

pub const NAME: &str = "resourcequota-controller";
/// Upstream's default --resource-quota-sync-period.
pub const FULL_RESYNC: Duration = Duration::from_secs(300);

/// A cached kind's object count in one namespace.
type Counter = Box<dyn Fn(&str) -> usize + Send + Sync>;

struct State {
    ctx: Ctx,
    quotas: Store<ResourceQuota>,
    pods: Store<Pod>,
    services: Store<Service>,
    pvcs: Store<PersistentVolumeClaim>,
    /// Counts from caches, by group-qualified resource.
    cached: HashMap<&'static str, Counter>,
    /// Resources resolved through discovery, by group-qualified name.
    discovered: Mutex<HashMap<String, ApiResource>>,
}

fn in_namespace<K: Resource<DynamicType = ()> + Clone + 'static>(store: &Store<K>, ns: &str) -> Vec<Arc<K>> {
    store.state().into_iter().filter(|o| o.meta().namespace.as_deref() == Some(ns)).collect()
}

/// Queue every quota of `ns`.
fn enqueue_namespace(q: &WorkQueue<Key>, quotas: &Store<ResourceQuota>, ns: Option<&str>) {
    for rq in quotas.state().iter().filter(|r| r.metadata.namespace.as_deref() == ns) {
        q.add(Key::of(&rq.metadata));
    }
}

/// Count `K` from its shared informer; its additions and deletions (and
/// the updates `changed` says matter) queue the namespace's quotas.
fn watch_kind<K>(inf: &mut Informers, q: &WorkQueue<Key>, quotas: &Store<ResourceQuota>, changed: fn(&K, &K) -> bool) -> Counter
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (q, quotas) = (q.clone(), quotas.clone());
    inf.get::<K>().on_change(move |old, new| {
        let relevant = match (old, new) {
            (Some(o), Some(n)) => changed(o, n),
            _ => true,
        };
        if let Some(obj) = new.or(old).filter(|_| relevant) {
            enqueue_namespace(&q, &quotas, obj.meta().namespace.as_deref());
        }
    });
    let store = inf.store::<K>();
    Box::new(move |ns| in_namespace(&store, ns).len())
}

fn never<K>(_: &K, _: &K) -> bool {
    false
}

/// A pod's charge changes with its phase, deletion and spec (resizes).
fn pod_changed(o: &Pod, n: &Pod) -> bool {
    apimachinery::phase::is_pod_terminal(o) != apimachinery::phase::is_pod_terminal(n)
        || o.metadata.deletion_timestamp != n.metadata.deletion_timestamp
        || o.spec != n.spec
}

pub fn register(inf: &mut Informers, ctx: &Ctx) {
    let queue: WorkQueue<Key> = WorkQueue::default();
    let quotas = inf.store::<ResourceQuota>();
    {
        // Upstream resyncs a quota on a change of its spec, not of its status.
        let q = queue.clone();
        inf.get::<ResourceQuota>().on_change(move |old, new| {
            if let (Some(o), Some(n)) = (old, new) {
                if o.spec == n.spec {
                    return;
                }
            }
            if let Some(rq) = new.or(old) {
                q.add(Key::of(&rq.metadata));
            }
        });
    }
    let q = &queue;
    let mut cached: HashMap<&'static str, Counter> = HashMap::new();
    cached.insert("pods", watch_kind::<Pod>(inf, q, &quotas, pod_changed));
    cached.insert("services", watch_kind::<Service>(inf, q, &quotas, |o, n| o.spec != n.spec));
    cached.insert(
        "persistentvolumeclaims",
        watch_kind::<PersistentVolumeClaim>(inf, q, &quotas, |o, n| o.spec != n.spec || o.status != n.status),
    );
    cached.insert("configmaps", watch_kind::<ConfigMap>(inf, q, &quotas, never));
    cached.insert("secrets", watch_kind::<Secret>(inf, q, &quotas, never));
    cached.insert("replicationcontrollers", watch_kind::<ReplicationController>(inf, q, &quotas, never));
    cached.insert("resourcequotas", watch_kind::<ResourceQuota>(inf, q, &quotas, never));
    cached.insert("deployments.apps", watch_kind::<Deployment>(inf, q, &quotas, never));
    cached.insert("replicasets.apps", watch_kind::<ReplicaSet>(inf, q, &quotas, never));
    cached.insert("statefulsets.apps", watch_kind::<StatefulSet>(inf, q, &quotas, never));
    cached.insert("daemonsets.apps", watch_kind::<DaemonSet>(inf, q, &quotas, never));
    cached.insert("jobs.batch", watch_kind::<Job>(inf, q, &quotas, never));
    cached.insert("cronjobs.batch", watch_kind::<CronJob>(inf, q, &quotas, never));
    cached.insert("poddisruptionbudgets.policy", watch_kind::<PodDisruptionBudget>(inf, q, &quotas, never));
    let synced = vec![
        inf.synced::<ResourceQuota>(),
        inf.synced::<Pod>(),
        inf.synced::<Service>(),
        inf.synced::<PersistentVolumeClaim>(),
        inf.synced::<ConfigMap>(),
        inf.synced::<Secret>(),
        inf.synced::<ReplicationController>(),
        inf.synced::<Deployment>(),
        inf.synced::<ReplicaSet>(),
        inf.synced::<StatefulSet>(),
        inf.synced::<DaemonSet>(),
        inf.synced::<Job>(),
        inf.synced::<CronJob>(),
        inf.synced::<PodDisruptionBudget>(),
    ];
    let state = Arc::new(State {
        ctx: ctx.clone(),
        quotas: quotas.clone(),
        pods: inf.store(),
        services: inf.store(),
        pvcs: inf.store(),
        cached,
        discovered: Mutex::new(HashMap::new()),
    });
    {
        let (q, synced) = (queue.clone(), synced.clone());
        tokio::spawn(async move {
            crate::runtime::wait_synced(&synced).await;
            loop {
                tokio::time::sleep(FULL_RESYNC).await;
                for rq in quotas.state() {
                    q.add(Key::of(&rq.metadata));
                }
            }
        });
    }
    run_workers(NAME, queue, ctx.opts.concurrent_syncs, ctx.metrics.clone(), synced, move |key| {
        let state = state.clone();
        async move { sync(&state, &key).await }
    });
}

/// The API resource of a group-qualified name (`ingresses.networking.k8s.io`),
/// if the API serves it namespaced.
async fn resolve(client: &Client, name: &str) -> Result<Option<ApiResource>, kube::Error> {
    let (resource, group) = name.split_once('.').unwrap_or((name, ""));
    let discovery = Discovery::new(client.clone()).filter(&[group]).run().await?;
    let found = discovery.get(group).and_then(|g| {
        g.recommended_resources()
            .into_iter()
            .find(|(ar, caps)| ar.plural == resource && caps.scope == Scope::Namespaced)
            .map(|(ar, _)| ar)
    });
    Ok(found)
}

/// How many objects of each resource the quota counts by name, from the
/// caches or, for other kinds, from the API.
async fn object_counts(st: &State, quota: &ResourceQuota, ns: &str) -> Result<BTreeMap<String, usize>> {
    let mut out = BTreeMap::new();
    let hard = quota.spec.as_ref().and_then(|s| s.hard.as_ref());
    for name in hard.into_iter().flatten().filter_map(|(k, _)| usage::object_count_resource(k)) {
        if let Some(count) = st.cached.get(name) {
            out.insert(name.to_string(), count(ns));
            continue;
        }
        let known = st.discovered.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned();
        let ar = match known {
            Some(ar) => ar,
            None => match super::timed(resolve(&st.ctx.client, name)).await? {
                Ok(Some(ar)) => {
                    st.discovered.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), ar.clone());
                    ar
                }
                // Not served: the quota counts nothing for it, as upstream.
                Ok(None) => continue,
                Err(e) => return Err(e.into()),
            },
        };
        let api: Api<DynamicObject> = Api::namespaced_with(st.ctx.client.clone(), ns, &ar);
        let list = super::timed(api.list(&ListParams::default())).await??;
        out.insert(name.to_string(), list.items.len());
    }
    Ok(out)
}

async fn sync(st: &State, key: &Key) -> Result<Option<Duration>> {
    let Some(quota) = st.quotas.get(&ObjectRef::new(&key.name).within(key.ns())) else {
        return Ok(None);
    };
    let ns = key.ns();
    let objects = object_counts(st, &quota, ns).await?;
    let (pods, services, pvcs) = (in_namespace(&st.pods, ns), in_namespace(&st.services, ns), in_namespace(&st.pvcs, ns));
    let observed = plan::Observed {
        pods: &pods,
        services: &services,
        pvcs: &pvcs,
        objects: &objects,
    };
    let Some(status) = plan::plan(&quota, &observed, Timestamp::now()) else {
        return Ok(None);
    };
    let mut next = (*quota).clone();
    next.status = Some(status);
    let api: Api<ResourceQuota> = Api::namespaced(st.ctx.client.clone(), ns);
    // The cached resourceVersion: a conflict means a newer quota, synced next.
    match super::timed(api.replace_status(&quota.name_any(), &PostParams::default(), &next)).await? {
        Ok(_) => Ok(None),
        Err(e) if super::is_not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
