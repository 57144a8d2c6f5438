//! What decoding a body into its typed object checks, done against the kind's OpenAPI schema
//! (the same schemas /openapi serves, so a custom resource's schema can drive it later):
//! field types, integer ranges (int32 against int64), date-times, base64 bytes and quantities.
//! It also does what the typed round trip does to an object: unknown fields are dropped
//! (and reported, for fieldValidation), nulls become absent or zero, and a quantity given as
//! a number becomes a string. Whatever passes here decodes as its k8s-openapi type.
//!
//! Errors are worded as Go's `encoding/json`: `json: cannot unmarshal number into Go struct
//! field PodSpec.spec.nodeSelector of type string` (the innermost struct, the path of JSON
//! field names without indices or map keys, and the Go type of the value's position).

use super::quantity::{Quantity, QUANTITY_REGEX_MSG};
use crate::openapi::schemas::{definitions, ref_name, Definitions};
use crate::types::Gvk;
use serde_json::{Map, Value};

const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const RFC3339_LAYOUT: &str = "2006-01-02T15:04:05Z07:00";
/// Deeper than any built-in kind nests; a hostile body stops being walked here.
const MAX_DEPTH: usize = 100;

/// The reason a body does not decode as its type, in Go's words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// Checks and normalizes `obj` as decoding it into the kind's type would. Returns the paths
/// of the unknown fields it dropped (`spec.foo`, `spec.containers[0].bogus`), in document order.
/// Kinds without a schema pass unchanged.
pub fn decode(gvk: &Gvk, obj: &mut Value) -> Result<Vec<String>, DecodeError> {
    let defs = definitions();
    let Some(root) = defs.root_for(gvk) else { return Ok(Vec::new()) };
    let Some(schema) = defs.schemas.get(root) else { return Ok(Vec::new()) };
    let mut walk = Walk { defs, go_path: String::new(), path: String::new(), unknown: Vec::new() };
    walk.value(obj, schema, short_name(root), 0)?;
    Ok(walk.unknown)
}

/// Fills the required integer and boolean fields of `status` that are missing with their zero
/// value, as Go's typed serialization writes fields that have no `omitempty`
/// (`status: {replicas: 0}` on a new ReplicaSet).
pub fn fill_required_status_zeroes(gvk: &Gvk, obj: &mut Value) {
    let defs = definitions();
    let Some(schema) = defs.root_for(gvk).and_then(|r| defs.schemas.get(r)) else { return };
    let (Some(status_schema), Some(status)) = (defs.property(schema, "status"), obj.get_mut("status")) else { return };
    fill_zeroes(defs, status, status_schema, 0);
}

