//! ServiceAccount (upstream plugin/pkg/admission/serviceaccount): a pod runs as `default`
//! unless it names a ServiceAccount; the ServiceAccount must exist; unless
//! automountServiceAccountToken is false (on the pod, else on the ServiceAccount) every
//! container and init container mounts the projected `kube-api-access-<random>` volume (a
//! bound token, the cluster CA and the namespace) at
//! /var/run/secrets/kubernetes.io/serviceaccount; the ServiceAccount's imagePullSecrets
//! reach a pod that has none.

use super::{Attributes, Plugin};
use crate::registry::Store;
use crate::status::ApiError;
use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::sync::Arc;

pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
pub const VOLUME_PREFIX: &str = "kube-api-access-";
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

pub struct ServiceAccount {
    accounts: Option<Arc<Store>>,
}

impl ServiceAccount {
    pub fn new(accounts: Option<Arc<Store>>) -> Self {
        ServiceAccount { accounts }
    }

    async fn lookup(&self, ns: &str, name: &str) -> Option<Value> {
        let store = self.accounts.as_ref()?;
        match store.cached(Some(ns), name) {
            Some(o) => Some(o.value()),
            // A live lookup on a miss, as upstream: the cache may not have a new one yet.
            None => store.get(Some(ns), name, false).await.ok(),
        }
    }

    async fn admit_pod(&self, ns: &str, pod: &mut Value) -> Result<(), ApiError> {
        let spec = &mut pod["spec"];
        let name = spec.get("serviceAccountName").and_then(Value::as_str).filter(|s| !s.is_empty());
        let name = name.or_else(|| spec.get("serviceAccount").and_then(Value::as_str).filter(|s| !s.is_empty())).unwrap_or(DEFAULT_SERVICE_ACCOUNT).to_string();
        // serviceAccount is the deprecated twin that v1 keeps equal.
        spec["serviceAccountName"] = json!(name);
        spec["serviceAccount"] = json!(name);
        // Mirror pods come from a kubelet's static manifests: no ServiceAccount of their own.
        if pod.pointer(&format!("/metadata/annotations/{}", MIRROR_POD_ANNOTATION.replace('/', "~1"))).is_some() || self.accounts.is_none() {
            return Ok(());
        }
        let Some(sa) = self.lookup(ns, &name).await else {
            // Differs from upstream, which refuses `default` too: a namespace's `default` comes
            // from the controller-manager, and an apiserver running alone (or a pod created the
            // instant its namespace was) still admits pods, without a token.
            if name == DEFAULT_SERVICE_ACCOUNT {
                return Ok(());
            }
            let pod_name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            let subject = if pod_name.is_empty() { "pods".to_string() } else { format!("pods \"{pod_name}\"") };
            return Err(ApiError::Forbidden(format!("{subject} is forbidden: error looking up service account {ns}/{name}: serviceaccount \"{name}\" not found")));
        };
        if should_automount(&sa, pod) {
            mount_token(pod);
        }
        let has_pull_secrets = pod.pointer("/spec/imagePullSecrets").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        if !has_pull_secrets {
            if let Some(secrets) = sa.get("imagePullSecrets").and_then(Value::as_array).filter(|a| !a.is_empty()) {
                pod["spec"]["imagePullSecrets"] = json!(secrets);
            }
        }
        Ok(())
    }
}

/// The pod's own setting wins, then the ServiceAccount's; mounting is the default.
pub fn should_automount(sa: &Value, pod: &Value) -> bool {
    if let Some(b) = pod.pointer("/spec/automountServiceAccountToken").and_then(Value::as_bool) {
        return b;
    }
    sa.get("automountServiceAccountToken").and_then(Value::as_bool).unwrap_or(true)
}

/// Upstream's projected token volume.
pub fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })
}

fn random_suffix() -> String {
    use rand::Rng;
    // Upstream's utilrand alphabet: no vowels, no confusable digits.
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5).map(|_| ALPHA[rng.random_range(0..ALPHA.len())] as char).collect()
}

