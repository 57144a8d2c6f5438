//! What each object charges to a quota, as upstream's evaluators
//! (pkg/quota/v1/evaluator/core): pods (compute resources and counts),
//! services (node ports, load balancers), persistent volume claims
//! (storage, per class), and a plain object count for everything else.
//!
//! The pod requests here are upstream's PodRequests/PodLimits
//! (k8s.io/component-helpers/resource). The controller-manager's quota
//! controller (status.used) and the apiserver's quota admission both charge
//! through this module. (The scheduler derives requests its own way, kept for
//! its hot path.)

use std::collections::BTreeMap;

use crate::Quantity;
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, Pod, PodAffinityTerm, ScopedResourceSelectorRequirement, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Usage by quota resource name.
pub type Usage = BTreeMap<String, Quantity>;

const POD_RESOURCES: &[&str] = &[
    "count/pods",
    "pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
];
const SERVICE_RESOURCES: &[&str] = &["count/services", "services", "services.nodeports", "services.loadbalancers"];
const PVC_RESOURCES: &[&str] = &["count/persistentvolumeclaims", "persistentvolumeclaims", "requests.storage"];
const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";
/// Names older than count/<resource> that still count objects.
const LEGACY_COUNTS: &[&str] = &["configmaps", "secrets", "replicationcontrollers", "resourcequotas"];

fn one() -> Quantity {
    Quantity::from_i64(1)
}

/// Add `q` under `name`; a first zero keeps the other side's format, as upstream's Add.
pub fn add(u: &mut Usage, name: &str, q: Quantity) {
    match u.get_mut(name) {
        Some(sum) => *sum = sum.checked_add(&q).unwrap_or(*sum),
        None => {
            u.insert(name.to_string(), q);
        }
    }
}

/// An extended resource (`example.com/gpu`): not native, not already a quota name.
fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

/// Does the pod evaluator track this quota resource?
pub fn pod_tracks(name: &str) -> bool {
    POD_RESOURCES.contains(&name)
        || name.starts_with("hugepages-")
        || name.starts_with("requests.hugepages-")
        || name.strip_prefix("requests.").is_some_and(is_extended)
}

pub fn service_tracks(name: &str) -> bool {
    SERVICE_RESOURCES.contains(&name)
}

pub fn pvc_tracks(name: &str) -> bool {
    PVC_RESOURCES.contains(&name)
        || name
            .split_once(STORAGE_CLASS_SUFFIX)
            .is_some_and(|(_, r)| r == "requests.storage" || r == "persistentvolumeclaims")
}

/// The group-qualified resource (`configmaps`, `deployments.apps`) whose
/// objects a plain count name counts; None for names the pod, service and
/// claim evaluators own, and for names that count nothing.
pub fn object_count_resource(name: &str) -> Option<&str> {
    if pod_tracks(name) || service_tracks(name) || pvc_tracks(name) {
        return None;
    }
    match name.strip_prefix("count/") {
        Some(r) if !r.is_empty() => Some(r),
        Some(_) => None,
        None => LEGACY_COUNTS.contains(&name).then_some(name),
    }
}

fn list_of(list: Option<&BTreeMap<String, ApiQuantity>>) -> Usage {
    let mut u = Usage::new();
    for (k, v) in list.into_iter().flatten() {
        if let Ok(q) = Quantity::from_api(v) {
            add(&mut u, k, q);
        }
    }
    u
}

fn add_all(to: &mut Usage, from: &Usage) {
    for (k, q) in from {
        add(to, k, *q);
    }
}

fn max_all(to: &mut Usage, from: &Usage) {
    for (k, q) in from {
        if to.get(k).is_none_or(|have| q > have) {
            to.insert(k.clone(), *q);
        }
    }
}

/// Upstream's PodRequests/PodLimits: app containers and sidecars (restartable
/// init containers) add up; an ordinary init container runs beside the
/// sidecars started before it; the larger of the two wins; plus overhead
/// (for limits only where a limit is set).
fn pod_resources(pod: &Pod, pick: fn(&Container) -> Option<&BTreeMap<String, ApiQuantity>>, limits: bool) -> Usage {
    let Some(spec) = &pod.spec else { return Usage::new() };
    let mut total = Usage::new();
    for c in &spec.containers {
        add_all(&mut total, &list_of(pick(c)));
    }
    let mut sidecars = Usage::new();
    let mut init_max = Usage::new();
    for c in spec.init_containers.iter().flatten() {
        let own = list_of(pick(c));
        let running = if c.restart_policy.as_deref() == Some("Always") {
            add_all(&mut total, &own);
            add_all(&mut sidecars, &own);
            sidecars.clone()
        } else {
            let mut t = own;
            add_all(&mut t, &sidecars);
            t
        };
        max_all(&mut init_max, &running);
    }
    max_all(&mut total, &init_max);
    for (k, q) in list_of(spec.overhead.as_ref()) {
        if !limits || total.contains_key(&k) {
            add(&mut total, &k, q);
        }
    }
    total
}

/// Does the pod still charge compute resources (upstream's QuotaV1Pod)?
/// Not once terminal, nor once past its deletion grace period.
fn charges_compute(pod: &Pod, now: Timestamp) -> bool {
    if crate::phase::is_pod_terminal(pod) {
        return false;
    }
    match (&pod.metadata.deletion_timestamp, pod.metadata.deletion_grace_period_seconds) {
        (Some(at), Some(grace)) => now <= at.0 + SignedDuration::from_secs(grace),
        _ => true,
    }
}

