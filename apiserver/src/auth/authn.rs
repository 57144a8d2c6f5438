//! The authentication layer: a verified client certificate (put in the request extensions by
//! the TLS acceptor) or a bearer token from --token-auth-file; otherwise 401.

use super::{AuthError, UserInfo};
use crate::status::ApiError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The identity the TLS layer proved from a client certificate.
#[derive(Clone, Debug)]
pub struct PeerIdentity(pub Option<UserInfo>);

#[derive(Default, Debug)]
pub struct Authenticator {
    tokens: HashMap<String, UserInfo>,
}

/// Splits one CSV line, honouring double quotes (`token,user,uid,"g1,g2"`).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

impl Authenticator {
    pub fn from_token_csv(text: &str, path: &str) -> Result<Self, AuthError> {
        let mut tokens = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let f = csv_fields(line);
            if f.len() < 3 || f[0].is_empty() || f[1].is_empty() {
                return Err(AuthError::TokenFile { path: path.into(), line: i + 1, message: "expected token,user,uid[,\"groups\"]".into() });
            }
            let groups = f.get(3).map(|g| g.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()).unwrap_or_default();
            tokens.insert(f[0].clone(), UserInfo { name: f[1].clone(), uid: f[2].clone(), groups, ..Default::default() });
        }
        Ok(Authenticator { tokens })
    }

    pub fn from_token_file(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io { path: path.display().to_string(), source })?;
        Self::from_token_csv(&text, &path.display().to_string())
    }

    pub fn authenticate(&self, req: &Request) -> Option<UserInfo> {
        if let Some(PeerIdentity(Some(u))) = req.extensions().get::<PeerIdentity>() {
            return Some(u.clone());
        }
        let auth = req.headers().get(http::header::AUTHORIZATION)?.to_str().ok()?;
        let token = auth.strip_prefix("Bearer ").or_else(|| auth.strip_prefix("bearer "))?.trim();
        self.tokens.get(token).cloned()
    }
}

/// Health probes stay reachable without credentials, as upstream allows them to anonymous users.
fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz") || path.starts_with("/healthz/") || path.starts_with("/livez/") || path.starts_with("/readyz/")
}

pub async fn authenticate(State(auth): State<Arc<Authenticator>>, mut req: Request, next: Next) -> Response {
    if is_public(req.uri().path()) {
        return next.run(req).await;
    }
    match auth.authenticate(&req) {
        Some(user) => {
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        None => ApiError::Unauthorized.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_with_quoted_groups() {
        let a = Authenticator::from_token_csv("# comment\nsecret,admin,uid1,\"system:masters,devs\"\nt2,bob,uid2\n", "f").unwrap();
        let u = &a.tokens["secret"];
        assert_eq!(u.name, "admin");
        assert_eq!(u.groups, vec!["system:masters", "devs"]);
        assert!(a.tokens["t2"].groups.is_empty());
        assert!(Authenticator::from_token_csv("onlytoken\n", "f").is_err());
    }

    #[test]
    fn anonymous_is_refused() {
        let a = Authenticator::default();
        let req = Request::builder().uri("/api").body(axum::body::Body::empty()).unwrap();
        assert!(a.authenticate(&req).is_none());
    }
}
