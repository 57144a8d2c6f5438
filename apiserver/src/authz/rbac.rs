//! The RBAC authorizer (upstream plugin/pkg/auth/authorizer/rbac): a request is allowed when
//! a rule of a role bound to the user, one of its groups or its ServiceAccount covers it.
//!
//! Bindings are indexed by subject from the four RBAC watch caches. The index is rebuilt on
//! the first request after any of them changed (a background subscription bumps a
//! generation), so a request costs a few hash lookups, never a list.

use super::attributes::Attributes;
use super::{Authorizer, Decision};
use crate::auth::UserInfo;
use crate::registry::Registry;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub type Rules = Arc<[PolicyRule]>;

fn has(list: &[String], v: &str) -> bool {
    list.iter().any(|x| x == "*" || x == v)
}

fn opt(list: &Option<Vec<String>>) -> &[String] {
    list.as_deref().unwrap_or(&[])
}

/// Upstream's ResourceMatches: `*`, the exact `resource/subresource`, or `*/subresource`.
fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    opt(&rule.resources).iter().any(|r| {
        if r == "*" {
            return true;
        }
        if subresource.is_empty() {
            return r == resource;
        }
        r.strip_prefix(resource).and_then(|x| x.strip_prefix('/')) == Some(subresource) || r.strip_prefix("*/") == Some(subresource)
    })
}

/// Upstream's NonResourceURLMatches: exact, `*`, or a prefix ending in `*`.
fn url_matches(rule: &PolicyRule, path: &str) -> bool {
    opt(&rule.non_resource_urls).iter().any(|u| u == "*" || u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p)))
}

/// Whether `rule` allows the request.
pub fn rule_allows(a: &Attributes, rule: &PolicyRule) -> bool {
    if !has(&rule.verbs, &a.verb) {
        return false;
    }
    if !a.resource_request {
        return url_matches(rule, &a.path);
    }
    let names = opt(&rule.resource_names);
    has(opt(&rule.api_groups), &a.api_group) && resource_matches(rule, &a.resource, &a.subresource) && (names.is_empty() || names.iter().any(|n| n == &a.name))
}

/// One binding's grant: its rules, where they apply (None: everywhere) and what granted them.
#[derive(Clone)]
struct Grant {
    namespace: Option<Arc<str>>,
    rules: Rules,
    /// `RoleBinding "x" of Role "y" to User "z"`, as upstream's allow reason names it.
    binding: Arc<str>,
}

#[derive(Default)]
struct Index {
    generation: u64,
    /// `u:<name>` and `g:<name>`; ServiceAccounts are users `system:serviceaccount:<ns>:<name>`.
    subjects: HashMap<String, Vec<Grant>>,
    cluster_roles: HashMap<String, Rules>,
    roles: HashMap<(String, String), Rules>,
}

fn subject_key(s: &Subject, binding_ns: Option<&str>) -> Option<String> {
    match s.kind.as_str() {
        "User" => Some(format!("u:{}", s.name)),
        "Group" => Some(format!("g:{}", s.name)),
        "ServiceAccount" => {
            let ns = s.namespace.as_deref().filter(|n| !n.is_empty()).or(binding_ns)?;
            Some(format!("u:system:serviceaccount:{ns}:{}", s.name))
        }
        _ => None,
    }
}

impl Index {
    fn build(reg: &Registry, generation: u64) -> Index {
        fn objects<T: serde::de::DeserializeOwned>(reg: &Registry, plural: &str) -> Vec<T> {
            let Some(store) = reg.store("rbac.authorization.k8s.io", "v1", plural) else { return Vec::new() };
            let (objs, _) = store.cache.snapshot(&store.prefix(None));
            objs.iter().filter_map(|o| serde_json::from_slice(&o.json).ok()).collect()
        }
        let mut idx = Index { generation, ..Default::default() };
        for cr in objects::<ClusterRole>(reg, "clusterroles") {
            idx.cluster_roles.insert(cr.metadata.name.unwrap_or_default(), cr.rules.unwrap_or_default().into());
        }
        for r in objects::<Role>(reg, "roles") {
            idx.roles.insert((r.metadata.namespace.unwrap_or_default(), r.metadata.name.unwrap_or_default()), r.rules.unwrap_or_default().into());
        }
        for b in objects::<ClusterRoleBinding>(reg, "clusterrolebindings") {
            let Some(rules) = idx.cluster_roles.get(&b.role_ref.name).cloned() else { continue };
            let binding: Arc<str> = format!("ClusterRoleBinding \"{}\" of ClusterRole \"{}\"", b.metadata.name.unwrap_or_default(), b.role_ref.name).into();
            for s in b.subjects.iter().flatten() {
                if let Some(k) = subject_key(s, None) {
                    idx.subjects.entry(k).or_default().push(Grant { namespace: None, rules: rules.clone(), binding: binding.clone() });
                }
            }
        }
        for b in objects::<RoleBinding>(reg, "rolebindings") {
            let ns = b.metadata.namespace.clone().unwrap_or_default();
            let rules = match b.role_ref.kind.as_str() {
                "ClusterRole" => idx.cluster_roles.get(&b.role_ref.name).cloned(),
                _ => idx.roles.get(&(ns.clone(), b.role_ref.name.clone())).cloned(),
            };
            let Some(rules) = rules else { continue };
            let binding: Arc<str> = format!("RoleBinding \"{}/{ns}\" of {} \"{}\"", b.metadata.name.unwrap_or_default(), b.role_ref.kind, b.role_ref.name).into();
            let namespace: Arc<str> = ns.as_str().into();
            for s in b.subjects.iter().flatten() {
                if let Some(k) = subject_key(s, Some(&ns)) {
                    idx.subjects.entry(k).or_default().push(Grant { namespace: Some(namespace.clone()), rules: rules.clone(), binding: binding.clone() });
                }
            }
        }
        idx
    }

