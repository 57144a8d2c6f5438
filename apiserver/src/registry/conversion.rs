//! Versions served by conversion: a row whose objects are stored in another version of the
//! same resource, with a converter each way (upstream stores one version per resource and
//! converts on the way in and out). A request for such a version is converted and answered
//! by the stored version's endpoints, and what comes back is converted to the version asked
//! for: objects, lists and watch events. Validation and defaults are the stored version's.

use crate::handlers::{codec, objects, SharedState};
use crate::patch::PatchType;
use crate::status::ApiError;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http::Method;
use serde_json::Value;

pub struct Conversion {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    /// The version its objects are stored (and served natively) in.
    pub stored_version: &'static str,
    pub to_stored: fn(&Value) -> Value,
    pub from_stored: fn(&Value) -> Value,
}

pub static CONVERSIONS: &[Conversion] = &[Conversion {
    group: "autoscaling",
    version: "v1",
    plural: "horizontalpodautoscalers",
    kind: "HorizontalPodAutoscaler",
    stored_version: "v2",
    to_stored: crate::kinds::autoscaling_v1::to_v2,
    from_stored: crate::kinds::autoscaling_v1::from_v2,
}];

pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static Conversion> {
    CONVERSIONS.iter().find(|c| c.group == group && c.version == version && c.plural == plural)
}

/// True for a row that only fronts another version (it has no storage of its own to serve).
pub fn converted(group: &str, version: &str, plural: &str) -> bool {
    lookup(group, version, plural).is_some()
}

impl Conversion {
    fn prefix(&self, version: &str) -> String {
        format!("/apis/{}/{version}/", self.group)
    }

    /// An object, a list or a watch event from the stored version, in this version.
    fn out(&self, v: &Value) -> Value {
        let stored_kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
        if stored_kind == self.kind {
            return (self.from_stored)(v);
        }
        if stored_kind == format!("{}List", self.kind) {
            let mut list = v.clone();
            list["apiVersion"] = Value::String(format!("{}/{}", self.group, self.version));
            if let Some(items) = list.get_mut("items").and_then(Value::as_array_mut) {
                for item in items.iter_mut() {
                    let mut with_kind = item.clone();
                    with_kind["kind"] = Value::String(self.kind.into());
                    with_kind["apiVersion"] = Value::String(format!("{}/{}", self.group, self.stored_version));
                    let mut converted = (self.from_stored)(&with_kind);
                    if let Some(m) = converted.as_object_mut() {
                        m.remove("kind");
                        m.remove("apiVersion");
                    }
                    *item = converted;
                }
            }
            return list;
        }
        if v.get("type").is_some() && v.get("object").is_some() {
            let mut ev = v.clone();
            ev["object"] = self.out(&v["object"]);
            return ev;
        }
        v.clone()
    }
}

/// A sub-request of `parts` to the stored version's path, with `body`.
fn stored_request(c: &Conversion, parts: &http::request::Parts, method: Method, body: Bytes, content_type: Option<&str>) -> Result<Request<Body>, ApiError> {
    let path_q = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
    let rewritten = path_q.replacen(&c.prefix(c.version), &c.prefix(c.stored_version), 1);
    let mut b = http::Request::builder().method(method).uri(rewritten);
    for (k, v) in &parts.headers {
        if k == http::header::CONTENT_LENGTH || k == http::header::CONTENT_TYPE {
            continue;
        }
        if k == http::header::ACCEPT {
            // The converter reads JSON; Tables pass through unchanged.
            let a = v.to_str().unwrap_or("").replace("application/vnd.kubernetes.protobuf", "application/json");
            b = b.header(k, a);
            continue;
        }
        b = b.header(k, v);
    }
    if let Some(ct) = content_type {
        b = b.header(http::header::CONTENT_TYPE, ct);
    }
    let mut req = b.body(Body::from(body)).map_err(|e| ApiError::Internal(e.to_string()))?;
    *req.extensions_mut() = parts.extensions.clone();
    Ok(req)
}

/// The stored version's answer, converted back.
async fn converted_response(c: &'static Conversion, resp: Response, watch: bool) -> Response {
    let (parts, body) = resp.into_parts();
    let is_json = parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("application/json"));
    if !is_json {
        return Response::from_parts(parts, body);
    }
    if watch {
        // One event per line: convert each as it comes.
        let mut buf = Vec::new();
        let stream = body.into_data_stream().flat_map(move |chunk| {
            let mut out = Vec::new();
            if let Ok(chunk) = chunk {
                buf.extend_from_slice(&chunk);
                while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=i).collect();
                    let converted = match serde_json::from_slice::<Value>(&line) {
                        Ok(v) => {
                            let mut s = serde_json::to_vec(&c.out(&v)).unwrap_or_default();
                            s.push(b'\n');
                            s
                        }
                        Err(_) => line,
                    };
                    out.push(Ok::<_, std::io::Error>(Bytes::from(converted)));
                }
            }
            futures::stream::iter(out)
        });
        let mut parts = parts;
        parts.headers.remove(http::header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::from_stream(stream));
    }
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::Internal("reading the stored version's answer".into()).into_response();
    };
    let mut parts = parts;
    parts.headers.remove(http::header::CONTENT_LENGTH);
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) => Response::from_parts(parts, Body::from(serde_json::to_vec(&c.out(&v)).unwrap_or_default())),
        Err(_) => Response::from_parts(parts, Body::from(bytes)),
    }
}

