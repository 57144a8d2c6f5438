//! Upstream's `patchStrategy`/`patchMergeKey` struct tags (published as
//! `x-kubernetes-patch-strategy`/`x-kubernetes-patch-merge-key`) for the built-in kinds.
//! k8s-openapi's schemas do not carry them, so they are listed here by definition and field.

/// How a strategic merge patch treats one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchMeta {
    /// `merge`, `retainKeys` or `merge,retainKeys`.
    pub strategy: &'static str,
    /// The key that identifies an element of a list of objects; None for primitive lists and
    /// for `retainKeys` on a struct.
    pub merge_key: Option<&'static str>,
}

impl PatchMeta {
    pub fn merges(&self) -> bool {
        self.strategy.split(',').any(|s| s == "merge")
    }
    pub fn retains_keys(&self) -> bool {
        self.strategy.split(',').any(|s| s == "retainKeys")
    }
}

const fn m(key: &'static str) -> PatchMeta {
    PatchMeta {
        strategy: "merge",
        merge_key: Some(key),
    }
}
const fn mr(key: &'static str) -> PatchMeta {
    PatchMeta {
        strategy: "merge,retainKeys",
        merge_key: Some(key),
    }
}
const PRIMITIVE_MERGE: PatchMeta = PatchMeta {
    strategy: "merge",
    merge_key: None,
};
const RETAIN: PatchMeta = PatchMeta {
    strategy: "retainKeys",
    merge_key: None,
};

const CORE: &str = "io.k8s.api.core.v1.";

static TABLE: &[(&str, &str, PatchMeta)] = &[
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        PRIMITIVE_MERGE,
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        m("uid"),
    ),
    ("io.k8s.api.core.v1.PodSpec", "volumes", mr("name")),
    ("io.k8s.api.core.v1.PodSpec", "initContainers", m("name")),
    ("io.k8s.api.core.v1.PodSpec", "containers", m("name")),
    (
        "io.k8s.api.core.v1.PodSpec",
        "ephemeralContainers",
        m("name"),
    ),
    ("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", m("name")),
    ("io.k8s.api.core.v1.PodSpec", "hostAliases", m("ip")),
    ("io.k8s.api.core.v1.PodSpec", "resourceClaims", mr("name")),
    ("io.k8s.api.core.v1.PodSpec", "schedulingGates", m("name")),
    ("io.k8s.api.core.v1.PodStatus", "conditions", m("type")),
    ("io.k8s.api.core.v1.PodStatus", "podIPs", m("ip")),
    ("io.k8s.api.core.v1.PodStatus", "hostIPs", m("ip")),
    (
        "io.k8s.api.core.v1.PodStatus",
        "resourceClaimStatuses",
        mr("name"),
    ),
    ("io.k8s.api.core.v1.Container", "ports", m("containerPort")),
    ("io.k8s.api.core.v1.Container", "env", m("name")),
    (
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        m("mountPath"),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        m("devicePath"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        m("containerPort"),
    ),
    ("io.k8s.api.core.v1.EphemeralContainer", "env", m("name")),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        m("mountPath"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeDevices",
        m("devicePath"),
    ),
    ("io.k8s.api.core.v1.ServiceSpec", "ports", m("port")),
    ("io.k8s.api.core.v1.ServiceStatus", "conditions", m("type")),
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs", PRIMITIVE_MERGE),
    ("io.k8s.api.core.v1.NodeStatus", "conditions", m("type")),
    ("io.k8s.api.core.v1.NodeStatus", "addresses", m("type")),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        m("type"),
    ),
    ("io.k8s.api.core.v1.ServiceAccount", "secrets", m("name")),
    (
        "io.k8s.api.core.v1.ReplicationControllerStatus",
        "conditions",
        m("type"),
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
        "conditions",
        m("type"),
    ),
    (
        "io.k8s.api.core.v1.ResourceRequirements",
        "claims",
        m("name"),
    ),
    ("io.k8s.api.apps.v1.DeploymentSpec", "strategy", RETAIN),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        m("type"),
    ),
    (
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        "conditions",
        m("type"),
    ),
    (
        "io.k8s.api.apps.v1.DaemonSetStatus",
        "conditions",
        m("type"),
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetStatus",
        "conditions",
        m("type"),
    ),
    ("io.k8s.api.batch.v1.JobStatus", "conditions", m("type")),
    (
        "io.k8s.api.policy.v1.PodDisruptionBudgetStatus",
        "conditions",
        m("type"),
    ),
    (
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus",
        "conditions",
        m("type"),
    ),
];

/// Structs upstream marks `+structType=atomic` / `+mapType=atomic` (published as
/// `x-kubernetes-map-type: atomic`): server-side apply owns and replaces them as a whole.
pub static ATOMIC_STRUCTS: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.NodeSelectorTerm",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
    "io.k8s.api.core.v1.TopologySelectorTerm",
    "io.k8s.api.core.v1.SecretReference",
];

/// Every entry of the table: definition, field, strategy.
pub fn all() -> &'static [(&'static str, &'static str, PatchMeta)] {
    TABLE
}

/// The patch strategy of `field` in definition `def`, if upstream declares one.
pub fn lookup(def: &str, field: &str) -> Option<PatchMeta> {
    TABLE
        .iter()
        .find(|(d, f, _)| *d == def && *f == field)
        .map(|(_, _, meta)| *meta)
}

/// True for definitions in the core group (used by tests to keep the table honest).
pub fn is_core(def: &str) -> bool {
    def.starts_with(CORE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::schemas::definitions;

    #[test]
    fn every_entry_names_a_real_field() {
        let defs = definitions();
        for (def, field, _) in all() {
            if def.contains("autoscaling.v2") {
                continue;
            }
            let schema = defs
                .schemas
                .get(*def)
                .unwrap_or_else(|| panic!("unknown definition {def}"));
            assert!(
                schema["properties"].get(*field).is_some(),
                "{def} has no field {field}"
            );
        }
    }

    #[test]
    fn containers_merge_on_name() {
        let meta = lookup("io.k8s.api.core.v1.PodSpec", "containers").unwrap();
        assert!(meta.merges());
        assert_eq!(meta.merge_key, Some("name"));
        assert!(lookup("io.k8s.api.core.v1.PodSpec", "volumes")
            .unwrap()
            .retains_keys());
        assert!(is_core("io.k8s.api.core.v1.PodSpec"));
    }
}
