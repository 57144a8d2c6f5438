//! The garbage collector: follows ownerReferences across every discovered
//! resource and carries out Background, Foreground and Orphan deletion.

pub mod graph;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::runtime::watcher::{self, watcher, Event};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{Ctx, Result};
use crate::discovery::{self, Resource};
use crate::runtime::{run_workers, Informers, Key, WorkQueue};
use graph::{decide, Decision, Graph, Node, OwnerState, Propagation, ORPHAN};

pub const NAME: &str = "garbage-collector-controller";

/// Resources the GC never watches: high churn and never owners upstream.
const IGNORED: &[&str] = &["events"];

struct State {
    ctx: Ctx,
    graph: Mutex<Graph>,
    resources: RwLock<Vec<Resource>>,
    queue: WorkQueue<Key>,
    synced: AtomicUsize,
    /// When each owner waiting in the foreground last confirmed its
    /// deleting dependents with the API.
    confirmed: Mutex<HashMap<String, std::time::Instant>>,
}

impl State {
    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn resource(&self, i: usize) -> Option<Resource> {
        self.resources.read().unwrap_or_else(|p| p.into_inner()).get(i).cloned()
    }
    fn resource_for(&self, api_version: &str, kind: &str) -> Option<Resource> {
        self.resources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|r| {
                r.ar.kind == kind
                    && (r.ar.api_version == api_version
                        || r.ar.group == api_version.split('/').next().filter(|_| api_version.contains('/')).unwrap_or(""))
            })
            .cloned()
    }
    fn enqueue(&self, uids: Vec<String>) {
        for u in uids {
            self.queue.add(Key::cluster(&u));
        }
    }
}

fn to_node(resource: usize, obj: &DynamicObject) -> Node {
    Node {
        resource,
        namespace: obj.metadata.namespace.clone(),
        name: obj.name_any(),
        uid: obj.metadata.uid.clone().unwrap_or_default(),
        resource_version: obj.metadata.resource_version.clone(),
        owners: obj.metadata.owner_references.clone().unwrap_or_default(),
        deleting: obj.metadata.deletion_timestamp.is_some(),
        finalizers: obj.metadata.finalizers.clone().unwrap_or_default(),
    }
}

