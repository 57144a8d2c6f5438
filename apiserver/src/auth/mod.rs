//! Authentication: client certificates signed by the cluster CA (user = CN, groups = O) and
//! static bearer tokens; anonymous requests get 401. Certificates are generated on first start.

pub mod authn;
pub mod certs;
pub mod kubeconfig;
pub mod tls;

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
