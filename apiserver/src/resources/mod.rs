//! The table of served resources. Routes, discovery, OpenAPI, storage keys, tables and
//! strategies are all derived from these rows: adding a resource means adding a row.

use crate::kinds::*;
use crate::registry::strategy::Strategy;
use crate::types::{Gvk, ResourceInfo};

#[derive(Clone)]
pub struct ResourceRow {
    pub info: ResourceInfo,
    /// The storage path segment: `/registry/<storage_name>/...`.
    pub storage_name: &'static str,
    /// Everything that sets the kind apart (see `crate::kinds`).
    pub strategy: &'static dyn Strategy,
}

impl std::fmt::Debug for ResourceRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceRow").field("info", &self.info).field("storage_name", &self.storage_name).finish()
    }
}

impl ResourceRow {
    pub fn gvk(&self) -> Gvk {
        self.info.gvk()
    }
    pub fn group(&self) -> &'static str {
        self.info.group
    }
    pub fn plural(&self) -> &'static str {
        self.info.plural
    }
    pub fn kind(&self) -> &'static str {
        self.info.kind
    }
    pub fn namespaced(&self) -> bool {
        self.info.namespaced
    }
    pub fn api_version(&self) -> String {
        self.gvk().api_version()
    }
    pub fn has_subresource(&self, sub: &str) -> bool {
        self.info.subresources.contains(&sub)
    }
    /// The key prefix of all objects, or of the objects in `ns`.
    pub fn key_prefix(&self, etcd_prefix: &str, ns: Option<&str>) -> String {
        match ns {
            Some(ns) if self.namespaced() => format!("{etcd_prefix}/{}/{ns}/", self.storage_name),
            _ => format!("{etcd_prefix}/{}/", self.storage_name),
        }
    }
    pub fn key(&self, etcd_prefix: &str, ns: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.key_prefix(etcd_prefix, ns))
    }
}

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

#[allow(clippy::too_many_arguments)]
const fn row(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    subresources: &'static [&'static str],
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    storage_name: &'static str,
    strategy: &'static dyn Strategy,
) -> ResourceRow {
    ResourceRow {
        info: ResourceInfo { group, version, kind, plural, singular, namespaced, subresources, short_names, categories },
        storage_name,
        strategy,
    }
}

