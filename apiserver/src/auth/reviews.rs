//! TokenReview (upstream pkg/registry/authentication/tokenreview) and SelfSubjectReview
//! (pkg/registry/authentication/selfsubjectreview): created, answered, never stored.

use super::authn::Authenticator;
use super::UserInfo;
use crate::handlers::computed::{ComputedCreate, CreateRequest};
use crate::status::ApiError;
use crate::types::Gvk;
use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1 as authn;
use serde_json::Value;
use std::sync::Arc;

fn wire_user(u: &UserInfo) -> authn::UserInfo {
    authn::UserInfo {
        username: Some(u.name.clone()),
        uid: (!u.uid.is_empty()).then(|| u.uid.clone()),
        groups: (!u.groups.is_empty()).then(|| u.groups.clone()),
        extra: (!u.extra.is_empty()).then(|| u.extra.clone()),
    }
}

fn to_value<T: serde::Serialize>(v: &T, kind: &str) -> Result<Value, ApiError> {
    let mut out = serde_json::to_value(v).map_err(|e| ApiError::Internal(e.to_string()))?;
    out["apiVersion"] = "authentication.k8s.io/v1".into();
    out["kind"] = kind.into();
    Ok(out)
}

pub struct TokenReviews {
    pub authenticator: Arc<Authenticator>,
}

impl ComputedCreate for TokenReviews {
    fn gvk(&self) -> Gvk {
        Gvk::new("authentication.k8s.io", "v1", "TokenReview")
    }
    fn create<'a>(&'a self, req: CreateRequest<'a>) -> BoxFuture<'a, Result<Value, ApiError>> {
        Box::pin(async move {
            let mut review: authn::TokenReview = serde_json::from_value(req.body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let token = review.spec.token.clone().unwrap_or_default();
            if token.is_empty() {
                return Err(ApiError::BadRequest("token is required for TokenReview in authentication".into()));
            }
            let wanted = review.spec.audiences.clone().filter(|a| !a.is_empty());
            let server = self.authenticator.service_accounts().map(|c| c.api_audiences.clone()).unwrap_or_default();
            let audiences = wanted.clone().unwrap_or_else(|| server.clone());
            let status = match self.authenticator.authenticate_token(&token, Some(&audiences)).await {
                Ok(user) => authn::TokenReviewStatus {
                    authenticated: Some(true),
                    user: Some(wire_user(&user)),
                    // The audiences the token was found good for: those asked about.
                    audiences: Some(audiences),
                    error: None,
                },
                Err(e) => authn::TokenReviewStatus { authenticated: Some(false), error: Some(e), ..Default::default() },
            };
            review.status = Some(status);
            to_value(&review, "TokenReview")
        })
    }
}

pub struct SelfSubjectReviews;

impl ComputedCreate for SelfSubjectReviews {
    fn gvk(&self) -> Gvk {
        Gvk::new("authentication.k8s.io", "v1", "SelfSubjectReview")
    }
    fn create<'a>(&'a self, req: CreateRequest<'a>) -> BoxFuture<'a, Result<Value, ApiError>> {
        Box::pin(async move {
            let user = req.user.ok_or(ApiError::Unauthorized)?;
            let mut review: authn::SelfSubjectReview = serde_json::from_value(req.body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            review.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
            review.status = Some(authn::SelfSubjectReviewStatus { user_info: Some(wire_user(user)) });
            to_value(&review, "SelfSubjectReview")
        })
    }
}
