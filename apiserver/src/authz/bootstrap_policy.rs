//! The default RBAC policy (upstream plugin/pkg/auth/authorizer/rbac/bootstrappolicy:
//! policy.go, controller_policy.go, namespace_policy.go), created and reconciled at every
//! start as upstream's rbac/bootstrap-roles post-start hook: missing objects are created, and
//! objects annotated `rbac.authorization.kubernetes.io/autoupdate: "true"` get back missing
//! rules, subjects, labels and annotations (extra ones a user added stay).

use crate::registry::{Registry, WriteOptions};
use crate::status::ApiError;
use k8s_openapi::api::rbac::v1::{AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde_json::Value;
use std::collections::BTreeMap;

const RBAC: &str = "rbac.authorization.k8s.io";
const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];
pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

fn strings(x: &[&str]) -> Vec<String> {
    x.iter().map(|s| s.to_string()).collect()
}

/// `NewRule(verbs).Groups(groups).Resources(resources)`.
fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    PolicyRule { verbs: strings(verbs), api_groups: Some(strings(groups)), resources: Some(strings(resources)), ..Default::default() }
}

fn named(mut r: PolicyRule, names: &[&str]) -> PolicyRule {
    r.resource_names = Some(strings(names));
    r
}

fn urls(verbs: &[&str], urls: &[&str]) -> PolicyRule {
    PolicyRule { verbs: strings(verbs), non_resource_urls: Some(strings(urls)), ..Default::default() }
}

fn events_rule() -> PolicyRule {
    rule(&["create", "update", "patch"], &["", "events.k8s.io"], &["events"])
}

fn meta(name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    let mut l: BTreeMap<String, String> = [("kubernetes.io/bootstrapping".to_string(), "rbac-defaults".to_string())].into();
    l.extend(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    ObjectMeta { name: Some(name.into()), labels: Some(l), annotations: Some([(AUTOUPDATE.to_string(), "true".to_string())].into()), ..Default::default() }
}

fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole { metadata: meta(name, &[]), rules: Some(rules), ..Default::default() }
}

fn aggregated(name: &str, labels: &[(&str, &str)], selects: &str) -> ClusterRole {
    let sel = LabelSelector { match_labels: Some([(format!("{RBAC}/aggregate-to-{selects}"), "true".to_string())].into()), ..Default::default() };
    ClusterRole { metadata: meta(name, labels), rules: Some(Vec::new()), aggregation_rule: Some(AggregationRule { cluster_role_selectors: Some(vec![sel]) }) }
}