    /// The grants of `user` that apply in `namespace` ("" for the cluster scope only).
    fn grants<'a>(&'a self, user: &'a UserInfo, namespace: &'a str) -> impl Iterator<Item = &'a Grant> + 'a {
        let keys = std::iter::once(format!("u:{}", user.name)).chain(user.groups.iter().map(|g| format!("g:{g}")));
        keys.filter_map(move |k| self.subjects.get(&k)).flatten().filter(move |g| g.namespace.as_deref().is_none_or(|n| !namespace.is_empty() && n == namespace))
    }
}

/// The RBAC authorizer over the registry's watch caches.
pub struct Rbac {
    registry: Arc<Registry>,
    /// Bumped by the watchers on every change of an RBAC object.
    generation: Arc<AtomicU64>,
    index: RwLock<Arc<Index>>,
}

impl Rbac {
    /// Starts watching the RBAC caches (needs a tokio runtime).
    pub fn new(registry: Arc<Registry>) -> Arc<Rbac> {
        let generation = Arc::new(AtomicU64::new(1));
        for plural in ["clusterroles", "clusterrolebindings", "roles", "rolebindings"] {
            if let Some(store) = registry.store("rbac.authorization.k8s.io", "v1", plural) {
                super::watch_changes(store, generation.clone());
            }
        }
        Arc::new(Rbac { registry, generation, index: RwLock::new(Arc::new(Index::default())) })
    }

    fn index(&self) -> Arc<Index> {
        let current = self.generation.load(Ordering::Acquire);
        {
            let idx = self.index.read();
            if idx.generation == current {
                return idx.clone();
            }
        }
        let fresh = Arc::new(Index::build(&self.registry, current));
        let mut idx = self.index.write();
        if idx.generation < fresh.generation {
            *idx = fresh.clone();
        }
        idx.clone()
    }

    /// Every rule that applies to `user` in `namespace` (cluster-wide ones included).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        let idx = self.index();
        idx.grants(user, namespace).flat_map(|g| g.rules.iter().cloned()).collect()
    }

    /// The rules a binding's roleRef names, for escalation checks; None if the role is absent.
    pub fn role_rules(&self, kind: &str, namespace: &str, name: &str) -> Option<Rules> {
        let idx = self.index();
        match kind {
            "ClusterRole" => idx.cluster_roles.get(name).cloned(),
            _ => idx.roles.get(&(namespace.to_string(), name.to_string())).cloned(),
        }
    }
}

impl Authorizer for Rbac {
    fn authorize(&self, a: &Attributes) -> Decision {
        let idx = self.index();
        for g in idx.grants(&a.user, &a.namespace) {
            if g.rules.iter().any(|r| rule_allows(a, r)) {
                return Decision::Allow(format!("RBAC: allowed by {}", g.binding));
            }
        }
        Decision::NoOpinion(String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let v = |x: &[&str]| Some(x.iter().map(|s| s.to_string()).collect::<Vec<_>>()).filter(|l| !l.is_empty());
        PolicyRule { verbs: verbs.iter().map(|s| s.to_string()).collect(), api_groups: v(groups), resources: v(resources), resource_names: v(names), non_resource_urls: None }
    }

    fn req(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes::resource(UserInfo::default(), verb, group, resource, sub, "ns", name)
    }

    #[test]
    fn wildcards_subresources_and_names() {
        assert!(rule_allows(&req("get", "", "pods", "", "p"), &rule(&["*"], &["*"], &["*"], &[])));
        assert!(!rule_allows(&req("get", "", "pods", "log", "p"), &rule(&["get"], &[""], &["pods"], &[])));
        assert!(rule_allows(&req("get", "", "pods", "log", "p"), &rule(&["get"], &[""], &["pods/log"], &[])));
        assert!(rule_allows(&req("update", "", "pods", "status", "p"), &rule(&["update"], &[""], &["*/status"], &[])));
        assert!(!rule_allows(&req("get", "apps", "pods", "", "p"), &rule(&["get"], &[""], &["pods"], &[])));
        assert!(rule_allows(&req("get", "", "secrets", "", "a"), &rule(&["get"], &[""], &["secrets"], &["a"])));
        assert!(!rule_allows(&req("get", "", "secrets", "", "b"), &rule(&["get"], &[""], &["secrets"], &["a"])));
        assert!(!rule_allows(&req("list", "", "secrets", "", ""), &rule(&["list"], &[""], &["secrets"], &["a"])));
        assert!(!rule_allows(&req("delete", "", "pods", "", "p"), &rule(&["get", "list"], &[""], &["pods"], &[])));
    }

    #[test]
    fn non_resource_urls_with_trailing_star() {
        let r = PolicyRule { verbs: vec!["get".into()], non_resource_urls: Some(vec!["/healthz".into(), "/apis/*".into()]), ..Default::default() };
        let nr = |p: &str| Attributes::non_resource(UserInfo::default(), "get", p);
        assert!(rule_allows(&nr("/healthz"), &r));
        assert!(rule_allows(&nr("/apis/apps/v1"), &r));
        assert!(!rule_allows(&nr("/healthz/etcd"), &r));
        assert!(!rule_allows(&nr("/api"), &r));
        assert!(!rule_allows(&req("get", "", "pods", "", ""), &r), "a URL rule grants no resource");
    }
}
