//! `GET /openapi/v2`: the whole API as one Swagger 2.0 document, as JSON or as gnostic's
//! OpenAPIv2 protobuf (what client-go's `OpenAPISchema` asks for: kubectl before 1.27's
//! OpenAPI v3 switch validates `apply -f` and runs `explain` against it).
//!
//! The document is derived from the v3 group-version documents (same paths, same schemas),
//! built on the first request and kept only as its two encodings and their ETag: the
//! parsed document is large and never needed again.

use super::paths::group_version_document;
use super::schemas::definitions;
use super::v2_proto;
use crate::types::ResourceInfo;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex, OnceLock};

/// The protobuf media type (kube-openapi handler.go; the `.v1.0` spelling is the older one).
pub const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
const PROTOBUF_OLD: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// One build of the document, serialized.
pub struct Served {
    /// A strong ETag, quoted, as upstream sends it.
    pub etag: String,
    pub json: Bytes,
    pub protobuf: Bytes,
}

/// Which encoding an `Accept` header asks for.
pub fn wants_protobuf(accept: &str) -> bool {
    accept.split(',').any(|t| {
        let t = t.split(';').next().unwrap_or("").trim();
        t == PROTOBUF || t == PROTOBUF_OLD
    })
}

type Cache = Mutex<Option<(String, Arc<Served>)>>;

/// The document for `resources`, built once per distinct resource set (custom resources
/// change it) and shared.
pub fn served(resources: &[ResourceInfo]) -> Arc<Served> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key: String = resources.iter().map(|r| format!("{}/{}/{};", r.group, r.version, r.plural)).collect();
    let cache = CACHE.get_or_init(Default::default);
    if let Some((k, s)) = cache.lock().ok().and_then(|c| c.clone()) {
        if k == key {
            return s;
        }
    }
    let doc = document(resources);
    let json = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
    let protobuf = Bytes::from(v2_proto::encode(&doc));
    drop(doc);
    let etag = etag_of(&json);
    let served = Arc::new(Served { etag, json, protobuf });
    if let Ok(mut c) = cache.lock() {
        *c = Some((key, served.clone()));
    }
    served
}

/// 128 bits of SipHash over the JSON: the tag only has to change when the document does.
fn etag_of(json: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut out = String::from("\"");
    for seed in [0u8, 1] {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        seed.hash(&mut h);
        json.hash(&mut h);
        out.push_str(&format!("{:016X}", h.finish()));
    }
    out.push('"');
    out
}

/// `GET /openapi/v2`: protobuf or JSON by `Accept`, 304 when `If-None-Match` names the
/// current ETag.
pub fn respond(resources: &[ResourceInfo], headers: &http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    let served = served(resources);
    let accept = headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let protobuf = wants_protobuf(accept);
    // Answered in the `.v1.0` spelling: Go's mime parser, which client-go runs on the reply,
    // refuses the `@`.
    let (ct, body) = if protobuf { (PROTOBUF_OLD, served.protobuf.clone()) } else { ("application/json", served.json.clone()) };
    let matches = headers
        .get_all(http::header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == served.etag || t.trim() == "*");
    let common = [(http::header::ETAG, served.etag.clone()), (http::header::VARY, "Accept".to_string())];
    if matches {
        return (http::StatusCode::NOT_MODIFIED, common).into_response();
    }
    (http::StatusCode::OK, common, [(http::header::CONTENT_TYPE, ct)], body).into_response()
}

/// The Swagger 2.0 document of every served resource.
pub fn document(resources: &[ResourceInfo]) -> Value {
    let mut gvs: Vec<(&str, &str)> = Vec::new();
    for r in resources {
        if !gvs.contains(&(r.group, r.version)) {
            gvs.push((r.group, r.version));
        }
    }
    let mut paths = Map::new();
    let mut defs = Map::new();
    for (g, v) in gvs {
        let in_gv: Vec<&ResourceInfo> = resources.iter().filter(|r| r.group == g && r.version == v).collect();
        let v3 = group_version_document(&in_gv);
        if let Some(p) = v3.get("paths").and_then(Value::as_object) {
            for (path, item) in p {
                paths.insert(path.clone(), path_item(item));
            }
        }
        // The Patch body definition lives only in the per-group documents.
        if let Some(s) = v3.pointer("/components/schemas").and_then(Value::as_object) {
            for (name, schema) in s {
                if !defs.contains_key(name) {
                    defs.insert(name.clone(), schema_v2(schema));
                }
            }
        }
    }
    for (name, schema) in &definitions().schemas {
        if !defs.contains_key(name) {
            defs.insert(name.clone(), schema_v2(schema));
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "definitions": defs,
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header", "description": "Bearer Token authentication"}},
        "security": [{"BearerToken": []}],
    })
}

