//! Field errors worded as upstream's `field.Error.ErrorBody()` prints them.

use crate::types::FieldCause;
use serde_json::Value;

/// A JSON path as upstream prints it: `spec.containers[0].image`.
#[derive(Clone, Debug, Default)]
pub struct Path(String);

impl Path {
    pub fn new(root: &str) -> Self {
        Path(root.to_string())
    }
    pub fn child(&self, name: &str) -> Path {
        if self.0.is_empty() {
            Path(name.to_string())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }
    pub fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }
    pub fn key(&self, k: &str) -> Path {
        Path(format!("{}[{k}]", self.0))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Go's `%#v`-like rendering that upstream uses for invalid values.
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Object(m) if m.values().all(Value::is_string) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), v))
                .collect();
            format!("map[string]string{{{}}}", parts.join(", "))
        }
        other => other.to_string(),
    }
}

fn cause(reason: &str, path: &Path, message: String) -> FieldCause {
    FieldCause {
        reason: reason.into(),
        message,
        field: path.as_str().to_string(),
    }
}

pub fn required(path: &Path, detail: &str) -> FieldCause {
    let message = if detail.is_empty() {
        "Required value".to_string()
    } else {
        format!("Required value: {detail}")
    };
    cause("FieldValueRequired", path, message)
}

pub fn invalid(path: &Path, value: &Value, detail: &str) -> FieldCause {
    cause(
        "FieldValueInvalid",
        path,
        format!("Invalid value: {}: {detail}", show(value)),
    )
}

pub fn not_supported(path: &Path, value: &Value, supported: &[&str]) -> FieldCause {
    let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
    cause(
        "FieldValueNotSupported",
        path,
        format!(
            "Unsupported value: {}: supported values: {}",
            show(value),
            list.join(", ")
        ),
    )
}

pub fn duplicate(path: &Path, value: &Value) -> FieldCause {
    cause(
        "FieldValueDuplicate",
        path,
        format!("Duplicate value: {}", show(value)),
    )
}

pub fn not_found(path: &Path, value: &Value) -> FieldCause {
    cause(
        "FieldValueNotFound",
        path,
        format!("Not found: {}", show(value)),
    )
}

pub fn forbidden(path: &Path, detail: &str) -> FieldCause {
    cause("FieldValueForbidden", path, format!("Forbidden: {detail}"))
}

pub fn too_long(path: &Path, max: usize) -> FieldCause {
    cause(
        "FieldValueTooLong",
        path,
        format!("Too long: may not be more than {max} bytes"),
    )
}

pub const IMMUTABLE: &str = "field is immutable";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_match_upstream_wording() {
        let p = Path::new("spec")
            .child("containers")
            .index(0)
            .child("image");
        assert_eq!(p.as_str(), "spec.containers[0].image");
        assert_eq!(required(&p, "").message, "Required value");
        assert_eq!(invalid(&p, &json!(0), "x").message, "Invalid value: 0: x");
        assert_eq!(
            show(&json!({"app": "web"})),
            "map[string]string{\"app\":\"web\"}"
        );
        assert_eq!(
            not_supported(&p, &json!("Foo"), &["Always", "Never"]).message,
            "Unsupported value: \"Foo\": supported values: \"Always\", \"Never\""
        );
    }
}
