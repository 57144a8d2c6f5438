//! Secure serving for components that are not the apiserver (upstream's
//! `k8s.io/apiserver/pkg/server/options` SecureServing, DelegatingAuthentication and
//! DelegatingAuthorization, as kube-scheduler and kube-controller-manager use them):
//! - HTTPS with a self-signed serving certificate made at start when none is given, as
//!   upstream does without `--tls-cert-file`;
//! - client certificates verified against a client CA (user = CN, groups = O);
//! - bearer tokens checked with a TokenReview, anonymous otherwise (`system:anonymous`);
//! - every request authorized with a SubjectAccessReview, except the always-allowed paths
//!   (`/healthz`, `/readyz`, `/livez` by default, as `--authorization-always-allow-paths`);
//! - both answers cached for 10 s, upstream's default TTLs, so a scrape every few seconds does
//!   not cost the apiserver a review each time.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::PostParams;
use kube::Api;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Upstream's delegating authenticator and authorizer cache TTLs.
const CACHE_TTL: Duration = Duration::from_secs(10);
/// Entries kept per cache; past it the cache is cleared (rare: one entry per caller).
const CACHE_MAX: usize = 1024;
/// A bearer token longer than this is refused before any work (the apiserver's own limit).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    #[error("serving certificate: {0}")]
    Certificate(String),
    #[error("client CA {path}: {message}")]
    ClientCa { path: String, message: String },
    #[error("tls: {0}")]
    Tls(String),
}

/// Who made a request, as the delegating authenticator found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    fn anonymous() -> User {
        User { name: "system:anonymous".into(), uid: String::new(), groups: vec!["system:unauthenticated".into()], extra: BTreeMap::new() }
    }
}

/// The user a verified client certificate names (the TLS layer puts it in the extensions).
#[derive(Clone, Debug)]
struct PeerUser(Option<User>);

/// A rustls server config: the given PEM certificate and key, or a self-signed pair for
/// `hosts`; client certificates optional, verified against `client_ca_pem` when given.
pub fn server_config(cert_and_key: Option<(&str, &str)>, hosts: &[String], client_ca_pem: Option<&str>) -> Result<rustls::ServerConfig, ServingError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (chain, key): (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) = match cert_and_key {
        Some((cert, key)) => {
            let chain = rustls_pemfile::certs(&mut cert.as_bytes()).collect::<Result<Vec<_>, _>>().map_err(|e| ServingError::Certificate(e.to_string()))?;
            let key = rustls_pemfile::private_key(&mut key.as_bytes())
                .map_err(|e| ServingError::Certificate(e.to_string()))?
                .ok_or_else(|| ServingError::Certificate("no private key".into()))?;
            (chain, key)
        }
        None => {
            let signed = rcgen::generate_simple_self_signed(hosts.to_vec()).map_err(|e| ServingError::Certificate(e.to_string()))?;
            (vec![signed.cert.der().clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signed.signing_key.serialize_der())))
        }
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().map_err(|e| ServingError::Tls(e.to_string()))?;
    let builder = match client_ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut pem.as_bytes()) {
                let c = c.map_err(|e| ServingError::Tls(e.to_string()))?;
                roots.add(c).map_err(|e| ServingError::Tls(e.to_string()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| ServingError::Tls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(chain, key).map_err(|e| ServingError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The user a client certificate names: CN is the user, each O a group.
pub fn certificate_user(cert: &CertificateDer<'_>) -> Option<User> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok().map(String::from)).collect();
    Some(User { name, uid: String::new(), groups, extra: BTreeMap::new() })
}

/// Serves `app` over TLS until the listener fails; the verified client certificate's user
/// travels to [`DelegatingAuth::layer`] in the request extensions.
pub async fn serve(listener: TcpListener, tls: rustls::ServerConfig, app: Router) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    // A bounded number of connections, as the apiserver: the port is a diagnostics port.
    let slots = Arc::new(tokio::sync::Semaphore::new(256));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await else { return };
            let peer = PeerUser(stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(certificate_user));
            let svc = app.map_request(move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(peer.clone());
                req.map(axum::body::Body::new)
            });
            let svc = hyper_util::service::TowerToHyperService::new(svc);
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(Duration::from_secs(32));
            if let Err(e) = builder.serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}

/// What a request asks to do, as upstream's RequestInfo for a component's own paths: every
/// path is a non-resource URL, the verb the lower-cased HTTP method (`get` for HEAD).
fn verb_of(method: &http::Method) -> String {
    match *method {
        http::Method::HEAD => "get".into(),
        ref m => m.as_str().to_ascii_lowercase(),
    }
}

struct Cached<T> {
    at: Instant,
    value: T,
}

fn cache_get<K: std::hash::Hash + Eq, T: Clone>(cache: &Mutex<HashMap<K, Cached<T>>>, key: &K) -> Option<T> {
    let c = cache.lock().unwrap_or_else(|p| p.into_inner());
    c.get(key).filter(|e| e.at.elapsed() < CACHE_TTL).map(|e| e.value.clone())
}

fn cache_put<K: std::hash::Hash + Eq, T>(cache: &Mutex<HashMap<K, Cached<T>>>, key: K, value: T) {
    let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
    if c.len() >= CACHE_MAX {
        c.retain(|_, e| e.at.elapsed() < CACHE_TTL);
        if c.len() >= CACHE_MAX {
            c.clear();
        }
    }
    c.insert(key, Cached { at: Instant::now(), value });
}

/// What a SubjectAccessReview asks about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Attributes {
    /// A component's own path (`/metrics`, `/configz`).
    NonResource { path: String, verb: String },
    /// A resource-shaped permission, as the kubelet asks `nodes/proxy` of its API.
    Resource { group: String, resource: String, subresource: String, name: String, verb: String },
}

/// Authentication by TokenReview and authorization by SubjectAccessReview against the
/// apiserver, with upstream's caches.
pub struct DelegatingAuth {
    client: kube::Client,
    always_allow: Vec<String>,
    tokens: Mutex<HashMap<[u8; 32], Cached<Option<User>>>>,
    decisions: Mutex<HashMap<(String, Attributes), Cached<Decision>>>,
}

/// An authorizer's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(String),
}

