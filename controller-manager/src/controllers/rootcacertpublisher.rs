//! The root CA publisher (upstream pkg/controller/certificates/rootcacertpublisher): a
//! ConfigMap `kube-root-ca.crt` with the cluster CA under `ca.crt` in every active namespace,
//! recreated when deleted and put back when changed. Pods read it through the projected
//! kube-api-access volume to verify the apiserver.
//!
//! The CA is `--root-ca-file`, else the CA of the controller-manager's own kubeconfig, as
//! upstream falls back to its client config's CAData.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Api;

use super::{timed, Ctx, Result, SyncError};
use crate::runtime::{run_workers, Informers, Key, WorkQueue};

pub const NAME: &str = "root-ca-certificate-publisher-controller";
pub const CONFIG_MAP: &str = "kube-root-ca.crt";
pub const KEY: &str = "ca.crt";
const DESCRIPTION_KEY: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

#[derive(Debug, PartialEq)]
pub enum Action {
    None,
    Create(ConfigMap),
    /// The existing ConfigMap with its data and description put back.
    Update(ConfigMap),
}

/// What `namespace`'s ConfigMap needs for it to hold exactly `ca`.
pub fn plan(namespace: &Namespace, existing: Option<&ConfigMap>, ca: &str) -> Action {
    let terminating = namespace.metadata.deletion_timestamp.is_some() || namespace.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    if terminating {
        return Action::None;
    }
    let data = BTreeMap::from([(KEY.to_string(), ca.to_string())]);
    match existing {
        None => Action::Create(ConfigMap {
            metadata: ObjectMeta {
                name: Some(CONFIG_MAP.into()),
                namespace: namespace.metadata.name.clone(),
                annotations: Some(BTreeMap::from([(DESCRIPTION_KEY.to_string(), DESCRIPTION.to_string())])),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        }),
        Some(cm) => {
            let described = cm.metadata.annotations.as_ref().and_then(|a| a.get(DESCRIPTION_KEY)).map(String::as_str) == Some(DESCRIPTION);
            if cm.data.as_ref() == Some(&data) && cm.binary_data.as_ref().is_none_or(|b| b.is_empty()) && described {
                return Action::None;
            }
            let mut cm = cm.clone();
            cm.data = Some(data);
            cm.binary_data = None;
            cm.metadata.annotations.get_or_insert_with(Default::default).insert(DESCRIPTION_KEY.into(), DESCRIPTION.into());
            Action::Update(cm)
        }
    }
}

/// PEM of DER certificates.
fn pem(ders: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for der in ders {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

struct State {
    ctx: Ctx,
    namespaces: Store<Namespace>,
    config_maps: Store<ConfigMap>,
    ca: tokio::sync::OnceCell<String>,
}

impl State {
    async fn ca(&self) -> Result<&str> {
        self.ca
            .get_or_try_init(|| async {
                if let Some(p) = &self.ctx.opts.root_ca_file {
                    return std::fs::read_to_string(p).map_err(|e| SyncError::Invalid(format!("--root-ca-file {}: {e}", p.display())));
                }
                let cfg = apimachinery::kubeconfig::client_config(self.ctx.opts.kubeconfig.as_deref()).await.map_err(|e| SyncError::Invalid(e.to_string()))?;
                match cfg.root_cert.filter(|c| !c.is_empty()) {
                    Some(ders) => Ok(pem(&ders)),
                    None => Err(SyncError::Invalid("no root CA: set --root-ca-file".into())),
                }
            })
            .await
            .map(String::as_str)
    }
}

pub fn register(inf: &mut Informers, ctx: &Ctx) {
    let queue: WorkQueue<Key> = WorkQueue::default();
    {
        let q = queue.clone();
        inf.get::<Namespace>().on_change(move |_, new| {
            if let Some(n) = new {
                q.add(Key::cluster(n.metadata.name.as_deref().unwrap_or_default()));
            }
        });
    }
    {
        let q = queue.clone();
        inf.get::<ConfigMap>().on_change(move |old, new| {
            if let Some(cm) = new.or(old).filter(|c| c.metadata.name.as_deref() == Some(CONFIG_MAP)) {
                q.add(Key::cluster(cm.metadata.namespace.as_deref().unwrap_or_default()));
            }
        });
    }
    let state = Arc::new(State { ctx: ctx.clone(), namespaces: inf.store(), config_maps: inf.store(), ca: tokio::sync::OnceCell::new() });
    let synced = vec![inf.synced::<Namespace>(), inf.synced::<ConfigMap>()];
    run_workers(NAME, queue, 1, ctx.metrics.clone(), synced, move |key| {
        let state = state.clone();
        async move { sync(&state, &key).await }
    });
}

async fn sync(st: &State, key: &Key) -> Result<Option<Duration>> {
    let Some(ns) = st.namespaces.get(&ObjectRef::new(&key.name)) else { return Ok(None) };
    let existing = st.config_maps.get(&ObjectRef::new(CONFIG_MAP).within(&key.name));
    let ca = st.ca().await?;
    let api: Api<ConfigMap> = Api::namespaced(st.ctx.client.clone(), &key.name);
    let res = match plan(&ns, existing.as_deref(), ca) {
        Action::None => return Ok(None),
        Action::Create(cm) => timed(api.create(&PostParams::default(), &cm)).await?.map(|_| ()),
        Action::Update(cm) => timed(api.replace(CONFIG_MAP, &PostParams::default(), &cm)).await?.map(|_| ()),
    };
    match res {
        Ok(()) => Ok(None),
        Err(e) if super::is_already_exists(&e) || super::is_conflict(&e) => Ok(Some(Duration::from_millis(200))),
        // The namespace is going away.
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str) -> Namespace {
        Namespace { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() }
    }

    #[test]
    fn creates_then_keeps_then_repairs() {
        let Action::Create(cm) = plan(&ns("a"), None, "CA") else { panic!() };
        assert_eq!(cm.metadata.name.as_deref(), Some(CONFIG_MAP));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("a"));
        assert_eq!(cm.data.as_ref().unwrap()["ca.crt"], "CA");
        assert_eq!(plan(&ns("a"), Some(&cm), "CA"), Action::None);
        let mut changed = cm.clone();
        changed.data.as_mut().unwrap().insert("extra".into(), "x".into());
        let Action::Update(fixed) = plan(&ns("a"), Some(&changed), "CA") else { panic!() };
        assert_eq!(fixed.data, cm.data);
        let Action::Update(rotated) = plan(&ns("a"), Some(&cm), "CA2") else { panic!() };
        assert_eq!(rotated.data.unwrap()["ca.crt"], "CA2");
        let mut term = ns("a");
        term.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(plan(&term, None, "CA"), Action::None);
    }

    #[test]
    fn der_certificates_become_pem() {
        let p = pem(&[vec![1u8; 100]]);
        assert!(p.starts_with("-----BEGIN CERTIFICATE-----\n") && p.ends_with("-----END CERTIFICATE-----\n"));
        assert!(p.lines().all(|l| l.len() <= 64));
    }
}
