//! ServiceAccount tokens (upstream pkg/serviceaccount): JWTs signed with the apiserver's
//! `sa.key`, the claims they carry, and the published verification key (OIDC discovery).
//!
//! Two kinds are accepted, as upstream: bound tokens from TokenRequest (issuer
//! `--service-account-issuer`, claims under `kubernetes.io`, an expiry and an audience) and
//! legacy tokens of `kubernetes.io/service-account-token` Secrets (issuer
//! `kubernetes/serviceaccount`, flat `kubernetes.io/serviceaccount/*` claims, no expiry).

use crate::auth::AuthError;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, RSAKeyParameters};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::path::Path;

/// The issuer of legacy Secret-based tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// Upstream's default issuer for a cluster named cluster.local.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The expiry the kubelet asks for in the kube-api-access volume; upstream then issues a
/// token valid for a year (`--service-account-extend-token-expiration`) with warnafter set.
pub const WARN_ONLY_EXPIRATION_SECONDS: i64 = 3607;
pub const EXTENDED_EXPIRATION_SECONDS: i64 = 365 * 24 * 60 * 60;

/// An object a token is bound to (name and uid), as in the `kubernetes.io` claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    pub name: String,
    pub uid: String,
}

/// The private `kubernetes.io` claim of a bound token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    pub namespace: String,
    pub serviceaccount: Ref,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<i64>,
}

/// The claims of a bound token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

/// The claims of a legacy token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyClaims {
    pub iss: String,
    pub sub: String,
    #[serde(rename = "kubernetes.io/serviceaccount/namespace")]
    pub namespace: String,
    #[serde(rename = "kubernetes.io/serviceaccount/secret.name")]
    pub secret_name: String,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name")]
    pub service_account_name: String,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid")]
    pub service_account_uid: String,
}

/// Either kind of claims, told apart by the issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verified {
    Bound(Claims),
    Legacy(LegacyClaims),
}

/// `system:serviceaccount:<ns>:<name>`.
pub fn username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// The namespace and name of a ServiceAccount user name.
pub fn split_username(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// Why a JWT was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is not a JWT")]
    Malformed,
    #[error("invalid signature")]
    Signature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token issuer {0:?} is not accepted")]
    Issuer(String),
    #[error("token audiences {0:?} is invalid for the target audiences")]
    Audience(Vec<String>),
    #[error("{0}")]
    Invalidated(String),
}

/// The key pair in `sa.key`/`sa.pub`.
pub struct SigningKey {
    alg: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    jwk: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("alg", &self.alg).field("kid", &self.kid).finish()
    }
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn key_err(e: impl std::fmt::Display) -> AuthError {
    AuthError::Cert(format!("service account key: {e}"))
}

/// Strips the leading zero DER adds to keep an integer positive.
fn unsigned(b: &[u8]) -> &[u8] {
    let mut b = b;
    while b.len() > 1 && b[0] == 0 {
        b = &b[1..];
    }
    b
}

impl SigningKey {
    /// `sa.key` (PKCS#8 PEM, ECDSA P-256 or RSA) and `sa.pub` (its SPKI PEM) in `dir`; a new
    /// P-256 pair when `sa.key` is absent.
    pub fn ensure(dir: &Path) -> Result<Self, AuthError> {
        let key_path = dir.join("sa.key");
        let pub_path = dir.join("sa.pub");
        let key_pem = match std::fs::read_to_string(&key_path) {
            Ok(k) => k,
            Err(_) => {
                std::fs::create_dir_all(dir).map_err(|source| AuthError::Io { path: dir.display().to_string(), source })?;
                let kp = rcgen::KeyPair::generate().map_err(key_err)?;
                let pem = kp.serialize_pem();
                crate::auth::certs::write_private(&key_path, &pem)?;
                pem
            }
        };
        let kp = rcgen::KeyPair::from_pem(&key_pem).map_err(key_err)?;
        if !pub_path.exists() {
            std::fs::write(&pub_path, kp.public_key_pem()).map_err(|source| AuthError::Io { path: pub_path.display().to_string(), source })?;
        }
        Self::from_pem(&key_pem)
    }

