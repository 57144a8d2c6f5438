//! The Kubernetes protobuf wire format (`application/vnd.kubernetes.protobuf`): the `k8s\0`
//! envelope around `runtime.Unknown`, decoded and encoded through `k8s-pb`.

use serde_json::Value;

pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error("object to decode was longer than maximum allowed size or malformed: {0}")]
    Malformed(String),
    #[error("no protobuf mapping for {0}")]
    UnsupportedKind(String),
}

/// Decodes a protobuf request body into the JSON form of the object, with `apiVersion` and `kind`
/// taken from the envelope.
pub fn decode(_body: &[u8]) -> Result<Value, ProtobufError> {
    Err(ProtobufError::UnsupportedKind("protobuf not implemented yet".into()))
}

/// Encodes the JSON form of an object (with `apiVersion` and `kind`) into the protobuf envelope.
pub fn encode(value: &Value) -> Result<Vec<u8>, ProtobufError> {
    Err(ProtobufError::UnsupportedKind(value.get("kind").and_then(Value::as_str).unwrap_or("").into()))
}
