//! The example manifests in `manifests/`.

use std::path::PathBuf;

/// `<repo>/manifests/<name>`.
pub fn path(name: &str) -> PathBuf {
    testkit::repo_root().join("manifests").join(name)
}

/// Every YAML document in a manifest file, as JSON values.
pub fn documents(name: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path(name))
        .unwrap_or_else(|e| panic!("reading manifests/{name}: {e}"));
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: serde_json::Value = serde::Deserialize::deserialize(doc)
            .unwrap_or_else(|e| panic!("manifests/{name} is not valid YAML: {e}"));
        if !v.is_null() {
            docs.push(v);
        }
    }
    docs
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};

    /// Each document must deserialize into its k8s-openapi type, and
    /// serialize back without losing a field (a typo would be dropped).
    fn check<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &serde_json::Value) {
        let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}: {doc}"));
        let back = serde_json::to_value(&typed).unwrap();
        assert_subset(doc, &back, "");
    }

    fn assert_subset(want: &serde_json::Value, got: &serde_json::Value, at: &str) {
        match (want, got) {
            (serde_json::Value::Object(w), serde_json::Value::Object(g)) => {
                for (k, v) in w {
                    let gv = g
                        .get(k)
                        .unwrap_or_else(|| panic!("field {at}.{k} is not part of the API type"));
                    assert_subset(v, gv, &format!("{at}.{k}"));
                }
            }
            (serde_json::Value::Array(w), serde_json::Value::Array(g)) => {
                assert_eq!(w.len(), g.len(), "{at}");
                for (i, (a, b)) in w.iter().zip(g).enumerate() {
                    assert_subset(a, b, &format!("{at}[{i}]"));
                }
            }
            // Quantities and ints may change representation; the type checked them.
            _ => {}
        }
    }

    #[test]
    fn every_example_manifest_is_a_valid_api_object() {
        let files = [
            "pod.yaml",
            "deployment-web.yaml",
            "job-pod.yaml",
            "pod-full.yaml",
            "namespace-configmap.yaml",
        ];
        for f in files {
            let docs = documents(f);
            assert!(!docs.is_empty(), "{f} is empty");
            for d in &docs {
                match (d["apiVersion"].as_str(), d["kind"].as_str()) {
                    (Some("v1"), Some("Pod")) => check::<Pod>(d),
                    (Some("apps/v1"), Some("Deployment")) => check::<Deployment>(d),
                    (Some("v1"), Some("Namespace")) => check::<Namespace>(d),
                    (Some("v1"), Some("ConfigMap")) => check::<ConfigMap>(d),
                    other => panic!("{f}: unexpected kind {other:?}"),
                }
            }
        }
    }
}
