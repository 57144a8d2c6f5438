//! `fieldValidation=Strict|Warn` over the raw JSON body: unknown fields and duplicate fields in
//! document order, worded as upstream's strict decoder (`unknown field "spec.foo"`,
//! `duplicate field "spec.replicas"`). Parsing the body again with a visitor is what sees the
//! duplicates that a parsed `Value` has already collapsed.

use crate::openapi::schemas::{definitions, Definitions};
use crate::types::Gvk;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;

/// Upstream's strict decoding errors for a JSON body of kind `gvk`, in document order; an empty
/// list when the body is clean or is not JSON (a parse error is reported elsewhere).
pub fn strict_decoding_errors(gvk: &Gvk, body: &[u8]) -> Vec<String> {
    let defs = definitions();
    let schema = defs.root_for(gvk).and_then(|n| defs.schemas.get(n));
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let walk = Walk {
        path: String::new(),
        schema,
        defs,
        out: &mut out,
    };
    if walk.deserialize(&mut de).is_err() {
        return Vec::new();
    }
    out
}

struct Walk<'a> {
    path: String,
    schema: Option<&'static Value>,
    defs: &'static Definitions,
    out: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let defs = self.defs;
        let schema = self
            .schema
            .filter(|s| !defs.is_free_form(s))
            .map(|s| defs.resolve(s));
        let props = schema
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object);
        let values = schema
            .and_then(|s| s.get("additionalProperties"))
            .filter(|a| a.is_object());
        let out = self.out;
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            let child = match (props.and_then(|p| p.get(&key)), values) {
                (Some(s), _) | (None, Some(s)) => Some(s),
                (None, None) => {
                    if props.is_some() && !seen.contains(&key) {
                        out.push(format!("unknown field \"{path}\""));
                    }
                    None
                }
            };
            if !seen.insert(key) {
                out.push(format!("duplicate field \"{path}\""));
            }
            map.next_value_seed(Walk {
                path,
                schema: child,
                defs,
                out: &mut *out,
            })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let defs = self.defs;
        let items = self
            .schema
            .map(|s| defs.resolve(s))
            .and_then(|s| s.get("items"));
        let out = self.out;
        let mut i = 0;
        loop {
            let walk = Walk {
                path: format!("{}[{i}]", self.path),
                schema: items,
                defs,
                out: &mut *out,
            };
            if seq.next_element_seed(walk)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
}

/// Whether a JSON body repeats a key in any object. Cheap enough for every write: keys are
/// borrowed where they have no escapes, values are skipped, and no path is built; the full
/// `strict_decoding_errors` runs only when this finds something.
pub fn has_duplicate_fields(body: &[u8]) -> bool {
    let mut de = serde_json::Deserializer::from_slice(body);
    matches!(DupScan.deserialize(&mut de), Ok(true))
}

struct DupScan;

impl<'de> DeserializeSeed<'de> for DupScan {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DupScan {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_none<E>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        // Most objects are small, where a linear scan beats hashing; a map with thousands of
        // keys (a large ConfigMap) switches to a set, or the scan would be quadratic.
        const LINEAR: usize = 16;
        let mut seen: Vec<std::borrow::Cow<'de, str>> = Vec::new();
        let mut set: HashSet<std::borrow::Cow<'de, str>> = HashSet::new();
        let mut dup = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if seen.len() < LINEAR {
                dup |= seen.contains(&key);
                seen.push(key);
            } else {
                if set.is_empty() {
                    set.extend(seen.iter().cloned());
                }
                dup |= !set.insert(key);
            }
            dup |= map.next_value_seed(DupScan)?;
        }
        Ok(dup)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut dup = false;
        while let Some(d) = seq.next_element_seed(DupScan)? {
            dup |= d;
        }
        Ok(dup)
    }
}

/// Parses a JSON body into a `Value` and notes, in the same pass, whether any object repeats
/// a key: the duplicate check costs no second parse of every body.
pub fn parse_noting_duplicates(body: &[u8]) -> Result<(Value, bool), serde_json::Error> {
    let mut dup = false;
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = ValueSeed { dup: &mut dup }.deserialize(&mut de)?;
    de.end()?;
    Ok((v, dup))
}

struct ValueSeed<'a> {
    dup: &'a mut bool,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let v = map.next_value_seed(ValueSeed { dup: &mut *self.dup })?;
            if out.insert(key, v).is_some() {
                *self.dup = true;
            }
        }
        Ok(Value::Object(out))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(ValueSeed { dup: &mut *self.dup })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body of upstream's "[sig-api-machinery] FieldValidation should detect unknown and
    /// duplicate fields of a typed object [Conformance]".
    #[test]
    fn field_validation_should_detect_unknown_and_duplicate_fields_of_a_typed_object() {
        let body = br#"{"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "my-dep", "labels": {"app": "nginx"}},
            "spec": {"unknownField": "foo", "replicas": 2, "replicas": 3,
                     "selector": {"matchLabels": {"app": "nginx"}},
                     "template": {"metadata": {"labels": {"app": "nginx"}},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]}}}}"#;
        let errs = strict_decoding_errors(&Gvk::new("apps", "v1", "Deployment"), body);
        assert_eq!(
            errs,
            [
                "unknown field \"spec.unknownField\"",
                "duplicate field \"spec.replicas\""
            ]
        );
        assert_eq!(
            format!("strict decoding error: {}", errs.join(", ")),
            "strict decoding error: unknown field \"spec.unknownField\", duplicate field \"spec.replicas\""
        );
    }

    #[test]
    fn field_validation_should_detect_unknown_metadata_fields_of_a_typed_object() {
        let body = br#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "my-dep", "unknownMeta": "foo"}}"#;
        let errs = strict_decoding_errors(&Gvk::new("apps", "v1", "Deployment"), body);
        assert_eq!(errs, ["unknown field \"metadata.unknownMeta\""]);
    }

    #[test]
    fn nested_lists_maps_and_bad_json() {
        let body = br#"{"spec": {"containers": [{"name": "a", "bogus": 1, "resources": {"limits": {"cpu": "1", "cpu": "2"}}}]}}"#;
        let errs = strict_decoding_errors(&Gvk::new("", "v1", "Pod"), body);
        assert_eq!(
            errs,
            [
                "unknown field \"spec.containers[0].bogus\"",
                "duplicate field \"spec.containers[0].resources.limits.cpu\""
            ]
        );
        assert!(strict_decoding_errors(&Gvk::new("", "v1", "Pod"), b"{not json").is_empty());
        assert!(has_duplicate_fields(body));
        // Escaped keys compare as decoded: "c\u0041" is "cA".
        assert!(has_duplicate_fields(br#"{"c\u0041": 1, "cA": 2}"#));
        assert!(!has_duplicate_fields(br#"{"a": {"b": 1}, "b": [{"a": 1}, {"a": 2}]}"#));
        assert!(!has_duplicate_fields(b"{not json"));
        let (v, dup) = parse_noting_duplicates(br#"{"a": {"b": 1}, "a": [1.5, "x", null, true]}"#).unwrap();
        assert!(dup);
        assert_eq!(v, serde_json::json!({"a": [1.5, "x", null, true]}), "the last value wins, as in a plain parse");
        assert!(!parse_noting_duplicates(br#"{"a": 1, "b": {"a": 2}}"#).unwrap().1);
        assert!(parse_noting_duplicates(b"{} x").is_err());
        assert!(strict_decoding_errors(
            &Gvk::new("", "v1", "Pod"),
            br#"{"metadata": {"managedFields": [{"fieldsV1": {"f:x": {}}}]}}"#
        )
        .is_empty());
    }
}
