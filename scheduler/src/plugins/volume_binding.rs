//! VolumeBinding: a pod's PersistentVolumeClaims decide where it may run.
//! A claim bound to a node-local volume keeps the pod on that node; an
//! unbound WaitForFirstConsumer claim fits any node with a matching free
//! volume or a provisioner, and PreBind writes the chosen node into the
//! claim (`volume.kubernetes.io/selected-node`) for the PV controller and
//! the provisioner. Unlike upstream, PreBind does not bind static volumes
//! itself nor wait for the claims to bind: the PV controller binds, and the
//! kubelet waits for the claim before it mounts.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use apimachinery::volume::{self, ANN_SELECTED_NODE, NOT_SUPPORTED_PROVISIONER};
use futures::future::BoxFuture;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use serde_json::json;

use crate::framework::{CycleState, Filter, NodeInfo, Plugin, PodInfo, PreBind, PreFilter, Snapshot, Status};

pub const NAME: &str = "VolumeBinding";
const STATE_KEY: &str = "PreFilterVolumeBinding";

pub const ERR_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
pub const ERR_BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
pub const ERR_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";

/// The claims, volumes and classes the plugin reads, kept by watches.
#[derive(Clone)]
pub struct Listers {
    pub claims: Store<PersistentVolumeClaim>,
    pub volumes: Store<PersistentVolume>,
    pub classes: Store<StorageClass>,
    /// PreBind's writes; None in tests.
    pub client: Option<kube::Client>,
}

static SHARED: OnceLock<Listers> = OnceLock::new();

fn watch<K>(
    api: Api<K>,
    on_change: Arc<dyn Fn() + Send + Sync>,
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let task = tokio::spawn(async move {
        let stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .applied_objects();
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(_) => on_change(),
                Err(e) => tracing::warn!(error = %e, kind = %K::kind(&()), "storage watch"),
            }
        }
    });
    (store, task)
}

/// Starts the claim, volume and class watches behind every VolumeBinding
/// plugin of this process (once); `on_change` runs after each change.
pub fn start(client: kube::Client, on_change: impl Fn() + Send + Sync + 'static) -> Vec<tokio::task::JoinHandle<()>> {
    if SHARED.get().is_some() {
        return Vec::new();
    }
    let on_change: Arc<dyn Fn() + Send + Sync> = Arc::new(on_change);
    let (claims, a) = watch(Api::<PersistentVolumeClaim>::all(client.clone()), on_change.clone());
    let (volumes, b) = watch(Api::<PersistentVolume>::all(client.clone()), on_change.clone());
    let (classes, c) = watch(Api::<StorageClass>::all(client.clone()), on_change);
    let _ = SHARED.set(Listers {
        claims,
        volumes,
        classes,
        client: Some(client),
    });
    vec![a, b, c]
}

pub struct VolumeBinding {
    own: Option<Listers>,
}

impl VolumeBinding {
    /// The plugin over this process's shared watches.
    pub fn shared() -> Self {
        VolumeBinding { own: None }
    }

    pub fn with_listers(listers: Listers) -> Self {
        VolumeBinding { own: Some(listers) }
    }

    fn listers(&self) -> Option<&Listers> {
        self.own.as_ref().or_else(|| SHARED.get())
    }
}

/// What PreFilter found for the pod's claims.
struct PodVolumes {
    /// Volumes of bound claims: their nodeAffinity must admit the node.
    bound: Vec<Arc<PersistentVolume>>,
    /// Unbound WaitForFirstConsumer claims, with whether their class can provision.
    unbound: Vec<(Arc<PersistentVolumeClaim>, bool)>,
    /// Every volume, for the unbound claims' matching.
    volumes: Vec<Arc<PersistentVolume>>,
}

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilter> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
    fn as_pre_bind(&self) -> Option<&dyn PreBind> {
        Some(self)
    }
}

fn claim_names(pod: &PodInfo) -> Vec<String> {
    pod.pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref().map(|c| c.claim_name.clone()))
        .collect()
}

