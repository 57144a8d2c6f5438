//! The authentication layer (upstream's union of request authenticators): a verified client
//! certificate, else a bearer token (the static token file, a bootstrap token, a
//! ServiceAccount JWT), else anonymous when `--anonymous-auth` allows it. A presented token
//! that no authenticator accepts is 401, never anonymous. Every authenticated user gains
//! `system:authenticated`; anonymous is `system:anonymous` in `system:unauthenticated`, and
//! what it may do is the authorizer's to say.

use super::token::cache::TokenCache;
use super::token::serviceaccount::TokenError;
use super::token::static_file::TokenFile;
use super::token::validator::Objects;
use super::token::{bootstrap, ServiceAccountConfig, MAX_TOKEN_BYTES};
use super::{AuthError, UserInfo};
use crate::registry::Registry;
use crate::status::ApiError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::path::Path;
use std::sync::Arc;

pub const ANONYMOUS: &str = "system:anonymous";
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
pub const AUTHENTICATED: &str = "system:authenticated";

/// Verified tokens kept at most; a few thousand pods' tokens and the components'.
const CACHE_ENTRIES: usize = 4096;

/// The identity the TLS layer proved from a client certificate.
#[derive(Clone, Debug)]
pub struct PeerIdentity(pub Option<UserInfo>);

/// What became of the request's credentials.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    User(UserInfo),
    /// No credentials at all.
    NoCredentials,
    /// Credentials were presented and refused (401).
    Refused(String),
}

/// A JWT whose signature, issuer and times checked out (the objects it names are checked on
/// every use, so a deleted pod's token stops working at once).
#[derive(Clone)]
struct CachedJwt {
    verified: super::token::serviceaccount::Verified,
    /// When the cached verification stops counting (the token's exp; none for legacy).
    exp: Option<i64>,
}

pub struct Authenticator {
    tokens: TokenFile,
    anonymous: bool,
    objects: Option<Objects>,
    service_accounts: Option<Arc<ServiceAccountConfig>>,
    cache: TokenCache<CachedJwt>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("anonymous", &self.anonymous).field("service_accounts", &self.service_accounts.is_some()).finish()
    }
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator { tokens: TokenFile::default(), anonymous: false, objects: None, service_accounts: None, cache: TokenCache::new(CACHE_ENTRIES) }
    }
}

impl Authenticator {
    pub fn from_token_csv(text: &str, path: &str) -> Result<Self, AuthError> {
        Ok(Authenticator { tokens: TokenFile::parse(text, path)?, ..Default::default() })
    }

    pub fn from_token_file(path: &Path) -> Result<Self, AuthError> {
        Ok(Authenticator { tokens: TokenFile::read(path)?, ..Default::default() })
    }

    /// `--anonymous-auth`.
    pub fn with_anonymous(mut self, allow: bool) -> Self {
        self.anonymous = allow;
        self
    }

    /// Bootstrap tokens and the bound objects of ServiceAccount tokens are looked up here.
    pub fn with_registry(mut self, registry: Arc<Registry>) -> Self {
        self.objects = Some(Objects { registry });
        self
    }

    pub fn with_service_accounts(mut self, config: Arc<ServiceAccountConfig>) -> Self {
        self.service_accounts = Some(config);
        self
    }

    pub fn service_accounts(&self) -> Option<&Arc<ServiceAccountConfig>> {
        self.service_accounts.as_ref()
    }

    /// The user of a bearer token meant for `audiences` (the server's own when None), or why
    /// it is refused. TokenReview asks this too.
    pub async fn authenticate_token(&self, token: &str, audiences: Option<&[String]>) -> Result<UserInfo, String> {
        if token.is_empty() {
            return Err("empty token".into());
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err("token too long".into());
        }
        if let Some(u) = self.tokens.get(token) {
            return Ok(with_authenticated(u.clone()));
        }
        if let (Some((id, secret)), Some(objects)) = (bootstrap::parse(token), &self.objects) {
            let name = bootstrap::secret_name(id);
            let found = match objects.registry.store("", "v1", "secrets") {
                Some(s) => s.get(Some(bootstrap::NAMESPACE), &name, true).await.ok(),
                None => None,
            };
            return match found.and_then(|s| bootstrap::authenticate(&s, id, secret, chrono::Utc::now())) {
                Some(u) => Ok(with_authenticated(u)),
                None => Err("invalid bootstrap token".into()),
            };
        }
        let (Some(sa), Some(objects)) = (&self.service_accounts, &self.objects) else { return Err("invalid bearer token".into()) };
        // Only something shaped like a JWT is worth a signature check.
        if token.bytes().filter(|b| *b == b'.').count() != 2 {
            return Err("invalid bearer token".into());
        }
        let audiences = audiences.unwrap_or(&sa.api_audiences);
        let now = chrono::Utc::now().timestamp();
        let key = TokenCache::<CachedJwt>::key(token, audiences);
        let verified = match self.cache.get(&key).filter(|c| c.exp.is_none_or(|e| now < e)) {
            Some(c) => c.verified,
            None => {
                let v = sa.key.verify(token, &sa.issuer, audiences, now).map_err(|e: TokenError| e.to_string())?;
                let exp = match &v {
                    super::token::serviceaccount::Verified::Bound(c) => Some(c.exp),
                    super::token::serviceaccount::Verified::Legacy(_) => None,
                };
                self.cache.put(key, CachedJwt { verified: v.clone(), exp });
                v
            }
        };
        if let super::token::serviceaccount::Verified::Bound(c) = &verified {
            if now < c.nbf {
                return Err(TokenError::NotYetValid.to_string());
            }
        }
        objects.user_of(&verified, token, now).await.map(with_authenticated)
    }

