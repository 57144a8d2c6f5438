//! Resource lists as the scheduler counts them: pod requests computed as
//! upstream's `resource.PodRequests` (init and sidecar containers, overhead)
//! and node allocatable.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

pub use apimachinery::quantity::QuantityError;

pub const CPU: &str = "cpu";
pub const MEMORY: &str = "memory";
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
pub const PODS: &str = "pods";

/// Requests used for scoring when a container names none (upstream's
/// non-zero defaults), so that empty pods still spread.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub allowed_pods: i64,
    /// Extended and hugepage resources, in whole units.
    pub scalar: BTreeMap<String, i64>,
}

/// A resource name resolved once, so per-node loops read a field instead of comparing names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceKey {
    Cpu,
    Memory,
    EphemeralStorage,
    Pods,
    Scalar(String),
}

impl ResourceKey {
    pub fn of(name: &str) -> ResourceKey {
        match name {
            CPU => ResourceKey::Cpu,
            MEMORY => ResourceKey::Memory,
            EPHEMERAL_STORAGE => ResourceKey::EphemeralStorage,
            PODS => ResourceKey::Pods,
            other => ResourceKey::Scalar(other.to_string()),
        }
    }
}

impl Resources {
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_add(other.ephemeral_storage);
        self.allowed_pods = self.allowed_pods.saturating_add(other.allowed_pods);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = e.saturating_add(*v);
        }
    }

    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_sub(other.ephemeral_storage);
        self.allowed_pods = self.allowed_pods.saturating_sub(other.allowed_pods);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = e.saturating_sub(*v);
        }
    }

    /// Element-wise maximum, for init containers that run one at a time.
    pub fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
    }

    /// A resolved resource's amount: a field read, for loops over every node.
    #[inline]
    pub fn at(&self, key: &ResourceKey) -> i64 {
        match key {
            ResourceKey::Cpu => self.milli_cpu,
            ResourceKey::Memory => self.memory,
            ResourceKey::EphemeralStorage => self.ephemeral_storage,
            ResourceKey::Pods => self.allowed_pods,
            ResourceKey::Scalar(name) => self.scalar.get(name).copied().unwrap_or(0),
        }
    }

    /// Parses a ResourceList; every malformed entry is reported.
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Result<Resources, ResourceError> {
        let mut r = Resources::default();
        for (name, q) in list {
            let parsed = apimachinery::Quantity::from_api(q).map(|q| if name == CPU { q.milli_value() } else { q.value() });
            let v = parsed.map_err(|source| ResourceError {
                resource: name.clone(),
                source,
            })?;
            match name.as_str() {
                CPU => r.milli_cpu = v,
                MEMORY => r.memory = v,
                EPHEMERAL_STORAGE => r.ephemeral_storage = v,
                PODS => r.allowed_pods = v,
                other if is_scalar(other) => {
                    r.scalar.insert(other.to_string(), v);
                }
                _ => {}
            }
        }
        Ok(r)
    }
}

/// Extended resources (domain/name), hugepages and attachable volumes are
/// counted; anything else without a domain is ignored as upstream does.
pub fn is_scalar(name: &str) -> bool {
    name.starts_with("hugepages-") || name.contains('/')
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid quantity for {resource}: {source}")]
pub struct ResourceError {
    pub resource: String,
    #[source]
    pub source: QuantityError,
}

fn container_requests(c: &Container) -> Result<Resources, ResourceError> {
    let Some(res) = &c.resources else {
        return Ok(Resources::default());
    };
    // Requests default to limits (apiserver defaulting); apply it here too
    // so a pod that skipped defaulting still counts.
    let mut merged = res.limits.clone().unwrap_or_default();
    merged.retain(|k, _| k == CPU || k == MEMORY || k == EPHEMERAL_STORAGE || is_scalar(k));
    if let Some(req) = &res.requests {
        merged.extend(req.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Resources::from_list(&merged)
}

/// Pod requests as upstream's PodRequests: app containers and restartable
/// (sidecar) init containers add up; ordinary init containers run one at a
/// time beside the sidecars started before them; the larger wins; plus overhead.
pub fn pod_requests(pod: &Pod) -> Result<Resources, ResourceError> {
    let Some(spec) = &pod.spec else {
        return Ok(Resources::default());
    };
    let mut reqs = Resources::default();
    for c in &spec.containers {
        reqs.add(&container_requests(c)?);
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c)?;
        let candidate = if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            sidecars.clone()
        } else {
            let mut t = r;
            t.add(&sidecars);
            t
        };
        init_max.max_with(&candidate);
    }
    reqs.add(&sidecars);
    reqs.max_with(&init_max);
    if let Some(overhead) = &spec.overhead {
        reqs.add(&Resources::from_list(overhead)?);
    }
    Ok(reqs)
}

/// Requests with upstream's non-zero defaults per container, for scoring.
pub fn pod_non_zero_requests(pod: &Pod, exact: &Resources) -> Resources {
    let mut r = exact.clone();
    let Some(spec) = &pod.spec else { return r };
    let named = |c: &Container, name: &str| {
        let res = c.resources.as_ref();
        res.and_then(|r| r.requests.as_ref())
            .is_some_and(|m| m.contains_key(name))
            || res
                .and_then(|r| r.limits.as_ref())
                .is_some_and(|m| m.contains_key(name))
    };
    for c in &spec.containers {
        if !named(c, CPU) {
            r.milli_cpu += DEFAULT_MILLI_CPU_REQUEST;
        }
        if !named(c, MEMORY) {
            r.memory += DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// Node allocatable (capacity when allocatable is absent).
pub fn node_allocatable(node: &Node) -> Result<Resources, ResourceError> {
    let status = node.status.as_ref();
    let list = status
        .and_then(|s| s.allocatable.as_ref())
        .or_else(|| status.and_then(|s| s.capacity.as_ref()));
    match list {
        Some(l) => Resources::from_list(l),
        None => Ok(Resources::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{container, pod_with};

    #[test]
    fn init_containers_count_as_upstream() {
        let mut p = pod_with(vec![container("a", "500m", "100Mi"), container("b", "500m", "100Mi")]);
        let spec = p.spec.as_mut().unwrap();
        spec.init_containers = Some(vec![container("init", "2", "50Mi")]);
        let r = pod_requests(&p).unwrap();
        assert_eq!(r.milli_cpu, 2000, "one big init container dominates cpu");
        assert_eq!(r.memory, 200 << 20, "app containers dominate memory");
    }

    #[test]
    fn sidecars_add_to_app_containers() {
        let mut p = pod_with(vec![container("a", "500m", "100Mi")]);
        let mut side = container("side", "250m", "10Mi");
        side.restart_policy = Some("Always".into());
        p.spec.as_mut().unwrap().init_containers = Some(vec![side, container("init", "600m", "1Mi")]);
        let r = pod_requests(&p).unwrap();
        // app 500 + sidecar 250 = 750 > init 600 + sidecar 250 = 850? no: 850 wins.
        assert_eq!(r.milli_cpu, 850);
    }

    #[test]
    fn limits_stand_in_for_missing_requests() {
        let mut c = container("a", "0", "0");
        let res = c.resources.as_mut().unwrap();
        res.requests = None;
        res.limits = Some([(CPU.to_string(), Quantity("300m".into()))].into());
        let r = pod_requests(&pod_with(vec![c])).unwrap();
        assert_eq!(r.milli_cpu, 300);
    }

    #[test]
    fn malformed_request_is_an_error() {
        let c = container("a", "lots", "1Mi");
        assert!(pod_requests(&pod_with(vec![c])).is_err());
    }
}