/// Serves a request for a converted version.
pub async fn serve(state: SharedState, c: &'static Conversion, req: Request<Body>) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, codec::MAX_BODY).await.map_err(|_| codec::body_too_large())?;
    let watch = parts.uri.query().is_some_and(|q| q.split('&').any(|kv| matches!(kv, "watch=true" | "watch=1" | "watch")));
    let own_api_version = format!("{}/{}", c.group, c.version);
    let to_stored = |v: &Value| -> Result<Value, ApiError> {
        if let Some(av) = v.get("apiVersion").and_then(Value::as_str) {
            if av != own_api_version {
                return Err(ApiError::BadRequest(format!("the API version in the data ({av}) does not match the expected API version ({own_api_version})")));
            }
        }
        Ok((c.to_stored)(v))
    };
    let method = parts.method.clone();
    let resp = match method {
        Method::POST | Method::PUT => {
            let obj = codec::decode_body(&parts.headers, &body)?;
            let stored = serde_json::to_vec(&to_stored(&obj)?).unwrap_or_default();
            Box::pin(objects::dispatch(state, stored_request(c, &parts, method, stored.into(), Some("application/json"))?)).await?
        }
        Method::PATCH => {
            let pt = PatchType::from_content_type(&codec::content_type(&parts.headers)).ok_or_else(|| ApiError::UnsupportedMediaType(codec::content_type(&parts.headers)))?;
            if pt == PatchType::Apply {
                let applied: Value = serde_yaml::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))?;
                let stored = serde_json::to_vec(&to_stored(&applied)?).unwrap_or_default();
                Box::pin(objects::dispatch(state, stored_request(c, &parts, method, stored.into(), Some("application/apply-patch+yaml"))?)).await?
            } else {
                patch(state, c, &parts, &body, pt).await?
            }
        }
        _ => Box::pin(objects::dispatch(state, stored_request(c, &parts, method, body, None)?)).await?,
    };
    Ok(converted_response(c, resp, watch).await)
}

/// A patch in this version: the current object is converted, patched here, converted back and
/// written with its resourceVersion as a precondition (retried on a conflict).
async fn patch(state: SharedState, c: &'static Conversion, parts: &http::request::Parts, body: &[u8], pt: PatchType) -> Result<Response, ApiError> {
    let gvk = crate::types::Gvk::new(c.group, c.version, c.kind);
    let mut last = None;
    for _ in 0..5 {
        let mut get_parts = parts.clone();
        get_parts.uri = parts.uri.path().parse().map_err(|e: http::uri::InvalidUri| ApiError::Internal(e.to_string()))?;
        let current = Box::pin(objects::dispatch(state.clone(), stored_request(c, &get_parts, Method::GET, Bytes::new(), None)?)).await?;
        let bytes = axum::body::to_bytes(current.into_body(), usize::MAX).await.map_err(|e| ApiError::Internal(e.to_string()))?;
        let stored: Value = serde_json::from_slice(&bytes).map_err(|e| ApiError::Internal(e.to_string()))?;
        let rv = stored.pointer("/metadata/resourceVersion").cloned();
        let mine = (c.from_stored)(&stored);
        let patched = crate::patch::apply_patch(&gvk, &mine, body, pt).map_err(|e| ApiError::UnprocessableEntity(e.to_string()))?;
        let mut back = (c.to_stored)(&patched);
        if let Some(rv) = rv {
            back["metadata"]["resourceVersion"] = rv;
        }
        let put = stored_request(c, parts, Method::PUT, serde_json::to_vec(&back).unwrap_or_default().into(), Some("application/json"))?;
        match Box::pin(objects::dispatch(state.clone(), put)).await {
            Err(ApiError::Conflict { target, message, causes }) => last = Some(ApiError::Conflict { target, message, causes }),
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| ApiError::Internal("patch retries exhausted".into())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_and_events_are_converted_item_by_item() {
        let c = lookup("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
        let item = json!({"metadata": {"name": "a"}, "spec": {"maxReplicas": 2, "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}});
        let list = json!({"kind": "HorizontalPodAutoscalerList", "apiVersion": "autoscaling/v2", "items": [item.clone()]});
        let out = c.out(&list);
        assert_eq!(out["apiVersion"], "autoscaling/v1");
        assert_eq!(out["items"][0]["spec"]["targetCPUUtilizationPercentage"], 70);
        assert!(out["items"][0].get("kind").is_none());
        let mut obj = item;
        obj["kind"] = json!("HorizontalPodAutoscaler");
        let ev = c.out(&json!({"type": "ADDED", "object": obj}));
        assert_eq!(ev["object"]["apiVersion"], "autoscaling/v1");
        let status = json!({"kind": "Status", "status": "Failure"});
        assert_eq!(c.out(&status), status);
    }
}
