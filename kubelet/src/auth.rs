//! Who may use the kubelet's API (upstream pkg/kubelet/server/auth.go): a client certificate
//! that chains to --client-ca-file, or a bearer token the apiserver vouches for through
//! TokenReview; anonymous callers only with --anonymous-auth (off here: 401). Each request is
//! then authorized with a SubjectAccessReview on `nodes/<subresource>` named after this node
//! (`proxy` for exec, attach, port-forward, pods and the rest). Answers are cached as
//! upstream's webhooks do (tokens 2 min, allowed 5 min, denied 30 s).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use std::sync::Mutex;
use serde_json::{json, Value};

/// A caller, as the apiserver's user.Info.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The identity the TLS handshake proved (None: no certificate).
#[derive(Clone, Debug, Default)]
pub struct Peer(pub Option<User>);

/// The user a verified certificate names: CN, and each O as a group.
pub fn user_of_certificate(der: &[u8]) -> Option<User> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok().map(String::from)).collect();
    Some(User { name, groups, ..Default::default() })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthorizationMode {
    /// Every authenticated caller may do everything.
    AlwaysAllow,
    /// Ask the apiserver with a SubjectAccessReview.
    Webhook,
}

/// What a request asks for: upstream's GetRequestAttributes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attributes {
    pub verb: &'static str,
    pub subresource: &'static str,
}

/// The verb of the method and the node subresource of the path.
pub fn attributes(method: &http::Method, path: &str) -> Attributes {
    let verb = match *method {
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "get",
    };
    let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    let subresource = if under("/stats") {
        "stats"
    } else if under("/metrics") {
        "metrics"
    } else if under("/logs") {
        "log"
    } else if under("/spec") {
        "spec"
    } else if under("/checkpoint") {
        "checkpoint"
    } else {
        "proxy"
    };
    Attributes { verb, subresource }
}

const TOKEN_TTL: Duration = Duration::from_secs(120);
const ALLOWED_TTL: Duration = Duration::from_secs(300);
const DENIED_TTL: Duration = Duration::from_secs(30);
const CACHE_ENTRIES: usize = 1024;
/// Longer bearer tokens are refused without asking anyone.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

pub struct ApiAuth {
    pub node_name: String,
    pub anonymous: bool,
    pub mode: AuthorizationMode,
    /// The kubelet's own client (system:node:<name>), for TokenReview and SubjectAccessReview.
    pub client: Option<kube::Client>,
    tokens: Mutex<HashMap<[u8; 32], (Instant, Option<User>)>>,
    decisions: Mutex<HashMap<(User, Attributes), (Instant, bool)>>,
}

/// A poisoned cache is still a cache.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn bounded_insert<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>, k: K, v: V) {
    if m.len() >= CACHE_ENTRIES {
        m.clear();
    }
    m.insert(k, v);
}

impl ApiAuth {
    pub fn new(node_name: &str, anonymous: bool, mode: AuthorizationMode, client: Option<kube::Client>) -> Self {
        ApiAuth { node_name: node_name.into(), anonymous, mode, client, tokens: Mutex::default(), decisions: Mutex::default() }
    }

    /// The user of a bearer token, by TokenReview; None when refused or unanswerable.
    async fn review_token(&self, token: &str) -> Option<User> {
        use sha2::Digest;
        let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        if let Some((at, u)) = lock(&self.tokens).get(&key).cloned() {
            if at.elapsed() < TOKEN_TTL {
                return u;
            }
        }
        let client = self.client.clone()?;
        let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
        let status = post(&client, "/apis/authentication.k8s.io/v1/tokenreviews", &body).await.ok()?;
        let user = (status["status"]["authenticated"] == true).then(|| user_of_review(&status["status"]["user"]));
        bounded_insert(&mut lock(&self.tokens), key, (Instant::now(), user.clone()));
        user
    }

