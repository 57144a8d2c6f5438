//! GET pods/{name}/log: the kubelet's containerLogs body, streamed through as text/plain.

use super::locate;
use crate::handlers::{Query, SharedState};
use crate::registry::Store;
use crate::status::ApiError;
use axum::body::Body;
use axum::response::Response;
use futures::TryStreamExt;

const PASSED: &[&str] = &["follow", "tailLines", "timestamps", "previous", "sinceSeconds", "sinceTime", "limitBytes"];

pub async fn log(state: &SharedState, store: &Store, ns: Option<&str>, name: &str, q: &Query) -> Result<Response, ApiError> {
    for k in ["tailLines", "sinceSeconds", "limitBytes"] {
        if let Some(v) = q.int(k)? {
            if v < 0 || (k != "tailLines" && v == 0) {
                return Err(ApiError::invalid(store.target(name), "PodLogOptions", vec![crate::types::FieldCause {
                    reason: "FieldValueInvalid".into(),
                    message: format!("Invalid value: {v}: must be greater than 0"),
                    field: k.into(),
                }]));
            }
        }
    }
    let (container, host) = locate(&state.registry, store, ns, name, q.get("container")).await?;
    let kubelet = state.kubelet.as_ref().ok_or_else(|| ApiError::ServiceUnavailable("no kubelet client configured".into()))?;
    let ns = ns.unwrap_or("default");
    let mut url = reqwest::Url::parse(&format!("https://{host}/containerLogs/{ns}/{name}/{container}"))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in &q.all {
            if PASSED.contains(&k.as_str()) {
                pairs.append_pair(k, v);
            }
        }
    }
    let resp = kubelet.http.get(url).send().await.map_err(|e| {
        let cause = std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default();
        ApiError::ServiceUnavailable(format!("error dialing backend: {e}{cause}"))
    })?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(match status.as_u16() {
            404 => ApiError::BadRequest(text),
            400 => ApiError::BadRequest(text),
            _ => ApiError::Internal(text),
        });
    }
    let stream = resp.bytes_stream().map_err(std::io::Error::other);
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    Ok(r)
}
