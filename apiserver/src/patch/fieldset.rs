//! Sets of field paths, as server-side apply tracks ownership (structured-merge-diff's
//! `fieldpath.Set`), and their `FieldsV1` JSON form.

use crate::openapi::schemas::Definitions;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// `f:<name>`: a struct field or map key.
    Field(String),
    /// `k:{"name":"nginx"}`: a list item by its merge key (JSON with sorted keys).
    Key(String),
    /// `v:"a"`: an item of a set-like primitive list (JSON).
    Value(String),
    /// `i:0`: a list item by position.
    Index(usize),
}

pub type FieldPath = Vec<PathElement>;

/// upstream prints paths like `.spec.containers[name="nginx"].image`.
pub struct DisplayPath<'a>(pub &'a [PathElement]);

impl fmt::Display for DisplayPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for el in self.0 {
            match el {
                PathElement::Field(name) => write!(f, ".{name}")?,
                PathElement::Key(json) => {
                    let parsed: Map<String, Value> = serde_json::from_str(json).unwrap_or_default();
                    let parts: Vec<String> =
                        parsed.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    write!(f, "[{}]", parts.join(","))?
                }
                PathElement::Value(json) => write!(f, "[={json}]")?,
                PathElement::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// Leaf and member paths of an object, each with the value found there (list items and map
/// entries holding objects map to `true`, so only their presence counts).
pub fn leaves(
    obj: &Value,
    schema: Option<&'static Value>,
    defs: &'static Definitions,
) -> BTreeMap<FieldPath, Value> {
    let mut out = BTreeMap::new();
    walk(obj, schema, defs, &mut Vec::new(), false, &mut out, 0);
    out
}

pub fn field_set(
    obj: &Value,
    schema: Option<&'static Value>,
    defs: &'static Definitions,
) -> BTreeSet<FieldPath> {
    leaves(obj, schema, defs).into_keys().collect()
}

/// Paths whose value differs between two objects (added, removed or changed).
pub fn changed(
    old: &Value,
    new: &Value,
    schema: Option<&'static Value>,
    defs: &'static Definitions,
) -> BTreeSet<FieldPath> {
    let a = leaves(old, schema, defs);
    let b = leaves(new, schema, defs);
    let mut out: BTreeSet<FieldPath> = BTreeSet::new();
    for (path, value) in &b {
        if a.get(path) != Some(value) {
            out.insert(path.clone());
        }
    }
    out.extend(a.keys().filter(|p| !b.contains_key(*p)).cloned());
    out
}

const MAX_DEPTH: usize = 96;

fn walk(
    v: &Value,
    schema: Option<&'static Value>,
    defs: &'static Definitions,
    path: &mut FieldPath,
    is_member: bool,
    out: &mut BTreeMap<FieldPath, Value>,
    depth: usize,
) {
    let free = schema.is_some_and(|s| defs.is_free_form(s) || defs.is_atomic(s));
    match v {
        Value::Object(map) if !map.is_empty() && !free && depth < MAX_DEPTH => {
            if is_member {
                out.insert(path.clone(), Value::Bool(true));
            }
            let is_map = schema.is_some_and(|s| defs.is_map(s));
            for (key, child) in map {
                let child_schema = schema.and_then(|s| defs.child(s, key));
                path.push(PathElement::Field(key.clone()));
                match child {
                    Value::Array(items) => {
                        let meta = schema
                            .and_then(|s| defs.field_patch_meta(s, key))
                            .filter(|m| m.merges());
                        let elem = child_schema.and_then(|s| defs.element(s));
                        walk_list(
                            items,
                            meta.and_then(|m| m.merge_key),
                            meta.is_some(),
                            elem,
                            defs,
                            path,
                            out,
                            depth,
                        );
                    }
                    _ => walk(child, child_schema, defs, path, is_map, out, depth + 1),
                }
                path.pop();
            }
        }
        _ => {
            out.insert(path.clone(), v.clone());
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn walk_list(
    items: &[Value],
    merge_key: Option<&str>,
    merges: bool,
    elem: Option<&'static Value>,
    defs: &'static Definitions,
    path: &mut FieldPath,
    out: &mut BTreeMap<FieldPath, Value>,
    depth: usize,
) {
    let keyed = merge_key.is_some_and(|k| items.iter().all(|i| i.get(k).is_some()));
    let set_like =
        merges && merge_key.is_none() && items.iter().all(|i| !i.is_object() && !i.is_array());
    if keyed {
        let key = merge_key.unwrap_or_default();
        for item in items {
            path.push(PathElement::Key(key_json(key, &item[key])));
            walk(item, elem, defs, path, true, out, depth + 1);
            path.pop();
        }
    } else if set_like {
        for item in items {
            path.push(PathElement::Value(item.to_string()));
            out.insert(path.clone(), Value::Bool(true));
            path.pop();
        }
    } else {
        out.insert(path.clone(), Value::Array(items.to_vec()));
    }
}

pub fn key_json(key: &str, value: &Value) -> String {
    let mut m = Map::new();
    m.insert(key.to_string(), value.clone());
    Value::Object(m).to_string()
}

#[derive(Default)]
struct Node {
    member: bool,
    children: BTreeMap<String, Node>,
}

fn element_name(el: &PathElement) -> String {
    match el {
        PathElement::Field(n) => format!("f:{n}"),
        PathElement::Key(j) => format!("k:{j}"),
        PathElement::Value(j) => format!("v:{j}"),
        PathElement::Index(i) => format!("i:{i}"),
    }
}

/// The `fieldsV1` JSON of a set: `{"f:spec": {"f:containers": {"k:{\"name\":\"x\"}": {".": {}, "f:image": {}}}}}`.
pub fn to_fields_v1(set: &BTreeSet<FieldPath>) -> Value {
    let mut root = Node::default();
    for path in set {
        let mut node = &mut root;
        for el in path {
            node = node.children.entry(element_name(el)).or_default();
        }
        node.member = true;
    }
    node_json(&root)
}

fn node_json(node: &Node) -> Value {
    let mut m = Map::new();
    if node.member && !node.children.is_empty() {
        m.insert(".".into(), Value::Object(Map::new()));
    }
    for (name, child) in &node.children {
        m.insert(name.clone(), node_json(child));
    }
    Value::Object(m)
}

/// Parses `fieldsV1`; unknown prefixes are skipped rather than refused.
pub fn from_fields_v1(v: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    parse_node(v, &mut Vec::new(), &mut out, 0);
    out
}

fn parse_node(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>, depth: usize) {
    let Some(map) = v.as_object() else { return };
    if depth > MAX_DEPTH {
        return;
    }
    if (map.is_empty() || map.contains_key(".")) && !path.is_empty() {
        out.insert(path.clone());
    }
    for (name, child) in map {
        let el = if let Some(n) = name.strip_prefix("f:") {
            PathElement::Field(n.to_string())
        } else if let Some(j) = name.strip_prefix("k:") {
            PathElement::Key(j.to_string())
        } else if let Some(j) = name.strip_prefix("v:") {
            PathElement::Value(j.to_string())
        } else if let Some(i) = name.strip_prefix("i:").and_then(|i| i.parse().ok()) {
            PathElement::Index(i)
        } else {
            continue;
        };
        path.push(el);
        parse_node(child, path, out, depth + 1);
        path.pop();
    }
}

/// Removes the field or list item at `path` from `obj`, if present.
pub fn remove_path(obj: &mut Value, path: &[PathElement]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for el in parents {
        let next = match (el, cur) {
            (PathElement::Field(n), Value::Object(m)) => m.get_mut(n),
            (PathElement::Key(j), Value::Array(items)) => {
                items.iter_mut().find(|i| item_matches_key(i, j))
            }
            (PathElement::Index(i), Value::Array(items)) => items.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match (last, cur) {
        (PathElement::Field(n), Value::Object(m)) => {
            m.remove(n);
        }
        (PathElement::Key(j), Value::Array(items)) => items.retain(|i| !item_matches_key(i, j)),
        (PathElement::Value(j), Value::Array(items)) => {
            let wanted: Option<Value> = serde_json::from_str(j).ok();
            items.retain(|i| Some(i) != wanted.as_ref());
        }
        (PathElement::Index(i), Value::Array(items)) if *i < items.len() => {
            items.remove(*i);
        }
        _ => {}
    }
}

/// True when the field or list item at `path` is present in `obj`.
pub fn path_exists(obj: &Value, path: &[PathElement]) -> bool {
    let mut cur = obj;
    for el in path {
        let next = match (el, cur) {
            (PathElement::Field(n), Value::Object(m)) => m.get(n),
            (PathElement::Key(j), Value::Array(items)) => {
                items.iter().find(|i| item_matches_key(i, j))
            }
            (PathElement::Value(j), Value::Array(items)) => {
                let wanted: Option<Value> = serde_json::from_str(j).ok();
                items.iter().find(|i| Some(*i) == wanted.as_ref())
            }
            (PathElement::Index(i), Value::Array(items)) => items.get(*i),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    true
}

fn item_matches_key(item: &Value, key_json: &str) -> bool {
    let Ok(Value::Object(key)) = serde_json::from_str::<Value>(key_json) else {
        return false;
    };
    key.iter().all(|(k, v)| item.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::schemas::definitions;
    use serde_json::json;

    fn pod_schema() -> Option<&'static Value> {
        definitions().schemas.get("io.k8s.api.core.v1.Pod")
    }

    #[test]
    fn fields_v1_of_a_pod_uses_keys_for_containers() {
        let pod = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}});
        let set = field_set(&pod, pod_schema(), definitions());
        let v1 = to_fields_v1(&set);
        assert_eq!(
            v1,
            json!({"f:metadata": {"f:labels": {"f:app": {}}},
                   "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}})
        );
        assert_eq!(from_fields_v1(&v1), set);
    }

    #[test]
    fn changed_paths_and_display() {
        let a = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "a"}]}}}});
        let b = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "a"}]}}}});
        let schema = definitions().schemas.get("io.k8s.api.apps.v1.Deployment");
        let ch = changed(&a, &b, schema, definitions());
        let shown: Vec<String> = ch.iter().map(|p| DisplayPath(p).to_string()).collect();
        assert_eq!(shown, [".spec.replicas"]);
        let path = vec![
            PathElement::Field("spec".into()),
            PathElement::Field("containers".into()),
            PathElement::Key(key_json("name", &json!("nginx"))),
            PathElement::Field("image".into()),
        ];
        assert_eq!(
            DisplayPath(&path).to_string(),
            ".spec.containers[name=\"nginx\"].image"
        );
    }

    #[test]
    fn atomic_selectors_are_one_leaf() {
        let d = json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "replicas": 1}});
        let schema = definitions().schemas.get("io.k8s.api.apps.v1.Deployment");
        let v1 = to_fields_v1(&field_set(&d, schema, definitions()));
        assert_eq!(v1, json!({"f:spec": {"f:replicas": {}, "f:selector": {}}}));
    }

    #[test]
    fn path_exists_follows_keys_and_values() {
        let pod = json!({"metadata": {"finalizers": ["a"]}, "spec": {"containers": [{"name": "x", "image": "i"}]}});
        let key = PathElement::Key(key_json("name", &json!("x")));
        let image = [
            PathElement::Field("spec".into()),
            PathElement::Field("containers".into()),
            key,
            PathElement::Field("image".into()),
        ];
        assert!(path_exists(&pod, &image));
        assert!(!path_exists(
            &pod,
            &image[..2]
                .iter()
                .cloned()
                .chain([PathElement::Key(key_json("name", &json!("y")))])
                .collect::<Vec<_>>()
        ));
        assert!(path_exists(
            &pod,
            &[
                PathElement::Field("metadata".into()),
                PathElement::Field("finalizers".into()),
                PathElement::Value("\"a\"".into())
            ]
        ));
    }

    #[test]
    fn remove_path_by_key_and_value() {
        let mut pod = json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"containers": [{"name": "x"}, {"name": "y"}]}});
        remove_path(
            &mut pod,
            &[
                PathElement::Field("spec".into()),
                PathElement::Field("containers".into()),
                PathElement::Key(key_json("name", &json!("x"))),
            ],
        );
        remove_path(
            &mut pod,
            &[
                PathElement::Field("metadata".into()),
                PathElement::Field("finalizers".into()),
                PathElement::Value("\"a\"".into()),
            ],
        );
        assert_eq!(
            pod,
            json!({"metadata": {"finalizers": ["b"]}, "spec": {"containers": [{"name": "y"}]}})
        );
    }
}
