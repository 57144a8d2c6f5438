//! The pure part of the resource quota controller (upstream's
//! syncResourceQuota and quota.CalculateUsage): a quota's status from the
//! objects of its namespace.

use std::collections::BTreeMap;
use std::sync::Arc;

use apimachinery::Quantity;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, Pod, ResourceQuota, ResourceQuotaStatus, ScopedResourceSelectorRequirement, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use k8s_openapi::jiff::Timestamp;

use apimachinery::quota::{self as usage, Usage};

/// The objects of one namespace a quota may count.
pub struct Observed<'a> {
    pub pods: &'a [Arc<Pod>],
    pub services: &'a [Arc<Service>],
    pub pvcs: &'a [Arc<PersistentVolumeClaim>],
    /// How many objects of each other resource (`configmaps`,
    /// `deployments.apps`) the namespace holds; a resource the API does not
    /// serve is absent, and a quota on it counts nothing.
    pub objects: &'a BTreeMap<String, usize>,
}

static NO_OBJECTS: BTreeMap<String, usize> = BTreeMap::new();

impl Default for Observed<'_> {
    fn default() -> Self {
        Observed {
            pods: &[],
            services: &[],
            pvcs: &[],
            objects: &NO_OBJECTS,
        }
    }
}

/// The quota's scopes as requirements: `spec.scopes` (each an Exists) and
/// `spec.scopeSelector`.
fn scope_requirements(quota: &ResourceQuota) -> Vec<ScopedResourceSelectorRequirement> {
    let spec = quota.spec.as_ref();
    let mut out: Vec<ScopedResourceSelectorRequirement> = spec
        .and_then(|s| s.scopes.as_ref())
        .into_iter()
        .flatten()
        .map(|s| ScopedResourceSelectorRequirement {
            scope_name: s.clone(),
            operator: "Exists".into(),
            values: None,
        })
        .collect();
    out.extend(
        spec.and_then(|s| s.scope_selector.as_ref())
            .and_then(|s| s.match_expressions.clone())
            .into_iter()
            .flatten(),
    );
    out
}

/// Parse a ResourceList; an unparsable entry makes the whole list unequal
/// to any other (it is rewritten).
fn parsed(list: Option<&BTreeMap<String, ApiQuantity>>) -> Option<BTreeMap<String, Quantity>> {
    list?.iter().map(|(k, v)| Quantity::from_api(v).ok().map(|q| (k.clone(), q))).collect()
}

fn to_list(u: &BTreeMap<String, Quantity>) -> BTreeMap<String, ApiQuantity> {
    u.iter().map(|(k, q)| (k.clone(), q.to_api())).collect()
}

/// The namespace's usage of each resource of `hard` that some evaluator
/// tracks; each starts at zero, so a tracked resource nobody uses shows 0.
pub fn calculate_usage(hard: &[String], scopes: &[ScopedResourceSelectorRequirement], ns: &Observed, now: Timestamp) -> Usage {
    let mut used = Usage::new();
    let track = |used: &mut Usage, names: &mut dyn Iterator<Item = &String>| {
        for n in names {
            used.insert(n.clone(), Quantity::ZERO);
        }
    };
    let charge = |used: &mut Usage, u: Usage| {
        for (k, q) in u {
            if used.contains_key(&k) {
                usage::add(used, &k, q);
            }
        }
    };
    track(&mut used, &mut hard.iter().filter(|n| usage::pod_tracks(n)));
    if hard.iter().any(|n| usage::pod_tracks(n)) {
        for pod in ns.pods.iter().filter(|p| scopes.iter().all(|s| usage::pod_matches_scope(p, s))) {
            charge(&mut used, usage::pod_usage(pod, now));
        }
    }
    // Only pods fall in scopes: a scoped quota counts no other object.
    let unscoped = scopes.is_empty();
    track(&mut used, &mut hard.iter().filter(|n| usage::service_tracks(n)));
    track(&mut used, &mut hard.iter().filter(|n| usage::pvc_tracks(n)));
    if unscoped {
        for svc in ns.services {
            charge(&mut used, usage::service_usage(svc));
        }
        for pvc in ns.pvcs {
            charge(&mut used, usage::pvc_usage(pvc));
        }
    }
    for name in hard {
        let Some(count) = usage::object_count_resource(name).and_then(|r| ns.objects.get(r)) else { continue };
        let n = if unscoped { *count as i64 } else { 0 };
        used.insert(name.clone(), Quantity::from_i64(n));
    }
    used
}

/// The status `quota` should have, or None when it already has it.
/// status.hard is spec.hard; status.used keeps its last value for a
/// resource no evaluator tracks, and drops what spec.hard no longer names.
pub fn plan(quota: &ResourceQuota, ns: &Observed, now: Timestamp) -> Option<ResourceQuotaStatus> {
    let spec_hard = quota.spec.as_ref().and_then(|s| s.hard.as_ref());
    let hard = parsed(spec_hard).unwrap_or_default();
    let names: Vec<String> = hard.keys().cloned().collect();
    let old = quota.status.as_ref();
    let old_used = parsed(old.and_then(|s| s.used.as_ref()));
    let mut used: BTreeMap<String, Quantity> = old_used.clone().unwrap_or_default();
    used.extend(calculate_usage(&names, &scope_requirements(quota), ns, now));
    used.retain(|k, _| hard.contains_key(k));
    let old_hard = parsed(old.and_then(|s| s.hard.as_ref()));
    let dirty = old_hard.as_ref() != Some(&hard) || old_used.as_ref() != Some(&used);
    dirty.then(|| ResourceQuotaStatus {
        hard: Some(to_list(&hard)),
        used: Some(to_list(&used)),
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
