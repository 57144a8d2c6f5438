//! How many pods a selected pod's controller wants (upstream's finders):
//! ReplicationController, ReplicaSet (its Deployment's scale when a
//! Deployment owns it), StatefulSet and Deployment from the caches; any
//! other kind through its scale subresource.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};

use super::plan::Scale;
use crate::podutil::controller_of;

/// The caches of the kinds whose scale is read without a request.
#[derive(Clone)]
pub struct Owners {
    pub rcs: Store<ReplicationController>,
    pub replicasets: Store<ReplicaSet>,
    pub deployments: Store<Deployment>,
    pub statefulsets: Store<StatefulSet>,
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

fn found_if<K: kube::Resource>(obj: Option<std::sync::Arc<K>>, uid: &str, replicas: impl Fn(&K) -> Option<i32>) -> Scale {
    match obj {
        Some(o) if o.meta().uid.as_deref() == Some(uid) => Scale::Found {
            uid: uid.to_string(),
            replicas: replicas(&o).unwrap_or(1),
        },
        _ => Scale::Missing,
    }
}

fn key<K: kube::Resource<DynamicType = ()>>(name: &str, ns: &str) -> ObjectRef<K> {
    ObjectRef::new(name).within(ns)
}

impl Owners {
    /// The scale of a kind this controller caches; None for other kinds.
    pub fn cached(&self, ns: &str, cref: &OwnerReference) -> Option<Scale> {
        let group = group_of(&cref.api_version);
        Some(match (group, cref.kind.as_str()) {
            ("", "ReplicationController") => {
                found_if(self.rcs.get(&key(&cref.name, ns)), &cref.uid, |rc| rc.spec.as_ref()?.replicas)
            }
            ("apps" | "extensions", "ReplicaSet") => {
                let Some(rs) = self.replicasets.get(&key(&cref.name, ns)).filter(|rs| rs.metadata.uid.as_deref() == Some(&cref.uid))
                else {
                    return Some(Scale::Missing);
                };
                // A Deployment's ReplicaSet counts the Deployment's replicas,
                // unless that Deployment is gone (then its own, as upstream's
                // scale finder would read).
                let dep = controller_of(&rs.metadata)
                    .filter(|d| d.kind == "Deployment" && matches!(group_of(&d.api_version), "apps" | "extensions"))
                    .and_then(|d| self.deployments.get(&key(&d.name, ns)).filter(|dep| dep.metadata.uid.as_deref() == Some(&d.uid)));
                match dep {
                    Some(d) => Scale::Found {
                        uid: d.metadata.uid.clone().unwrap_or_default(),
                        replicas: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    },
                    None => found_if(Some(rs), &cref.uid, |rs| rs.spec.as_ref()?.replicas),
                }
            }
            ("apps", "StatefulSet") => {
                found_if(self.statefulsets.get(&key(&cref.name, ns)), &cref.uid, |s| s.spec.as_ref()?.replicas)
            }
            ("apps", "Deployment") => {
                found_if(self.deployments.get(&key(&cref.name, ns)), &cref.uid, |d| d.spec.as_ref()?.replicas)
            }
            _ => return None,
        })
    }
}

/// The scale of any other kind, through discovery and its scale
/// subresource. API failures are errors (to retry); a kind without scale
/// is a [`Scale::Failed`], as upstream's getScaleController.
pub async fn via_subresource(client: &Client, ns: &str, cref: &OwnerReference) -> Result<Scale, kube::Error> {
    let (group, version) = match cref.api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", cref.api_version.as_str()),
    };
    let gvk = GroupVersionKind::gvk(group, version, &cref.kind);
    let (ar, caps): (ApiResource, _) = match kube::discovery::pinned_kind(client, &gvk).await {
        Ok(found) => found,
        Err(kube::Error::Discovery(_)) => return Ok(Scale::Failed(no_match(group, &cref.kind))),
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Scale::Failed(no_match(group, &cref.kind))),
        Err(e) => return Err(e),
    };
    let gr = if group.is_empty() { ar.plural.clone() } else { format!("{}.{group}", ar.plural) };
    if !caps.subresources.iter().any(|(sub, _)| sub.plural == "scale") {
        return Ok(Scale::Failed(format!("{gr} does not implement the scale subresource")));
    }
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    match api.get_scale(&cref.name).await {
        Ok(s) if s.metadata.uid.as_deref() == Some(cref.uid.as_str()) => Ok(Scale::Found {
            uid: cref.uid.clone(),
            replicas: s.spec.and_then(|s| s.replicas).unwrap_or(0),
        }),
        Ok(_) => Ok(Scale::Missing),
        Err(e) if super::super::is_not_found(&e) => Ok(Scale::Missing),
        Err(e) => Err(e),
    }
}

/// The RESTMapper's wording for a kind the API does not serve.
fn no_match(group: &str, kind: &str) -> String {
    format!("no matches for kind {kind:?} in group {group:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, ReplicaSetSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;

    fn meta(name: &str, uid: &str, owner: Option<OwnerReference>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(uid.into()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        }
    }

    fn cref(api_version: &str, kind: &str, name: &str, uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller: Some(true),
            ..Default::default()
        }
    }

    fn owners(rs: Vec<ReplicaSet>, deps: Vec<Deployment>) -> Owners {
        let (rs_store, mut w) = store();
        for r in rs {
            w.apply_watcher_event(&Event::Apply(r));
        }
        let (dep_store, mut w) = store();
        for d in deps {
            w.apply_watcher_event(&Event::Apply(d));
        }
        Owners {
            rcs: store().0,
            replicasets: rs_store,
            deployments: dep_store,
            statefulsets: store().0,
        }
    }

    fn rs(name: &str, uid: &str, replicas: i32, owner: Option<OwnerReference>) -> ReplicaSet {
        ReplicaSet {
            metadata: meta(name, uid, owner),
            spec: Some(ReplicaSetSpec { replicas: Some(replicas), ..Default::default() }),
            status: None,
        }
    }

    #[test]
    fn a_deployments_replicaset_counts_the_deployment() {
        let dep = Deployment {
            metadata: meta("web", "dep-uid", None),
            spec: Some(DeploymentSpec { replicas: Some(5), ..Default::default() }),
            status: None,
        };
        let o = owners(vec![rs("web-1", "rs-uid", 3, Some(cref("apps/v1", "Deployment", "web", "dep-uid")))], vec![dep]);
        assert_eq!(
            o.cached("ns", &cref("apps/v1", "ReplicaSet", "web-1", "rs-uid")),
            Some(Scale::Found { uid: "dep-uid".into(), replicas: 5 })
        );
        // The Deployment gone: the ReplicaSet's own scale.
        let o = owners(vec![rs("web-1", "rs-uid", 3, Some(cref("apps/v1", "Deployment", "web", "dep-uid")))], vec![]);
        assert_eq!(
            o.cached("ns", &cref("apps/v1", "ReplicaSet", "web-1", "rs-uid")),
            Some(Scale::Found { uid: "rs-uid".into(), replicas: 3 })
        );
    }

    #[test]
    fn another_object_under_the_name_is_missing_and_other_kinds_are_not_cached() {
        let o = owners(vec![rs("web-1", "new-uid", 3, None)], vec![]);
        assert_eq!(o.cached("ns", &cref("apps/v1", "ReplicaSet", "web-1", "old-uid")), Some(Scale::Missing));
        assert_eq!(o.cached("ns", &cref("v1", "ReplicationController", "rc", "u")), Some(Scale::Missing));
        assert_eq!(o.cached("ns", &cref("batch/v1", "Job", "j", "u")), None);
    }
}
