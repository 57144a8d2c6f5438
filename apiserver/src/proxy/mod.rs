//! pods/log, pods/exec, pods/attach and pods/portforward, proxied to the pod's kubelet (found at the Node's InternalIP and
//! daemonEndpoints.kubeletEndpoint.port), authenticated with apiserver-kubelet-client.

mod exec;
mod log;
mod portforward;
mod reverse;
pub mod upgrade;

pub use exec::{attach, exec};
pub use log::log;
pub use portforward::portforward;
pub use reverse::proxy;

use crate::registry::Store;
use crate::status::ApiError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::Value;
use std::sync::Arc;

pub struct KubeletClient {
    pub http: reqwest::Client,
    pub tls: Arc<rustls::ClientConfig>,
}

/// Upstream does not verify kubelet serving certificates without --kubelet-certificate-authority.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(&self, _: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: &ServerName<'_>, _: &[u8], _: UnixTime) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &rustls::DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &rustls::DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl KubeletClient {
    pub fn new(cert_pem: &str, key_pem: &str) -> Result<Self, crate::auth::AuthError> {
        let err = |e: String| crate::auth::AuthError::Tls(e);
        let identity = reqwest::Identity::from_pem(format!("{cert_pem}\n{key_pem}").as_bytes()).map_err(|e| err(e.to_string()))?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .identity(identity)
            .danger_accept_invalid_certs(true)
            .build()
            .map_err(|e| err(e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = rustls_pemfile::certs(&mut cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().map_err(|e| err(e.to_string()))?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes()).map_err(|e| err(e.to_string()))?.ok_or_else(|| err("no key".into()))?;
        let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| err(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_client_auth_cert(certs, key)
            .map_err(|e| err(e.to_string()))?;
        Ok(KubeletClient { http, tls: Arc::new(tls) })
    }
}

/// The pod, the container a request means, and the kubelet's `host:port`.
pub(crate) async fn locate(reg: &crate::registry::Registry, store: &Store, ns: Option<&str>, name: &str, container: Option<&str>) -> Result<(String, String), ApiError> {
    let pod = store.get(ns, name, false).await?;
    let containers: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|c| c.get("name").and_then(Value::as_str).map(String::from)).collect())
        .unwrap_or_default();
    let inits: Vec<String> = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|c| c.get("name").and_then(Value::as_str).map(String::from)).collect())
        .unwrap_or_default();
    let container = match container.filter(|c| !c.is_empty()) {
        Some(c) if containers.iter().chain(inits.iter()).any(|x| x == c) => c.to_string(),
        Some(c) => return Err(ApiError::BadRequest(format!("container {c} is not valid for pod {name}"))),
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return Err(ApiError::BadRequest(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )))
        }
    };
    let host = kubelet_host(reg, &pod, name).await?;
    Ok((container, host))
}

/// The `host:port` of the kubelet running `pod`.
pub(crate) async fn kubelet_host(reg: &crate::registry::Registry, pod: &Value, name: &str) -> Result<String, ApiError> {
    let node_name = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
    if node_name.is_empty() {
        return Err(ApiError::BadRequest(format!("pod {name} does not have a host assigned")));
    }
    let nodes = reg.store("", "v1", "nodes").ok_or_else(|| ApiError::Internal("no node store".into()))?;
    let node = nodes.get(None, node_name, false).await?;
    let ip = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|x| x.get("type").and_then(Value::as_str) == Some("InternalIP")))
        .and_then(|x| x.get("address").and_then(Value::as_str))
        .ok_or_else(|| ApiError::BadRequest(format!("node {node_name} has no InternalIP address")))?
        .to_string();
    let port = node.pointer("/status/daemonEndpoints/kubeletEndpoint/Port").and_then(Value::as_i64).unwrap_or(10250);
    Ok(if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") })
}
