//! Strategic merge patch (apimachinery `strategicpatch`): a merge patch whose lists merge by the
//! field's patchMergeKey, with the directives `$patch`, `$setElementOrder/<list>`, `$retainKeys`
//! and `$deleteFromPrimitiveList/<list>`.

use super::PatchError;
use crate::openapi::schemas::{definitions, Definitions};
use serde_json::{Map, Value};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

/// Applies `patch` to `original`, where `schema` is the object's top-level schema (None for
/// kinds without one: their lists are then replaced, as in a JSON merge patch).
pub fn apply(
    original: &Value,
    patch: &Value,
    schema: Option<&'static Value>,
) -> Result<Value, PatchError> {
    let patch = patch.as_object().ok_or_else(|| {
        PatchError::Malformed(
            "json: cannot unmarshal non-object into Go value of type map[string]interface {}"
                .into(),
        )
    })?;
    let mut out = original.as_object().cloned().unwrap_or_default();
    merge_map(&mut out, patch, schema, definitions(), 0)?;
    Ok(Value::Object(out))
}

const MAX_DEPTH: usize = 128;

fn merge_map(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    schema: Option<&'static Value>,
    defs: &'static Definitions,
    depth: usize,
) -> Result<(), PatchError> {
    if depth > MAX_DEPTH {
        return Err(PatchError::Malformed("patch nests too deeply".into()));
    }
    if let Some(directive) = patch.get(PATCH) {
        match directive.as_str() {
            Some("replace") => {
                *original = strip_directives(patch);
                return Ok(());
            }
            Some("delete") => {
                original.clear();
                return Ok(());
            }
            Some("merge") => {}
            _ => {
                return Err(PatchError::Malformed(format!(
                    "unknown patch type: {directive} in map"
                )))
            }
        }
    }
    if let Some(keys) = patch.get(RETAIN_KEYS) {
        let keys = keys
            .as_array()
            .ok_or_else(|| PatchError::Malformed("$retainKeys must be a list of strings".into()))?;
        let keep: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
        if keep.len() != keys.len() {
            return Err(PatchError::Malformed(
                "$retainKeys must be a list of strings".into(),
            ));
        }
        original.retain(|k, _| keep.contains(&k.as_str()));
    }
    // `$setElementOrder` interleaves server-only items by their original positions.
    let server_orders: Vec<(String, Vec<Value>)> = patch
        .keys()
        .filter_map(|k| k.strip_prefix(SET_ORDER))
        .map(|list| {
            let items = original
                .get(list)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            (list.to_string(), items)
        })
        .collect();
    for (key, value) in patch {
        if let Some(list) = key.strip_prefix(DELETE_PRIMITIVE) {
            let remove = value
                .as_array()
                .ok_or_else(|| PatchError::Malformed(format!("{key} must be a list")))?;
            if let Some(Value::Array(items)) = original.get_mut(list) {
                items.retain(|item| !remove.contains(item));
            }
        }
    }
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        let child_schema = schema.and_then(|s| defs.child(s, key));
        if value.is_null() {
            original.remove(key);
            continue;
        }
        match (original.get_mut(key), value) {
            (Some(Value::Object(orig)), Value::Object(p)) => {
                let free = child_schema.is_some_and(|s| defs.is_free_form(s));
                if free {
                    // Opaque JSON (RawExtension, FieldsV1) merges like a JSON merge patch.
                    let mut merged = Value::Object(orig.clone());
                    json_patch::merge(&mut merged, value);
                    original.insert(key.clone(), merged);
                } else {
                    merge_map(orig, p, child_schema, defs, depth + 1)?;
                }
            }
            (Some(Value::Array(orig)), Value::Array(p)) => {
                let meta = schema.and_then(|s| defs.field_patch_meta(s, key));
                let elem = child_schema.and_then(|s| defs.element(s));
                let merged = match meta {
                    Some(meta) if meta.merges() => {
                        merge_list(orig, p, meta.merge_key, elem, defs, depth + 1)?
                    }
                    _ => replace_list(p)?,
                };
                *orig = merged;
            }
            (_, Value::Array(p)) => {
                let merged = replace_list(p)?;
                original.insert(key.clone(), Value::Array(merged));
            }
            (_, Value::Object(p)) => {
                if p.get(PATCH).and_then(Value::as_str) == Some("delete") {
                    original.remove(key);
                } else {
                    original.insert(key.clone(), strip_value(value));
                }
            }
            (_, v) => {
                original.insert(key.clone(), v.clone());
            }
        }
    }
    for (key, order) in patch {
        let Some(list) = key.strip_prefix(SET_ORDER) else {
            continue;
        };
        let order = order
            .as_array()
            .ok_or_else(|| PatchError::Malformed(format!("{key} must be a list")))?;
        let merge_key = schema
            .and_then(|s| defs.field_patch_meta(s, list))
            .and_then(|m| m.merge_key);
        let server = server_orders
            .iter()
            .find(|(l, _)| l == list)
            .map(|(_, items)| items.as_slice())
            .unwrap_or(&[]);
        if let Some(Value::Array(items)) = original.get_mut(list) {
            reorder(items, order, server, merge_key);
        }
    }
    Ok(())
}

