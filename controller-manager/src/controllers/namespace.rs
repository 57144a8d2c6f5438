//! The Namespace controller: when a namespace is deleted, delete all its
//! content of every discovered resource, report what is left in status
//! conditions, then remove the `kubernetes` finalizer (namespaces/finalize).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition, NamespaceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PropagationPolicy};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{Ctx, Result, SyncError};
use crate::discovery::{self, Resource};
use crate::runtime::{run_workers, Informers, Key, WorkQueue};

pub const NAME: &str = "namespace-controller";
pub const FINALIZER: &str = "kubernetes";

/// What one deletion pass found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Remaining {
    pub discovery_failed: Option<String>,
    pub delete_errors: Vec<String>,
    /// "pods." style resource names (upstream's group-qualified) → count.
    pub resources: BTreeMap<String, usize>,
    /// finalizer → count of objects still carrying it.
    pub finalizers: BTreeMap<String, usize>,
}

impl Remaining {
    pub fn is_empty(&self) -> bool {
        self.discovery_failed.is_none() && self.delete_errors.is_empty() && self.resources.is_empty()
    }
}

fn cond(ty: &str, status: &str, reason: &str, message: String, now: Timestamp) -> NamespaceCondition {
    NamespaceCondition {
        type_: ty.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: Some(Time(now)),
    }
}

/// The five deletion conditions upstream reports while a namespace drains.
pub fn conditions(r: &Remaining, now: Timestamp) -> Vec<NamespaceCondition> {
    let mut out = vec![
        match &r.discovery_failed {
            Some(m) => cond("NamespaceDeletionDiscoveryFailure", "True", "DiscoveryFailed", m.clone(), now),
            None => cond(
                "NamespaceDeletionDiscoveryFailure",
                "False",
                "ResourcesDiscovered",
                "All resources successfully discovered".into(),
                now,
            ),
        },
        cond(
            "NamespaceDeletionGroupVersionParsingFailure",
            "False",
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
            now,
        ),
    ];
    out.push(if r.delete_errors.is_empty() {
        cond(
            "NamespaceDeletionContentFailure",
            "False",
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into(),
            now,
        )
    } else {
        cond(
            "NamespaceDeletionContentFailure",
            "True",
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                r.delete_errors.len(),
                r.delete_errors.join(", ")
            ),
            now,
        )
    });
    out.push(if r.resources.is_empty() {
        cond(
            "NamespaceContentRemaining",
            "False",
            "ContentRemoved",
            "All content successfully removed".into(),
            now,
        )
    } else {
        let parts: Vec<String> = r.resources.iter().map(|(k, n)| format!("{k} has {n} resource instances")).collect();
        cond(
            "NamespaceContentRemaining",
            "True",
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", parts.join(", ")),
            now,
        )
    });
    out.push(if r.finalizers.is_empty() {
        cond(
            "NamespaceFinalizersRemaining",
            "False",
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".into(),
            now,
        )
    } else {
        let parts: Vec<String> = r.finalizers.iter().map(|(k, n)| format!("{k} in {n} resource instances")).collect();
        cond(
            "NamespaceFinalizersRemaining",
            "True",
            "SomeFinalizersRemain",
            format!("Some content in the namespace has finalizers remaining: {}", parts.join(", ")),
            now,
        )
    });
    out
}

/// Upstream names a resource `resource.group` ("pods." for the core group).
pub fn qualified(r: &Resource) -> String {
    format!("{}.{}", r.ar.plural, r.ar.group)
}

struct State {
    ctx: Ctx,
    namespaces: Store<Namespace>,
}

pub fn register(inf: &mut Informers, ctx: &Ctx) {
    let queue: WorkQueue<Key> = WorkQueue::default();
    {
        let q = queue.clone();
        inf.get::<Namespace>().on_change(move |_, new| {
            if let Some(n) = new.filter(|n| n.metadata.deletion_timestamp.is_some()) {
                q.add(Key::cluster(n.metadata.name.as_deref().unwrap_or_default()));
            }
        });
    }
    let state = Arc::new(State {
        ctx: ctx.clone(),
        namespaces: inf.store(),
    });
    let metrics = ctx.metrics.clone();
    let synced = vec![inf.synced::<Namespace>()];
    run_workers(NAME, queue, 5, metrics, synced, move |key| {
        let state = state.clone();
        async move { sync(&state, &key).await }
    });
}

