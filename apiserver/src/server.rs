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
    /// Authentication beyond certificates and the token file (`--anonymous-auth`,
    /// `--service-account-*`).
    pub authn: AuthnOptions,
    pub admission: AdmissionConfig,
    /// How long Events live (`--event-ttl`).
    pub event_ttl: std::time::Duration,
    /// How often etcd is compacted (`--etcd-compaction-interval`; zero: never).
    pub etcd_compaction_interval: std::time::Duration,
    /// Service IP and node-port ranges, the advertise address (`--service-*`, `--advertise-address`).
    pub services: crate::controlplane::ServiceNetworkOptions,
    /// `--authorization-mode` (Node,RBAC; AlwaysAllow).
    pub authorization_modes: Vec<String>,
    /// `--audit-log-path` (`-`: standard output).
    pub audit_log_path: Option<PathBuf>,
}

/// Upstream's authentication flags.
#[derive(Clone, Debug)]
pub struct AuthnOptions {
    pub anonymous_auth: bool,
    pub service_account_issuer: String,
    /// `--api-audiences`; the issuer when empty.
    pub api_audiences: Vec<String>,
    /// The PKCS#8 PEM key tokens are signed with; `<cert-dir>/sa.key` (created) when None.
    pub service_account_signing_key_file: Option<PathBuf>,
    pub service_account_max_token_expiration: Option<std::time::Duration>,
    pub service_account_extend_token_expiration: bool,
    pub service_account_jwks_uri: Option<String>,
}

impl Default for AuthnOptions {
    fn default() -> Self {
        AuthnOptions {
            anonymous_auth: true,
            service_account_issuer: crate::auth::token::serviceaccount::DEFAULT_ISSUER.into(),
            api_audiences: Vec::new(),
            service_account_signing_key_file: None,
            service_account_max_token_expiration: None,
            service_account_extend_token_expiration: true,
            service_account_jwks_uri: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Authorization(#[from] crate::authz::UnknownMode),
    #[error("audit log {path}: {source}")]
    Audit {
        path: String,
        #[source]
        source: std::io::Error,
    },
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
    let service_ip = crate::controlplane::kubernetes_service_ip(&opts.services.cluster_ip_range);
    let mut extra_sans = vec![service_ip.to_string()];
    extra_sans.extend(opts.services.advertise_address.map(|a| a.to_string()));
    let certs = certs::ensure_server_certs_with(&opts.cert_dir, &opts.bind_address, &extra_sans)?;
    let auth = match &opts.token_auth_file {
        Some(p) => Authenticator::from_token_file(p)?,
        None => Authenticator::default(),
    };
    let signing_key = match &opts.authn.service_account_signing_key_file {
        Some(p) => {
            let pem = std::fs::read_to_string(p).map_err(|source| crate::auth::AuthError::Io { path: p.display().to_string(), source })?;
            crate::auth::token::serviceaccount::SigningKey::from_pem(&pem)?
        }
        None => crate::auth::token::serviceaccount::SigningKey::ensure(&opts.cert_dir)?,
    };
    let etcd: DynStorage = Arc::new(EtcdStorage::connect(&opts.etcd_servers).await?);
    crate::compaction::start(etcd.clone(), opts.etcd_compaction_interval);
    let storage = crate::storage::ttl::events_expire(etcd, opts.etcd_prefix.trim_end_matches('/'), opts.event_ttl);
    let registry = Registry::new(storage, opts.etcd_prefix.trim_end_matches('/'));
    let admission = crate::admission::Chain::new(&registry, &opts.admission);
    let bootstrapped = crate::bootstrap::spawn(registry.clone());
    let registry_for_services = registry.clone();
    let kubelet = crate::proxy::KubeletClient::new(&certs.kubelet_client.cert, &certs.kubelet_client.key)?;
    let addr = format!("{}:{}", opts.bind_address, opts.secure_port);
    let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|source| ServerError::Listen { addr: addr.clone(), source })?;
    let local = listener.local_addr().map_err(|source| ServerError::Listen { addr: addr.clone(), source })?;
    let sa_config = Arc::new(crate::auth::token::ServiceAccountConfig {
        key: signing_key,
        issuer: opts.authn.service_account_issuer.clone(),
        api_audiences: if opts.authn.api_audiences.is_empty() { vec![opts.authn.service_account_issuer.clone()] } else { opts.authn.api_audiences.clone() },
        max_expiration_seconds: opts.authn.service_account_max_token_expiration.filter(|d| !d.is_zero()).map(|d| d.as_secs() as i64),
        extend_expiration: opts.authn.service_account_extend_token_expiration,
        jwks_uri: opts.authn.service_account_jwks_uri.clone().unwrap_or_else(|| format!("https://{local}/openid/v1/jwks")),
    });
    let auth = Arc::new(auth.with_anonymous(opts.authn.anonymous_auth).with_registry(registry.clone()).with_service_accounts(sa_config.clone()));
    let mut computed = crate::auth::computed_handlers(&registry, &auth, &sa_config);
    let authz = crate::authz::Authorization::with_modes(registry.clone(), &opts.authorization_modes)?;
    crate::authz::reviews::register(&mut computed, &authz);
    let audit = match &opts.audit_log_path {
        Some(p) => Some(crate::audit::AuditLog::open(p).map_err(|source| ServerError::Audit { path: p.display().to_string(), source })?),
        None => None,
    };
    let state = Arc::new(AppState {
        registry,
        admission,
        bootstrapped,
        metrics: Arc::new(crate::metrics::Metrics::new()),
        server_address: local.to_string(),
        kubelet: Some(Arc::new(kubelet)),
        computed,
    });
    let router = crate::app(state, auth, authz, audit);
    let endpoint_ip = opts.services.advertise_address.or(opts.bind_address.parse().ok()).unwrap_or(std::net::Ipv4Addr::LOCALHOST);
    crate::controlplane::start(&registry_for_services, registry_for_services.storage.clone(), &opts.services, endpoint_ip, local.port());
    let tls_config = tls::server_config(&certs)?;
    if let Some(adv) = opts.services.advertise_address.filter(|a| a.to_string() != opts.bind_address) {
        // Pods reach the apiserver here, through the kubernetes Service's DNAT.
        let addr = format!("{adv}:{}", local.port());
        let extra = tokio::net::TcpListener::bind(&addr).await.map_err(|source| ServerError::Listen { addr: addr.clone(), source })?;
        tracing::info!(%addr, "serving HTTPS on the advertise address");
        tokio::spawn(tls::serve(extra, tls_config.clone(), router.clone()));
    }
    tracing::info!(%local, "serving HTTPS");
    tls::serve(listener, tls_config, router).await;
    Ok(())
}
