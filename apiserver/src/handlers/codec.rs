//! Request bodies (JSON, YAML, protobuf; 415 otherwise) and response negotiation (JSON,
//! protobuf where asked, Tables for `as=Table`).

use crate::protobuf;
use crate::status::ApiError;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::Value;

pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Upstream's 413 for a body over its 3 MiB limit.
pub fn body_too_large() -> ApiError {
    ApiError::RequestEntityTooLarge(format!("limit is {MAX_BODY}"))
}

/// Decodes an object body by Content-Type.
pub fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    decode_object(headers, body).map(|(v, _)| v)
}

/// Like [`decode_body`], also telling whether a JSON body repeated a key (learned in the
/// same parse).
pub fn decode_object(headers: &HeaderMap, body: &[u8]) -> Result<(Value, bool), ApiError> {
    let mut dups = false;
    if body.len() > MAX_BODY {
        return Err(body_too_large());
    }
    let ct = content_type(headers);
    let value: Value = match ct.as_str() {
        "" | "application/json" | "*/*" => {
            let (v, d) = crate::validation::parse_noting_duplicates(body).map_err(|e| {
                ApiError::BadRequest(format!("the object provided is unrecognized (must be of type {}): {e}", "object"))
            })?;
            dups = d;
            v
        }
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            serde_yaml::from_slice(body).map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))?
        }
        protobuf::CONTENT_TYPE => protobuf::decode(body).map_err(|e| ApiError::BadRequest(e.to_string()))?,
        other => return Err(ApiError::UnsupportedMediaType(other.to_string())),
    };
    if !value.is_object() {
        return Err(ApiError::BadRequest("the body of the request is not an object".into()));
    }
    Ok((value, dups))
}

pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// What the client asked the answer to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Protobuf,
    Table,
    /// `as=PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata,
}

/// Picks the first Accept entry we can serve (JSON when nothing matches, as upstream
/// effectively does for kubectl's fallbacks).
pub fn negotiate(headers: &HeaderMap) -> Format {
    let accept = headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let params: Vec<&str> = parts.collect();
        let as_ = params.iter().find_map(|p| p.strip_prefix("as="));
        let g = params.iter().find_map(|p| p.strip_prefix("g="));
        match (media, as_, g) {
            ("application/json", Some("Table"), Some("meta.k8s.io")) => return Format::Table,
            ("application/json", Some("PartialObjectMetadata" | "PartialObjectMetadataList"), Some("meta.k8s.io")) => {
                return Format::Metadata
            }
            ("application/json", Some(_), _) => continue,
            ("application/json" | "*/*" | "application/*" | "application/yaml", None, _) => return Format::Json,
            (protobuf::CONTENT_TYPE, None, _) => return Format::Protobuf,
            _ => continue,
        }
    }
    Format::Json
}

/// An object answer in the negotiated encoding (protobuf falls back to JSON for kinds the
/// protobuf module cannot encode).
pub fn object_response(code: StatusCode, value: &Value, format: Format, warnings: &[String]) -> Response {
    let mut resp = if format == Format::Protobuf {
        match protobuf::encode(value) {
            Ok(bytes) => (code, [(http::header::CONTENT_TYPE, protobuf::CONTENT_TYPE)], bytes).into_response(),
            Err(_) => json_response(code, value),
        }
    } else {
        json_response(code, value)
    };
    add_warnings(&mut resp, warnings);
    resp
}

pub fn json_response(code: StatusCode, value: &Value) -> Response {
    (code, [(http::header::CONTENT_TYPE, "application/json")], serde_json::to_vec(value).unwrap_or_default()).into_response()
}

pub fn raw_json_response(code: StatusCode, body: Bytes) -> Response {
    (code, [(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Upstream's `Warning: 299 - "..."` headers.
pub fn add_warnings(resp: &mut Response, warnings: &[String]) {
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = http::HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            resp.headers_mut().append("Warning", v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(accept: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(http::header::ACCEPT, accept.parse().unwrap());
        m
    }

    #[test]
    fn kubectl_get_asks_for_a_table() {
        let a = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(&h(a)), Format::Table);
        assert_eq!(negotiate(&h("application/vnd.kubernetes.protobuf,application/json")), Format::Protobuf);
        assert_eq!(negotiate(&h("application/json, */*")), Format::Json);
        assert_eq!(negotiate(&HeaderMap::new()), Format::Json);
    }

    #[test]
    fn unknown_content_type_is_415() {
        let mut m = HeaderMap::new();
        m.insert(http::header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(matches!(decode_body(&m, b"{}"), Err(ApiError::UnsupportedMediaType(_))));
        m.insert(http::header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(matches!(decode_body(&m, b"{"), Err(ApiError::BadRequest(_))));
        assert!(matches!(decode_body(&m, b"[1]"), Err(ApiError::BadRequest(_))));
    }
}