/// A list without a merge strategy is replaced; a `{"$patch": "replace"}` element is dropped.
fn replace_list(patch: &[Value]) -> Result<Vec<Value>, PatchError> {
    Ok(patch
        .iter()
        .filter(|v| !is_directive_element(v))
        .map(strip_value)
        .collect())
}

fn is_directive_element(v: &Value) -> bool {
    v.as_object().is_some_and(|o| o.contains_key(PATCH))
}

fn merge_list(
    original: &[Value],
    patch: &[Value],
    merge_key: Option<&str>,
    elem_schema: Option<&'static Value>,
    defs: &'static Definitions,
    depth: usize,
) -> Result<Vec<Value>, PatchError> {
    let replace = patch
        .iter()
        .any(|v| v.get(PATCH).and_then(Value::as_str) == Some("replace"));
    if replace {
        return replace_list(patch);
    }
    let mut out: Vec<Value> = original.to_vec();
    let Some(key) = merge_key else {
        // A primitive list with the merge strategy is a set union that keeps the original order.
        for item in patch {
            if is_directive_element(item) {
                continue;
            }
            if !out.contains(item) {
                out.push(item.clone());
            }
        }
        return Ok(out);
    };
    for item in patch {
        let Some(obj) = item.as_object() else {
            return Err(PatchError::Malformed(format!(
                "the list item {item} is not a map, but the merge key {key} needs one"
            )));
        };
        let id = obj.get(key).ok_or_else(|| {
            PatchError::NotApplicable(format!(
                "map: {item} does not contain declared merge key: {key}"
            ))
        })?;
        let pos = out.iter().position(|o| o.get(key) == Some(id));
        match obj.get(PATCH).and_then(Value::as_str) {
            Some("delete") => {
                out.retain(|o| o.get(key) != Some(id));
                continue;
            }
            Some("merge") | None => {}
            Some(other) => {
                return Err(PatchError::Malformed(format!(
                    "unknown patch type: {other} in map"
                )))
            }
        }
        match pos.and_then(|p| out.get_mut(p)) {
            Some(Value::Object(existing)) => {
                merge_map(existing, obj, elem_schema, defs, depth + 1)?
            }
            _ => out.push(strip_value(item)),
        }
    }
    Ok(out)
}

/// `$setElementOrder` (upstream `normalizeElementOrder`): the listed elements in the given
/// order, merged with the server-only elements, which keep their place relative to elements
/// whose original position is known; when a comparison is undecided the listed one comes first.
fn reorder(items: &mut Vec<Value>, order: &[Value], server: &[Value], merge_key: Option<&str>) {
    let id_of = |v: &Value| -> Value {
        match merge_key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let order_ids: Vec<Value> = order.iter().map(id_of).collect();
    let server_ids: Vec<Value> = server.iter().map(id_of).collect();
    let (mut listed, server_only): (Vec<Value>, Vec<Value>) = std::mem::take(items)
        .into_iter()
        .partition(|v| order_ids.contains(&id_of(v)));
    listed.sort_by_key(|v| order_ids.iter().position(|o| *o == id_of(v)));
    let server_pos = |v: &Value| server_ids.iter().position(|s| *s == id_of(v));
    let (mut left, mut right) = (
        listed.into_iter().peekable(),
        server_only.into_iter().peekable(),
    );
    loop {
        // upstream `mergeSortedSlice(serverOnly, patch, serverOrder)`.
        let take_server_only = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some(l), Some(r)) => {
                matches!((server_pos(r), server_pos(l)), (Some(a), Some(b)) if a < b)
            }
        };
        let next = if take_server_only {
            right.next()
        } else {
            left.next()
        };
        items.extend(next);
    }
}

fn strip_directives(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), strip_value(v)))
        .collect()
}

