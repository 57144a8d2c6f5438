//! `serviceaccounts/{name}/token` (upstream pkg/registry/core/serviceaccount/storage/token.go):
//! a TokenRequest answered with a JWT for the ServiceAccount, optionally bound to a Pod,
//! Secret or Node so that it dies with that object.

use super::token::serviceaccount::{username, Claims, KubernetesClaim, Ref, EXTENDED_EXPIRATION_SECONDS, WARN_ONLY_EXPIRATION_SECONDS};
use super::token::ServiceAccountConfig;
use crate::handlers::computed::{ComputedCreate, CreateRequest};
use crate::registry::Registry;
use crate::status::{ApiError, Target};
use crate::types::{FieldCause, Gvk};
use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestStatus};
use serde_json::Value;
use std::sync::Arc;

pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

pub struct TokenRequests {
    pub registry: Arc<Registry>,
    pub config: Arc<ServiceAccountConfig>,
}

/// Upstream's ValidateTokenRequest: the expiry's bounds.
pub fn validate(req: &TokenRequest) -> Vec<FieldCause> {
    let mut out = Vec::new();
    let exp = req.spec.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    let invalid = |msg: &str| FieldCause { reason: "FieldValueInvalid".into(), message: format!("Invalid value: {exp}: {msg}"), field: "spec.expirationSeconds".into() };
    if exp < MIN_EXPIRATION_SECONDS {
        out.push(invalid("may not specify a duration less than 10 minutes"));
    }
    if exp > MAX_EXPIRATION_SECONDS {
        out.push(invalid("may not specify a duration larger than 2^32 seconds"));
    }
    out
}

/// Upstream's defaults: an hour, meant for the apiserver itself.
pub fn default(req: &mut TokenRequest, api_audiences: &[String]) {
    req.spec.expiration_seconds.get_or_insert(DEFAULT_EXPIRATION_SECONDS);
    if req.spec.audiences.is_empty() {
        req.spec.audiences = api_audiences.to_vec();
    }
}

fn meta_str<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn uid_conflict(kind: &str, name: &str, uid: &str) -> ApiError {
    ApiError::Conflict {
        target: Target::new("", kind, name),
        message: format!("the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"),
        causes: vec![],
    }
}

impl TokenRequests {
    async fn get(&self, resource: &str, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let store = self.registry.store("", "v1", resource).ok_or(ApiError::NotFoundPath)?;
        store.get(ns, name, false).await
    }

