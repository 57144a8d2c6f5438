//! ResourceQuota: a create that would take a namespace past one of its quotas is refused with
//! upstream's 403 (`exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2`), and a
//! pod that a quota on cpu or memory constrains must state those requests or limits.
//!
//! Usage is counted from the watch caches at admission time, plus what this server admitted
//! that the caches do not show yet: checks are serialised and each admitted create is charged
//! until its object appears in the cache (or 30 s pass, for a create that then failed), so two
//! creates sent together cannot both take the last unit. Upstream charges each quota's
//! status.used in etcd instead, which also holds across several apiservers.

use super::{Attributes, Operation, Plugin};
use crate::registry::{Registry, Store};
use crate::status::ApiError;
use crate::validation::quantity::Quantity;
use futures::future::BoxFuture;
use serde_json::Value;
use parking_lot::Mutex;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How long an admitted create counts before the cache must show it.
const CHARGE_TTL: Duration = Duration::from_secs(30);

/// One admitted create the caches may not show yet.
struct Charge {
    key: String,
    group: String,
    resource: String,
    usage: Vec<(String, Quantity)>,
    at: Instant,
}

pub struct ResourceQuotaAdmission {
    quotas: Arc<Store>,
    /// Held across check and charge, so concurrent creates are counted one after the other.
    charges: Mutex<Vec<Charge>>,
    /// Other resources' caches, for `count/<resource>` and the usage of pods and claims. Weak:
    /// the registry owns the admission chain's stores, not the other way round.
    registry: Weak<Registry>,
}

/// What one object adds to a namespace's usage, by quota resource name: upstream's
/// evaluators, shared with the quota controller through `apimachinery::quota`.
fn usage_of(resource: &str, group: &str, obj: &Value) -> Vec<(String, Quantity)> {
    use apimachinery::quota;
    let typed = |u: quota::Usage| u.into_iter().map(|(k, q)| (k, Quantity(q))).collect::<Vec<_>>();
    use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
    // Decoding has checked the object against this very type.
    fn decoded<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
        serde_json::from_value(v.clone()).ok()
    }
    match (group, resource) {
        ("", "pods") => decoded::<Pod>(obj).map(|p| typed(quota::pod_usage(&p, k8s_openapi::jiff::Timestamp::now()))).unwrap_or_default(),
        ("", "services") => decoded::<Service>(obj).map(|s| typed(quota::service_usage(&s))).unwrap_or_default(),
        ("", "persistentvolumeclaims") => decoded::<PersistentVolumeClaim>(obj).map(|c| typed(quota::pvc_usage(&c))).unwrap_or_default(),
        _ => {
            let one = Quantity::parse("1").expect("1 parses");
            let count = if group.is_empty() { format!("count/{resource}") } else { format!("count/{resource}.{group}") };
            let mut out = vec![(count, one)];
            // Names older than count/<resource> that still count objects.
            if group.is_empty() && matches!(resource, "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas") {
                out.push((resource.to_string(), one));
            }
            out
        }
    }
}

fn add(total: &mut Vec<(String, Quantity)>, items: Vec<(String, Quantity)>) {
    for (r, q) in items {
        match total.iter_mut().find(|(k, _)| *k == r) {
            Some((_, s)) => *s = Quantity(s.checked_add(&q).unwrap_or(**s)),
            None => total.push((r, q)),
        }
    }
}

impl ResourceQuotaAdmission {
    pub fn new(quotas: Arc<Store>, registry: Weak<Registry>) -> Self {
        ResourceQuotaAdmission { quotas, charges: Mutex::new(Vec::new()), registry }
    }