impl PreFilter for VolumeBinding {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, _: &Snapshot) -> Status {
        let names = claim_names(pod);
        let Some(l) = self.listers().filter(|_| !names.is_empty()) else {
            return Status::skip();
        };
        let ns = pod.namespace();
        let mut out = PodVolumes {
            bound: Vec::new(),
            unbound: Vec::new(),
            volumes: l.volumes.state(),
        };
        let mut immediate = false;
        let mut missing_volume = false;
        let classes: HashMap<String, Arc<StorageClass>> =
            l.classes.state().into_iter().map(|c| (c.metadata.name.clone().unwrap_or_default(), c)).collect();
        for name in names {
            let Some(claim) = l.claims.get(&ObjectRef::new(&name).within(ns)) else {
                return Status::unresolvable(format!("persistentvolumeclaim \"{name}\" not found"));
            };
            if claim.metadata.deletion_timestamp.is_some() {
                return Status::unresolvable(format!("persistentvolumeclaim \"{name}\" is being deleted"));
            }
            let bound_to = claim.spec.as_ref().and_then(|s| s.volume_name.clone()).filter(|v| !v.is_empty());
            if let Some(v) = bound_to {
                match l.volumes.get(&ObjectRef::new(&v)) {
                    Some(pv) => out.bound.push(pv),
                    None => missing_volume = true,
                }
                continue;
            }
            let class = classes.get(&volume::claim_class(&claim));
            if class.is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer")) {
                let provisions = class.is_some_and(|c| c.provisioner != NOT_SUPPORTED_PROVISIONER);
                out.unbound.push((claim, provisions));
            } else {
                immediate = true;
            }
        }
        if missing_volume {
            return Status::unresolvable("pvc(s) bound to non-existent pv(s)");
        }
        if immediate {
            return Status::unresolvable(ERR_UNBOUND_IMMEDIATE);
        }
        state.write(STATE_KEY, out);
        Status::success()
    }
}

