//! The HTTPS listener: rustls with optional client certificates verified against the cluster
//! CA; the proven identity travels to the authentication layer in the request extensions.

use super::authn::PeerIdentity;
use super::certs::ServerCerts;
use super::{AuthError, UserInfo};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

fn certs_of(pem: &str) -> Result<Vec<CertificateDer<'static>>, AuthError> {
    rustls_pemfile::certs(&mut pem.as_bytes()).collect::<Result<Vec<_>, _>>().map_err(|e| AuthError::Tls(e.to_string()))
}

fn key_of(pem: &str) -> Result<PrivateKeyDer<'static>, AuthError> {
    rustls_pemfile::private_key(&mut pem.as_bytes()).map_err(|e| AuthError::Tls(e.to_string()))?.ok_or_else(|| AuthError::Tls("no private key".into()))
}

pub fn server_config(certs: &ServerCerts) -> Result<rustls::ServerConfig, AuthError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in certs_of(&certs.ca.cert)? {
        roots.add(c).map_err(|e| AuthError::Tls(e.to_string()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| AuthError::Tls(e.to_string()))?;
    let mut chain = certs_of(&certs.serving.cert)?;
    chain.extend(certs_of(&certs.ca.cert)?);
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AuthError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key_of(&certs.serving.key)?)
        .map_err(|e| AuthError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The user a verified client certificate names: CN is the user, each O a group.
pub fn identity_of(cert: &CertificateDer<'_>) -> Option<UserInfo> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok().map(String::from)).collect();
    Some(UserInfo { name, groups, ..Default::default() })
}

/// Open connections at most; past it, accepting waits for one to close, so a flood of slow
/// clients queues in the kernel's backlog instead of exhausting the server.
const MAX_CONNECTIONS: usize = 8192;
/// A client must finish its request headers within this: upstream's ReadHeaderTimeout (32 s).
/// hyper counts a kept-alive connection's idle wait too, so idle connections close after it,
/// which clients take in their stride. The TLS handshake has its own 10 s.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(32);

/// Accepts connections until the process ends; each connection is served on its own task.
pub async fn serve(listener: TcpListener, tls: rustls::ServerConfig, app: Router) {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (tcp, _peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let stream = match tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                _ => return,
            };
            let identity = PeerIdentity(stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(identity_of));
            let svc = app.map_request(move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(identity.clone());
                req.map(axum::body::Body::new)
            });
            let svc = hyper_util::service::TowerToHyperService::new(svc);
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
            if let Err(e) = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc).await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}