fn fill_zeroes(defs: &'static Definitions, v: &mut Value, schema: &'static Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let schema = defs.resolve(schema);
    match v {
        Value::Object(map) => {
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for key in required.iter().filter_map(Value::as_str) {
                    if map.contains_key(key) {
                        continue;
                    }
                    let zero = match defs.property(schema, key).and_then(|p| p.get("type")).and_then(Value::as_str) {
                        Some("integer") => Value::from(0),
                        Some("boolean") => Value::Bool(false),
                        _ => continue,
                    };
                    map.insert(key.to_string(), zero);
                }
            }
            for (key, child) in map.iter_mut() {
                if let Some(s) = defs.child(schema, key) {
                    fill_zeroes(defs, child, s, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                items.iter_mut().for_each(|item| fill_zeroes(defs, item, s, depth + 1));
            }
        }
        _ => {}
    }
}

struct Walk {
    defs: &'static Definitions,
    /// JSON field names joined by dots, as Go's UnmarshalTypeError.Field.
    go_path: String,
    /// The path with indices, as field validation reports unknown fields.
    path: String,
    unknown: Vec<String>,
}

/// `PodSpec` of `io.k8s.api.core.v1.PodSpec`.
fn short_name(def: &str) -> &str {
    def.rsplit('.').next().unwrap_or(def)
}

/// Go's name for a JSON value's kind in UnmarshalTypeError.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Walk {
    /// The Go type of a schema position: `string`, `int32`, `[]v1.Container`, `map[string]string`.
    fn go_type(&self, schema: &Value) -> String {
        if let Some(name) = ref_name(schema) {
            let mut parts = name.rsplitn(3, '.');
            let ty = parts.next().unwrap_or(name);
            let pkg = parts.next().unwrap_or("");
            return if pkg.is_empty() { ty.to_string() } else { format!("{pkg}.{ty}") };
        }
        let s = self.defs.resolve(schema);
        match s.get("type").and_then(Value::as_str) {
            Some("string") if s.get("format").and_then(Value::as_str) == Some("byte") => "[]uint8".into(),
            Some("string") => "string".into(),
            Some("integer") if s.get("format").and_then(Value::as_str) == Some("int32") => "int32".into(),
            Some("integer") => "int64".into(),
            Some("number") => "float64".into(),
            Some("boolean") => "bool".into(),
            Some("array") => format!("[]{}", s.get("items").map(|i| self.go_type(i)).unwrap_or_else(|| "interface {}".into())),
            _ => match s.get("additionalProperties").filter(|a| a.is_object()) {
                Some(values) => format!("map[string]{}", self.go_type(values)),
                None => "map[string]interface {}".into(),
            },
        }
    }

    fn mismatch(&self, what: String, schema: &Value, strukt: &str) -> DecodeError {
        let ty = self.go_type(schema);
        if self.go_path.is_empty() {
            return DecodeError(format!("json: cannot unmarshal {what} into Go value of type {ty}"));
        }
        DecodeError(format!("json: cannot unmarshal {what} into Go struct field {strukt}.{} of type {ty}", self.go_path))
    }

    fn value(&mut self, v: &mut Value, schema: &'static Value, strukt: &str, depth: usize) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH || v.is_null() {
            return Ok(());
        }
        let defs = self.defs;
        let name = ref_name(schema);
        let s = defs.resolve(schema);
        if s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
            return self.int_or_string(v, schema, name == Some(QUANTITY), strukt);
        }
        if defs.is_free_form(s) {
            return Ok(());
        }
        match s.get("type").and_then(Value::as_str) {
            Some("string") => self.string(v, schema, s, strukt),
            Some("integer") => self.integer(v, schema, s, strukt),
            Some("number") if v.is_number() => Ok(()),
            Some("boolean") if v.is_boolean() => Ok(()),
            Some("number" | "boolean") => Err(self.mismatch(json_kind(v).into(), schema, strukt)),
            Some("array") => {
                let Value::Array(items) = v else { return Err(self.mismatch(json_kind(v).into(), schema, strukt)) };
                let Some(item_schema) = s.get("items") else { return Ok(()) };
                for (i, item) in items.iter_mut().enumerate() {
                    if item.is_null() {
                        *item = self.zero(item_schema);
                        continue;
                    }
                    let len = self.path.len();
                    self.path.push_str(&format!("[{i}]"));
                    self.value(item, item_schema, strukt, depth + 1)?;
                    self.path.truncate(len);
                }
                Ok(())
            }
            None if s.get("properties").is_none() && s.get("additionalProperties").is_none() => Ok(()),
            _ => {
                let Value::Object(map) = v else { return Err(self.mismatch(json_kind(v).into(), schema, strukt)) };
                let strukt = match name {
                    Some(n) if s.get("properties").is_some() => short_name(n),
                    _ => strukt,
                };
                self.object(map, s, strukt, depth)
            }
        }
    }

    fn object(&mut self, map: &mut Map<String, Value>, s: &'static Value, strukt: &str, depth: usize) -> Result<(), DecodeError> {
        let props = s.get("properties").and_then(Value::as_object);
        let values = s.get("additionalProperties").filter(|a| a.is_object());
        let mut drop: Vec<String> = Vec::new();
        for (key, child) in map.iter_mut() {
            let (path_len, go_len) = (self.path.len(), self.go_path.len());
            if !self.path.is_empty() {
                self.path.push('.');
            }
            self.path.push_str(key);
            match (props.and_then(|p| p.get(key)), values) {
                (Some(prop), _) => {
                    if child.is_null() {
                        // A null field decodes as its zero value, which typed serialization omits.
                        drop.push(key.clone());
                    } else {
                        if !self.go_path.is_empty() {
                            self.go_path.push('.');
                        }
                        self.go_path.push_str(key);
                        self.value(child, prop, strukt, depth + 1)?;
                    }
                }
                (None, Some(value_schema)) => {
                    // Map keys are not part of Go's field path.
                    if child.is_null() {
                        *child = self.zero(value_schema);
                    } else {
                        self.value(child, value_schema, strukt, depth + 1)?;
                    }
                }
                (None, None) => {
                    if props.is_some() {
                        self.unknown.push(self.path.clone());
                        drop.push(key.clone());
                    }
                }
            }
            self.path.truncate(path_len);
            self.go_path.truncate(go_len);
        }
        for key in drop {
            map.shift_remove(&key);
        }
        Ok(())
    }

    fn string(&self, v: &mut Value, schema: &Value, s: &Value, strukt: &str) -> Result<(), DecodeError> {
        let Value::String(text) = v else { return Err(self.mismatch(json_kind(v).into(), schema, strukt)) };
        match s.get("format").and_then(Value::as_str) {
            Some("date-time") if chrono::DateTime::parse_from_rfc3339(text).is_err() => Err(DecodeError(format!(
                "parsing time \"{text}\" as \"{RFC3339_LAYOUT}\": cannot parse \"{text}\" as \"2006\""
            ))),
            Some("byte") => {
                use base64::Engine as _;
                match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        let at = match e {
                            base64::DecodeError::InvalidByte(at, _) | base64::DecodeError::InvalidLastSymbol(at, _) => at,
                            _ => text.len(),
                        };
                        Err(DecodeError(format!("illegal base64 data at input byte {at}")))
                    }
                }
            }
            _ => Ok(()),
        }
    }

    fn integer(&self, v: &Value, schema: &Value, s: &Value, strukt: &str) -> Result<(), DecodeError> {
        let Value::Number(n) = v else { return Err(self.mismatch(json_kind(v).into(), schema, strukt)) };
        let fits = match (n.as_i64(), s.get("format").and_then(Value::as_str)) {
            (Some(i), Some("int32")) => i32::try_from(i).is_ok(),
            (Some(_), _) => true,
            (None, _) => false,
        };
        if fits {
            Ok(())
        } else {
            Err(self.mismatch(format!("number {n}"), schema, strukt))
        }
    }

    /// IntOrString takes a string or an int32; a Quantity takes a string in its syntax or a
    /// number, which is kept as its string form (k8s-openapi's Quantity is a string).
    fn int_or_string(&self, v: &mut Value, schema: &Value, quantity: bool, strukt: &str) -> Result<(), DecodeError> {
        if quantity {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(DecodeError(QUANTITY_REGEX_MSG.into())),
            };
            if Quantity::parse(&text).is_none() {
                return Err(DecodeError(QUANTITY_REGEX_MSG.into()));
            }
            *v = Value::String(text);
            return Ok(());
        }
        match v {
            Value::String(_) => Ok(()),
            Value::Number(n) if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) => Ok(()),
            Value::Number(n) => Err(DecodeError(format!("json: cannot unmarshal number {n} into Go value of type int32"))),
            other => Err(self.mismatch(json_kind(other).into(), schema, strukt)),
        }
    }

    /// What Go decodes `null` into at a position that has no pointer: the type's zero value.
    fn zero(&self, schema: &Value) -> Value {
        let s = self.defs.resolve(schema);
        if s.get("x-kubernetes-int-or-string").is_some() {
            return Value::String(String::new());
        }
        match s.get("type").and_then(Value::as_str) {
            Some("string") => Value::String(String::new()),
            Some("integer" | "number") => Value::from(0),
            Some("boolean") => Value::Bool(false),
            Some("array") => Value::Array(Vec::new()),
            _ => Value::Object(Map::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Gvk {
        Gvk::new("", "v1", "Pod")
    }

    fn err(gvk: &Gvk, mut v: Value) -> String {
        decode(gvk, &mut v).expect_err("must not decode").0
    }

    #[test]
    fn a_number_in_a_string_map_is_refused_as_go_words_it() {
        let e = err(&pod(), json!({"spec": {"nodeSelector": {"x": 12345}, "containers": []}}));
        assert_eq!(e, "json: cannot unmarshal number into Go struct field PodSpec.spec.nodeSelector of type string");
    }

    #[test]
    fn config_map_data_annotation_and_env_values_must_be_strings() {
        let cm = Gvk::new("", "v1", "ConfigMap");
        assert_eq!(
            err(&cm, json!({"data": {"a": 12345}})),
            "json: cannot unmarshal number into Go struct field ConfigMap.data of type string"
        );
        assert_eq!(
            err(&cm, json!({"metadata": {"annotations": {"a": 1}}})),
            "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.annotations of type string"
        );
        assert_eq!(
            err(&pod(), json!({"spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": 1}]}]}})),
            "json: cannot unmarshal number into Go struct field EnvVar.spec.containers.env.value of type string"
        );
    }

    #[test]
    fn int32_fields_refuse_what_does_not_fit() {
        let d = Gvk::new("apps", "v1", "Deployment");
        assert_eq!(
            err(&d, json!({"spec": {"replicas": 2147483648i64}})),
            "json: cannot unmarshal number 2147483648 into Go struct field DeploymentSpec.spec.replicas of type int32"
        );
        assert_eq!(
            err(&d, json!({"spec": {"replicas": 1.5}})),
            "json: cannot unmarshal number 1.5 into Go struct field DeploymentSpec.spec.replicas of type int32"
        );
        assert_eq!(
            err(&d, json!({"spec": {"replicas": "3"}})),
            "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"
        );
        let mut ok = json!({"spec": {"replicas": 2147483647}});
        assert!(decode(&d, &mut ok).is_ok());
        // int64 fields take the whole range.
        let mut big = json!({"spec": {"activeDeadlineSeconds": 9007199254740993i64, "containers": []}});
        assert!(decode(&pod(), &mut big).is_ok());
    }

    #[test]
    fn structs_lists_and_booleans_must_have_their_shape() {
        assert_eq!(
            err(&pod(), json!({"spec": "x"})),
            "json: cannot unmarshal string into Go struct field Pod.spec of type v1.PodSpec"
        );
        assert_eq!(
            err(&pod(), json!({"spec": {"containers": {"name": "c"}}})),
            "json: cannot unmarshal object into Go struct field PodSpec.spec.containers of type []v1.Container"
        );
        assert_eq!(
            err(&pod(), json!({"spec": {"hostNetwork": "yes", "containers": []}})),
            "json: cannot unmarshal string into Go struct field PodSpec.spec.hostNetwork of type bool"
        );
        assert_eq!(
            err(&pod(), json!({"metadata": {"labels": ["a"]}})),
            "json: cannot unmarshal array into Go struct field ObjectMeta.metadata.labels of type map[string]string"
        );
    }

    #[test]
    fn times_bytes_and_quantities_are_parsed() {
        assert!(err(&pod(), json!({"metadata": {"creationTimestamp": "yesterday"}})).starts_with("parsing time \"yesterday\""));
        let secret = Gvk::new("", "v1", "Secret");
        assert_eq!(err(&secret, json!({"data": {"k": "not base64!"}})), "illegal base64 data at input byte 3");
        assert_eq!(
            err(&pod(), json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "lots"}}}]}})),
            QUANTITY_REGEX_MSG
        );
        let mut numeric = json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": 2, "memory": 0.5}}}]}});
        decode(&pod(), &mut numeric).unwrap();
        assert_eq!(numeric["spec"]["containers"][0]["resources"]["limits"], json!({"cpu": "2", "memory": "0.5"}));
    }

    #[test]
    fn int_or_string_takes_both_but_nothing_else() {
        let svc = Gvk::new("", "v1", "Service");
        for port in [json!(8080), json!("http")] {
            let mut ok = json!({"spec": {"ports": [{"port": 80, "targetPort": port}]}});
            assert!(decode(&svc, &mut ok).is_ok());
        }
        assert!(decode(&svc, &mut json!({"spec": {"ports": [{"port": 80, "targetPort": true}]}})).is_err());
        assert!(decode(&svc, &mut json!({"spec": {"ports": [{"port": 80, "targetPort": 1e10}]}})).is_err());
    }

    #[test]
    fn unknown_fields_are_dropped_and_reported_in_order() {
        let mut v = json!({"metadata": {"name": "p", "bogus": 1},
                           "spec": {"foo": 1, "containers": [{"name": "c", "imagee": "x"}]}});
        let unknown = decode(&pod(), &mut v).unwrap();
        assert_eq!(unknown, ["metadata.bogus", "spec.foo", "spec.containers[0].imagee"]);
        assert_eq!(v, json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}));
    }

    #[test]
    fn nulls_become_absent_or_zero_so_typed_clients_can_read_them() {
        let mut v = json!({"metadata": {"name": null, "labels": {"a": null}},
                           "spec": {"containers": [{"name": "c", "args": [null, "x"]}, null], "nodeName": null}});
        decode(&pod(), &mut v).unwrap();
        assert_eq!(
            v,
            json!({"metadata": {"labels": {"a": ""}}, "spec": {"containers": [{"name": "c", "args": ["", "x"]}, {}]}})
        );
    }

    #[test]
    fn free_form_fields_and_unknown_kinds_pass() {
        let rs = Gvk::new("apps", "v1", "ReplicaSet");
        let mut v = json!({"metadata": {"managedFields": [{"manager": "m", "fieldsV1": {"f:x": {"k": 1}}}]}});
        assert_eq!(decode(&rs, &mut v).unwrap(), Vec::<String>::new());
        assert!(decode(&Gvk::new("x", "v1", "Y"), &mut json!({"a": 1})).is_ok());
    }

    #[test]
    fn status_zeroes_are_filled_for_required_integers() {
        let mut rs = json!({"status": {}});
        fill_required_status_zeroes(&Gvk::new("apps", "v1", "ReplicaSet"), &mut rs);
        assert_eq!(rs["status"], json!({"replicas": 0}));
        let mut ds = json!({"status": {}});
        fill_required_status_zeroes(&Gvk::new("apps", "v1", "DaemonSet"), &mut ds);
        for f in ["currentNumberScheduled", "desiredNumberScheduled", "numberMisscheduled", "numberReady"] {
            assert_eq!(ds["status"][f], 0, "{f}");
        }
        let mut d = json!({"status": {}});
        fill_required_status_zeroes(&Gvk::new("apps", "v1", "Deployment"), &mut d);
        assert_eq!(d["status"], json!({}));
    }
}
