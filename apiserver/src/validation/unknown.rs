//! Unknown-field detection for `fieldValidation=Strict|Warn`: the object walked against its
//! kind's schema.

use crate::openapi::schemas::{definitions, Definitions};
use crate::types::Gvk;
use serde_json::Value;

/// Paths like `.spec.foo` or `.spec.containers[0].bogus` of fields the schema does not declare.
pub fn unknown_fields(gvk: &Gvk, obj: &Value) -> Vec<String> {
    let defs = definitions();
    let Some(schema) = defs.root_for(gvk).and_then(|n| defs.schemas.get(n)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(obj, schema, defs, &mut String::new(), &mut out, 0);
    out
}

fn walk(
    v: &Value,
    schema: &'static Value,
    defs: &'static Definitions,
    path: &mut String,
    out: &mut Vec<String>,
    depth: usize,
) {
    if depth > 64 || defs.is_free_form(schema) {
        return;
    }
    let schema = defs.resolve(schema);
    match v {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                match (props.and_then(|p| p.get(key)), additional) {
                    (Some(s), _) => walk(child, s, defs, path, out, depth + 1),
                    (None, Some(s)) => walk(child, s, defs, path, out, depth + 1),
                    (None, None) if props.is_some() => out.push(path.clone()),
                    (None, None) => {}
                }
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    walk(item, item_schema, defs, path, out, depth + 1);
                    path.truncate(len);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_unknown_fields_with_upstream_paths() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"any": "ok"}, "bogus": 1},
                         "spec": {"foo": 1, "containers": [{"name": "c", "image": "i", "imagee": "x",
                                  "resources": {"limits": {"cpu": "1"}}}]}});
        let got = unknown_fields(&Gvk::new("", "v1", "Pod"), &pod);
        assert_eq!(
            got,
            [".metadata.bogus", ".spec.foo", ".spec.containers[0].imagee"]
        );
    }

    #[test]
    fn free_form_fields_and_unknown_kinds_pass() {
        let rs = json!({"metadata": {"managedFields": [{"fieldsV1": {"f:x": {}}}]}});
        assert!(unknown_fields(&Gvk::new("apps", "v1", "ReplicaSet"), &rs).is_empty());
        assert!(unknown_fields(&Gvk::new("x", "v1", "Y"), &json!({"a": 1})).is_empty());
    }
}
