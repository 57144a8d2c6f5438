//! Resources answered by computation and never stored (upstream's REST objects that are only
//! Creaters): TokenReview, SelfSubjectReview, serviceaccounts/token and the access reviews.
//! A handler is registered for a (group, resource, subresource); the dispatcher sends a
//! POST there instead of to the Store, and refuses every other verb.

use super::codec::{self, Format};
use crate::auth::UserInfo;
use crate::status::ApiError;
use crate::types::Gvk;
use futures::future::BoxFuture;
use http::StatusCode;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// One create request.
pub struct CreateRequest<'a> {
    pub user: Option<&'a UserInfo>,
    pub namespace: Option<&'a str>,
    /// The parent object's name, for a subresource.
    pub name: Option<&'a str>,
    /// Decoded, with apiVersion and kind checked against `gvk`.
    pub body: Value,
    pub dry_run: bool,
}

pub trait ComputedCreate: Send + Sync {
    /// The kind of the request body and the answer.
    fn gvk(&self) -> Gvk;
    fn create<'a>(&'a self, req: CreateRequest<'a>) -> BoxFuture<'a, Result<Value, ApiError>>;
}

#[derive(Default, Clone)]
pub struct Computed {
    handlers: HashMap<(String, String, String), Arc<dyn ComputedCreate>>,
}

impl Computed {
    /// Serves POST on `group`/`resource` (and `subresource`, or "" for the resource itself).
    pub fn insert(&mut self, group: &str, resource: &str, subresource: &str, handler: Arc<dyn ComputedCreate>) {
        self.handlers.insert((group.into(), resource.into(), subresource.into()), handler);
    }

    pub fn get(&self, group: &str, resource: &str, subresource: Option<&str>) -> Option<Arc<dyn ComputedCreate>> {
        self.handlers.get(&(group.to_string(), resource.to_string(), subresource.unwrap_or("").to_string())).cloned()
    }
}

/// Checks apiVersion and kind of `body` against `gvk` (empty ones are filled in) and decodes
/// it as that kind.
fn check_kind(gvk: &Gvk, body: &mut Value) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::BadRequest("the object provided is not a JSON object".into()));
    }
    let av = gvk.api_version();
    match body.get("apiVersion").and_then(Value::as_str) {
        Some(a) if !a.is_empty() && a != av => {
            return Err(ApiError::BadRequest(format!("the API version in the data ({a}) does not match the expected API version ({av})")));
        }
        _ => body["apiVersion"] = av.clone().into(),
    }
    match body.get("kind").and_then(Value::as_str) {
        Some(k) if !k.is_empty() && k != gvk.kind => {
            return Err(ApiError::BadRequest(format!("the kind in the data ({k}) does not match the expected kind ({})", gvk.kind)));
        }
        _ => body["kind"] = gvk.kind.clone().into(),
    }
    crate::validation::decode::decode(gvk, body)
        .map_err(|e| ApiError::BadRequest(format!("{} in version \"{}\" cannot be handled as a {}: {e}", gvk.kind, gvk.version, gvk.kind)))?;
    Ok(())
}

pub async fn serve(
    handler: Arc<dyn ComputedCreate>,
    req: axum::extract::Request,
    namespace: Option<&str>,
    name: Option<&str>,
    dry_run: bool,
    format: Format,
) -> Result<axum::response::Response, ApiError> {
    if req.method() != http::Method::POST {
        return Err(ApiError::MethodNotSupported);
    }
    let user = req.extensions().get::<UserInfo>().cloned();
    let headers = req.headers().clone();
    let body = super::objects::read_body(req.into_body()).await?;
    let mut value = codec::decode_body(&headers, &body)?;
    let gvk = handler.gvk();
    // The status is the answer; what a client sends there (kubectl: `status: {token: "",
    // expirationTimestamp: null}`) is dropped unread.
    if let Some(m) = value.as_object_mut() {
        m.remove("status");
    }
    check_kind(&gvk, &mut value)?;
    let out = handler.create(CreateRequest { user: user.as_ref(), namespace, name, body: value, dry_run }).await?;
    Ok(codec::object_response(StatusCode::CREATED, &out, format, &[]))
}
