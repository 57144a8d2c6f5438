//! Clients of a component's own HTTPS port (the scheduler's 10259, the controller-manager's
//! 10257), whose serving certificate is self-signed: as the admin of an apiserver, with a
//! given bearer token, or anonymous.

use crate::Error;
use std::path::Path;

/// Who calls the port.
pub enum Caller<'a> {
    /// The credentials of a kubeconfig (the admin's client certificate, say).
    Kubeconfig(&'a Path),
    Token(&'a str),
    Anonymous,
}

/// GET `path` on `https://127.0.0.1:port`: the status code and body.
pub async fn get(port: u16, path: &str, caller: Caller<'_>) -> Result<(u16, String), Error> {
    let bad = |e: String| Error::Client(format!("secure port client: {e}"));
    let mut config = match caller {
        Caller::Kubeconfig(p) => {
            let kc = kube::config::Kubeconfig::read_from(p).map_err(|e| bad(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.map_err(|e| bad(e.to_string()))?
        }
        Caller::Token(t) => {
            let mut c = kube::Config::new("https://127.0.0.1".parse().expect("url"));
            c.auth_info.token = Some(t.to_string().into());
            c
        }
        Caller::Anonymous => kube::Config::new("https://127.0.0.1".parse().expect("url")),
    };
    config.cluster_url = format!("https://127.0.0.1:{port}").parse().map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?;
    config.accept_invalid_certs = true;
    config.root_cert = None;
    let client = kube::Client::try_from(config).map_err(|e| bad(e.to_string()))?;
    let req = http::Request::get(path).body(Vec::new()).map_err(|e| bad(e.to_string()))?;
    match client.request_text(req).await {
        Ok(body) => Ok((200, body)),
        Err(kube::Error::Api(s)) => Ok((s.code, s.message)),
        Err(e) => Err(bad(e.to_string())),
    }
}
