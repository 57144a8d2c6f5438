//! OpenAPI v3 documents (and the v2 document, `v2`) generated from k8s-openapi's schemars schemas.
//!
//! kubectl needs them to validate `apply -f`/`create -f` (finding B of kubectl-wire.md), to find
//! which query parameters a server supports (`fieldValidation` on PATCH ops), to compute
//! client-side apply patches (`x-kubernetes-patch-merge-key`) and for `kubectl explain`.

pub mod paths;
pub mod schemas;
pub mod v2;
pub mod v2_proto;

use crate::types::ResourceInfo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

/// One generated document and the hash that its `serverRelativeURL` carries.
struct CachedDocument {
    document: Value,
    hash: String,
}

type Cache = Mutex<HashMap<String, Arc<CachedDocument>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// `api/v1` or `apis/<group>/<version>`.
pub fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The document for one group-version path, generated once per path and then served from memory.
fn cached(resources: &[ResourceInfo], path: &str) -> Option<Arc<CachedDocument>> {
    if let Some(doc) = cache().lock().ok()?.get(path) {
        return Some(doc.clone());
    }
    let in_gv: Vec<&ResourceInfo> = resources
        .iter()
        .filter(|r| group_version_path(r.group, r.version) == path)
        .collect();
    if in_gv.is_empty() {
        return None;
    }
    let document = paths::group_version_document(&in_gv);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    document.to_string().hash(&mut hasher);
    let hash = format!("{:016X}", hasher.finish());
    let doc = Arc::new(CachedDocument { document, hash });
    if let Ok(mut cache) = cache().lock() {
        cache.insert(path.to_string(), doc.clone());
    }
    Some(doc)
}

/// `GET /openapi/v3`: `{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=..."}, ...}}`.
pub fn v3_index(resources: &[ResourceInfo]) -> Value {
    let mut gv_paths: Vec<String> = resources
        .iter()
        .map(|r| group_version_path(r.group, r.version))
        .collect();
    gv_paths.sort();
    gv_paths.dedup();
    let mut out = serde_json::Map::new();
    for path in gv_paths {
        if let Some(doc) = cached(resources, &path) {
            let url = format!("/openapi/v3/{path}?hash={}", doc.hash);
            out.insert(path, json!({ "serverRelativeURL": url }));
        }
    }
    json!({ "paths": out })
}

/// `GET /openapi/v3/{api/v1 | apis/<group>/<version>}`; None for an unknown group-version.
pub fn v3_group_version(resources: &[ResourceInfo], path: &str) -> Option<Value> {
    let path = path.trim_matches('/');
    let path = path.strip_prefix("openapi/v3/").unwrap_or(path);
    cached(resources, path).map(|d| d.document.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources() -> Vec<ResourceInfo> {
        vec![
            ResourceInfo {
                group: "",
                version: "v1",
                kind: "Pod",
                plural: "pods",
                singular: "pod",
                namespaced: true,
                subresources: &["status", "binding"],
                short_names: &["po"],
                categories: &["all"],
            },
            ResourceInfo {
                group: "",
                version: "v1",
                kind: "Namespace",
                plural: "namespaces",
                singular: "namespace",
                namespaced: false,
                subresources: &["status", "finalize"],
                short_names: &["ns"],
                categories: &[],
            },
            ResourceInfo {
                group: "apps",
                version: "v1",
                kind: "Deployment",
                plural: "deployments",
                singular: "deployment",
                namespaced: true,
                subresources: &["status", "scale"],
                short_names: &["deploy"],
                categories: &["all"],
            },
        ]
    }

    #[test]
    fn index_lists_each_group_version_with_a_stable_hash() {
        let index = v3_index(&resources());
        let url = index["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/api/v1?hash="));
        assert!(index["paths"]["apis/apps/v1"].is_object());
        assert_eq!(v3_index(&resources()), index);
    }

    #[test]
    fn core_document_has_pod_paths_and_schemas() {
        let doc = v3_group_version(&resources(), "api/v1").unwrap();
        let item = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"];
        let patch = &item["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Pod");
        assert!(
            patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_object()
        );
        let params: Vec<&str> = patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(params.contains(&"fieldValidation"));
        assert!(item["put"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"));
        let pod = &doc["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"][0]["version"], "v1");
        let containers =
            &doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert!(
            doc["components"]["schemas"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]
                .is_object()
        );
        assert!(doc["paths"]["/api/v1/nodes"].is_null());
        assert!(doc["paths"]["/api/v1/namespaces/{name}"]["get"].is_object());
    }

    #[test]
    fn every_ref_in_a_document_resolves() {
        let doc = v3_group_version(&resources(), "apis/apps/v1").unwrap();
        let text = doc.to_string();
        for piece in text.split("\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "dangling ref {name}"
            );
        }
        let scale =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["get"];
        assert_eq!(scale["x-kubernetes-group-version-kind"]["kind"], "Scale");
    }

    #[test]
    fn unknown_group_version_is_none() {
        assert!(v3_group_version(&resources(), "apis/nope/v1").is_none());
    }
}