/// A value that is new to the object carries no directives into storage.
fn strip_value(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(strip_directives(m)),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|i| !is_directive_element(i))
                .map(strip_value)
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Gvk;
    use serde_json::json;

    fn pod_schema() -> Option<&'static Value> {
        let d = definitions();
        d.root_for(&Gvk::new("", "v1", "Pod"))
            .and_then(|n| d.schemas.get(n))
    }

    fn pod() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "old"}, "finalizers": ["a", "b"]},
               "spec": {"containers": [{"name": "nginx", "image": "nginx", "env": [{"name": "A", "value": "1"}]}],
                        "tolerations": [{"key": "x"}]}})
    }

    #[test]
    fn kubectl_apply_patch_adds_a_container_by_merge_key() {
        // The body kubectl-wire.md §3 shows client-side apply sending.
        let patch = json!({"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}, "labels": {"app": "web"}},
                           "spec": {"$setElementOrder/containers": [{"name": "nginx"}, {"name": "side"}],
                                    "containers": [{"image": "busybox", "name": "side"}]}});
        let out = apply(&pod(), &patch, pod_schema()).unwrap();
        let names: Vec<&str> = out["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["nginx", "side"]);
        assert_eq!(out["spec"]["containers"][0]["image"], "nginx");
        assert_eq!(out["metadata"]["labels"]["app"], "web");
        assert!(out["spec"].get("$setElementOrder/containers").is_none());
    }

    #[test]
    fn set_element_order_reorders() {
        let mut p = pod();
        p["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "side", "image": "busybox"}));
        let patch =
            json!({"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "nginx"}]}});
        let out = apply(&p, &patch, pod_schema()).unwrap();
        assert_eq!(out["spec"]["containers"][0]["name"], "side");
    }

    #[test]
    fn set_element_order_keeps_server_only_items_in_place() {
        // Server [a, b, c], the patch orders only [c, a]: b stays before c, as it was.
        let original = json!({"metadata": {}, "spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
        let patch =
            json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}]}});
        let out = apply(&original, &patch, pod_schema()).unwrap();
        let names: Vec<&str> = out["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["b", "c", "a"]);
        // A new server-only item whose place cannot be compared goes after the listed ones.
        let original = json!({"spec": {"containers": [{"name": "a"}, {"name": "x"}]}});
        let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "n"}, {"name": "a"}],
                                    "containers": [{"name": "n"}]}});
        let out = apply(&original, &patch, pod_schema()).unwrap();
        let names: Vec<&str> = out["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["n", "a", "x"]);
    }

    #[test]
    fn patch_delete_removes_a_keyed_element_and_nested_merge_keys_work() {
        let patch = json!({"spec": {"containers": [{"name": "nginx", "env": [{"name": "B", "value": "2"}]}]}});
        let out = apply(&pod(), &patch, pod_schema()).unwrap();
        assert_eq!(
            out["spec"]["containers"][0]["env"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let patch = json!({"spec": {"containers": [{"name": "nginx", "$patch": "delete"}]}});
        let out = apply(&pod(), &patch, pod_schema()).unwrap();
        assert_eq!(out["spec"]["containers"], json!([]));
    }

    #[test]
    fn lists_without_strategy_are_replaced_and_replace_directive_works() {
        let out = apply(
            &pod(),
            &json!({"spec": {"tolerations": [{"key": "y"}]}}),
            pod_schema(),
        )
        .unwrap();
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "y"}]));
        let patch = json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "x"}]}});
        let out = apply(&pod(), &patch, pod_schema()).unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "only", "image": "x"}])
        );
    }

    #[test]
    fn null_deletes_and_map_replace_directive() {
        let out = apply(
            &pod(),
            &json!({"metadata": {"labels": {"app": null}}}),
            pod_schema(),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({}));
        let out = apply(
            &pod(),
            &json!({"metadata": {"labels": {"$patch": "replace", "x": "y"}}}),
            pod_schema(),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"x": "y"}));
    }

    #[test]
    fn primitive_lists_merge_and_delete_from_primitive_list() {
        let out = apply(
            &pod(),
            &json!({"metadata": {"finalizers": ["c", "a"]}}),
            pod_schema(),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}});
        let out = apply(&pod(), &patch, pod_schema()).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn retain_keys_clears_other_fields() {
        let d = definitions();
        let schema = d.schemas.get("io.k8s.api.apps.v1.Deployment");
        let deploy = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let out = apply(&deploy, &patch, schema).unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn malformed_patches_are_errors() {
        assert!(matches!(
            apply(&pod(), &json!([1]), pod_schema()),
            Err(PatchError::Malformed(_))
        ));
        assert!(matches!(
            apply(&pod(), &json!({"$patch": "bogus"}), pod_schema()),
            Err(PatchError::Malformed(_))
        ));
        let patch = json!({"spec": {"containers": [{"image": "nokey"}]}});
        assert!(matches!(
            apply(&pod(), &patch, pod_schema()),
            Err(PatchError::NotApplicable(_))
        ));
        let patch = json!({"spec": {"containers": ["str"]}});
        assert!(apply(&pod(), &patch, pod_schema()).is_err());
    }

    #[test]
    fn node_status_conditions_merge_by_type() {
        let d = definitions();
        let schema = d.schemas.get("io.k8s.api.core.v1.Node");
        let node = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "False"}]}});
        let patch = json!({"status": {"$setElementOrder/conditions": [{"type": "Ready"}, {"type": "DiskPressure"}],
                                      "conditions": [{"type": "Ready", "status": "True"}]}});
        let out = apply(&node, &patch, schema).unwrap();
        assert_eq!(
            out["status"]["conditions"][0],
            json!({"type": "Ready", "status": "True"})
        );
        assert_eq!(out["status"]["conditions"].as_array().unwrap().len(), 2);
    }
}