/// What one pod charges. `count/pods` counts every pod; the rest only
/// live ones.
pub fn pod_usage(pod: &Pod, now: Timestamp) -> Usage {
    let mut u = Usage::new();
    add(&mut u, "count/pods", one());
    if !charges_compute(pod, now) {
        return u;
    }
    add(&mut u, "pods", one());
    let requests = pod_resources(pod, |c| c.resources.as_ref()?.requests.as_ref(), false);
    let limits = pod_resources(pod, |c| c.resources.as_ref()?.limits.as_ref(), true);
    for r in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(r) {
            add(&mut u, r, *q);
            add(&mut u, &format!("requests.{r}"), *q);
        }
        if let Some(q) = limits.get(r) {
            add(&mut u, &format!("limits.{r}"), *q);
        }
    }
    for (r, q) in &requests {
        if r.starts_with("hugepages-") {
            add(&mut u, r, *q);
            add(&mut u, &format!("requests.{r}"), *q);
        } else if is_extended(r) {
            add(&mut u, &format!("requests.{r}"), *q);
        }
    }
    u
}

fn crosses_namespaces(t: &PodAffinityTerm) -> bool {
    t.namespace_selector.is_some() || t.namespaces.as_ref().is_some_and(|n| !n.is_empty())
}

fn uses_cross_namespace_affinity(pod: &Pod) -> bool {
    let Some(aff) = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else { return false };
    let terms = |required: Option<&Vec<PodAffinityTerm>>, preferred: Vec<&PodAffinityTerm>| {
        required.into_iter().flatten().any(crosses_namespaces) || preferred.into_iter().any(crosses_namespaces)
    };
    let pa = aff.pod_affinity.as_ref();
    let anti = aff.pod_anti_affinity.as_ref();
    terms(
        pa.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref()),
        pa.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref())
            .into_iter()
            .flatten()
            .map(|w| &w.pod_affinity_term)
            .collect(),
    ) || terms(
        anti.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref()),
        anti.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref())
            .into_iter()
            .flatten()
            .map(|w| &w.pod_affinity_term)
            .collect(),
    )
}

/// Does a pod fall in one scope requirement (upstream's podMatchesScopeFunc)?
pub fn pod_matches_scope(pod: &Pod, req: &ScopedResourceSelectorRequirement) -> bool {
    let spec = pod.spec.as_ref();
    let terminating = spec.and_then(|s| s.active_deadline_seconds).is_some_and(|d| d >= 0);
    let best_effort = crate::qos::pod_qos(pod) == crate::qos::QosClass::BestEffort;
    match req.scope_name.as_str() {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => best_effort,
        "NotBestEffort" => !best_effort,
        "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(pod),
        "PriorityClass" => {
            let class = spec.and_then(|s| s.priority_class_name.as_deref()).filter(|c| !c.is_empty());
            let values = req.values.iter().flatten();
            match req.operator.as_str() {
                "Exists" => class.is_some(),
                "DoesNotExist" => class.is_none(),
                "In" => class.is_some_and(|c| values.clone().any(|v| v == c)),
                "NotIn" => class.is_none_or(|c| !values.clone().any(|v| v == c)),
                _ => false,
            }
        }
        _ => false,
    }
}

/// What one service charges: node ports for NodePort and LoadBalancer
/// services (only the allocated ones when a load balancer asks for none).
pub fn service_usage(svc: &Service) -> Usage {
    let mut u = Usage::new();
    add(&mut u, "count/services", one());
    add(&mut u, "services", one());
    let spec = svc.spec.as_ref();
    let ports = spec.and_then(|s| s.ports.as_ref()).map_or(&[][..], |p| p.as_slice());
    match spec.and_then(|s| s.type_.as_deref()) {
        Some("NodePort") => add(&mut u, "services.nodeports", Quantity::from_i64(ports.len() as i64)),
        Some("LoadBalancer") => {
            let n = if spec.and_then(|s| s.allocate_load_balancer_node_ports) == Some(false) {
                ports.iter().filter(|p| p.node_port.is_some_and(|n| n > 0)).count()
            } else {
                ports.len()
            };
            add(&mut u, "services.nodeports", Quantity::from_i64(n as i64));
            add(&mut u, "services.loadbalancers", one());
        }
        _ => {}
    }
    u
}

/// What one claim charges: itself and its storage request (or what was
/// allocated, when more), also under its storage class.
pub fn pvc_usage(pvc: &PersistentVolumeClaim) -> Usage {
    let mut u = Usage::new();
    add(&mut u, "count/persistentvolumeclaims", one());
    add(&mut u, "persistentvolumeclaims", one());
    let class = pvc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class").cloned())
        .or_else(|| pvc.spec.as_ref().and_then(|s| s.storage_class_name.clone()))
        .filter(|c| !c.is_empty());
    if let Some(c) = &class {
        add(&mut u, &format!("{c}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"), one());
    }
    let requested = pvc
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref()?.requests.as_ref()?.get("storage"))
        .and_then(|q| Quantity::from_api(q).ok());
    let allocated = pvc
        .status
        .as_ref()
        .and_then(|s| s.allocated_resources.as_ref()?.get("storage"))
        .and_then(|q| Quantity::from_api(q).ok());
    let storage = match (requested, allocated) {
        (Some(r), Some(a)) => Some(r.max(a)),
        (r, a) => r.or(a),
    };
    if let Some(q) = storage {
        add(&mut u, "requests.storage", q);
        if let Some(c) = &class {
            add(&mut u, &format!("{c}{STORAGE_CLASS_SUFFIX}requests.storage"), q);
        }
    }
    u
}

#[cfg(test)]
#[path = "quota_tests.rs"]
mod tests;