/// Every served resource, in discovery order.
pub static RESOURCES: &[ResourceRow] = &[
    row("", "v1", "Namespace", "namespaces", "namespace", false, &["status", "finalize"], &["ns"], NONE, "namespaces", &Namespaces),
    row("", "v1", "Pod", "pods", "pod", true, &["status", "binding", "eviction", "log", "exec", "attach", "portforward", "proxy"], &["po"], ALL, "pods", &Pods),
    row("", "v1", "Node", "nodes", "node", false, &["status", "proxy"], &["no"], NONE, "nodes", &Nodes),
    row("", "v1", "Event", "events", "event", true, NONE, &["ev"], NONE, "events", &Events),
    row("", "v1", "ConfigMap", "configmaps", "configmap", true, NONE, &["cm"], NONE, "configmaps", &ConfigMaps),
    row("", "v1", "Secret", "secrets", "secret", true, NONE, NONE, NONE, "secrets", &Secrets),
    row("", "v1", "Service", "services", "service", true, &["status", "proxy"], &["svc"], ALL, "services", &Services),
    row("", "v1", "Endpoints", "endpoints", "endpoints", true, NONE, &["ep"], NONE, "endpoints", &Endpoints),
    row("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", true, &["token"], &["sa"], NONE, "serviceaccounts", &ServiceAccounts),
    row("apps", "v1", "Deployment", "deployments", "deployment", true, &["status", "scale"], &["deploy"], ALL, "deployments", &DEPLOYMENTS),
    row("apps", "v1", "ReplicaSet", "replicasets", "replicaset", true, &["status", "scale"], &["rs"], ALL, "replicasets", &REPLICA_SETS),
    row("apps", "v1", "DaemonSet", "daemonsets", "daemonset", true, &["status"], &["ds"], ALL, "daemonsets", &DAEMON_SETS),
    row("apps", "v1", "StatefulSet", "statefulsets", "statefulset", true, &["status", "scale"], &["sts"], ALL, "statefulsets", &STATEFUL_SETS),
    row("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", true, NONE, NONE, NONE, "controllerrevisions", &Plain),
    row("batch", "v1", "Job", "jobs", "job", true, &["status"], NONE, ALL, "jobs", &Jobs),
    row("coordination.k8s.io", "v1", "Lease", "leases", "lease", true, NONE, NONE, NONE, "leases", &Leases),
    row("events.k8s.io", "v1", "Event", "events", "event", true, NONE, &["ev"], NONE, "events.k8s.io/events", &EventsV1),
    row("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", true, NONE, NONE, NONE, "endpointslices", &EndpointSlices),
    row("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", true, &["status"], &["pdb"], NONE, "poddisruptionbudgets", &PodDisruptionBudgets),
    row("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", "priorityclass", false, NONE, &["pc"], NONE, "priorityclasses", &PriorityClasses),
    row("", "v1", "ReplicationController", "replicationcontrollers", "replicationcontroller", true, &["status", "scale"], &["rc"], ALL, "controllers", &ReplicationControllers),
    row("batch", "v1", "CronJob", "cronjobs", "cronjob", true, &["status"], &["cj"], ALL, "cronjobs", &CronJobs),
    row("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", false, &["status"], &["pv"], NONE, "persistentvolumes", &PersistentVolumes),
    row("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", true, &["status"], &["pvc"], NONE, "persistentvolumeclaims", &PersistentVolumeClaims),
    row("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", true, &["status"], &["quota"], NONE, "resourcequotas", &ResourceQuotas),
    row("", "v1", "LimitRange", "limitranges", "limitrange", true, NONE, &["limits"], NONE, "limitranges", &LimitRanges),
    row("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", true, &["status"], &["hpa"], ALL, "horizontalpodautoscalers", &HorizontalPodAutoscalers),
    // Stored as v2 (registry::conversion); listed after v2 so that v2 stays preferred.
    row("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", true, &["status"], &["hpa"], ALL, "horizontalpodautoscalers", &HorizontalPodAutoscalers),
    row("", "v1", "PodTemplate", "podtemplates", "podtemplate", true, NONE, NONE, NONE, "podtemplates", &PodTemplates),
    row("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", true, &["status"], &["ing"], NONE, "ingress", &Ingresses),
    row("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass", false, NONE, NONE, NONE, "ingressclasses", &IngressClasses),
    row("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", true, NONE, &["netpol"], NONE, "networkpolicies", &NetworkPolicies),
    row("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", "runtimeclass", false, NONE, NONE, NONE, "runtimeclasses", &RuntimeClasses),
    row("storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", false, NONE, &["sc"], NONE, "storageclasses", &StorageClasses),
    row("storage.k8s.io", "v1", "CSIDriver", "csidrivers", "csidriver", false, NONE, NONE, NONE, "csidrivers", &CsiDrivers),
    row("storage.k8s.io", "v1", "CSINode", "csinodes", "csinode", false, NONE, NONE, NONE, "csinodes", &CsiNodes),
    row("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", "volumeattachment", false, &["status"], NONE, NONE, "volumeattachments", &VolumeAttachments),
    row("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", "tokenreview", false, NONE, NONE, NONE, "tokenreviews", &Reviews),
    row("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview", false, NONE, NONE, NONE, "selfsubjectreviews", &Reviews),
    row("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", false, NONE, NONE, NONE, "clusterroles", &ClusterRoles),
    row("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", false, NONE, NONE, NONE, "clusterrolebindings", &ClusterRoleBindings),
    row("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", true, NONE, NONE, NONE, "roles", &Roles),
    row("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", true, NONE, NONE, NONE, "rolebindings", &RoleBindings),
    row("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", "localsubjectaccessreview", true, NONE, NONE, NONE, "localsubjectaccessreviews", &Reviews),
    row("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", "selfsubjectaccessreview", false, NONE, NONE, NONE, "selfsubjectaccessreviews", &Reviews),
    row("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", "selfsubjectrulesreview", false, NONE, NONE, NONE, "selfsubjectrulesreviews", &Reviews),
    row("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", "subjectaccessreview", false, NONE, NONE, NONE, "subjectaccessreviews", &Reviews),
];