    /// The key of a PKCS#8 PEM.
    pub fn from_pem(key_pem: &str) -> Result<Self, AuthError> {
        let kp = rcgen::KeyPair::from_pem(key_pem).map_err(key_err)?;
        let spki = rcgen::PublicKeyData::subject_public_key_info(&kp);
        // Upstream's key id: the unpadded base64url SHA-256 of the public key's DER.
        let kid = b64url(&sha2::Sha256::digest(&spki));
        let (_, info) = <x509_parser::x509::SubjectPublicKeyInfo as x509_parser::prelude::FromDer<_>>::from_der(&spki).map_err(key_err)?;
        let parsed = info.parsed().map_err(key_err)?;
        let common = |alg| CommonParameters { public_key_use: Some(PublicKeyUse::Signature), key_algorithm: Some(alg), key_id: Some(kid.clone()), ..Default::default() };
        let (alg, encoding, decoding, jwk) = match parsed {
            x509_parser::public_key::PublicKey::EC(point) => {
                let raw = point.data();
                if raw.len() != 65 || raw[0] != 4 {
                    return Err(key_err("only uncompressed P-256 keys are supported"));
                }
                let (x, y) = (b64url(&raw[1..33]), b64url(&raw[33..]));
                let decoding = DecodingKey::from_ec_components(&x, &y).map_err(key_err)?;
                let encoding = EncodingKey::from_ec_pem(key_pem.as_bytes()).map_err(key_err)?;
                let params = EllipticCurveKeyParameters { curve: EllipticCurve::P256, x, y, ..Default::default() };
                (Algorithm::ES256, encoding, decoding, Jwk { common: common(KeyAlgorithm::ES256), algorithm: AlgorithmParameters::EllipticCurve(params) })
            }
            x509_parser::public_key::PublicKey::RSA(rsa) => {
                let (n, e) = (unsigned(rsa.modulus), unsigned(rsa.exponent));
                let decoding = DecodingKey::from_rsa_raw_components(n, e);
                let encoding = EncodingKey::from_rsa_pem(key_pem.as_bytes()).map_err(key_err)?;
                let params = RSAKeyParameters { n: b64url(n), e: b64url(e), ..Default::default() };
                (Algorithm::RS256, encoding, decoding, Jwk { common: common(KeyAlgorithm::RS256), algorithm: AlgorithmParameters::RSA(params) })
            }
            _ => return Err(key_err("the key is neither ECDSA P-256 nor RSA")),
        };
        Ok(SigningKey { alg, encoding, decoding, kid, jwk })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// `/openid/v1/jwks`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: vec![self.jwk.clone()] }
    }

    fn header(&self) -> Header {
        let mut h = Header::new(self.alg);
        h.kid = Some(self.kid.clone());
        h.typ = None;
        h
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&self.header(), claims, &self.encoding)
    }

    pub fn sign_legacy(&self, claims: &LegacyClaims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&self.header(), claims, &self.encoding)
    }

    /// Checks the signature, the issuer and the times (at `now`, no leeway), and for bound
    /// tokens that one audience is among `audiences`. Whether the objects it names still exist
    /// is the caller's check.
    pub fn verify(&self, token: &str, issuer: &str, audiences: &[String], now: i64) -> Result<Verified, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        // `alg: none` and HMAC with the public key as secret fail here, before any crypto.
        if header.alg != self.alg {
            return Err(TokenError::Signature);
        }
        let mut v = Validation::new(self.alg);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        v.validate_aud = false;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &self.decoding, &v).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::Signature,
            _ => TokenError::Malformed,
        })?;
        let iss = data.claims.get("iss").and_then(serde_json::Value::as_str).unwrap_or("").to_string();
        if iss == LEGACY_ISSUER {
            let c: LegacyClaims = serde_json::from_value(data.claims).map_err(|_| TokenError::Malformed)?;
            return Ok(Verified::Legacy(c));
        }
        if iss != issuer {
            return Err(TokenError::Issuer(iss));
        }
        let mut claims = data.claims;
        // A JWT's aud may be a single string.
        if let Some(a) = claims.get("aud").and_then(serde_json::Value::as_str).map(String::from) {
            claims["aud"] = serde_json::json!([a]);
        }
        let c: Claims = serde_json::from_value(claims).map_err(|_| TokenError::Malformed)?;
        if now >= c.exp {
            return Err(TokenError::Expired);
        }
        if now < c.nbf {
            return Err(TokenError::NotYetValid);
        }
        if !c.aud.iter().any(|a| audiences.contains(a)) {
            return Err(TokenError::Audience(c.aud));
        }
        Ok(Verified::Bound(c))
    }
}

