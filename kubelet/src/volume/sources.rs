//! The ConfigMaps, Secrets and Services a pod refers to, fetched once per
//! setup so that its env and its volumes see the same content.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::Api;

use crate::container::env::Sources;
use crate::context::Kubelet;

/// A ConfigMap's or Secret's content, as env sees it and as files hold it.
#[derive(Debug, Clone, Default)]
pub(super) struct SourceData {
    /// For env: a ConfigMap's `data` (not `binaryData`, as upstream), a Secret's values.
    pub(super) text: BTreeMap<String, String>,
    /// For volumes: every key, bytes untouched (binaryData, binary secrets).
    pub(super) files: BTreeMap<String, Vec<u8>>,
}

#[derive(Default)]
pub(super) struct Fetched {
    pub(super) config_maps: BTreeMap<String, Option<SourceData>>,
    pub(super) secrets: BTreeMap<String, Option<SourceData>>,
    pub(super) service_env: Vec<(String, String)>,
}

impl Fetched {
    pub(super) fn config_map_files(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        Some(self.config_maps.get(name)?.as_ref()?.files.clone())
    }
    pub(super) fn secret_files(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        Some(self.secrets.get(name)?.as_ref()?.files.clone())
    }
}

impl Sources for Fetched {
    fn config_map(&self, name: &str) -> Option<BTreeMap<String, String>> {
        Some(self.config_maps.get(name)?.as_ref()?.text.clone())
    }
    fn secret(&self, name: &str) -> Option<BTreeMap<String, String>> {
        Some(self.secrets.get(name)?.as_ref()?.text.clone())
    }
    fn service_env(&self) -> Vec<(String, String)> {
        self.service_env.clone()
    }
}

/// The pod's service variables; none without an API client or on API errors
/// (a container still starts, as upstream with an unsynced service lister).
pub(super) async fn fetch_service_env(k: &Kubelet, pod: &Pod) -> Vec<(String, String)> {
    let Some(client) = k.client.clone() else {
        return Vec::new();
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let in_ns = if links {
        let api: Api<Service> = Api::namespaced(client.clone(), ns);
        api.list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let api: Api<Service> = Api::namespaced(client, "default");
    let kubernetes = api.get_opt("kubernetes").await.ok().flatten();
    crate::container::service_env::from_services(&crate::container::service_env::select(
        pod, in_ns, kubernetes,
    ))
}

async fn fetch_config_map(k: &Kubelet, ns: &str, name: &str) -> Option<SourceData> {
    let api: Api<ConfigMap> = Api::namespaced(k.client.clone()?, ns);
    let cm = api.get_opt(name).await.ok().flatten()?;
    let text = cm.data.unwrap_or_default();
    let mut files: BTreeMap<String, Vec<u8>> = text
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    files.extend(
        cm.binary_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0)),
    );
    Some(SourceData { text, files })
}

async fn fetch_secret(k: &Kubelet, ns: &str, name: &str) -> Option<SourceData> {
    let api: Api<Secret> = Api::namespaced(k.client.clone()?, ns);
    let s = api.get_opt(name).await.ok().flatten()?;
    let mut files: BTreeMap<String, Vec<u8>> = s
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    files.extend(
        s.string_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes())),
    );
    let text = files
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    Some(SourceData { text, files })
}

/// Fetches every ConfigMap and Secret the pod refers to.
pub(super) async fn fetch(k: &Kubelet, pod: &Pod) -> Fetched {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let spec = pod.spec.clone().unwrap_or_default();
    let mut cms = Vec::new();
    let mut secrets = Vec::new();
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for ef in c.env_from.iter().flatten() {
            cms.extend(ef.config_map_ref.as_ref().map(|r| r.name.clone()));
            secrets.extend(ef.secret_ref.as_ref().map(|r| r.name.clone()));
        }
        for e in c.env.iter().flatten() {
            if let Some(vf) = &e.value_from {
                cms.extend(vf.config_map_key_ref.as_ref().map(|r| r.name.clone()));
                secrets.extend(vf.secret_key_ref.as_ref().map(|r| r.name.clone()));
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        cms.extend(v.config_map.as_ref().map(|c| c.name.clone()));
        secrets.extend(v.secret.as_ref().and_then(|s| s.secret_name.clone()));
        for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            cms.extend(p.config_map.as_ref().map(|c| c.name.clone()));
            secrets.extend(p.secret.as_ref().map(|s| s.name.clone()));
        }
    }
    let mut f = Fetched::default();
    use std::collections::btree_map::Entry;
    for n in cms {
        if let Entry::Vacant(e) = f.config_maps.entry(n) {
            let v = fetch_config_map(k, &ns, e.key()).await;
            e.insert(v);
        }
    }
    for n in secrets {
        if let Entry::Vacant(e) = f.secrets.entry(n) {
            let v = fetch_secret(k, &ns, e.key()).await;
            e.insert(v);
        }
    }
    f
}