    fn check(&self, attrs: &Attributes<'_>, ns: &str, obj: &Value) -> Result<(), ApiError> {
        let (quotas, _) = self.quotas.cache.snapshot(&self.quotas.prefix(Some(ns)));
        if quotas.is_empty() {
            return Ok(());
        }
        let (group, resource) = (attrs.row.group(), attrs.row.plural());
        let requested = usage_of(resource, group, obj);
        let Some(registry) = self.registry.upgrade() else { return Ok(()) };
        let Some(store) = registry.store(group, attrs.row.info.version, resource) else { return Ok(()) };
        let mut charges = self.charges.lock();
        // The namespace's current usage of this resource: its cache, plus the creates admitted
        // here that the cache does not hold yet.
        let mut used: Vec<(String, Quantity)> = Vec::new();
        let prefix = store.prefix(Some(ns));
        let (objs, _) = store.cache.snapshot(&prefix);
        for o in &objs {
            add(&mut used, usage_of(resource, group, &o.value()));
        }
        // A charge ends when its object is in the snapshot just counted, not in the live cache:
        // an object that reaches the cache after the snapshot would otherwise count nowhere.
        let counted: std::collections::HashSet<&str> = objs.iter().map(|o| o.key.as_str()).collect();
        charges.retain(|c| c.at.elapsed() < CHARGE_TTL && !(c.key.starts_with(&prefix) && counted.contains(c.key.as_str())));
        for c in charges.iter().filter(|c| c.group == group && c.resource == resource && c.key.starts_with(&prefix)) {
            add(&mut used, c.usage.clone());
        }
        self.check_quotas(attrs, obj, &quotas, &requested, &used)?;
        if attrs.dry_run {
            return Ok(());
        }
        charges.push(Charge { key: store.key(Some(ns), attrs.name), group: group.into(), resource: resource.into(), usage: requested, at: Instant::now() });
        Ok(())
    }

    fn check_quotas(
        &self,
        attrs: &Attributes<'_>,
        obj: &Value,
        quotas: &[crate::watch_cache::Obj],
        requested: &[(String, Quantity)],
        used: &[(String, Quantity)],
    ) -> Result<(), ApiError> {
        let (group, resource) = (attrs.row.group(), attrs.row.plural());
        for quota in quotas {
            let quota = quota.value();
            let qname = quota.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
            let Some(hard) = quota.pointer("/spec/hard").and_then(Value::as_object) else { continue };
            // A pod must state what a compute quota constrains.
            if (group, resource) == ("", "pods") {
                let missing: Vec<&str> = ["requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "cpu", "memory"]
                    .into_iter()
                    .filter(|r| hard.contains_key(*r) && !requested.iter().any(|(k, _)| k == r))
                    .collect();
                if let Some(r) = missing.first() {
                    let containers: Vec<&str> = obj.pointer("/spec/containers").and_then(Value::as_array).into_iter().flatten().filter_map(|c| c.get("name").and_then(Value::as_str)).collect();
                    return Err(ApiError::Forbidden(format!(
                        "{resource} \"{}\" is forbidden: failed quota: {qname}: must specify {}",
                        attrs.name,
                        if r.contains('.') { format!("{r} for: {}", containers.join(",")) } else { r.to_string() }
                    )));
                }
            }
            let mut over: Vec<(String, Quantity, Quantity, Quantity)> = Vec::new();
            for (r, req) in requested {
                let Some(limit) = hard.get(r).and_then(Quantity::from_json) else { continue };
                let now = used.iter().find(|(k, _)| k == r).map(|(_, q)| *q).unwrap_or(Quantity::parse("0").expect("0 parses"));
                let after = Quantity(now.checked_add(req).unwrap_or(*now));
                if after > limit {
                    over.push((r.clone(), *req, now, limit));
                }
            }
            if !over.is_empty() {
                over.sort_by(|a, b| a.0.cmp(&b.0));
                let list = |f: fn(&(String, Quantity, Quantity, Quantity)) -> Quantity| {
                    over.iter().map(|o| format!("{}={}", o.0, f(o).canonical())).collect::<Vec<_>>().join(",")
                };
                return Err(ApiError::Forbidden(format!(
                    "{resource} \"{}\" is forbidden: exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
                    attrs.name,
                    list(|o| o.1),
                    list(|o| o.2),
                    list(|o| o.3)
                )));
            }
        }
        Ok(())
    }
}

impl Plugin for ResourceQuotaAdmission {
    fn name(&self) -> &'static str {
        "ResourceQuota"
    }
    fn admit<'a>(&'a self, attrs: &'a Attributes<'a>, obj: &'a mut Value) -> BoxFuture<'a, Result<(), ApiError>> {
        let result = match attrs.namespace.filter(|_| attrs.operation == Operation::Create && attrs.row.namespaced()) {
            Some(ns) => self.check(attrs, ns, obj),
            None => Ok(()),
        };
        Box::pin(async move { result })
    }
}
