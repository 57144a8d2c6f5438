//! Bearer token authenticators: the static token file, bootstrap tokens and ServiceAccount
//! JWTs, with a cache of verified tokens.

pub mod bootstrap;
pub mod cache;
pub mod serviceaccount;
pub mod static_file;
pub mod validator;

use serviceaccount::SigningKey;

/// Upstream's limit on what a token authenticator looks at: a longer bearer token is refused
/// before any parsing, so a huge header costs no more than reading it.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// How ServiceAccount tokens are issued and checked (the `--service-account-*` and
/// `--api-audiences` flags).
#[derive(Debug)]
pub struct ServiceAccountConfig {
    pub key: SigningKey,
    pub issuer: String,
    /// What a token must be meant for to authenticate against this server; the issuer unless
    /// `--api-audiences` says otherwise.
    pub api_audiences: Vec<String>,
    /// `--service-account-max-token-expiration` (seconds); None: no cap.
    pub max_expiration_seconds: Option<i64>,
    /// `--service-account-extend-token-expiration`.
    pub extend_expiration: bool,
    /// Where `/openid/v1/jwks` is reached from outside.
    pub jwks_uri: String,
}
