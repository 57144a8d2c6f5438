//! Authentication: client certificates signed by the cluster CA (user = CN, groups = O),
//! bearer tokens (static file, bootstrap tokens, ServiceAccount JWTs) and anonymous requests;
//! the ServiceAccount token APIs (TokenRequest, TokenReview, SelfSubjectReview, OIDC
//! discovery). Certificates and the token signing key are generated on first start.

pub mod authn;
pub mod certs;
pub mod kubeconfig;
pub mod oidc;
pub mod reviews;
pub mod tls;
pub mod token;
pub mod token_request;

/// Who made a request (upstream's user.Info). `extra` carries authenticator-specific facts,
/// e.g. `authentication.kubernetes.io/pod-name` for a bound ServiceAccount token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("io error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate error: {0}")]
    Cert(String),
    #[error("token file {path}: line {line}: {message}")]
    TokenFile { path: String, line: usize, message: String },
    #[error("tls error: {0}")]
    Tls(String),
}

/// The authentication APIs' handlers: TokenReview, SelfSubjectReview, serviceaccounts/token.
pub fn computed_handlers(
    registry: &std::sync::Arc<crate::registry::Registry>,
    authenticator: &std::sync::Arc<authn::Authenticator>,
    config: &std::sync::Arc<token::ServiceAccountConfig>,
) -> crate::handlers::computed::Computed {
    use std::sync::Arc;
    let mut c = crate::handlers::computed::Computed::default();
    c.insert("authentication.k8s.io", "tokenreviews", "", Arc::new(reviews::TokenReviews { authenticator: authenticator.clone() }));
    c.insert("authentication.k8s.io", "selfsubjectreviews", "", Arc::new(reviews::SelfSubjectReviews));
    c.insert("", "serviceaccounts", "token", Arc::new(token_request::TokenRequests { registry: registry.clone(), config: config.clone() }));
    c
}