/// Adds the volume and its mount in every container and init container that has nothing
/// mounted at the token path; a pod that already has a kube-api-access volume keeps it.
pub fn mount_token(pod: &mut Value) {
    let spec = &mut pod["spec"];
    let existing = spec.get("volumes").and_then(Value::as_array).and_then(|vs| {
        vs.iter().filter_map(|v| v.get("name").and_then(Value::as_str)).find(|n| n.starts_with(VOLUME_PREFIX)).map(String::from)
    });
    let volume = existing.clone().unwrap_or_else(|| format!("{VOLUME_PREFIX}{}", random_suffix()));
    let mount = json!({"name": volume, "readOnly": true, "mountPath": MOUNT_PATH});
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else { continue };
        for c in containers.iter_mut().filter(|c| c.is_object()) {
            let has = c.get("volumeMounts").and_then(Value::as_array).is_some_and(|ms| ms.iter().any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH)));
            if has {
                continue;
            }
            if !c.get("volumeMounts").is_some_and(Value::is_array) {
                c["volumeMounts"] = json!([]);
            }
            if let Some(ms) = c["volumeMounts"].as_array_mut() {
                ms.push(mount.clone());
            }
            needed = true;
        }
    }
    if needed && existing.is_none() {
        if !spec.get("volumes").is_some_and(Value::is_array) {
            spec["volumes"] = json!([]);
        }
        if let Some(vs) = spec["volumes"].as_array_mut() {
            vs.push(token_volume(&volume));
        }
    }
}

impl Plugin for ServiceAccount {
    fn name(&self) -> &'static str {
        "ServiceAccount"
    }
    fn admit<'a>(&'a self, attrs: &'a Attributes<'a>, pod: &'a mut Value) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            if attrs.is("", "pods") && pod.get("spec").is_some_and(Value::is_object) {
                self.admit_pod(attrs.namespace.unwrap_or("default"), pod).await?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "i", "image": "busybox"}],
            "containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox", "volumeMounts": [{"name": "own", "mountPath": MOUNT_PATH}]}],
        }})
    }

    #[test]
    fn token_volume_mounts_where_nothing_else_is() {
        let mut p = pod();
        mount_token(&mut p);
        let vols = p["spec"]["volumes"].as_array().unwrap();
        assert_eq!(vols.len(), 1);
        let name = vols[0]["name"].as_str().unwrap();
        assert!(name.starts_with(VOLUME_PREFIX) && name.len() == VOLUME_PREFIX.len() + 5, "{name}");
        assert_eq!(vols[0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"], 3607);
        assert_eq!(vols[0]["projected"]["sources"][1]["configMap"]["name"], "kube-root-ca.crt");
        assert_eq!(vols[0]["projected"]["sources"][2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"], "metadata.namespace");
        let m = &p["spec"]["initContainers"][0]["volumeMounts"][0];
        assert_eq!(m, &json!({"name": name, "readOnly": true, "mountPath": MOUNT_PATH}));
        assert_eq!(p["spec"]["containers"][0]["volumeMounts"][0]["name"], name);
        // The container that mounts its own volume there keeps only that.
        assert_eq!(p["spec"]["containers"][1]["volumeMounts"].as_array().unwrap().len(), 1);
        // Admitting again adds nothing.
        let before = p.clone();
        mount_token(&mut p);
        assert_eq!(p, before);
    }

    #[test]
    fn automount_follows_pod_then_service_account() {
        let sa_off = json!({"automountServiceAccountToken": false});
        let mut p = pod();
        assert!(should_automount(&json!({}), &p));
        assert!(!should_automount(&sa_off, &p));
        p["spec"]["automountServiceAccountToken"] = json!(true);
        assert!(should_automount(&sa_off, &p));
        p["spec"]["automountServiceAccountToken"] = json!(false);
        assert!(!should_automount(&json!({}), &p));
    }
}