async fn sync(st: &State, key: &Key) -> Result<Option<Duration>> {
    let Some(ns) = st.namespaces.get(&ObjectRef::new(&key.name)) else {
        return Ok(None);
    };
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(None);
    }
    let finalizers = ns.spec.as_ref().and_then(|s| s.finalizers.clone()).unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(None);
    }
    let remaining = delete_content(&st.ctx, &key.name).await;
    let now = Timestamp::now();
    write_conditions(&st.ctx, &ns, conditions(&remaining, now)).await?;
    if !remaining.is_empty() {
        // Pods drain at their grace period's pace; look again soon.
        return Ok(Some(Duration::from_secs(1)));
    }
    finalize(&st.ctx, &ns).await?;
    Ok(None)
}

async fn delete_content(ctx: &Ctx, ns: &str) -> Remaining {
    let mut out = Remaining::default();
    let resources = match discovery::deletable_resources(&ctx.client).await {
        Ok(r) => r,
        Err(e) => {
            out.discovery_failed = Some(format!("Discovery failed for some groups: {e}"));
            return out;
        }
    };
    for r in resources.iter().filter(|r| r.namespaced) {
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &r.ar);
        let items = match api.list(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(e) if super::is_not_found(&e) => continue,
            Err(e) => {
                out.delete_errors.push(format!("{}: {e}", qualified(r)));
                continue;
            }
        };
        if items.is_empty() {
            continue;
        }
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        let mut left = 0;
        for obj in &items {
            for f in obj.finalizers() {
                *out.finalizers.entry(f.clone()).or_default() += 1;
            }
            if obj.metadata.deletion_timestamp.is_some() {
                left += 1;
                continue;
            }
            match api.delete(&obj.name_any(), &dp).await {
                Ok(either) => {
                    if either.is_left() {
                        left += 1; // graceful: still there
                    }
                }
                Err(e) if super::is_not_found(&e) => {}
                Err(e) => {
                    left += 1;
                    out.delete_errors.push(format!("{}: {e}", qualified(r)));
                }
            }
        }
        if left > 0 {
            out.resources.insert(qualified(r), left);
        }
    }
    out
}

async fn write_conditions(ctx: &Ctx, ns: &Namespace, conds: Vec<NamespaceCondition>) -> Result<()> {
    let old = ns.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let same = conds.len() == old.len()
        && conds.iter().all(|c| {
            old.iter()
                .any(|o| o.type_ == c.type_ && o.status == c.status && o.reason == c.reason && o.message == c.message)
        });
    if same {
        return Ok(());
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let status = NamespaceStatus {
        conditions: Some(conds),
        phase: Some("Terminating".into()),
    };
    let v = serde_json::to_value(&status).map_err(|source| SyncError::Encode {
        what: "namespace status",
        source,
    })?;
    match api
        .patch_status(&ns.name_any(), &PatchParams::default(), &Patch::Merge(&json!({ "status": v })))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if super::is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// PUT namespaces/{name}/finalize without our finalizer; the apiserver
/// then deletes the namespace.
async fn finalize(ctx: &Ctx, ns: &Namespace) -> Result<()> {
    let mut ns = ns.clone();
    if let Some(spec) = ns.spec.as_mut() {
        spec.finalizers = Some(
            spec.finalizers
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|f| f != FINALIZER)
                .collect(),
        );
    }
    let body = serde_json::to_vec(&ns).map_err(|source| SyncError::Encode { what: "namespace", source })?;
    let req = http::Request::put(format!("/api/v1/namespaces/{}/finalize", ns.name_any()))
        .header("Content-Type", "application/json")
        .body(body)
        .map_err(|e| SyncError::Invalid(e.to_string()))?;
    match ctx.client.request::<Namespace>(req).await {
        Ok(_) => Ok(()),
        Err(e) if super::is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_say_what_is_left() {
        let mut r = Remaining::default();
        r.resources.insert("pods.".into(), 2);
        r.finalizers.insert("example.com/keep".into(), 1);
        let c = conditions(&r, Timestamp::now());
        let remaining = c.iter().find(|c| c.type_ == "NamespaceContentRemaining").unwrap();
        assert_eq!(remaining.status, "True");
        assert_eq!(
            remaining.message.as_deref(),
            Some("Some resources are remaining: pods. has 2 resource instances")
        );
        let fin = c.iter().find(|c| c.type_ == "NamespaceFinalizersRemaining").unwrap();
        assert_eq!(
            fin.message.as_deref(),
            Some("Some content in the namespace has finalizers remaining: example.com/keep in 1 resource instances")
        );
        assert!(!r.is_empty());
    }

    #[test]
    fn an_empty_namespace_can_be_finalized() {
        let r = Remaining::default();
        assert!(r.is_empty());
        let c = conditions(&r, Timestamp::now());
        assert_eq!(c.len(), 5);
        assert!(c.iter().all(|c| c.status == "False"));
    }
}