impl DelegatingAuth {
    /// `always_allow`: paths no one needs permission for; a trailing `*` matches a prefix.
    pub fn new(client: kube::Client, always_allow: Vec<String>) -> Arc<DelegatingAuth> {
        Arc::new(DelegatingAuth { client, always_allow, tokens: Mutex::default(), decisions: Mutex::default() })
    }

    /// Upstream's `--authorization-always-allow-paths` default.
    pub fn default_always_allow() -> Vec<String> {
        vec!["/healthz".into(), "/readyz".into(), "/livez".into()]
    }

    fn always_allowed(&self, path: &str) -> bool {
        self.always_allow.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => p == path,
        })
    }

    /// The user behind a bearer token, by TokenReview; None: the token is not valid.
    pub async fn review_token(&self, token: &str) -> Result<Option<User>, kube::Error> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(user) = cache_get(&self.tokens, &key) {
            return Ok(user);
        }
        let review = TokenReview { spec: TokenReviewSpec { token: Some(token.to_string()), audiences: None }, ..Default::default() };
        let answer = Api::<TokenReview>::all(self.client.clone()).create(&PostParams::default(), &review).await?;
        let status = answer.status.unwrap_or_default();
        let user = status.user.filter(|_| status.authenticated == Some(true)).map(|u| User {
            name: u.username.unwrap_or_default(),
            uid: u.uid.unwrap_or_default(),
            groups: u.groups.unwrap_or_default(),
            extra: u.extra.unwrap_or_default(),
        });
        cache_put(&self.tokens, key, user.clone());
        Ok(user)
    }

    /// Whether `user` may do `attrs`, by SubjectAccessReview. An apiserver that does not
    /// answer, or has no authorization API, denies.
    pub async fn authorize(&self, user: &User, attrs: &Attributes) -> Decision {
        let key = (format!("{}\u{0}{}\u{0}{}", user.name, user.uid, user.groups.join(",")), attrs.clone());
        if let Some(d) = cache_get(&self.decisions, &key) {
            return d;
        }
        let (resource_attributes, non_resource_attributes) = match attrs {
            Attributes::NonResource { path, verb } => (None, Some(NonResourceAttributes { path: Some(path.clone()), verb: Some(verb.clone()) })),
            Attributes::Resource { group, resource, subresource, name, verb } => (
                Some(ResourceAttributes {
                    group: Some(group.clone()),
                    resource: Some(resource.clone()),
                    subresource: (!subresource.is_empty()).then(|| subresource.clone()),
                    name: (!name.is_empty()).then(|| name.clone()),
                    verb: Some(verb.clone()),
                    ..Default::default()
                }),
                None,
            ),
        };
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
                resource_attributes,
                non_resource_attributes,
            },
            ..Default::default()
        };
        let decision = match Api::<SubjectAccessReview>::all(self.client.clone()).create(&PostParams::default(), &review).await {
            Ok(answer) => {
                let status = answer.status.unwrap_or_default();
                if status.allowed {
                    Decision::Allow
                } else {
                    Decision::Deny(status.reason.unwrap_or_default())
                }
            }
            // Not cached: the next request asks again.
            Err(e) => return Decision::Deny(format!("error contacting the apiserver: {e}")),
        };
        cache_put(&self.decisions, key, decision.clone());
        decision
    }

    /// The user of a request: its verified client certificate, else its bearer token (401 if
    /// the token is not valid, as upstream never falls back to anonymous for a bad token),
    /// else anonymous.
    // Takes the request's parts, not the request, whose body is not Sync: the future stays Send.
    pub async fn authenticate_parts(&self, peer: Option<User>, header: Option<http::HeaderValue>) -> Result<User, Response> {
        if let Some(user) = peer {
            return Ok(user);
        }
        let Some(auth) = header else { return Ok(User::anonymous()) };
        let token = auth.to_str().ok().and_then(|a| a.strip_prefix("Bearer ")).map(str::trim).filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_BYTES);
        let Some(token) = token else { return Err(unauthorized()) };
        match self.review_token(token).await {
            Ok(Some(user)) => Ok(user),
            Ok(None) => Err(unauthorized()),
            Err(e) => {
                tracing::warn!(error = %e, "TokenReview failed");
                Err(unauthorized())
            }
        }
    }

    /// Axum middleware: authenticate, then authorize the path, as upstream's filters.
    pub async fn layer(State(auth): State<Arc<DelegatingAuth>>, req: Request, next: Next) -> Response {
        let path = req.uri().path().to_string();
        if auth.always_allowed(&path) {
            return next.run(req).await;
        }
        let peer = req.extensions().get::<PeerUser>().and_then(|p| p.0.clone());
        let header = req.headers().get(http::header::AUTHORIZATION).cloned();
        let user = match auth.authenticate_parts(peer, header).await {
            Ok(u) => u,
            Err(resp) => return resp,
        };
        let verb = verb_of(req.method());
        match auth.authorize(&user, &Attributes::NonResource { path: path.clone(), verb: verb.clone() }).await {
            Decision::Allow => next.run(req).await,
            Decision::Deny(reason) => forbidden(&user.name, &verb, &path, &reason),
        }
    }
}

