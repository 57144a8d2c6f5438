//! `--static-zone FILE`: the state read once from a file of Services and
//! EndpointSlices (YAML documents, or a `List`), with no apiserver. For
//! benches and tests that need answers without a cluster.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::Deserialize;

use crate::state::ClusterState;

#[derive(Debug, thiserror::Error)]
pub enum StaticZoneError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("document {index}: {message}")]
    Parse { index: usize, message: String },
}

/// Loads every Service and EndpointSlice in `text`; other kinds are skipped.
pub fn load(state: &mut ClusterState, text: &str) -> Result<usize, StaticZoneError> {
    let mut objects = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v = serde_json::Value::deserialize(doc).map_err(|e| StaticZoneError::Parse {
            index,
            message: e.to_string(),
        })?;
        match v.get("items").and_then(|i| i.as_array()) {
            Some(items) => objects.extend(items.iter().cloned().map(|o| (index, o))),
            None if !v.is_null() => objects.push((index, v)),
            None => {}
        }
    }
    let mut n = 0;
    for (index, o) in objects {
        let parse = |e: serde_json::Error| StaticZoneError::Parse {
            index,
            message: e.to_string(),
        };
        match o.get("kind").and_then(|k| k.as_str()) {
            Some("Service") => state.apply_service(&serde_json::from_value::<Service>(o).map_err(parse)?),
            Some("EndpointSlice") => {
                state.apply_slice(&serde_json::from_value::<EndpointSlice>(o).map_err(parse)?)
            }
            _ => continue,
        }
        n += 1;
    }
    Ok(n)
}

/// [`load`] from a file.
pub fn load_file(state: &mut ClusterState, path: &std::path::Path) -> Result<usize, StaticZoneError> {
    let text = std::fs::read_to_string(path).map_err(|source| StaticZoneError::Read {
        path: path.display().to_string(),
        source,
    })?;
    load(state, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_documents_and_lists() {
        let mut st = ClusterState::default();
        let n = load(
            &mut st,
            "kind: Service\nmetadata: {name: a, namespace: x}\nspec: {clusterIP: 10.96.0.5}\n---\n\
             kind: List\nitems:\n- kind: Service\n  metadata: {name: b, namespace: x}\n  spec: {clusterIP: None}\n\
             - kind: ConfigMap\n  metadata: {name: c}\n",
        )
        .unwrap();
        assert_eq!(n, 2);
        assert!(st.service("x", "a").is_some() && st.service("x", "b").is_some());
        assert!(matches!(load(&mut st, "kind: Service\nspec: 5\n"), Err(StaticZoneError::Parse { .. })));
    }
}