    async fn issue(&self, ns: &str, name: &str, mut req: TokenRequest) -> Result<TokenRequest, ApiError> {
        let sa = self.get("serviceaccounts", Some(ns), name).await?;
        default(&mut req, &self.config.api_audiences);
        let causes = validate(&req);
        if !causes.is_empty() {
            return Err(ApiError::Invalid { target: Target::new("authentication.k8s.io", "tokenrequests", name), kind: "TokenRequest".into(), name: name.into(), causes });
        }
        let mut k8s = KubernetesClaim {
            namespace: ns.to_string(),
            serviceaccount: Ref { name: name.to_string(), uid: meta_str(&sa, "/metadata/uid").to_string() },
            ..Default::default()
        };
        if let Some(r) = &req.spec.bound_object_ref {
            let kind = r.kind.as_deref().unwrap_or("");
            let api_version = r.api_version.as_deref().unwrap_or("");
            let obj_name = r.name.as_deref().unwrap_or("");
            let want_uid = r.uid.as_deref().unwrap_or("");
            let (resource, namespaced) = match (api_version, kind) {
                ("v1", "Pod") => ("pods", true),
                ("v1", "Secret") => ("secrets", true),
                ("v1", "Node") => ("nodes", false),
                _ => {
                    let (g, v) = api_version.rsplit_once('/').unwrap_or(("", api_version));
                    return Err(ApiError::BadRequest(format!("cannot bind token to object of type {g}/{v}, Kind={kind}")));
                }
            };
            let obj = self.get(resource, namespaced.then_some(ns), obj_name).await?;
            let uid = meta_str(&obj, "/metadata/uid").to_string();
            if !want_uid.is_empty() && want_uid != uid {
                return Err(uid_conflict(kind, obj_name, want_uid));
            }
            let bound = Ref { name: obj_name.to_string(), uid };
            match kind {
                "Pod" => {
                    let pod_sa = meta_str(&obj, "/spec/serviceAccountName");
                    if pod_sa != name {
                        return Err(ApiError::BadRequest(format!("cannot bind token for serviceaccount {name:?} to pod running with different serviceaccount name.")));
                    }
                    // The pod's node goes in too (upstream's ServiceAccountTokenPodNodeInfo).
                    let node = meta_str(&obj, "/spec/nodeName");
                    if !node.is_empty() {
                        if let Ok(n) = self.get("nodes", None, node).await {
                            k8s.node = Some(Ref { name: node.to_string(), uid: meta_str(&n, "/metadata/uid").to_string() });
                        }
                    }
                    k8s.pod = Some(bound);
                }
                "Secret" => k8s.secret = Some(bound),
                _ => k8s.node = Some(bound),
            }
        }
        let requested = req.spec.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION_SECONDS);
        let mut exp_seconds = match self.config.max_expiration_seconds {
            Some(max) if requested > max => max,
            _ => requested,
        };
        req.spec.expiration_seconds = Some(exp_seconds);
        // The kubelet's 3607 s tokens live a year, with a warning after 3607 s, so that a
        // client that never reloads its token keeps working (and is logged).
        let for_api = req.spec.audiences.iter().all(|a| self.config.api_audiences.contains(a));
        let now = chrono::Utc::now();
        if self.config.extend_expiration && k8s.pod.is_some() && requested == WARN_ONLY_EXPIRATION_SECONDS && for_api {
            k8s.warnafter = Some(now.timestamp() + WARN_ONLY_EXPIRATION_SECONDS);
            exp_seconds = EXTENDED_EXPIRATION_SECONDS;
        }
        let claims = Claims {
            iss: self.config.issuer.clone(),
            sub: username(ns, name),
            aud: req.spec.audiences.clone(),
            exp: now.timestamp() + exp_seconds,
            iat: now.timestamp(),
            nbf: now.timestamp(),
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: k8s,
        };
        let token = self.config.key.sign(&claims).map_err(|e| ApiError::Internal(format!("failed to sign token: {e}")))?;
        let reported = req.spec.expiration_seconds.unwrap_or(exp_seconds);
        req.metadata.name = Some(name.to_string());
        req.metadata.namespace = Some(ns.to_string());
        req.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff_now(now)));
        req.status = Some(TokenRequestStatus {
            token,
            expiration_timestamp: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff_now(now + chrono::Duration::seconds(reported))),
        });
        Ok(req)
    }
}

fn jiff_now(t: chrono::DateTime<chrono::Utc>) -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::from_second(t.timestamp()).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}

impl ComputedCreate for TokenRequests {
    fn gvk(&self) -> Gvk {
        Gvk::new("authentication.k8s.io", "v1", "TokenRequest")
    }
    fn create<'a>(&'a self, req: CreateRequest<'a>) -> BoxFuture<'a, Result<Value, ApiError>> {
        Box::pin(async move {
            let ns = req.namespace.unwrap_or("default");
            let name = req.name.ok_or(ApiError::MethodNotSupported)?;
            let typed: TokenRequest = serde_json::from_value(req.body).map_err(|e| ApiError::BadRequest(format!("TokenRequest in version \"v1\" cannot be handled as a TokenRequest: {e}")))?;
            let out = self.issue(ns, name, typed).await?;
            let mut v = serde_json::to_value(&out).map_err(|e| ApiError::Internal(e.to_string()))?;
            v["apiVersion"] = "authentication.k8s.io/v1".into();
            v["kind"] = "TokenRequest".into();
            Ok(v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiration_is_defaulted_and_bounded() {
        let mut r = TokenRequest::default();
        default(&mut r, &["https://kubernetes.default.svc.cluster.local".into()]);
        assert_eq!(r.spec.expiration_seconds, Some(3600));
        assert_eq!(r.spec.audiences, vec!["https://kubernetes.default.svc.cluster.local"]);
        assert!(validate(&r).is_empty());
        r.spec.expiration_seconds = Some(599);
        let c = validate(&r);
        assert_eq!(c[0].field, "spec.expirationSeconds");
        assert_eq!(c[0].message, "Invalid value: 599: may not specify a duration less than 10 minutes");
        r.spec.expiration_seconds = Some((1 << 32) + 1);
        assert!(validate(&r)[0].message.ends_with("may not specify a duration larger than 2^32 seconds"));
        r.spec.expiration_seconds = Some(600);
        assert!(validate(&r).is_empty());
    }
}