fn unauthorized() -> Response {
    (http::StatusCode::UNAUTHORIZED, [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], "Unauthorized\n").into_response()
}

/// Upstream's wording for a denied non-resource request (`responsewriters.Forbidden`).
fn forbidden(user: &str, verb: &str, path: &str, reason: &str) -> Response {
    let mut msg = format!("forbidden: User \"{user}\" cannot {verb} path \"{path}\"");
    if !reason.is_empty() {
        msg.push_str(": ");
        msg.push_str(reason);
    }
    (http::StatusCode::FORBIDDEN, [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], msg + "\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_are_lowercased_methods_and_head_is_get() {
        assert_eq!(verb_of(&http::Method::GET), "get");
        assert_eq!(verb_of(&http::Method::HEAD), "get");
        assert_eq!(verb_of(&http::Method::POST), "post");
    }

    #[test]
    fn a_self_signed_config_builds_with_and_without_a_client_ca() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let hosts = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        assert!(server_config(None, &hosts, None).is_ok());
        let ca = rcgen::generate_simple_self_signed(vec!["ca".to_string()]).unwrap();
        assert!(server_config(None, &hosts, Some(&ca.cert.pem())).is_ok());
        assert!(matches!(server_config(None, &hosts, Some("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")), Err(ServingError::Tls(_))));
    }

    #[test]
    fn a_certificate_names_its_user_by_cn_and_groups_by_o() {
        let mut params = rcgen::CertificateParams::new(vec!["x".to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "alice");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "devs");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let user = certificate_user(cert.der()).unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, vec!["devs".to_string()]);
    }

    #[test]
    fn the_cache_expires_and_stays_bounded() {
        let cache: Mutex<HashMap<u32, Cached<u32>>> = Mutex::default();
        for i in 0..(CACHE_MAX as u32 + 10) {
            cache_put(&cache, i, i);
        }
        assert!(cache.lock().unwrap().len() <= CACHE_MAX);
        cache.lock().unwrap().insert(7, Cached { at: Instant::now() - CACHE_TTL, value: 7 });
        assert_eq!(cache_get(&cache, &7), None);
    }
}