    async fn authorize(&self, user: &User, attrs: &Attributes) -> bool {
        if self.mode == AuthorizationMode::AlwaysAllow {
            return true;
        }
        // The apiserver allows system:masters everything before any authorizer; asking it
        // would only cost a round-trip.
        if user.groups.iter().any(|g| g == "system:masters") {
            return true;
        }
        let key = (user.clone(), attrs.clone());
        if let Some((at, allowed)) = lock(&self.decisions).get(&key).cloned() {
            if at.elapsed() < if allowed { ALLOWED_TTL } else { DENIED_TTL } {
                return allowed;
            }
        }
        let Some(client) = self.client.clone() else { return false };
        let body = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
            "user": user.name, "uid": user.uid, "groups": user.groups, "extra": user.extra,
            "resourceAttributes": {"verb": attrs.verb, "resource": "nodes", "subresource": attrs.subresource, "name": self.node_name},
        }});
        // No SubjectAccessReview API (404), or no answer: deny.
        let allowed = post(&client, "/apis/authorization.k8s.io/v1/subjectaccessreviews", &body).await.is_ok_and(|r| r["status"]["allowed"] == true);
        bounded_insert(&mut lock(&self.decisions), key, (Instant::now(), allowed));
        allowed
    }
}

fn user_of_review(u: &Value) -> User {
    let strings = |v: &Value| v.as_array().map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect()).unwrap_or_default();
    User {
        name: u["username"].as_str().unwrap_or("").into(),
        uid: u["uid"].as_str().unwrap_or("").into(),
        groups: strings(&u["groups"]),
        extra: u["extra"].as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), strings(v))).collect()).unwrap_or_default(),
    }
}

async fn post(client: &kube::Client, path: &str, body: &Value) -> Result<Value, kube::Error> {
    let req = http::Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body).unwrap_or_default())
        .map_err(kube::Error::HttpError)?;
    client.request::<Value>(req).await
}

fn text(code: StatusCode, msg: String) -> Response {
    (code, [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], msg).into_response()
}