pub fn register(_inf: &mut Informers, ctx: &Ctx) {
    let state = Arc::new(State {
        ctx: ctx.clone(),
        graph: Mutex::new(Graph::default()),
        resources: RwLock::new(Vec::new()),
        queue: WorkQueue::default(),
        synced: AtomicUsize::new(0),
        confirmed: Mutex::new(HashMap::new()),
    });
    tokio::spawn(async move {
        let mut watched = 0;
        let mut started_workers = false;
        loop {
            match discovery::deletable_resources(&state.ctx.client).await {
                Ok(found) => {
                    let fresh: Vec<Resource> = {
                        let mut rs = state.resources.write().unwrap_or_else(|p| p.into_inner());
                        let new: Vec<Resource> = found
                            .into_iter()
                            .filter(|r| r.supports("watch") && !IGNORED.contains(&r.ar.plural.as_str()))
                            .filter(|r| !rs.iter().any(|o| o.ar.group == r.ar.group && o.ar.plural == r.ar.plural))
                            .collect();
                        rs.extend(new.iter().cloned());
                        new
                    };
                    for r in fresh {
                        spawn_watch(state.clone(), watched, r);
                        watched += 1;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "garbage collector discovery failed"),
            }
            if !started_workers && watched > 0 {
                // Act only on a complete graph, or a slow watch would make owners look gone.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                while state.synced.load(Ordering::SeqCst) < watched && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let st = state.clone();
                run_workers(NAME, state.queue.clone(), state.ctx.opts.concurrent_gc_syncs, state.ctx.metrics.clone(), Vec::new(), move |key| {
                    let st = st.clone();
                    async move { process(&st, &key.name).await }
                });
                started_workers = true;
            }
            // New resource types (CRDs) join the graph on the next round.
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    });
}

fn spawn_watch(state: Arc<State>, index: usize, r: Resource) {
    tokio::spawn(async move {
        let api: Api<DynamicObject> = Api::all_with(state.ctx.client.clone(), &r.ar);
        let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
        let mut first_sync = true;
        let mut relist: HashMap<String, ()> = HashMap::new();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Init) => relist.clear(),
                Ok(Event::InitApply(obj)) | Ok(Event::Apply(obj)) => {
                    let node = to_node(index, &obj);
                    relist.insert(node.uid.clone(), ());
                    let todo = state.graph().upsert(node);
                    state.enqueue(todo);
                }
                Ok(Event::Delete(obj)) => {
                    let todo = state.graph().remove(obj.metadata.uid.as_deref().unwrap_or_default());
                    state.enqueue(todo);
                }
                Ok(Event::InitDone) => {
                    if first_sync {
                        first_sync = false;
                        state.synced.fetch_add(1, Ordering::SeqCst);
                    } else {
                        // Objects of this resource deleted while the watch was down.
                        let gone: Vec<String> = {
                            let g = state.graph();
                            g.all_uids_of(index).into_iter().filter(|u| !relist.contains_key(u)).collect()
                        };
                        for u in gone {
                            let todo = state.graph().remove(&u);
                            state.enqueue(todo);
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(resource = %r.ar.plural, error = %e, "gc watch error");
                    if first_sync {
                        // A resource that cannot be watched must not hold the GC back.
                        first_sync = false;
                        state.synced.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    // After a stream error kube's watcher goes on with the same
                    // stream, past an event it may have dropped: list again
                    // (InitDone then removes what was deleted meanwhile).
                    if matches!(e, watcher::Error::WatchFailed(_)) {
                        stream = watcher(api.clone(), watcher::Config::default()).boxed();
                    }
                }
            }
        }
    });
}

impl Graph {
    pub fn all_uids_of(&self, index: usize) -> Vec<String> {
        self.uids().filter(|(_, n)| n.resource == index).map(|(u, _)| u.clone()).collect()
    }
}

async fn owner_state(st: &State, dependent: &Node, o: &OwnerReference) -> OwnerState {
    if let Some(n) = st.graph().get(&o.uid) {
        return if n.waiting_for_dependents() {
            OwnerState::Waiting
        } else {
            OwnerState::Solid
        };
    }
    // Not in the graph: ask the API before believing it is gone.
    let Some(r) = st.resource_for(&o.api_version, &o.kind) else {
        tracing::debug!(kind = %o.kind, "unresolvable owner kind; leaving the dependent alone");
        return OwnerState::Solid;
    };
    let api: Api<DynamicObject> = match (&dependent.namespace, r.namespaced) {
        (Some(ns), true) => Api::namespaced_with(st.ctx.client.clone(), ns, &r.ar),
        (None, true) => return OwnerState::Dangling,
        _ => Api::all_with(st.ctx.client.clone(), &r.ar),
    };
    match api.get_opt(&o.name).await {
        Ok(Some(obj)) if obj.metadata.uid.as_deref() == Some(o.uid.as_str()) => {
            let n = to_node(0, &obj);
            if n.waiting_for_dependents() {
                OwnerState::Waiting
            } else {
                OwnerState::Solid
            }
        }
        Ok(_) => OwnerState::Dangling,
        Err(_) => OwnerState::Solid,
    }
}

fn api_for(st: &State, n: &Node) -> Option<Api<DynamicObject>> {
    let r = st.resource(n.resource)?;
    Some(match &n.namespace {
        Some(ns) => Api::namespaced_with(st.ctx.client.clone(), ns, &r.ar),
        None => Api::all_with(st.ctx.client.clone(), &r.ar),
    })
}

fn ok_if_gone(r: std::result::Result<(), kube::Error>) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if super::is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn process(st: &State, uid: &str) -> Result<Option<Duration>> {
    let (node, dependents) = {
        let g = st.graph();
        let Some(n) = g.get(uid).cloned() else {
            st.confirmed.lock().unwrap_or_else(|p| p.into_inner()).remove(uid);
            return Ok(None);
        };
        let deps: Vec<Node> = g.dependents(uid).into_iter().cloned().collect();
        (n, deps)
    };
    let mut owners = Vec::with_capacity(node.owners.len());
    if !node.deleting {
        for o in &node.owners {
            owners.push(owner_state(st, &node, o).await);
        }
    }
    let dep_refs: Vec<&Node> = dependents.iter().collect();
    let Some(api) = api_for(st, &node) else { return Ok(None) };
    match decide(&node, &dep_refs, &owners) {
        Decision::Nothing => {}
        Decision::OrphanDependents(uids) => {
            for d in dependents.iter().filter(|d| uids.contains(&d.uid)) {
                let refs: Vec<&OwnerReference> = d.owners.iter().filter(|o| o.uid != node.uid).collect();
                if let Some(dapi) = api_for(st, d) {
                    let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": d.resource_version}});
                    ok_if_gone(
                        dapi.patch(&d.name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await
                            .map(|_| ()),
                    )?;
                }
            }
            remove_finalizer(&api, &node, ORPHAN).await?;
        }
        Decision::RemoveFinalizer(f) => {
            st.confirmed.lock().unwrap_or_else(|p| p.into_inner()).remove(&node.uid);
            remove_finalizer(&api, &node, f).await?
        }
        Decision::ProcessDependents(uids) => {
            st.enqueue(uids);
            confirm_deleting_dependents(st, &node, &dependents).await;
            return Ok(Some(Duration::from_secs(2)));
        }
        Decision::RemoveOwnerRefs(drop) => {
            let refs: Vec<&OwnerReference> = node.owners.iter().filter(|o| !drop.contains(&o.uid)).collect();
            let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": node.resource_version}});
            ok_if_gone(
                api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(|_| ()),
            )?;
        }
        Decision::UnblockAndDelete(waiting) => {
            let refs: Vec<OwnerReference> = node
                .owners
                .iter()
                .map(|o| {
                    let mut o = o.clone();
                    if waiting.contains(&o.uid) {
                        o.block_owner_deletion = Some(false);
                    }
                    o
                })
                .collect();
            let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": node.resource_version}});
            ok_if_gone(
                api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(|_| ()),
            )?;
            delete(&api, &node, Propagation::Foreground).await?;
        }
        Decision::Delete(p) => delete(&api, &node, p).await?,
    }
    Ok(None)
}

/// How often an owner waiting in the foreground asks the API about the
/// dependents it still waits for.
const CONFIRM_EVERY: Duration = Duration::from_secs(5);
/// Concurrent GETs of one confirmation.
const CONFIRM_CONCURRENCY: usize = 16;

/// Dependents already being deleted block a foreground owner until their
/// DELETED event arrives. Now and then confirm with the API that they still
/// exist, so that a missed event cannot hold the owner forever; not on every
/// event (an owner of a thousand pods is woken a thousand times).
async fn confirm_deleting_dependents(st: &State, node: &Node, dependents: &[Node]) {
    {
        let mut last = st.confirmed.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        match last.get(&node.uid) {
            Some(t) if now.duration_since(*t) < CONFIRM_EVERY => return,
            None => {
                // The first look comes one period after the owner started waiting.
                last.insert(node.uid.clone(), now);
                return;
            }
            _ => {}
        }
        last.insert(node.uid.clone(), now);
    }
    let doomed: Vec<Node> = dependents
        .iter()
        .filter(|d| d.deleting && graph::blocks(node, d))
        .cloned()
        .collect();
    let gone: Vec<Option<String>> = futures::stream::iter(doomed.into_iter().map(|d| dependent_gone(st, d)))
        .buffer_unordered(CONFIRM_CONCURRENCY)
        .collect()
        .await;
    for u in gone.into_iter().flatten() {
        let todo = st.graph().remove(&u);
        st.enqueue(todo);
    }
}

/// The dependent's uid if the API no longer has it.
async fn dependent_gone(st: &State, d: Node) -> Option<String> {
    let dapi = api_for(st, &d)?;
    let gone = match dapi.get_opt(&d.name).await {
        Ok(None) => true,
        Ok(Some(obj)) => obj.metadata.uid.as_deref() != Some(d.uid.as_str()),
        Err(_) => false,
    };
    gone.then_some(d.uid)
}

async fn remove_finalizer(api: &Api<DynamicObject>, node: &Node, f: &str) -> Result<()> {
    let rest: Vec<&String> = node.finalizers.iter().filter(|x| *x != f).collect();
    let patch = json!({"metadata": {"finalizers": rest, "resourceVersion": node.resource_version}});
    ok_if_gone(
        api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ()),
    )
}

async fn delete(api: &Api<DynamicObject>, node: &Node, p: Propagation) -> Result<()> {
    let dp = DeleteParams {
        propagation_policy: Some(match p {
            Propagation::Background => PropagationPolicy::Background,
            Propagation::Foreground => PropagationPolicy::Foreground,
            Propagation::Orphan => PropagationPolicy::Orphan,
        }),
        preconditions: Some(Preconditions {
            uid: Some(node.uid.clone()),
            resource_version: None,
        }),
        ..Default::default()
    };
    ok_if_gone(api.delete(&node.name, &dp).await.map(|_| ()))
}
