//! OIDC discovery for ServiceAccount tokens (upstream's ServiceAccountIssuerDiscovery):
//! `/.well-known/openid-configuration` and `/openid/v1/jwks`, so a verifier outside the
//! cluster can check a token with nothing but the issuer URL.

use super::token::ServiceAccountConfig;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

const CACHE_CONTROL: &str = "public, max-age=3600";

pub fn configuration(config: &Arc<ServiceAccountConfig>) -> Response {
    let doc = super::token::serviceaccount::openid_configuration(&config.issuer, &config.jwks_uri, config.key.algorithm());
    ([(http::header::CONTENT_TYPE, "application/json"), (http::header::CACHE_CONTROL, CACHE_CONTROL)], serde_json::to_vec(&doc).unwrap_or_default()).into_response()
}

pub fn jwks(config: &Arc<ServiceAccountConfig>) -> Response {
    ([(http::header::CONTENT_TYPE, "application/jwk-set+json"), (http::header::CACHE_CONTROL, CACHE_CONTROL)], serde_json::to_vec(&config.key.jwks()).unwrap_or_default()).into_response()
}