/// The layer in front of every kubelet route.
pub async fn layer(State(auth): State<Arc<ApiAuth>>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<Peer>().and_then(|p| p.0.clone());
    let bearer = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let user = match (peer, bearer) {
        (Some(u), _) => u,
        (None, Some(t)) if t.len() <= MAX_TOKEN_BYTES => match auth.review_token(&t).await {
            Some(u) => u,
            None => return text(StatusCode::UNAUTHORIZED, "Unauthorized".into()),
        },
        (None, Some(_)) => return text(StatusCode::UNAUTHORIZED, "Unauthorized".into()),
        (None, None) if auth.anonymous => User { name: "system:anonymous".into(), groups: vec!["system:unauthenticated".into()], ..Default::default() },
        (None, None) => return text(StatusCode::UNAUTHORIZED, "Unauthorized".into()),
    };
    let attrs = attributes(req.method(), req.uri().path());
    if !auth.authorize(&user, &attrs).await {
        return text(
            StatusCode::FORBIDDEN,
            format!("Forbidden (user={}, verb={}, resource=nodes, subresource={})", user.name, attrs.verb, attrs.subresource),
        );
    }
    req.extensions_mut().insert(user);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_node_subresources() {
        let get = http::Method::GET;
        assert_eq!(attributes(&get, "/stats/summary"), Attributes { verb: "get", subresource: "stats" });
        assert_eq!(attributes(&get, "/metrics"), Attributes { verb: "get", subresource: "metrics" });
        assert_eq!(attributes(&get, "/metrics/cadvisor").subresource, "metrics");
        assert_eq!(attributes(&get, "/logs/syslog").subresource, "log");
        assert_eq!(attributes(&get, "/spec/").subresource, "spec");
        assert_eq!(attributes(&get, "/pods").subresource, "proxy");
        assert_eq!(attributes(&get, "/containerLogs/ns/p/c").subresource, "proxy");
        assert_eq!(attributes(&http::Method::POST, "/exec/ns/p/c"), Attributes { verb: "create", subresource: "proxy" });
        assert_eq!(attributes(&get, "/statsx").subresource, "proxy");
    }

    #[tokio::test]
    async fn without_an_api_webhook_mode_denies_and_masters_pass() {
        let a = ApiAuth::new("n", false, AuthorizationMode::Webhook, None);
        let alice = User { name: "alice".into(), ..Default::default() };
        assert!(!a.authorize(&alice, &attributes(&http::Method::GET, "/pods")).await);
        let admin = User { name: "kube-apiserver-kubelet-client".into(), groups: vec!["system:masters".into()], ..Default::default() };
        assert!(a.authorize(&admin, &attributes(&http::Method::POST, "/exec/a/b/c")).await);
        assert!(a.review_token("t").await.is_none());
    }

    async fn call(auth: ApiAuth, peer: Option<User>, token: Option<&str>, path: &str) -> (StatusCode, String) {
        use tower::ServiceExt;
        let app = axum::Router::new()
            .route("/pods", axum::routing::get(|| async { "pods" }))
            .route("/exec/{a}/{b}/{c}", axum::routing::post(|| async { "exec" }))
            .layer(axum::middleware::from_fn_with_state(Arc::new(auth), layer));
        let method = if path.starts_with("/exec") { "POST" } else { "GET" };
        let mut req = http::Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut req = req.body(axum::body::Body::empty()).unwrap();
        req.extensions_mut().insert(Peer(peer));
        let resp = app.oneshot(req).await.unwrap();
        let code = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn anonymous_cannot_list_pods_or_exec() {
        let webhook = || ApiAuth::new("node-0", false, AuthorizationMode::Webhook, None);
        assert_eq!(call(webhook(), None, None, "/pods").await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(call(webhook(), None, None, "/exec/ns/p/c").await.0, StatusCode::UNAUTHORIZED);
        // A token nobody can vouch for is 401 too.
        assert_eq!(call(webhook(), None, Some("x"), "/pods").await.0, StatusCode::UNAUTHORIZED);
        let alice = User { name: "alice".into(), ..Default::default() };
        let (code, body) = call(webhook(), Some(alice.clone()), None, "/exec/ns/p/c").await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        assert_eq!(body, "Forbidden (user=alice, verb=create, resource=nodes, subresource=proxy)");
        let allow = ApiAuth::new("node-0", false, AuthorizationMode::AlwaysAllow, None);
        assert_eq!(call(allow, Some(alice), None, "/pods").await, (StatusCode::OK, "pods".into()));
        // With --anonymous-auth the caller is system:anonymous, still authorized per request.
        let anon = ApiAuth::new("node-0", true, AuthorizationMode::Webhook, None);
        assert_eq!(call(anon, None, None, "/pods").await.1, "Forbidden (user=system:anonymous, verb=get, resource=nodes, subresource=proxy)");
    }
}

#[cfg(test)]
mod serve_tests {
    use clap::Parser;

    /// Through the real TLS listener: a client without a certificate reaches the auth layer
    /// (401), it is not cut off in the handshake.
    #[tokio::test]
    async fn a_client_without_certificate_gets_401_over_tls() {
        let root = tempfile::tempdir().unwrap();
        let k = std::sync::Arc::new(crate::context::Kubelet::for_tests(
            root.path(),
            std::sync::Arc::new(crate::runtime::fake::FakeRuntime::default()),
            std::sync::Arc::new(crate::network::fake::FakeNetwork::default()),
        ));
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let ca_file = root.path().join("ca.crt");
        std::fs::write(&ca_file, ca.self_signed(&key).unwrap().pem()).unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let flags = crate::config::Flags::parse_from([
            "ferrokube-kubelet", "--node-name", "n", "--root-dir", &root.path().display().to_string(),
            "--port", &port.to_string(), "--client-ca-file", &ca_file.display().to_string(),
        ]);
        tokio::spawn(crate::server::serve(k, &flags).await.unwrap());
        let c = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
        let r = c.get(format!("https://127.0.0.1:{port}/pods")).send().await.expect("a TLS session without a client certificate");
        assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
        let r = c.get(format!("https://127.0.0.1:{port}/pods")).bearer_auth("x").send().await.unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
    }
}
