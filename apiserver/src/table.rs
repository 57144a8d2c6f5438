//! `kubectl get` Tables (meta.k8s.io/v1 Table). Each kind's columns and cells come from its
//! strategy (upstream's printers in pkg/printers/internalversion/printers.go); this module
//! assembles the Table and holds the helpers the printers share.

use crate::registry::strategy::Strategy;
use serde_json::{json, Value};

/// One column definition: name, OpenAPI type, and priority (1 shows only with -o wide).
pub struct Column(pub &'static str, pub &'static str, pub u8);

/// The default convertor's columns.
pub const DEFAULT_COLUMNS: &[Column] = &[Column("Name", "string", 0), Column("Age", "string", 0)];

pub fn name_and_age(obj: &Value) -> Vec<Value> {
    vec![json!(s(obj, "/metadata/name")), json!(age_of(obj.pointer("/metadata/creationTimestamp")))]
}

pub fn column_definitions(p: &dyn Strategy) -> Value {
    Value::Array(
        p.columns()
            .iter()
            .map(|Column(name, ty, prio)| {
                let format = if *name == "Name" { "name" } else { "" };
                json!({"name": name, "type": ty, "format": format, "description": "", "priority": prio})
            })
            .collect(),
    )
}

/// Upstream's duration.HumanDuration.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        let rem = s % 60;
        return if rem == 0 { format!("{m}m") } else { format!("{m}m{rem}s") };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = s / 3600;
    if h < 8 {
        let rem = (s % 3600) / 60;
        return if rem == 0 { format!("{h}h") } else { format!("{h}h{rem}m") };
    }
    if h < 48 {
        return format!("{h}h");
    }
    if h < 24 * 8 {
        let rem = h % 24;
        return if rem == 0 { format!("{}d", h / 24) } else { format!("{}d{rem}h", h / 24) };
    }
    if h < 24 * 365 * 2 {
        return format!("{}d", h / 24);
    }
    format!("{}y", h / 24 / 365)
}

pub(crate) fn age_of(ts: Option<&Value>) -> String {
    let Some(ts) = ts.and_then(Value::as_str) else { return "<unknown>".into() };
    match chrono::DateTime::parse_from_rfc3339(ts) {
        Ok(t) => human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()),
        Err(_) => "<unknown>".into(),
    }
}

pub(crate) fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn i(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

pub(crate) fn or_none(x: String) -> String {
    if x.is_empty() { "<none>".into() } else { x }
}

pub(crate) fn arr<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

pub(crate) fn containers_images(obj: &Value, ptr: &str) -> (String, String) {
    let cs = arr(obj, ptr);
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

pub(crate) fn selector_string(obj: &Value) -> String {
    let mut parts: Vec<String> = obj
        .pointer("/spec/selector/matchLabels")
        .or_else(|| obj.pointer("/spec/selector").filter(|s| s.get("matchLabels").is_none() && s.get("matchExpressions").is_none()))
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    parts.sort();
    or_none(parts.join(","))
}

/// The `PartialObjectMetadata` a row carries (kubectl uses it for -A and --show-labels).
pub fn partial_metadata(obj: &Value) -> Value {
    let mut meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.remove("managedFields");
    }
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta})
}

pub fn row(p: &dyn Strategy, obj: &Value, include_object: &str) -> Value {
    let object = match include_object {
        "None" => Value::Null,
        "Object" => obj.clone(),
        _ => partial_metadata(obj),
    };
    json!({"cells": p.cells(obj), "object": object})
}

/// A whole Table for a list (or for one object, with one row).
pub fn table<'a>(p: &dyn Strategy, objs: impl Iterator<Item = &'a Value>, rv: &str, cont: Option<&str>, include_object: &str, with_columns: bool) -> Value {
    let rows: Vec<Value> = objs.map(|o| row(p, o, include_object)).collect();
    let mut meta = json!({"resourceVersion": rv});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    let mut t = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "rows": rows});
    if with_columns {
        t["columnDefinitions"] = column_definitions(p);
    } else {
        t["columnDefinitions"] = json!([]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_upstream() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400), "3d");
    }
}
