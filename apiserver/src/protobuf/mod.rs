//! The Kubernetes protobuf wire format (`application/vnd.kubernetes.protobuf`): the `k8s\0`
//! envelope around `runtime.Unknown`, decoded and encoded through `k8s-pb`'s message layouts.
//!
//! k8s-pb's prost types carry no serde support and no reflection, so `descriptors.txt` (generated
//! from k8s-pb's prost attributes and k8s-openapi's JSON names by `gen_descriptors.py`) drives a
//! single converter in `codec.rs` for every kind; the tests check it against k8s-pb's own
//! encoding.

mod codec;
pub mod descriptors;
mod wellknown;
pub mod wire;

use serde_json::{Map, Value};
use wire::{Reader, Writer, LEN};

pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Every protobuf body starts with these four bytes.
pub const MAGIC: &[u8; 4] = b"k8s\0";

#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error("object to decode was longer than maximum allowed size or malformed: {0}")]
    Malformed(String),
    #[error("no protobuf mapping for {0}")]
    UnsupportedKind(String),
}

/// The envelope's `runtime.Unknown`: type meta and the raw inner message.
struct Unknown<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
}

fn parse_unknown(body: &[u8]) -> Result<Unknown<'_>, ProtobufError> {
    let mut out = Unknown {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
    };
    let mut r = Reader::new(body);
    while !r.done() {
        let (tag, wire) = r.tag()?;
        match (tag, wire) {
            (1, LEN) => {
                let mut tm = Reader::new(r.bytes()?);
                while !tm.done() {
                    let (t, w) = tm.tag()?;
                    match (t, w) {
                        (1, LEN) => out.api_version = utf8(tm.bytes()?)?,
                        (2, LEN) => out.kind = utf8(tm.bytes()?)?,
                        _ => tm.skip(w)?,
                    }
                }
            }
            (2, LEN) => out.raw = r.bytes()?,
            (3 | 4, LEN) => {
                let encoding = r.bytes()?;
                if tag == 3 && !encoding.is_empty() {
                    return Err(ProtobufError::Malformed(
                        "unsupported content encoding".into(),
                    ));
                }
            }
            (1..=4, _) => {
                return Err(ProtobufError::Malformed(format!(
                    "proto: wrong wireType = {wire} for field {tag}"
                )))
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(out)
}

fn utf8(b: &[u8]) -> Result<String, ProtobufError> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtobufError::Malformed("invalid UTF-8".into()))
}

/// Decodes a protobuf request body into the JSON form of the object, with `apiVersion` and `kind`
/// taken from the envelope.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC.as_slice()).ok_or_else(|| {
        ProtobufError::Malformed("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]".into())
    })?;
    let unknown = parse_unknown(rest)?;
    if unknown.kind.is_empty() {
        return Err(ProtobufError::Malformed(
            "Object 'Kind' is missing in protobuf envelope".into(),
        ));
    }
    let name = descriptors::message_for(&unknown.api_version, &unknown.kind).ok_or_else(|| {
        ProtobufError::UnsupportedKind(format!("{}, Kind={}", unknown.api_version, unknown.kind))
    })?;
    let inner = codec::decode_message(name, unknown.raw, 0)?;
    let mut out = Map::new();
    out.insert("kind".into(), Value::String(unknown.kind));
    out.insert("apiVersion".into(), Value::String(unknown.api_version));
    if let Value::Object(fields) = inner {
        out.extend(fields);
    }
    Ok(Value::Object(out))
}

/// Encodes the JSON form of an object (with `apiVersion` and `kind`) into the protobuf envelope.
pub fn encode(value: &Value) -> Result<Vec<u8>, ProtobufError> {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = descriptors::message_for(api_version, kind)
        .ok_or_else(|| ProtobufError::UnsupportedKind(format!("{api_version}, Kind={kind}")))?;
    let mut raw = Writer::default();
    codec::encode_message(name, value, &mut raw, 0)?;
    let mut type_meta = Writer::default();
    type_meta.bytes(1, api_version.as_bytes());
    type_meta.bytes(2, kind.as_bytes());
    let mut unknown = Writer::default();
    unknown.bytes(1, &type_meta.buf);
    unknown.bytes(2, &raw.buf);
    unknown.bytes(3, b"");
    unknown.bytes(4, b"");
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&unknown.buf);
    Ok(out)
}

#[cfg(test)]
mod tests;