/// What a node may do at all (upstream's NodeRules); the Node authorizer narrows it per object.
pub fn node_rules() -> Vec<PolicyRule> {
    vec![
        rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        rule(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews", "localsubjectaccessreviews"]),
        rule(READ, &[""], &["services"]),
        rule(&["create", "get", "list", "watch"], &[""], &["nodes"]),
        rule(&["update", "patch"], &[""], &["nodes/status"]),
        rule(&["update", "patch"], &[""], &["nodes"]),
        rule(&["create", "update", "patch"], &[""], &["events"]),
        rule(READ, &[""], &["pods"]),
        rule(&["create", "delete"], &[""], &["pods"]),
        rule(&["update", "patch"], &[""], &["pods/status"]),
        rule(&["create"], &[""], &["pods/eviction"]),
        rule(&["get", "list", "watch"], &[""], &["secrets", "configmaps"]),
        rule(&["get"], &[""], &["persistentvolumeclaims", "persistentvolumes"]),
        rule(&["get"], &[""], &["endpoints"]),
        rule(&["create", "get", "list", "watch"], &["certificates.k8s.io"], &["certificatesigningrequests"]),
        rule(&["get", "create", "update", "patch", "delete"], &["coordination.k8s.io"], &["leases"]),
        rule(&["get"], &["storage.k8s.io"], &["volumeattachments"]),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(&["get", "update", "patch"], &[""], &["persistentvolumeclaims/status"]),
        rule(&["get", "watch", "list"], &["storage.k8s.io"], &["csidrivers"]),
        rule(&["get", "create", "update", "patch", "delete"], &["storage.k8s.io"], &["csinodes"]),
        rule(READ, &["node.k8s.io"], &["runtimeclasses"]),
    ]
}

/// The ServiceAccount (in kube-system) of each controller role and the role's rules, for the
/// controllers ferrokube's controller-manager runs (upstream's controller_policy.go).
fn controller_roles() -> Vec<(&'static str, Vec<PolicyRule>)> {
    let ev = events_rule;
    vec![
        ("clusterrole-aggregation-controller", vec![rule(&["escalate", "get", "list", "watch", "update", "patch"], &[RBAC], &["clusterroles"])]),
        ("cronjob-controller", vec![
            rule(&["get", "list", "watch", "update"], &["batch"], &["cronjobs"]),
            rule(&["get", "list", "watch", "create", "update", "delete", "patch"], &["batch"], &["jobs"]),
            rule(&["update"], &["batch"], &["cronjobs/status"]),
            rule(&["update"], &["batch"], &["cronjobs/finalizers"]),
            rule(&["list", "delete"], &[""], &["pods"]),
            ev(),
        ]),
        ("daemon-set-controller", vec![
            rule(&["get", "list", "watch"], &["extensions", "apps"], &["daemonsets"]),
            rule(&["update"], &["extensions", "apps"], &["daemonsets/status"]),
            rule(&["update"], &["extensions", "apps"], &["daemonsets/finalizers"]),
            rule(&["list", "watch"], &[""], &["nodes"]),
            rule(&["list", "watch", "create", "delete", "patch"], &[""], &["pods"]),
            rule(&["create"], &[""], &["pods/binding"]),
            rule(&["get", "list", "watch", "create", "delete", "update", "patch"], &["apps"], &["controllerrevisions"]),
            ev(),
        ]),
        ("deployment-controller", vec![
            rule(&["get", "list", "watch", "update"], &["extensions", "apps"], &["deployments"]),
            rule(&["update"], &["extensions", "apps"], &["deployments/status"]),
            rule(&["update"], &["extensions", "apps"], &["deployments/finalizers"]),
            rule(&["get", "list", "watch", "create", "update", "patch", "delete"], &["apps", "extensions"], &["replicasets"]),
            rule(&["get", "list", "watch", "update"], &[""], &["pods"]),
            ev(),
        ]),
        ("disruption-controller", vec![
            rule(&["get", "list", "watch"], &["extensions", "apps"], &["deployments"]),
            rule(&["get", "list", "watch"], &["apps", "extensions"], &["replicasets"]),
            rule(&["get", "list", "watch"], &[""], &["replicationcontrollers"]),
            rule(&["get", "list", "watch"], &["policy"], &["poddisruptionbudgets"]),
            rule(&["get", "list", "watch"], &["apps"], &["statefulsets"]),
            rule(&["update"], &["policy"], &["poddisruptionbudgets/status"]),
            rule(&["patch", "update"], &[""], &["pods/status"]),
            rule(&["get"], &["*"], &["*/scale"]),
            ev(),
        ]),
        ("endpoint-controller", vec![
            rule(&["get", "list", "watch"], &[""], &["services", "pods"]),
            rule(&["get", "list", "create", "update", "delete"], &[""], &["endpoints"]),
            rule(&["create"], &[""], &["endpoints/restricted"]),
            ev(),
        ]),
        ("endpointslice-controller", vec![
            rule(&["get", "list", "watch"], &[""], &["services", "pods", "nodes"]),
            rule(&["update"], &[""], &["services/finalizers"]),
            rule(&["get", "list", "create", "update", "delete"], &["discovery.k8s.io"], &["endpointslices"]),
            ev(),
        ]),
        ("generic-garbage-collector", vec![rule(&["get", "list", "watch", "patch", "update", "delete"], &["*"], &["*"]), ev()]),
        ("job-controller", vec![
            rule(&["get", "list", "watch", "update", "patch"], &["batch"], &["jobs"]),
            rule(&["update", "patch"], &["batch"], &["jobs/status"]),
            rule(&["update"], &["batch"], &["jobs/finalizers"]),
            rule(&["list", "watch", "create", "delete", "patch"], &[""], &["pods"]),
            ev(),
        ]),
        ("namespace-controller", vec![
            rule(&["get", "list", "watch", "delete"], &[""], &["namespaces"]),
            rule(&["update"], &[""], &["namespaces/finalize", "namespaces/status"]),
            rule(&["get", "list", "delete", "deletecollection"], &["*"], &["*"]),
        ]),
        ("node-controller", vec![
            rule(&["get", "list", "update", "delete", "patch"], &[""], &["nodes"]),
            rule(&["patch", "update"], &[""], &["nodes/status"]),
            rule(&["patch", "update"], &[""], &["pods/status"]),
            rule(&["list", "delete"], &[""], &["pods"]),
            ev(),
        ]),
        ("persistent-volume-binder", vec![
            rule(&["get", "list", "watch", "update", "create", "delete"], &[""], &["persistentvolumes"]),
            rule(&["update"], &[""], &["persistentvolumes/status"]),
            rule(&["get", "list", "watch", "update"], &[""], &["persistentvolumeclaims"]),
            rule(&["update"], &[""], &["persistentvolumeclaims/status"]),
            rule(&["list", "watch", "get", "create", "delete"], &[""], &["pods"]),
            rule(&["get", "list", "watch"], &["storage.k8s.io"], &["storageclasses"]),
            rule(&["get", "create", "delete"], &[""], &["services"]),
            rule(&["get"], &[""], &["secrets"]),
            rule(&["get", "list"], &[""], &["nodes"]),
            rule(&["watch"], &[""], &["events"]),
            ev(),
        ]),
        ("pod-garbage-collector", vec![
            rule(&["list", "watch", "delete"], &[""], &["pods"]),
            rule(&["get", "list", "watch"], &[""], &["nodes"]),
            rule(&["patch"], &[""], &["pods/status"]),
        ]),
        ("replicaset-controller", vec![
            rule(&["get", "list", "watch", "update"], &["apps", "extensions"], &["replicasets"]),
            rule(&["update"], &["apps", "extensions"], &["replicasets/status"]),
            rule(&["update"], &["apps", "extensions"], &["replicasets/finalizers"]),
            rule(&["list", "watch", "patch", "create", "delete"], &[""], &["pods"]),
            ev(),
        ]),
        ("replication-controller", vec![
            rule(&["get", "list", "watch", "update"], &[""], &["replicationcontrollers"]),
            rule(&["update"], &[""], &["replicationcontrollers/status"]),
            rule(&["update"], &[""], &["replicationcontrollers/finalizers"]),
            rule(&["list", "watch", "patch", "create", "delete"], &[""], &["pods"]),
            ev(),
        ]),
        ("resourcequota-controller", vec![rule(&["list", "watch"], &["*"], &["*"]), rule(&["update"], &[""], &["resourcequotas/status"]), ev()]),
        ("root-ca-cert-publisher", vec![rule(&["create", "update"], &[""], &["configmaps"]), ev()]),
        ("service-account-controller", vec![rule(&["create"], &[""], &["serviceaccounts"]), ev()]),
        ("statefulset-controller", vec![
            rule(&["list", "watch"], &[""], &["pods"]),
            rule(&["get", "list", "watch"], &["apps"], &["statefulsets"]),
            rule(&["update"], &["apps"], &["statefulsets/status"]),
            rule(&["update"], &["apps"], &["statefulsets/finalizers"]),
            rule(&["get", "create", "delete", "update", "patch"], &[""], &["pods"]),
            rule(&["get", "create", "delete", "update", "patch", "list", "watch"], &["apps"], &["controllerrevisions"]),
            rule(&["get", "create"], &[""], &["persistentvolumeclaims"]),
            rule(&["update", "delete"], &[""], &["persistentvolumeclaims"]),
            ev(),
        ]),
        // Not upstream's: ferrokube's built-in hostPath provisioner (no external provisioner).
        ("local-path-provisioner", vec![
            rule(&["get", "list", "watch", "create", "delete", "update", "patch"], &[""], &["persistentvolumes"]),
            rule(&["get", "list", "watch", "update", "patch"], &[""], &["persistentvolumeclaims"]),
            rule(READ, &["storage.k8s.io"], &["storageclasses"]),
            rule(&["get", "list", "watch", "create", "delete"], &[""], &["pods"]),
            ev(),
        ]),
    ]
}

/// The cluster roles of the default policy.
pub fn cluster_roles() -> Vec<ClusterRole> {
    let mut roles = vec![
        cluster_role("cluster-admin", vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])]),
        cluster_role("system:discovery", vec![urls(&["get"], &["/livez", "/readyz", "/healthz", "/version", "/version/", "/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*"])]),
        cluster_role("system:monitoring", vec![urls(&["get"], &["/metrics", "/metrics/slis", "/livez", "/readyz", "/healthz", "/livez/*", "/readyz/*", "/healthz/*"])]),
        cluster_role("system:basic-user", vec![
            rule(&["create"], &["authorization.k8s.io"], &["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            rule(&["create"], &["authentication.k8s.io"], &["selfsubjectreviews"]),
        ]),
        cluster_role("system:public-info-viewer", vec![urls(&["get"], &["/livez", "/readyz", "/healthz", "/version", "/version/"])]),
        aggregated("admin", &[], "admin"),
        aggregated("edit", &[(concat!("rbac.authorization.k8s.io", "/aggregate-to-admin"), "true")], "edit"),
        aggregated("view", &[(concat!("rbac.authorization.k8s.io", "/aggregate-to-edit"), "true")], "view"),
        ClusterRole {
            metadata: meta("system:aggregate-to-admin", &[("rbac.authorization.k8s.io/aggregate-to-admin", "true")]),
            rules: Some(vec![rule(&["create"], &["authorization.k8s.io"], &["localsubjectaccessreviews"]), rule(READ_WRITE, &[RBAC], &["roles", "rolebindings"])]),
            ..Default::default()
        },
        ClusterRole {
            metadata: meta("system:aggregate-to-edit", &[("rbac.authorization.k8s.io/aggregate-to-edit", "true")]),
            rules: Some(vec![
                rule(READ, &[""], &["pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets", "services/proxy"]),
                rule(&["impersonate"], &[""], &["serviceaccounts"]),
                rule(WRITE, &[""], &["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"]),
                rule(&["create"], &[""], &["pods/eviction"]),
                rule(WRITE, &[""], &["replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services", "services/proxy", "persistentvolumeclaims", "configmaps", "secrets", "events"]),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
                rule(WRITE, &["apps"], &["statefulsets", "statefulsets/scale", "daemonsets", "deployments", "deployments/scale", "deployments/rollback", "replicasets", "replicasets/scale"]),
                rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
                rule(WRITE, &["batch"], &["jobs", "cronjobs"]),
                rule(WRITE, &["extensions"], &["daemonsets", "deployments", "deployments/scale", "deployments/rollback", "ingresses", "replicasets", "replicasets/scale", "replicationcontrollers/scale", "networkpolicies"]),
                rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
                rule(WRITE, &["networking.k8s.io"], &["networkpolicies", "ingresses"]),
                rule(READ_WRITE, &["coordination.k8s.io"], &["leases"]),
            ]),
            ..Default::default()
        },
        ClusterRole {
            metadata: meta("system:aggregate-to-view", &[("rbac.authorization.k8s.io/aggregate-to-view", "true")]),
            rules: Some(vec![
                rule(READ, &[""], &["pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services", "services/status", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps"]),
                rule(READ, &[""], &["limitranges", "resourcequotas", "bindings", "events", "pods/status", "resourcequotas/status", "namespaces/status", "replicationcontrollers/status", "pods/log"]),
                rule(READ, &[""], &["namespaces"]),
                rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
                rule(READ, &["apps"], &["controllerrevisions", "statefulsets", "statefulsets/status", "statefulsets/scale", "daemonsets", "daemonsets/status", "deployments", "deployments/status", "deployments/scale", "replicasets", "replicasets/status", "replicasets/scale"]),
                rule(READ, &["autoscaling"], &["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
                rule(READ, &["batch"], &["jobs", "cronjobs", "cronjobs/status", "jobs/status"]),
                rule(READ, &["extensions"], &["daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status", "ingresses", "ingresses/status", "replicasets", "replicasets/scale", "replicasets/status", "replicationcontrollers/scale", "networkpolicies"]),
                rule(READ, &["policy"], &["poddisruptionbudgets", "poddisruptionbudgets/status"]),
                rule(READ, &["networking.k8s.io"], &["networkpolicies", "ingresses", "ingresses/status"]),
            ]),
            ..Default::default()
        },
        cluster_role("system:auth-delegator", vec![rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]), rule(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews"])]),
        cluster_role("system:node", node_rules()),
        cluster_role("system:node-proxier", vec![
            rule(&["list", "watch"], &[""], &["services", "endpoints"]),
            rule(&["get"], &[""], &["nodes"]),
            events_rule(),
            rule(&["list", "watch"], &["discovery.k8s.io"], &["endpointslices"]),
        ]),
        cluster_role("system:node-bootstrapper", vec![rule(&["create", "get", "list", "watch"], &["certificates.k8s.io"], &["certificatesigningrequests"])]),
        cluster_role("system:kube-scheduler", vec![
            events_rule(),
            rule(&["create"], &["coordination.k8s.io"], &["leases"]),
            named(rule(&["get", "update"], &["coordination.k8s.io"], &["leases"]), &["kube-scheduler"]),
            rule(READ, &[""], &["nodes"]),
            rule(&["get", "list", "watch", "delete"], &[""], &["pods"]),
            rule(&["create"], &[""], &["pods/binding", "bindings"]),
            rule(&["patch", "update"], &[""], &["pods/status"]),
            rule(READ, &[""], &["services", "replicationcontrollers"]),
            rule(READ, &["apps", "extensions"], &["replicasets"]),
            rule(READ, &["apps"], &["statefulsets"]),
            rule(READ, &["policy"], &["poddisruptionbudgets"]),
            rule(READ, &[""], &["persistentvolumeclaims", "persistentvolumes"]),
            rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
            rule(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews"]),
            rule(READ, &["storage.k8s.io"], &["csinodes"]),
            rule(READ, &[""], &["namespaces"]),
            rule(READ, &["storage.k8s.io"], &["csidrivers"]),
            rule(READ, &["storage.k8s.io"], &["csistoragecapacities"]),
        ]),
        cluster_role("system:volume-scheduler", vec![
            rule(&["get", "list", "watch", "patch", "update"], &[""], &["persistentvolumes"]),
            rule(READ, &["storage.k8s.io"], &["storageclasses"]),
            rule(&["get", "list", "watch", "patch", "update"], &[""], &["persistentvolumeclaims"]),
        ]),
        cluster_role("system:kube-controller-manager", vec![
            events_rule(),
            rule(&["create"], &["coordination.k8s.io"], &["leases"]),
            named(rule(&["get", "update"], &["coordination.k8s.io"], &["leases"]), &["kube-controller-manager"]),
            rule(&["create"], &[""], &["secrets", "serviceaccounts"]),
            rule(&["delete"], &[""], &["secrets"]),
            rule(&["get"], &[""], &["configmaps", "namespaces", "secrets", "serviceaccounts"]),
            rule(&["update"], &[""], &["secrets", "serviceaccounts"]),
            rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
            rule(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews"]),
            rule(&["list", "watch"], &["*"], &["*"]),
            rule(&["create"], &[""], &["serviceaccounts/token"]),
        ]),
        cluster_role("system:kube-dns", vec![rule(&["list", "watch"], &[""], &["endpoints", "services"]), rule(&["list", "watch"], &["discovery.k8s.io"], &["endpointslices"])]),
        cluster_role("system:service-account-issuer-discovery", vec![urls(
            &["get"],
            &["/.well-known/openid-configuration", "/.well-known/openid-configuration/", "/openid/v1/jwks", "/openid/v1/jwks/"],
        )]),
    ];
    for (sa, rules) in controller_roles() {
        roles.push(cluster_role(&format!("system:controller:{sa}"), rules));
    }
    roles
}

fn user(name: &str) -> Subject {
    Subject { kind: "User".into(), api_group: Some(RBAC.into()), name: name.into(), namespace: None }
}

fn group(name: &str) -> Subject {
    Subject { kind: "Group".into(), api_group: Some(RBAC.into()), name: name.into(), namespace: None }
}

fn service_account(ns: &str, name: &str) -> Subject {
    Subject { kind: "ServiceAccount".into(), api_group: Some(String::new()), name: name.into(), namespace: Some(ns.into()) }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef { api_group: RBAC.into(), kind: kind.into(), name: name.into() }
}

fn cluster_binding(role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding { metadata: meta(role, &[]), role_ref: role_ref("ClusterRole", role), subjects: Some(subjects) }
}

pub const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";

pub fn cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    let mut bindings = vec![
        cluster_binding("cluster-admin", vec![group("system:masters")]),
        cluster_binding("system:monitoring", vec![group("system:monitoring")]),
        cluster_binding("system:discovery", vec![group("system:authenticated")]),
        cluster_binding("system:basic-user", vec![group("system:authenticated")]),
        cluster_binding("system:public-info-viewer", vec![group("system:authenticated"), group("system:unauthenticated")]),
        cluster_binding("system:node-proxier", vec![user("system:kube-proxy")]),
        cluster_binding("system:kube-controller-manager", vec![user(CONTROLLER_MANAGER)]),
        cluster_binding("system:kube-dns", vec![service_account("kube-system", "kube-dns")]),
        cluster_binding("system:kube-scheduler", vec![user("system:kube-scheduler")]),
        cluster_binding("system:volume-scheduler", vec![user("system:kube-scheduler")]),
        cluster_binding("system:node", vec![]),
        // Upstream binds system:serviceaccounts only; ferrokube serves the issuer documents to
        // anonymous clients too (see the authenticator), so the policy says so.
        cluster_binding("system:service-account-issuer-discovery", vec![group("system:serviceaccounts"), group("system:unauthenticated")]),
    ];
    // Upstream binds each controller role to its ServiceAccount, used with
    // --use-service-account-credentials; without it every controller acts as the
    // controller-manager's own user, which then needs the same roles.
    for (sa, _) in controller_roles() {
        bindings.push(cluster_binding(&format!("system:controller:{sa}"), vec![service_account("kube-system", sa), user(CONTROLLER_MANAGER)]));
    }
    bindings
}

/// Namespaced roles (upstream's namespace_policy.go), with their namespace.
pub fn roles() -> Vec<Role> {
    let role = |ns: &str, name: &str, rules: Vec<PolicyRule>| {
        let mut m = meta(name, &[]);
        m.namespace = Some(ns.into());
        Role { metadata: m, rules: Some(rules) }
    };
    vec![
        role("kube-system", "extension-apiserver-authentication-reader", vec![named(rule(READ, &[""], &["configmaps"]), &["extension-apiserver-authentication"])]),
        role("kube-system", "system::leader-locking-kube-controller-manager", vec![rule(&["watch"], &[""], &["configmaps"]), named(rule(&["get", "update"], &[""], &["configmaps"]), &["kube-controller-manager"])]),
        role("kube-system", "system::leader-locking-kube-scheduler", vec![rule(&["watch"], &[""], &["configmaps"]), named(rule(&["get", "update"], &[""], &["configmaps"]), &["kube-scheduler"])]),
    ]
}

pub fn role_bindings() -> Vec<RoleBinding> {
    let binding = |ns: &str, name: &str, role: &str, subjects: Vec<Subject>| {
        let mut m = meta(name, &[]);
        m.namespace = Some(ns.into());
        RoleBinding { metadata: m, role_ref: role_ref("Role", role), subjects: Some(subjects) }
    };
    vec![
        binding(
            "kube-system",
            "system::extension-apiserver-authentication-reader",
            "extension-apiserver-authentication-reader",
            vec![user(CONTROLLER_MANAGER), user("system:kube-scheduler")],
        ),
        binding(
            "kube-system",
            "system::leader-locking-kube-controller-manager",
            "system::leader-locking-kube-controller-manager",
            vec![user(CONTROLLER_MANAGER), service_account("kube-system", "kube-controller-manager")],
        ),
        binding(
            "kube-system",
            "system::leader-locking-kube-scheduler",
            "system::leader-locking-kube-scheduler",
            vec![user("system:kube-scheduler"), service_account("kube-system", "kube-scheduler")],
        ),
    ]
}

/// The cluster roles with the aggregated ones' rules filled in (view feeds edit feeds admin,
/// so a few passes reach the fixed point).
pub fn cluster_roles_aggregated() -> Vec<ClusterRole> {
    let mut roles = cluster_roles();
    for _ in 0..3 {
        let snapshot = roles.clone();
        for role in roles.iter_mut() {
            if let Some(rules) = apimachinery::rbac::aggregated_rules(role, &snapshot) {
                role.rules = Some(rules);
            }
        }
    }
    roles
}

/// Adds to `current` what `wanted` has and it lacks: rules or subjects (`key`), labels and
/// annotations. None when nothing is missing or the object opted out of autoupdate.
fn reconcile(current: &Value, wanted: &Value, key: &str) -> Option<Value> {
    if current.pointer(&format!("/metadata/annotations/{}", AUTOUPDATE.replace('/', "~1"))).and_then(Value::as_str) == Some("false") {
        return None;
    }
    let mut out = current.clone();
    let mut changed = false;
    for field in ["labels", "annotations"] {
        for (k, v) in wanted.pointer(&format!("/metadata/{field}")).and_then(Value::as_object).into_iter().flatten() {
            if out.pointer(&format!("/metadata/{field}/{}", k.replace('~', "~0").replace('/', "~1"))).is_none() {
                if !out["metadata"].get(field).is_some_and(Value::is_object) {
                    out["metadata"][field] = Value::Object(Default::default());
                }
                out["metadata"][field][k] = v.clone();
                changed = true;
            }
        }
    }
    // An aggregated role's rules are the aggregation controller's to keep.
    let aggregated = wanted.get("aggregationRule").is_some_and(|a| !a.is_null());
    if !aggregated {
        for item in wanted.get(key).and_then(Value::as_array).into_iter().flatten() {
            let have = out.get(key).and_then(Value::as_array).is_some_and(|l| l.contains(item));
            if !have {
                if !out.get(key).is_some_and(Value::is_array) {
                    out[key] = Value::Array(Vec::new());
                }
                if let Some(list) = out[key].as_array_mut() {
                    list.push(item.clone());
                }
                changed = true;
            }
        }
    } else if out.get("aggregationRule") != wanted.get("aggregationRule") {
        out["aggregationRule"] = wanted["aggregationRule"].clone();
        changed = true;
    }
    changed.then_some(out)
}

/// Creates or reconciles `objs` in the store of `plural`.
async fn ensure_all(reg: &Registry, plural: &str, objs: Vec<Value>, key: &str) -> Result<(), ApiError> {
    let store = reg.store(RBAC, "v1", plural).ok_or_else(|| ApiError::Internal(format!("no {plural}")))?;
    let opts = WriteOptions::default();
    for obj in objs {
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
        let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).map(String::from);
        match store.get(ns.as_deref(), &name, false).await {
            Err(ApiError::NotFound(_)) => match store.create(ns.as_deref(), obj, &opts).await {
                Ok(_) | Err(ApiError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            },
            Ok(current) => {
                // A binding whose role changed cannot be updated (roleRef is immutable): replace it.
                if key == "subjects" && current.get("roleRef") != obj.get("roleRef") {
                    if current.pointer(&format!("/metadata/annotations/{}", AUTOUPDATE.replace('/', "~1"))).and_then(Value::as_str) != Some("false") {
                        let _ = store.delete(ns.as_deref(), &name, &Default::default()).await?;
                        store.create(ns.as_deref(), obj, &opts).await?;
                    }
                    continue;
                }
                if let Some(updated) = reconcile(&current, &obj, key) {
                    store.update(ns.as_deref(), &name, updated, crate::registry::strategy::Part::Main, &opts).await?;
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn values<T: serde::Serialize>(kind: &str, objs: Vec<T>) -> Vec<Value> {
    objs.into_iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .map(|mut v| {
            v["apiVersion"] = format!("{RBAC}/v1").into();
            v["kind"] = kind.into();
            v
        })
        .collect()
}

/// The default policy, created or reconciled; aggregated roles get their rules once here so
/// that an apiserver without a controller-manager already serves admin, edit and view.
pub async fn ensure(reg: &Registry) -> Result<(), ApiError> {
    let role_values = values("ClusterRole", cluster_roles_aggregated());
    ensure_all(reg, "clusterroles", role_values.clone(), "rules").await?;
    // Fill an aggregated role that exists with no rules yet (created before the controller ran).
    let store = reg.store(RBAC, "v1", "clusterroles").ok_or_else(|| ApiError::Internal("no clusterroles".into()))?;
    for v in role_values.iter().filter(|v| v.get("aggregationRule").is_some_and(|a| !a.is_null())) {
        let name = v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        if let Ok(mut current) = store.get(None, name, false).await {
            if current.get("rules").and_then(Value::as_array).is_none_or(|r| r.is_empty()) {
                current["rules"] = v["rules"].clone();
                store.update(None, name, current, crate::registry::strategy::Part::Main, &WriteOptions::default()).await?;
            }
        }
    }
    ensure_all(reg, "clusterrolebindings", values("ClusterRoleBinding", cluster_role_bindings()), "subjects").await?;
    ensure_all(reg, "roles", values("Role", roles()), "rules").await?;
    ensure_all(reg, "rolebindings", values("RoleBinding", role_bindings()), "subjects").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_object_carries_the_bootstrap_label_and_autoupdate() {
        for v in values("ClusterRole", cluster_roles()).iter().chain(values("ClusterRoleBinding", cluster_role_bindings()).iter()) {
            assert_eq!(v["metadata"]["labels"]["kubernetes.io/bootstrapping"], "rbac-defaults");
            assert_eq!(v["metadata"]["annotations"][AUTOUPDATE], "true");
        }
        let bindings = cluster_role_bindings();
        for b in &bindings {
            assert!(cluster_roles().iter().any(|r| r.metadata.name.as_deref() == Some(b.role_ref.name.as_str())), "{:?}", b.role_ref.name);
        }
    }

    #[test]
    fn aggregation_gives_admin_what_edit_and_view_have() {
        let roles = cluster_roles_aggregated();
        let rules = |n: &str| roles.iter().find(|r| r.metadata.name.as_deref() == Some(n)).unwrap().rules.clone().unwrap();
        let (view, edit, admin) = (rules("view"), rules("edit"), rules("admin"));
        assert!(!view.is_empty());
        assert!(view.iter().all(|r| edit.contains(r)), "edit holds view");
        assert!(edit.iter().all(|r| admin.contains(r)), "admin holds edit");
        assert!(admin.len() > edit.len() && edit.len() > view.len());
    }

    #[test]
    fn reconcile_adds_missing_and_keeps_extra() {
        let current = json!({"metadata": {"name": "r", "labels": {"mine": "x"}}, "rules": [{"verbs": ["get"]}, {"verbs": ["extra"]}]});
        let wanted = json!({"metadata": {"name": "r", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}, "rules": [{"verbs": ["get"]}, {"verbs": ["list"]}]});
        let out = reconcile(&current, &wanted, "rules").unwrap();
        assert_eq!(out["rules"].as_array().unwrap().len(), 3);
        assert_eq!(out["metadata"]["labels"]["mine"], "x");
        assert!(reconcile(&out, &wanted, "rules").is_none());
        let mut opted_out = current.clone();
        opted_out["metadata"]["annotations"] = json!({AUTOUPDATE: "false"});
        assert!(reconcile(&opted_out, &wanted, "rules").is_none());
    }
}
