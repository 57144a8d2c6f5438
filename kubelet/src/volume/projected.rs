//! projected volumes: configMap, secret, downwardAPI and serviceAccountToken sources in one
//! directory.
//!
//! A serviceAccountToken source is a TokenRequest for the pod's ServiceAccount bound to the
//! pod (so it dies with it), for the source's audience and expiry. As upstream's token
//! manager, the token is kept until 80% of its life has passed or it is 24 h old; the token
//! already in the volume is the record of that, so a restarted kubelet keeps it too.

use base64::Engine;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ProjectedVolumeSource, ServiceAccount, ServiceAccountTokenProjection};
use std::path::Path;

use super::atomic_writer::VolumeFile;
use super::config_map_secret;
use super::downward_api;
use super::sources::Fetched;
use crate::context::Kubelet;

/// Upstream's default expiry of a projected token.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// A token older than this is replaced whatever its expiry (upstream's maxTTL).
const MAX_TTL_SECONDS: i64 = 24 * 60 * 60;

pub(super) async fn files(
    k: &Kubelet,
    pod: &Pod,
    pr: &ProjectedVolumeSource,
    f: &Fetched,
    dir: &Path,
) -> Result<Vec<VolumeFile>, String> {
    let mode = pr.default_mode;
    let mut files = Vec::new();
    for src in pr.sources.iter().flatten() {
        if let Some(cm) = &src.config_map {
            files.extend(config_map_secret::config_map_projection(f, cm, mode)?);
        }
        if let Some(s) = &src.secret {
            files.extend(config_map_secret::secret_projection(f, s, mode)?);
        }
        if let Some(da) = &src.downward_api {
            let items = da.items.as_deref().unwrap_or_default();
            files.extend(downward_api::files(k, pod, items, mode));
        }
        if let Some(sat) = &src.service_account_token {
            let token = service_account_token(k, pod, sat, &dir.join(&sat.path)).await?;
            // Upstream writes the token 0600 unless the volume says otherwise.
            files.push((sat.path.clone(), token.into_bytes(), Some(mode.unwrap_or(0o600))));
        }
    }
    Ok(files)
}

/// The issue time and the time the issuer wants a new one by, from a token's claims (not
/// verified: the kubelet only reads back what it was given).
fn lifetime(token: &str) -> Option<(i64, i64)> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let iat = claims.get("iat")?.as_i64()?;
    // An extended token's real expiry is a year away; warnafter is the one it was asked for.
    let end = claims.pointer("/kubernetes.io/warnafter").and_then(serde_json::Value::as_i64).or_else(|| claims.get("exp")?.as_i64())?;
    Some((iat, end))
}

/// Upstream's requiresRefresh: past 80% of the token's life, or older than 24 h.
pub(crate) fn requires_refresh(token: &str, now: i64) -> bool {
    let Some((iat, end)) = lifetime(token) else { return true };
    let ttl = (end - iat).max(0);
    now >= iat + MAX_TTL_SECONDS || now >= end - ttl / 5
}

async fn service_account_token(k: &Kubelet, pod: &Pod, sat: &ServiceAccountTokenProjection, current: &Path) -> Result<String, String> {
    let now = chrono::Utc::now().timestamp();
    let existing = std::fs::read_to_string(current).ok();
    if let Some(t) = existing.as_deref().filter(|t| !requires_refresh(t, now)) {
        return Ok(t.to_string());
    }
    let request = request_token(k, pod, sat).await;
    match (request, existing) {
        (Ok(t), _) => Ok(t),
        // A token that still works is better than none while the API is away.
        (Err(e), Some(old)) if lifetime(&old).is_some_and(|(_, end)| end > now) => {
            tracing::warn!(error = %e, "refreshing service account token; keeping the current one");
            Ok(old)
        }
        (Err(e), _) => Err(e),
    }
}

async fn request_token(k: &Kubelet, pod: &Pod, sat: &ServiceAccountTokenProjection) -> Result<String, String> {
    let client = k.client.clone().ok_or("no API client to request a service account token")?;
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let sa_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: sat.audience.iter().filter(|a| !a.is_empty()).cloned().collect(),
            expiration_seconds: Some(sat.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION_SECONDS)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let api: kube::Api<ServiceAccount> = kube::Api::namespaced(client, ns);
    let out = api
        .create_token_request(&sa_name, &Default::default(), &req)
        .await
        .map_err(|e| format!("failed to fetch token: {e}"))?;
    out.status.map(|s| s.token).filter(|t| !t.is_empty()).ok_or_else(|| "failed to fetch token: empty TokenRequest status".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: serde_json::Value) -> String {
        let b = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!("{}.{}.sig", b(br#"{"alg":"ES256"}"#), b(claims.to_string().as_bytes()))
    }

    #[test]
    fn refresh_at_eighty_percent_of_life_or_a_day() {
        let t = token(serde_json::json!({"iat": 1000, "exp": 4600}));
        assert!(!requires_refresh(&t, 1000));
        assert!(!requires_refresh(&t, 3879));
        assert!(requires_refresh(&t, 3880));
        // An extended token goes by warnafter, not its year-long exp.
        let ext = token(serde_json::json!({"iat": 1000, "exp": 1000 + 365 * 86400, "kubernetes.io": {"warnafter": 4607}}));
        assert!(!requires_refresh(&ext, 3000));
        assert!(requires_refresh(&ext, 3886));
        let long = token(serde_json::json!({"iat": 0, "exp": 10 * 86400}));
        assert!(requires_refresh(&long, 86400));
        assert!(requires_refresh("garbage", 0));
    }
}
