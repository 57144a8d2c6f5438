//! authorization.k8s.io/v1 reviews (upstream pkg/registry/authorization): SubjectAccessReview,
//! LocalSubjectAccessReview and SelfSubjectAccessReview ask the authorizer chain about one
//! request; SelfSubjectRulesReview lists the requester's rules in a namespace (kubectl auth
//! can-i --list). Created and answered, never stored.

use super::attributes::Attributes;
use super::{Authorization, Decision};
use crate::auth::UserInfo;
use crate::handlers::computed::{Computed, ComputedCreate, CreateRequest};
use crate::status::{ApiError, Target};
use crate::types::Gvk;
use crate::validation::field::{self, Path};
use futures::future::BoxFuture;
use k8s_openapi::api::authorization::v1 as authz;
use serde_json::Value;
use std::sync::Arc;

const GROUP: &str = "authorization.k8s.io";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Subject,
    Local,
    SelfSubject,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Subject => "SubjectAccessReview",
            Kind::Local => "LocalSubjectAccessReview",
            Kind::SelfSubject => "SelfSubjectAccessReview",
        }
    }
}

pub struct AccessReviews {
    authz: Arc<Authorization>,
    kind: Kind,
}

pub struct RulesReviews {
    authz: Arc<Authorization>,
}

/// Serves the reviews from `c` (`crate::handlers::computed`).
pub fn register(c: &mut Computed, authz: &Arc<Authorization>) {
    for (resource, kind) in [("subjectaccessreviews", Kind::Subject), ("localsubjectaccessreviews", Kind::Local), ("selfsubjectaccessreviews", Kind::SelfSubject)] {
        c.insert(GROUP, resource, "", Arc::new(AccessReviews { authz: authz.clone(), kind }));
    }
    c.insert(GROUP, "selfsubjectrulesreviews", "", Arc::new(RulesReviews { authz: authz.clone() }));
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

fn to_value<T: serde::Serialize>(v: &T, kind: &str) -> Result<Value, ApiError> {
    let mut out = serde_json::to_value(v).map_err(|e| ApiError::Internal(e.to_string()))?;
    out["apiVersion"] = format!("{GROUP}/v1").into();
    out["kind"] = kind.into();
    Ok(out)
}

/// The attributes a review's spec describes, or the validation errors upstream gives.
fn attributes_of(user: UserInfo, ra: Option<&authz::ResourceAttributes>, nra: Option<&authz::NonResourceAttributes>, path: &Path) -> Result<Attributes, Vec<crate::types::FieldCause>> {
    match (ra, nra) {
        (Some(_), Some(n)) => Err(vec![field::invalid(&path.child("nonResourceAttributes"), &serde_json::to_value(n).unwrap_or_default(), "cannot be specified in combination with resourceAttributes")]),
        (None, None) => Err(vec![field::invalid(&path.child("resourceAttributes"), &Value::Null, "exactly one of nonResourceAttributes or resourceAttributes must be specified")]),
        (Some(r), None) => {
            let s = |x: &Option<String>| x.clone().unwrap_or_default();
            let mut a = Attributes::resource(user, &s(&r.verb), &s(&r.group), &s(&r.resource), &s(&r.subresource), &s(&r.namespace), &s(&r.name));
            a.api_version = s(&r.version);
            Ok(a)
        }
        (None, Some(n)) => Ok(Attributes::non_resource(user, n.verb.as_deref().unwrap_or(""), n.path.as_deref().unwrap_or(""))),
    }
}

fn status_of(d: Decision) -> authz::SubjectAccessReviewStatus {
    let reason = (!d.reason().is_empty()).then(|| d.reason().to_string());
    authz::SubjectAccessReviewStatus { allowed: d.allowed(), denied: matches!(d, Decision::Deny(_)).then_some(true), reason, evaluation_error: None }
}

impl ComputedCreate for AccessReviews {
    fn gvk(&self) -> Gvk {
        Gvk::new(GROUP, "v1", self.kind.name())
    }
    fn create<'a>(&'a self, req: CreateRequest<'a>) -> BoxFuture<'a, Result<Value, ApiError>> {
        Box::pin(async move {
            let kind = self.kind.name();
            let invalid = |causes| ApiError::invalid(Target::new(GROUP, &format!("{}s", kind.to_ascii_lowercase()), ""), kind, causes);
            let spec_path = Path::new("spec");
            let mut body = req.body;
            if self.kind == Kind::SelfSubject {
                let spec: authz::SelfSubjectAccessReviewSpec = serde_json::from_value(body.get("spec").cloned().unwrap_or_default()).map_err(bad)?;
                let user = req.user.cloned().ok_or(ApiError::Unauthorized)?;
                let a = attributes_of(user, spec.resource_attributes.as_ref(), spec.non_resource_attributes.as_ref(), &spec_path).map_err(invalid)?;
                return with_status(body, &status_of(self.authz.authorize(&a)));
            }
            // SubjectAccessReview and LocalSubjectAccessReview share their spec.
            let spec: authz::SubjectAccessReviewSpec = serde_json::from_value(body.get("spec").cloned().unwrap_or_default()).map_err(bad)?;
            let user = UserInfo {
                name: spec.user.clone().unwrap_or_default(),
                uid: spec.uid.clone().unwrap_or_default(),
                groups: spec.groups.clone().unwrap_or_default(),
                extra: spec.extra.clone().unwrap_or_default(),
            };
            let mut causes = Vec::new();
            if user.name.is_empty() && user.groups.is_empty() {
                causes.push(field::invalid(&spec_path.child("user"), &Value::String(String::new()), "at least one of user or group must be specified"));
            }
            if self.kind == Kind::Local && spec.non_resource_attributes.is_some() {
                causes.push(field::invalid(&spec_path.child("nonResourceAttributes"), &Value::Null, "disallowed on this kind of request"));
            }
            if !causes.is_empty() {
                return Err(invalid(causes));
            }
            let a = attributes_of(user, spec.resource_attributes.as_ref(), spec.non_resource_attributes.as_ref(), &spec_path).map_err(invalid)?;
            if self.kind == Kind::Local {
                let ns = req.namespace.unwrap_or("");
                let meta_ns = body.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
                if (!meta_ns.is_empty() && meta_ns != ns) || a.namespace != ns {
                    return Err(ApiError::BadRequest(format!("spec.resourceAttributes.namespace must match namespace: {ns}")));
                }
                body["metadata"]["namespace"] = ns.into();
            }
            with_status(body, &status_of(self.authz.authorize(&a)))
        })
    }
}

/// The posted review with its status filled in.
fn with_status(mut body: Value, status: &authz::SubjectAccessReviewStatus) -> Result<Value, ApiError> {
    body["status"] = serde_json::to_value(status).map_err(|e| ApiError::Internal(e.to_string()))?;
    if !body.get("metadata").is_some_and(Value::is_object) {
        body["metadata"] = serde_json::json!({});
    }
    Ok(body)
}

impl ComputedCreate for RulesReviews {
    fn gvk(&self) -> Gvk {
        Gvk::new(GROUP, "v1", "SelfSubjectRulesReview")
    }
    fn create<'a>(&'a self, req: CreateRequest<'a>) -> BoxFuture<'a, Result<Value, ApiError>> {
        Box::pin(async move {
            let mut review: authz::SelfSubjectRulesReview = serde_json::from_value(req.body).map_err(bad)?;
            let user = req.user.cloned().ok_or(ApiError::Unauthorized)?;
            let ns = review.spec.namespace.clone().unwrap_or_default();
            if ns.is_empty() {
                return Err(ApiError::BadRequest("no namespace on request".into()));
            }
            let mut rules = self.authz.rbac.rules_for(&user, &ns);
            let node = super::node::node_name(&user).is_some();
            if node {
                rules.extend(super::bootstrap_policy::node_rules());
            }
            let mut status = authz::SubjectRulesReviewStatus { incomplete: node, ..Default::default() };
            for r in rules {
                if r.non_resource_urls.as_ref().is_some_and(|u| !u.is_empty()) {
                    status.non_resource_rules.push(authz::NonResourceRule { verbs: r.verbs, non_resource_urls: r.non_resource_urls });
                } else {
                    status.resource_rules.push(authz::ResourceRule { verbs: r.verbs, api_groups: r.api_groups, resources: r.resources, resource_names: r.resource_names });
                }
            }
            if node {
                status.evaluation_error = Some("node authorizer does not support user rule resolution".into());
            }
            review.status = Some(status);
            to_value(&review, "SelfSubjectRulesReview")
        })
    }
}