    pub async fn authenticate(&self, req: &Request) -> Outcome {
        let peer = req.extensions().get::<PeerIdentity>().and_then(|p| p.0.clone());
        self.authenticate_parts(peer, req.headers().get(http::header::AUTHORIZATION).cloned()).await
    }

    /// The request's certificate identity or Authorization header (taken out of the request,
    /// whose body may not be shared across an await).
    pub async fn authenticate_parts(&self, peer: Option<UserInfo>, authorization: Option<http::HeaderValue>) -> Outcome {
        if let Some(u) = peer {
            return Outcome::User(with_authenticated(u));
        }
        let Some(auth) = authorization else { return Outcome::NoCredentials };
        // Refused by length before anything looks at it.
        if auth.len() > MAX_TOKEN_BYTES + 16 {
            return Outcome::Refused("token too long".into());
        }
        let Ok(auth) = auth.to_str() else { return Outcome::Refused("invalid authorization header".into()) };
        let Some(token) = bearer(auth) else {
            // Basic and other schemes have no authenticator here; upstream ignores them.
            return Outcome::NoCredentials;
        };
        match self.authenticate_token(token, None).await {
            Ok(u) => Outcome::User(u),
            Err(e) => Outcome::Refused(e),
        }
    }
}

/// The token of `Bearer <token>` (the scheme case-insensitive, as upstream).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Upstream's AuthenticatedGroupAdder.
fn with_authenticated(mut u: UserInfo) -> UserInfo {
    if !u.groups.iter().any(|g| g == AUTHENTICATED) && u.name != ANONYMOUS {
        u.groups.push(AUTHENTICATED.to_string());
    }
    u
}

pub fn anonymous_user() -> UserInfo {
    UserInfo { name: ANONYMOUS.into(), groups: vec![UNAUTHENTICATED.into()], ..Default::default() }
}

pub async fn authenticate(State(auth): State<Arc<Authenticator>>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<PeerIdentity>().and_then(|p| p.0.clone());
    let header = req.headers().get(http::header::AUTHORIZATION).cloned();
    let user = match auth.authenticate_parts(peer, header).await {
        Outcome::User(u) => u,
        Outcome::Refused(reason) => {
            tracing::debug!(%reason, "authentication refused");
            return ApiError::Unauthorized.into_response();
        }
        // Health probes stay reachable without credentials even with --anonymous-auth=false.
        Outcome::NoCredentials if auth.anonymous || anonymous_may_reach_always(req.uri().path()) => anonymous_user(),
        Outcome::NoCredentials => return ApiError::Unauthorized.into_response(),
    };
    // What anonymous may do is the authorizer's: upstream's default policy grants it health
    // and version (and here the OIDC documents).
    req.extensions_mut().insert(user);
    next.run(req).await
}

fn anonymous_may_reach_always(path: &str) -> bool {
    let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    under("/healthz") || under("/livez") || under("/readyz")
}


#[cfg(test)]
mod tests {
    use super::*;

    fn req(auth: Option<&str>) -> Request {
        let mut b = Request::builder().uri("/api");
        if let Some(a) = auth {
            b = b.header("Authorization", a);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn static_token_users_are_authenticated() {
        let a = Authenticator::from_token_csv("t,admin,1,\"system:masters\"\n", "f").unwrap();
        let Outcome::User(u) = a.authenticate(&req(Some("Bearer t"))).await else { panic!() };
        assert_eq!(u.groups, vec!["system:masters", AUTHENTICATED]);
        let Outcome::User(_) = a.authenticate(&req(Some("bearer t"))).await else { panic!() };
    }

    #[tokio::test]
    async fn no_credentials_and_refused_credentials_differ() {
        let a = Authenticator::default().with_anonymous(true);
        assert_eq!(a.authenticate(&req(None)).await, Outcome::NoCredentials);
        assert!(matches!(a.authenticate(&req(Some("Bearer nope"))).await, Outcome::Refused(_)));
        assert!(matches!(a.authenticate(&req(Some("Bearer a.b.c"))).await, Outcome::Refused(_)));
        let huge = format!("Bearer {}", "x".repeat(1 << 20));
        assert_eq!(a.authenticate(&req(Some(&huge))).await, Outcome::Refused("token too long".into()));
        assert_eq!(a.authenticate(&req(Some("Basic dTpw"))).await, Outcome::NoCredentials);
    }

    #[test]
    fn anonymous_paths() {
        assert!(anonymous_may_reach_always("/healthz/etcd"));
        assert!(!anonymous_may_reach_always("/api"));
        assert!(!anonymous_may_reach_always("/healthzz"));
        assert_eq!(anonymous_user().groups, vec![UNAUTHENTICATED]);
    }
}