/// `/.well-known/openid-configuration` (upstream's serviceaccount.openIDMetadata).
pub fn openid_configuration(issuer: &str, jwks_uri: &str, alg: Algorithm) -> serde_json::Value {
    let alg = match alg {
        Algorithm::ES256 => "ES256",
        _ => "RS256",
    };
    serde_json::json!({
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [alg],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: i64) -> Claims {
        Claims {
            iss: DEFAULT_ISSUER.into(),
            sub: username("default", "builder"),
            aud: vec![DEFAULT_ISSUER.into()],
            exp: now + 600,
            iat: now,
            nbf: now,
            jti: "j1".into(),
            kubernetes: KubernetesClaim { namespace: "default".into(), serviceaccount: Ref { name: "builder".into(), uid: "u1".into() }, ..Default::default() },
        }
    }

    fn key() -> SigningKey {
        SigningKey::from_pem(&rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap()
    }

    #[test]
    fn issued_token_verifies_with_its_claims() {
        let k = key();
        let c = claims(1000);
        let t = k.sign(&c).unwrap();
        assert_eq!(k.verify(&t, DEFAULT_ISSUER, &[DEFAULT_ISSUER.into()], 1001), Ok(Verified::Bound(c)));
        let header = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some(k.key_id()));
    }

    #[test]
    fn expired_future_wrong_audience_and_issuer_are_refused() {
        let k = key();
        let t = k.sign(&claims(1000)).unwrap();
        let aud = [DEFAULT_ISSUER.to_string()];
        assert_eq!(k.verify(&t, DEFAULT_ISSUER, &aud, 1600), Err(TokenError::Expired));
        assert_eq!(k.verify(&t, DEFAULT_ISSUER, &aud, 999), Err(TokenError::NotYetValid));
        assert!(matches!(k.verify(&t, DEFAULT_ISSUER, &["other".into()], 1001), Err(TokenError::Audience(_))));
        assert!(matches!(k.verify(&t, "https://elsewhere", &aud, 1001), Err(TokenError::Issuer(_))));
    }

    #[test]
    fn another_key_alg_none_and_garbage_are_refused() {
        let (a, b) = (key(), key());
        let t = a.sign(&claims(1000)).unwrap();
        let aud = [DEFAULT_ISSUER.to_string()];
        assert_eq!(b.verify(&t, DEFAULT_ISSUER, &aud, 1001), Err(TokenError::Signature));
        let body = t.split('.').nth(1).unwrap();
        let none = format!("{}.{body}.", b64url(br#"{"alg":"none","typ":"JWT"}"#));
        assert!(a.verify(&none, DEFAULT_ISSUER, &aud, 1001).is_err());
        let hs = format!("{}.{body}.c2ln", b64url(br#"{"alg":"HS256"}"#));
        assert_eq!(a.verify(&hs, DEFAULT_ISSUER, &aud, 1001), Err(TokenError::Signature));
        for junk in ["", "a.b", "a.b.c", "....", "eyJ.eyJ.eyJ"] {
            assert!(a.verify(junk, DEFAULT_ISSUER, &aud, 1001).is_err(), "{junk}");
        }
        // A flipped signature byte.
        let mut bad = t.clone().into_bytes();
        let last = bad.len() - 2;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(a.verify(std::str::from_utf8(&bad).unwrap(), DEFAULT_ISSUER, &aud, 1001), Err(TokenError::Signature));
    }

    #[test]
    fn legacy_tokens_are_told_apart_by_issuer() {
        let k = key();
        let c = LegacyClaims {
            iss: LEGACY_ISSUER.into(),
            sub: username("ns", "sa"),
            namespace: "ns".into(),
            secret_name: "sa-token".into(),
            service_account_name: "sa".into(),
            service_account_uid: "u".into(),
        };
        let t = k.sign_legacy(&c).unwrap();
        assert_eq!(k.verify(&t, DEFAULT_ISSUER, &[], 5), Ok(Verified::Legacy(c)));
    }

    #[test]
    fn key_is_created_once_and_published_as_jwk() {
        let dir = tempfile::tempdir().unwrap();
        let a = SigningKey::ensure(dir.path()).unwrap();
        let b = SigningKey::ensure(dir.path()).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        assert!(dir.path().join("sa.pub").exists());
        let jwk = &a.jwks().keys[0];
        let t = a.sign(&claims(10)).unwrap();
        let dk = DecodingKey::from_jwk(jwk).unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.validate_exp = false;
        v.set_audience(&[DEFAULT_ISSUER]);
        assert!(jsonwebtoken::decode::<serde_json::Value>(&t, &dk, &v).is_ok());
    }

    #[test]
    fn service_account_user_names() {
        assert_eq!(split_username("system:serviceaccount:ns:sa"), Some(("ns", "sa")));
        assert_eq!(split_username("system:serviceaccount:ns"), None);
        assert_eq!(split_username("alice"), None);
    }
}