/// The `ResourceInfo`s of `rows`, for the OpenAPI documents.
pub fn infos(rows: &[&ResourceRow]) -> Vec<ResourceInfo> {
    rows.iter().map(|r| r.info.clone()).collect()
}

/// The row serving `plural` in `group`/`version`.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceRow> {
    RESOURCES.iter().find(|r| r.info.group == group && r.info.version == version && r.info.plural == plural)
}

pub fn by_kind(group: &str, kind: &str) -> Option<&'static ResourceRow> {
    RESOURCES.iter().find(|r| r.info.group == group && r.info.kind == kind)
}

/// The group-versions of `rows`, in their order (the built-in table puts core first).
pub fn group_versions(rows: &[&ResourceRow]) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in rows {
        if !out.contains(&(r.info.group, r.info.version)) {
            out.push((r.info.group, r.info.version));
        }
    }
    out
}

/// The group, version and kind a subresource answers with, as discovery names them (None for
/// the row's own group and version); kubectl drain, for one, evicts only when pods/eviction
/// says policy/v1 Eviction.
pub fn subresource_kind(row: &ResourceRow, sub: &str) -> (Option<&'static str>, Option<&'static str>, &'static str) {
    match sub {
        "scale" => (Some("autoscaling"), Some("v1"), "Scale"),
        "eviction" => (Some("policy"), Some("v1"), "Eviction"),
        "binding" => (None, None, "Binding"),
        "exec" => (None, None, "PodExecOptions"),
        "attach" => (None, None, "PodAttachOptions"),
        "portforward" => (None, None, "PodPortForwardOptions"),
        "proxy" => (None, None, match row.info.kind {
            "Node" => "NodeProxyOptions",
            "Service" => "ServiceProxyOptions",
            _ => "PodProxyOptions",
        }),
        "token" => (Some("authentication.k8s.io"), Some("v1"), "TokenRequest"),
        _ => (None, None, row.info.kind),
    }
}

/// The verbs of a resource (or of one of its subresources), as discovery lists them.
pub fn verbs(row: &ResourceRow, sub: Option<&str>) -> &'static [&'static str] {
    match sub {
        None if row.strategy.create_only() => &["create"],
        None => &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        Some("status") | Some("scale") => &["get", "patch", "update"],
        Some("binding") | Some("eviction") | Some("token") => &["create"],
        Some("finalize") => &["update"],
        Some("log") => &["get"],
        Some("exec") | Some("attach") | Some("portforward") => &["create", "get"],
        Some("proxy") => &["create", "delete", "get", "patch", "update"],
        Some(_) => {
            let _ = row;
            &["get"]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_issue_resource_is_served() {
        for (g, p) in [
            ("", "namespaces"), ("", "pods"), ("", "nodes"), ("", "events"), ("", "configmaps"), ("", "secrets"),
            ("", "services"), ("", "endpoints"), ("", "serviceaccounts"), ("apps", "deployments"),
            ("apps", "replicasets"), ("apps", "daemonsets"), ("apps", "statefulsets"), ("batch", "jobs"),
            ("coordination.k8s.io", "leases"), ("events.k8s.io", "events"), ("discovery.k8s.io", "endpointslices"),
            ("policy", "poddisruptionbudgets"), ("scheduling.k8s.io", "priorityclasses"),
        ] {
            assert!(lookup(g, "v1", p).is_some(), "{g}/{p}");
        }
    }

    #[test]
    fn keys_follow_upstream_layout() {
        let pods = lookup("", "v1", "pods").unwrap();
        assert_eq!(pods.key("/registry", Some("default"), "web"), "/registry/pods/default/web");
        let ns = lookup("", "v1", "namespaces").unwrap();
        assert_eq!(ns.key("/registry", None, "kube-system"), "/registry/namespaces/kube-system");
    }

    #[test]
    fn storage_names_are_unique() {
        // A version served by conversion shares its stored version's storage.
        let own: Vec<_> = RESOURCES.iter().filter(|r| !crate::registry::conversion::converted(r.group(), r.info.version, r.plural())).collect();
        let mut names: Vec<_> = own.iter().map(|r| r.storage_name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), own.len());
    }
}