/// A v3 schema as v2 writes it: refs into `#/definitions/`, the one-element `allOf` that
/// v3 needs around a described `$ref` unwrapped (v2 readers take `$ref` with siblings), and
/// v3's `nullable` dropped.
pub fn schema_v2(v: &Value) -> Value {
    match v {
        Value::Object(obj) => {
            let mut out = Map::new();
            for (k, child) in obj {
                match k.as_str() {
                    "$ref" => {
                        let r = child.as_str().unwrap_or("").replace("#/components/schemas/", "#/definitions/");
                        out.insert(k.clone(), Value::String(r));
                    }
                    "allOf" if child.as_array().is_some_and(|a| a.len() == 1 && a[0].get("$ref").is_some()) => {
                        if let Value::Object(inner) = schema_v2(&child[0]) {
                            out.extend(inner);
                        }
                    }
                    "nullable" => {}
                    // Maps of schemas: the keys are names, not keywords.
                    "properties" | "definitions" => {
                        let m = child.as_object().map(|m| m.iter().map(|(n, s)| (n.clone(), schema_v2(s))).collect()).unwrap_or_default();
                        out.insert(k.clone(), Value::Object(m));
                    }
                    _ if k.starts_with("x-") => {
                        out.insert(k.clone(), child.clone());
                    }
                    _ => {
                        out.insert(k.clone(), schema_v2(child));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(schema_v2).collect()),
        other => other.clone(),
    }
}

fn path_item(item: &Value) -> Value {
    let mut out = Map::new();
    if let Some(obj) = item.as_object() {
        for (k, v) in obj {
            match k.as_str() {
                "get" | "put" | "post" | "delete" | "patch" | "head" | "options" => {
                    out.insert(k.clone(), operation(v));
                }
                "parameters" => {
                    out.insert(k.clone(), Value::Array(v.as_array().map(|a| a.iter().map(parameter).collect()).unwrap_or_default()));
                }
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Value::Object(out)
}

/// A v3 parameter: the schema's type moves up, as v2 has no parameter schemas but the body's.
fn parameter(p: &Value) -> Value {
    let mut out = Map::new();
    for k in ["name", "in", "description", "required"] {
        if let Some(v) = p.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(s) = p.get("schema").and_then(Value::as_object) {
        for (k, v) in s {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn operation(op: &Value) -> Value {
    let mut out = Map::new();
    let mut params: Vec<Value> = op.get("parameters").and_then(Value::as_array).map(|a| a.iter().map(parameter).collect()).unwrap_or_default();
    if let Some(body) = op.get("requestBody") {
        let content = body.get("content").and_then(Value::as_object);
        let consumes: Vec<Value> = content.map(|c| c.keys().map(|k| json!(k)).collect()).unwrap_or_default();
        let schema = content.and_then(|c| c.values().next()).and_then(|m| m.get("schema")).map(schema_v2).unwrap_or(json!({"type": "object"}));
        params.insert(0, json!({"name": "body", "in": "body", "required": true, "schema": schema}));
        out.insert("consumes".into(), Value::Array(consumes));
    }
    let mut produces: Vec<String> = Vec::new();
    let mut responses = Map::new();
    if let Some(rs) = op.get("responses").and_then(Value::as_object) {
        for (code, r) in rs {
            let mut resp = Map::new();
            resp.insert("description".into(), r.get("description").cloned().unwrap_or(json!("")));
            if let Some(content) = r.get("content").and_then(Value::as_object) {
                for t in content.keys() {
                    if !produces.contains(t) {
                        produces.push(t.clone());
                    }
                }
                if let Some(s) = content.values().next().and_then(|m| m.get("schema")) {
                    resp.insert("schema".into(), schema_v2(s));
                }
            }
            responses.insert(code.clone(), Value::Object(resp));
        }
    }
    for (k, v) in op.as_object().into_iter().flatten() {
        match k.as_str() {
            "parameters" | "requestBody" | "responses" => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if !produces.is_empty() {
        out.insert("produces".into(), json!(produces));
    }
    out.insert("schemes".into(), json!(["https"]));
    out.insert("parameters".into(), Value::Array(params));
    out.insert("responses".into(), Value::Object(responses));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_point_into_definitions_and_described_refs_unwrap() {
        let v3 = json!({"properties": {"metadata": {"description": "d", "allOf": [{"$ref": "#/components/schemas/X"}]}, "spec": {"$ref": "#/components/schemas/Y"}}});
        let v2 = schema_v2(&v3);
        assert_eq!(v2["properties"]["metadata"], json!({"description": "d", "$ref": "#/definitions/X"}));
        assert_eq!(v2["properties"]["spec"], json!({"$ref": "#/definitions/Y"}));
    }

    #[test]
    fn operations_carry_a_body_parameter_and_query_types() {
        let op = json!({
            "operationId": "patchPod",
            "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": "Pod"},
            "parameters": [{"name": "fieldValidation", "in": "query", "description": "f", "schema": {"type": "string", "uniqueItems": true}}],
            "requestBody": {"content": {"application/merge-patch+json": {"schema": {"$ref": "#/components/schemas/P"}}}, "required": true},
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pod"}}}}},
        });
        let v2 = operation(&op);
        assert_eq!(v2["parameters"][0], json!({"name": "body", "in": "body", "required": true, "schema": {"$ref": "#/definitions/P"}}));
        assert_eq!(v2["parameters"][1]["type"], "string");
        assert_eq!(v2["consumes"], json!(["application/merge-patch+json"]));
        assert_eq!(v2["responses"]["200"]["schema"]["$ref"], "#/definitions/Pod");
        assert_eq!(v2["x-kubernetes-group-version-kind"]["kind"], "Pod");
    }

    #[test]
    fn accept_picks_the_encoding() {
        assert!(wants_protobuf("application/com.github.proto-openapi.spec.v2@v1.0+protobuf"));
        assert!(wants_protobuf("application/json;q=0.9, application/com.github.proto-openapi.spec.v2.v1.0+protobuf"));
        assert!(!wants_protobuf("application/json"));
    }
}
