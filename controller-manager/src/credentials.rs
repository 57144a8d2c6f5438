//! `--use-service-account-credentials`: each controller writes with a client of its own,
//! authenticated as the ServiceAccount `kube-system/<name>` that upstream's bootstrap policy
//! gives the controller's role (`system:controller:<name>`). The ServiceAccount is created when
//! absent; its token comes from TokenRequest and is renewed at 80% of its life into a file the
//! client re-reads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};

const NAMESPACE: &str = "kube-system";
const EXPIRATION_SECONDS: i64 = 3600;

/// Upstream's ServiceAccount name for each controller (the names its bootstrap roles bind).
pub fn service_account_of(controller: &str) -> &str {
    match controller {
        "garbage-collector-controller" => "generic-garbage-collector",
        "serviceaccount-controller" => "service-account-controller",
        "node-lifecycle-controller" => "node-controller",
        "endpoints-controller" => "endpoint-controller",
        "pod-garbage-collector-controller" => "pod-garbage-collector",
        "replicationcontroller-controller" => "replication-controller",
        "daemonset-controller" => "daemon-set-controller",
        "root-ca-certificate-publisher-controller" => "root-ca-cert-publisher",
        other => other,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("ServiceAccount {NAMESPACE}/{name}: {source}")]
    Api {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("token file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Kubeconfig(#[from] apimachinery::kubeconfig::KubeconfigError),
    #[error("client: {0}")]
    Client(String),
}

/// The controllers' own clients; a controller without one uses the controller-manager's.
#[derive(Clone, Default)]
pub struct ControllerClients(Arc<HashMap<String, Client>>);

impl ControllerClients {
    pub fn get(&self, controller: &str) -> Option<Client> {
        self.0.get(controller).cloned()
    }

    /// A client per controller in `enabled`, with tokens kept fresh in `dir`.
    pub async fn start(admin: &Client, kubeconfig: Option<&Path>, enabled: &[&str], dir: &Path) -> Result<Self, CredentialsError> {
        std::fs::create_dir_all(dir).map_err(|source| CredentialsError::Io { path: dir.into(), source })?;
        let mut out = HashMap::new();
        for c in enabled {
            let sa = service_account_of(c).to_string();
            let file = dir.join(format!("{sa}.token"));
            let ttl = refresh(admin, &sa, &file).await?;
            let mut cfg = apimachinery::kubeconfig::client_config(kubeconfig).await?;
            cfg.auth_info = kube::config::AuthInfo { token_file: Some(file.display().to_string()), ..Default::default() };
            let client = Client::try_from(cfg).map_err(|e| CredentialsError::Client(e.to_string()))?;
            out.insert(c.to_string(), client);
            let admin = admin.clone();
            tokio::spawn(async move {
                let mut wait = ttl;
                loop {
                    tokio::time::sleep(wait).await;
                    wait = match refresh(&admin, &sa, &file).await {
                        Ok(ttl) => ttl,
                        Err(e) => {
                            tracing::warn!(error = %e, "renewing controller token");
                            Duration::from_secs(10)
                        }
                    };
                }
            });
        }
        Ok(ControllerClients(Arc::new(out)))
    }
}

/// Ensures the ServiceAccount, writes a new token to `file` (through a rename), and returns
/// how long until the next renewal.
async fn refresh(admin: &Client, sa: &str, file: &Path) -> Result<Duration, CredentialsError> {
    let err = |source| CredentialsError::Api { name: sa.to_string(), source };
    let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), NAMESPACE);
    if api.get_opt(sa).await.map_err(err)?.is_none() {
        let obj = ServiceAccount { metadata: ObjectMeta { name: Some(sa.into()), namespace: Some(NAMESPACE.into()), ..Default::default() }, ..Default::default() };
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => {}
            Err(e) if crate::controllers::is_already_exists(&e) => {}
            Err(e) => return Err(err(e)),
        }
    }
    let req = TokenRequest { spec: TokenRequestSpec { expiration_seconds: Some(EXPIRATION_SECONDS), ..Default::default() }, ..Default::default() };
    let tr = api.create_token_request(sa, &PostParams::default(), &req).await.map_err(err)?;
    let token = tr.status.map(|s| s.token).unwrap_or_default();
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, token).and_then(|_| std::fs::rename(&tmp, file)).map_err(|source| CredentialsError::Io { path: file.into(), source })?;
    Ok(Duration::from_secs((EXPIRATION_SECONDS as u64) * 8 / 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_service_account_names() {
        assert_eq!(service_account_of("replicaset-controller"), "replicaset-controller");
        assert_eq!(service_account_of("garbage-collector-controller"), "generic-garbage-collector");
        assert_eq!(service_account_of("daemonset-controller"), "daemon-set-controller");
    }
}