/// The secure-serving flags kube-scheduler and kube-controller-manager share.
#[derive(clap::Args, Debug, Clone)]
pub struct SecureServingFlags {
    /// HTTPS port for /healthz, /readyz, /livez (open to all) and /metrics (authenticated and
    /// authorized by the apiserver). 0: no serving, as upstream.
    #[arg(long = "secure-port", visible_alias = "port")]
    pub secure_port: Option<u16>,
    /// Address to listen on. Loopback by default: these are diagnostics ports.
    #[arg(long = "bind-address", default_value = "127.0.0.1")]
    pub bind_address: std::net::IpAddr,
    /// Serving certificate and key (PEM); a self-signed pair is made at start without them.
    #[arg(long = "tls-cert-file", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<std::path::PathBuf>,
    #[arg(long = "tls-private-key-file", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<std::path::PathBuf>,
    /// CA that signs client certificates; without it only bearer tokens authenticate.
    #[arg(long = "client-ca-file")]
    pub client_ca_file: Option<std::path::PathBuf>,
    /// Paths served without authorization; a trailing `*` matches a prefix.
    #[arg(long = "authorization-always-allow-paths", value_delimiter = ',', default_values_t = DelegatingAuth::default_always_allow())]
    pub always_allow_paths: Vec<String>,
}

impl SecureServingFlags {
    /// Binds the port and serves `app` behind the delegating authenticator and authorizer.
    /// `default_port` is the component's upstream port (10259, 10257).
    pub async fn serve(&self, app: Router, client: kube::Client, default_port: u16) -> Result<Option<std::net::SocketAddr>, ServingError> {
        let port = self.secure_port.unwrap_or(default_port);
        if port == 0 {
            return Ok(None);
        }
        let read = |p: &std::path::Path| std::fs::read_to_string(p).map_err(|e| ServingError::Certificate(format!("{}: {e}", p.display())));
        let pair = match (&self.tls_cert_file, &self.tls_private_key_file) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            _ => None,
        };
        let ca = match &self.client_ca_file {
            Some(p) => Some(std::fs::read_to_string(p).map_err(|e| ServingError::ClientCa { path: p.display().to_string(), message: e.to_string() })?),
            None => None,
        };
        let hosts = vec!["localhost".to_string(), self.bind_address.to_string()];
        let tls = server_config(pair.as_ref().map(|(c, k)| (c.as_str(), k.as_str())), &hosts, ca.as_deref())?;
        let listener = TcpListener::bind((self.bind_address, port)).await.map_err(|e| ServingError::Tls(format!("binding {}:{port}: {e}", self.bind_address)))?;
        let addr = listener.local_addr().map_err(|e| ServingError::Tls(e.to_string()))?;
        let auth = DelegatingAuth::new(client, self.always_allow_paths.clone());
        let app = app.layer(axum::middleware::from_fn_with_state(auth, DelegatingAuth::layer));
        tokio::spawn(serve(listener, tls, app));
        Ok(Some(addr))
    }
}
