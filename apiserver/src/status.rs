//! The `Status` error every failed request answers with, whatever the Accept header
//! (apimachinery pkg/api/errors): code, reason, message and details as upstream prints them.

use crate::types::FieldCause;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{json, Value};

/// Which object an error is about: `pods "web"` in messages, `details.{group,kind,name}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    pub group: String,
    /// The resource plural (upstream puts the resource in `details.kind`).
    pub resource: String,
    pub name: String,
}

impl Target {
    pub fn new(group: &str, resource: &str, name: &str) -> Self {
        Target { group: group.into(), resource: resource.into(), name: name.into() }
    }

    /// `pods` or `deployments.apps`, as upstream's qualified resource.
    fn qualified(&self) -> String {
        if self.group.is_empty() { self.resource.clone() } else { format!("{}.{}", self.resource, self.group) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{} \"{}\" not found", .0.qualified(), .0.name)]
    NotFound(Target),
    #[error("{} \"{}\" already exists", .0.qualified(), .0.name)]
    AlreadyExists(Target),
    #[error("Operation cannot be fulfilled on {} \"{}\": {message}", .target.qualified(), .target.name)]
    Conflict { target: Target, message: String, causes: Vec<FieldCause> },
    #[error("{kind} \"{name}\" is invalid: {}", summarize(.causes))]
    Invalid { target: Target, kind: String, name: String, causes: Vec<FieldCause> },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    Expired(String),
    /// 410 for a continue token whose revision was compacted, carrying upstream's token to
    /// go on from the latest revision (in the Status' `metadata.continue`).
    #[error("{message}")]
    ExpiredContinue { message: String, continue_token: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("Unauthorized")]
    Unauthorized,
    #[error("the server does not allow this method on the requested resource")]
    MethodNotSupported,
    #[error("the server could not find the requested resource")]
    NotFoundPath,
    #[error("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf")]
    UnsupportedMediaType(String),
    /// 413, with upstream's wording after `Request entity too large: `.
    #[error("Request entity too large: {0}")]
    RequestEntityTooLarge(String),
    #[error("{0}")]
    UnprocessableEntity(String),
    #[error("{0}")]
    ServiceUnavailable(String),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    Timeout(String),
    /// 429, e.g. an eviction that a PodDisruptionBudget forbids for now.
    #[error("{message}")]
    TooManyRequests { message: String, causes: Vec<FieldCause> },
}

fn summarize(causes: &[FieldCause]) -> String {
    if causes.len() == 1 {
        let c = &causes[0];
        return if c.field.is_empty() { c.message.clone() } else { format!("{}: {}", c.field, c.message) };
    }
    let parts: Vec<String> = causes
        .iter()
        .map(|c| if c.field.is_empty() { c.message.clone() } else { format!("{}: {}", c.field, c.message) })
        .collect();
    format!("[{}]", parts.join(", "))
}

impl ApiError {
    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) | ApiError::NotFoundPath => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists(_) | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Invalid { .. } | ApiError::UnprocessableEntity(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Gone(_) | ApiError::Expired(_) | ApiError::ExpiredContinue { .. } => StatusCode::GONE,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::MethodNotSupported => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestEntityTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) | ApiError::NotFoundPath => "NotFound",
            ApiError::AlreadyExists(_) => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } | ApiError::UnprocessableEntity(_) => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Gone(_) => "Gone",
            ApiError::Expired(_) | ApiError::ExpiredContinue { .. } => "Expired",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::MethodNotSupported => "MethodNotAllowed",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::RequestEntityTooLarge(_) => "RequestEntityTooLarge",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
            ApiError::Internal(_) => "InternalError",
            ApiError::Timeout(_) => "Timeout",
            ApiError::TooManyRequests { .. } => "TooManyRequests",
        }
    }

    /// The `Status` object, as JSON.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        let details = match self {
            ApiError::NotFound(t) | ApiError::AlreadyExists(t) => Some(details(t, &[])),
            ApiError::Conflict { target, causes, .. } => Some(details(target, causes)),
            ApiError::TooManyRequests { causes, .. } if !causes.is_empty() => Some(json!({"causes": causes})),
            ApiError::ServiceUnavailable(_) => Some(json!({"retryAfterSeconds": 1})),
            ApiError::Invalid { target, kind, causes, .. } => {
                let mut d = details(target, causes);
                d["kind"] = json!(kind);
                Some(d)
            }
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        if let ApiError::ExpiredContinue { continue_token, .. } = self {
            status["metadata"]["continue"] = json!(continue_token);
        }
        status
    }

    pub fn invalid(target: Target, kind: &str, causes: Vec<FieldCause>) -> Self {
        let name = target.name.clone();
        ApiError::Invalid { target, kind: kind.into(), name, causes }
    }

    pub fn conflict(target: Target) -> Self {
        ApiError::Conflict {
            target,
            message: "the object has been modified; please apply your changes to the latest version and try again".into(),
            causes: vec![],
        }
    }
}

fn details(t: &Target, causes: &[FieldCause]) -> Value {
    let mut d = json!({ "name": t.name, "kind": t.resource });
    if !t.group.is_empty() {
        d["group"] = json!(t.group);
    }
    if !causes.is_empty() {
        d["causes"] = serde_json::to_value(causes).unwrap_or(Value::Null);
    }
    d
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let mut resp = (self.code(), [(http::header::CONTENT_TYPE, "application/json")], body).into_response();
        // A 503 is a refusal before anything happened: say when to come back.
        if matches!(self, ApiError::ServiceUnavailable(_)) {
            resp.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
        }
        // The unread rest of a refused body leaves the connection unusable: tell the client.
        if matches!(self, ApiError::RequestEntityTooLarge(_)) {
            resp.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        }
        resp
    }
}

/// A success Status, e.g. for pods/binding and deletes that leave nothing to return.
pub fn success(details: Option<Value>) -> Value {
    let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"});
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_upstream_wording() {
        let e = ApiError::NotFound(Target::new("", "pods", "nope"));
        let s = e.to_status();
        assert_eq!(s["message"], "pods \"nope\" not found");
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"]["kind"], "pods");
    }

    #[test]
    fn grouped_resource_is_qualified() {
        let e = ApiError::AlreadyExists(Target::new("apps", "deployments", "web"));
        assert_eq!(e.to_string(), "deployments.apps \"web\" already exists");
        assert_eq!(e.to_status()["details"]["group"], "apps");
    }

    #[test]
    fn invalid_lists_causes() {
        let cause = FieldCause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: "spec.containers[0].image".into(),
        };
        let e = ApiError::invalid(Target::new("", "pods", "x"), "Pod", vec![cause]);
        assert_eq!(e.to_string(), "Pod \"x\" is invalid: spec.containers[0].image: Required value");
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["details"]["kind"], "Pod");
        assert_eq!(s["details"]["causes"][0]["field"], "spec.containers[0].image");
    }
}
