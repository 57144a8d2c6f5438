//! Wiring the server from its flags: certificates, storage, registry, router, listener.

use crate::auth::authn::Authenticator;
use crate::auth::{certs, tls};
use crate::handlers::AppState;
use crate::admission::AdmissionConfig;
use crate::registry::Registry;
use crate::storage::etcd::EtcdStorage;
use crate::storage::DynStorage;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub etcd_servers: Vec<String>,
    pub etcd_prefix: String,
    pub bind_address: String,
    pub secure_port: u16,
    pub cert_dir: PathBuf,
    pub token_auth_file: Option<PathBuf>,
    pub admission: AdmissionConfig,
    /// How long Events live (`--event-ttl`).
    pub event_ttl: std::time::Duration,
    /// How often etcd is compacted (`--etcd-compaction-interval`; zero: never).
    pub etcd_compaction_interval: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error("etcd: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// Builds everything and serves until the process ends.
pub async fn run(opts: ServerOptions) -> Result<(), ServerError> {
    let certs = certs::ensure_server_certs(&opts.cert_dir, &opts.bind_address)?;
    let auth = match &opts.token_auth_file {
        Some(p) => Authenticator::from_token_file(p)?,
        None => Authenticator::default(),
    };
    let etcd: DynStorage = Arc::new(EtcdStorage::connect(&opts.etcd_servers).await?);
    crate::compaction::start(etcd.clone(), opts.etcd_compaction_interval);
    let storage = crate::storage::ttl::events_expire(etcd, opts.etcd_prefix.trim_end_matches('/'), opts.event_ttl);
    let registry = Registry::new(storage, opts.etcd_prefix.trim_end_matches('/'));
    let admission = crate::admission::Chain::new(&registry, &opts.admission);
    let bootstrapped = crate::bootstrap::spawn(registry.clone());
    let kubelet = crate::proxy::KubeletClient::new(&certs.kubelet_client.cert, &certs.kubelet_client.key)?;
    let addr = format!("{}:{}", opts.bind_address, opts.secure_port);
    let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|source| ServerError::Listen { addr: addr.clone(), source })?;
    let local = listener.local_addr().map_err(|source| ServerError::Listen { addr: addr.clone(), source })?;
    let state = Arc::new(AppState {
        registry,
        admission,
        bootstrapped,
        metrics: Arc::new(crate::metrics::Metrics::new()),
        server_address: local.to_string(),
        kubelet: Some(Arc::new(kubelet)),
    });
    let router = crate::app(state, Arc::new(auth));
    tracing::info!(%local, "serving HTTPS");
    tls::serve(listener, tls::server_config(&certs)?, router).await;
    Ok(())
}