impl Filter for VolumeBinding {
    fn filter(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Status {
        let Some(pv) = state.read::<PodVolumes>(STATE_KEY) else {
            return Status::success();
        };
        if pv.bound.iter().any(|v| !volume::volume_fits_node(v, &node.node)) {
            return Status::unresolvable(ERR_NODE_CONFLICT);
        }
        for (claim, provisions) in &pv.unbound {
            let matched = volume::find_matching_volume(claim, pv.volumes.iter().map(|v| v.as_ref()), Some(&node.node), true);
            if matched.is_none() && !provisions {
                return Status::unresolvable(ERR_BIND_CONFLICT);
            }
        }
        Status::success()
    }
}

impl PreBind for VolumeBinding {
    fn pre_bind(&self, state: &CycleState, _: &PodInfo, node: &str) -> BoxFuture<'static, Status> {
        let todo: Vec<(String, String)> = state
            .read::<PodVolumes>(STATE_KEY)
            .into_iter()
            .flat_map(|pv| pv.unbound.iter())
            .filter(|(c, _)| c.metadata.annotations.as_ref().and_then(|a| a.get(ANN_SELECTED_NODE)).map(String::as_str) != Some(node))
            .map(|(c, _)| (c.metadata.namespace.clone().unwrap_or_default(), c.metadata.name.clone().unwrap_or_default()))
            .collect();
        let client = self.listers().and_then(|l| l.client.clone());
        let node = node.to_string();
        Box::pin(async move {
            let Some(client) = client.filter(|_| !todo.is_empty()) else {
                return Status::success();
            };
            for (ns, name) in todo {
                let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
                let patch = json!({"metadata": {"annotations": {ANN_SELECTED_NODE: node}}});
                if let Err(e) = api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                    return Status::error(format!("setting the selected node on claim {ns}/{name}: {e}"));
                }
            }
            Status::success()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use kube::runtime::watcher::Event;
    use serde_json::Value;

    fn listers(claims: Vec<Value>, volumes: Vec<Value>, classes: Vec<Value>) -> Listers {
        fn fill<K>(items: Vec<Value>) -> Store<K>
        where
            K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
        {
            let (store, mut writer) = reflector::store();
            for i in items {
                writer.apply_watcher_event(&Event::Apply(serde_json::from_value(i).unwrap()));
            }
            store
        }
        Listers {
            claims: fill(claims),
            volumes: fill(volumes),
            classes: fill(classes),
            client: None,
        }
    }

    fn pod_with_claim(claim: &str) -> PodInfo {
        let pod = serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c"}], "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}))
        .unwrap();
        PodInfo::new(Arc::new(pod))
    }

    fn node(name: &str) -> NodeInfo {
        NodeInfo::new(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}})).unwrap(),
        ))
    }

    fn claim(name: &str, class: &str, volume: Option<&str>) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class, "volumeName": volume,
                "resources": {"requests": {"storage": "1Gi"}}}})
    }

    fn local_pv(name: &str, node: &str, class: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "storageClassName": class, "local": {"path": "/d"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}})
    }

    fn class(name: &str, mode: &str, provisioner: &str) -> Value {
        json!({"metadata": {"name": name}, "provisioner": provisioner, "volumeBindingMode": mode})
    }

    fn run(p: &VolumeBinding, pod: &PodInfo, nodes: &[&str]) -> Result<Vec<Code>, Status> {
        let mut state = CycleState::default();
        let st = p.pre_filter(&mut state, pod, &Snapshot::default());
        if !st.is_success() {
            return Err(st);
        }
        Ok(nodes.iter().map(|n| p.filter(&state, pod, &node(n)).code).collect())
    }

    #[test]
    fn a_bound_local_volume_keeps_the_pod_on_its_node() {
        let p = VolumeBinding::with_listers(listers(vec![claim("data", "", Some("pv1"))], vec![local_pv("pv1", "node-1", "")], vec![]));
        assert_eq!(
            run(&p, &pod_with_claim("data"), &["node-0", "node-1"]).unwrap(),
            vec![Code::UnschedulableAndUnresolvable, Code::Success]
        );
        let mut state = CycleState::default();
        p.pre_filter(&mut state, &pod_with_claim("data"), &Snapshot::default());
        assert_eq!(p.filter(&state, &pod_with_claim("data"), &node("node-0")).reasons, vec![ERR_NODE_CONFLICT]);
    }

    #[test]
    fn missing_and_immediate_claims_are_unschedulable() {
        let p = VolumeBinding::with_listers(listers(
            vec![claim("now", "fast", None)],
            vec![],
            vec![class("fast", "Immediate", "example.com/x")],
        ));
        let st = run(&p, &pod_with_claim("gone"), &["n"]).unwrap_err();
        assert_eq!(st.reasons, vec!["persistentvolumeclaim \"gone\" not found"]);
        assert_eq!(run(&p, &pod_with_claim("now"), &["n"]).unwrap_err().reasons, vec![ERR_UNBOUND_IMMEDIATE]);
    }

    #[test]
    fn wait_for_first_consumer_claims_need_a_free_volume_or_a_provisioner() {
        let p = VolumeBinding::with_listers(listers(
            vec![claim("static", "local", None), claim("dynamic", "standard", None)],
            vec![local_pv("pv1", "node-1", "local")],
            vec![
                class("local", "WaitForFirstConsumer", NOT_SUPPORTED_PROVISIONER),
                class("standard", "WaitForFirstConsumer", "ferrokube.io/local-path"),
            ],
        ));
        assert_eq!(
            run(&p, &pod_with_claim("static"), &["node-0", "node-1"]).unwrap(),
            vec![Code::UnschedulableAndUnresolvable, Code::Success]
        );
        assert_eq!(
            run(&p, &pod_with_claim("dynamic"), &["node-0", "node-1"]).unwrap(),
            vec![Code::Success, Code::Success]
        );
    }

    #[test]
    fn pods_without_claims_skip_the_plugin() {
        let p = VolumeBinding::with_listers(listers(vec![], vec![], vec![]));
        let pod = PodInfo::new(Arc::new(serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": []}})).unwrap()));
        assert_eq!(p.pre_filter(&mut CycleState::default(), &pod, &Snapshot::default()).code, Code::Skip);
    }
}
