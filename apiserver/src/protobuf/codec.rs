//! One reflection-style converter between protobuf messages and their JSON form, driven by the
//! descriptor table: no code per kind.

use super::descriptors::{message, Field, FieldType, Message};
use super::wellknown::{self, bytes_to_json, json_to_bytes};
use super::wire::{Reader, Writer, FIXED64, LEN, VARINT};
use super::ProtobufError;
use serde_json::{Map, Value};

const MAX_DEPTH: usize = 64;

/// Scalars whose Go field is a pointer (or has no `omitempty`), so a zero value is meaningful
/// and kept. Every other zero scalar is a Go zero value that upstream's JSON omits.
const KEEP_ZERO: &[&str] = &[
    "replicas",
    "suspend",
    "enableServiceLinks",
    "automountServiceAccountToken",
    "readOnlyRootFilesystem",
    "runAsNonRoot",
    "privileged",
    "allowPrivilegeEscalation",
    "runAsUser",
    "runAsGroup",
    "fsGroup",
    "terminationGracePeriodSeconds",
    "activeDeadlineSeconds",
    "backoffLimit",
    "completions",
    "parallelism",
    "ttlSecondsAfterFinished",
    "revisionHistoryLimit",
    "partition",
    "optional",
    "defaultMode",
    "mode",
    "tolerationSeconds",
    "deletionGracePeriodSeconds",
    "immutable",
    "priority",
    "value",
    "globalDefault",
    "restartCount",
    "ready",
    "containerPort",
    "port",
    "exitCode",
    "leaseTransitions",
    "gracePeriodSeconds",
    "orphanDependents",
    "successfulJobsHistoryLimit",
    "failedJobsHistoryLimit",
    "manualSelector",
    "hostUsers",
    "currentReplicas",
    "desiredReplicas",
    "code",
    "leaseDurationSeconds",
    "maxSkew",
    "weight",
    "started",
    "allocateLoadBalancerNodePorts",
];

fn malformed(msg: impl Into<String>) -> ProtobufError {
    ProtobufError::Malformed(msg.into())
}

fn expect_wire(field: &Field, got: u8) -> Result<(), ProtobufError> {
    let want = match field.ty {
        FieldType::I32 | FieldType::I64 | FieldType::Bool => VARINT,
        FieldType::F64 => FIXED64,
        _ => LEN,
    };
    // Repeated numbers may also arrive packed.
    if got == want || (field.repeated && got == LEN && want != LEN) {
        Ok(())
    } else {
        Err(malformed(format!(
            "proto: wrong wireType = {got} for field {}",
            field.json
        )))
    }
}

/// Decodes a message body into its JSON object.
pub fn decode_message(name: &str, buf: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(malformed("message nests too deeply"));
    }
    let msg = message(name).ok_or_else(|| ProtobufError::UnsupportedKind(name.to_string()))?;
    let mut values: Vec<Option<Value>> = vec![None; msg.fields.len()];
    let mut r = Reader::new(buf);
    while !r.done() {
        let (tag, wire) = r.tag()?;
        let Some(idx) = msg.fields.iter().position(|f| f.tag == tag) else {
            r.skip(wire)?;
            continue;
        };
        let field = &msg.fields[idx];
        expect_wire(field, wire)?;
        if field.repeated
            && wire == LEN
            && matches!(
                field.ty,
                FieldType::I32 | FieldType::I64 | FieldType::Bool | FieldType::F64
            )
        {
            let mut packed = Reader::new(r.bytes()?);
            while !packed.done() {
                let v = read_number(&field.ty, &mut packed)?;
                push(&mut values[idx], v);
            }
            continue;
        }
        match &field.ty {
            FieldType::Map(k, v) => {
                let (key, value) = read_map_entry(k, v, r.bytes()?, depth)?;
                let slot = values[idx].get_or_insert_with(|| Value::Object(Map::new()));
                if let (Value::Object(m), Some(value)) = (slot, value) {
                    m.insert(key, value);
                }
            }
            ty => {
                let v = read_value(ty, &mut r, depth)?;
                if field.repeated {
                    push(&mut values[idx], v.unwrap_or(Value::Null));
                } else {
                    values[idx] = v;
                }
            }
        }
    }
    Ok(Value::Object(assemble(msg, values)))
}

fn push(slot: &mut Option<Value>, v: Value) {
    match slot.get_or_insert_with(|| Value::Array(Vec::new())) {
        Value::Array(items) => items.push(v),
        other => *other = Value::Array(vec![v]),
    }
}

/// JSON object in declaration order, with Go zero values dropped and inline structs flattened.
fn assemble(msg: &Message, values: Vec<Option<Value>>) -> Map<String, Value> {
    let mut out = Map::new();
    for (field, value) in msg.fields.iter().zip(values) {
        let Some(value) = value else { continue };
        if field.json.is_empty() {
            if let Value::Object(inner) = value {
                out.extend(inner);
            }
            continue;
        }
        let zero = match &value {
            Value::String(s) => s.is_empty(),
            Value::Bool(b) => !b,
            Value::Number(n) => n.as_f64() == Some(0.0),
            _ => false,
        };
        let is_scalar =
            !matches!(field.ty, FieldType::Message(_) | FieldType::Map(..)) && !field.repeated;
        // Empty strings are always Go zero values; KEEP_ZERO is about pointer numbers and bools.
        let keep = field.ty != FieldType::Str && KEEP_ZERO.contains(&field.json);
        if zero && is_scalar && !keep {
            continue;
        }
        out.insert(field.json.to_string(), value);
    }
    out
}

fn read_number(ty: &FieldType, r: &mut Reader) -> Result<Value, ProtobufError> {
    Ok(match ty {
        FieldType::I32 => Value::from(r.varint()? as i32),
        FieldType::I64 => Value::from(r.varint()? as i64),
        FieldType::Bool => Value::Bool(r.varint()? != 0),
        FieldType::F64 => {
            let b = r.fixed(8)?;
            let mut arr = [0u8; 8];
            arr.copy_from_slice(b);
            serde_json::Number::from_f64(f64::from_le_bytes(arr))
                .map(Value::Number)
                .unwrap_or(Value::Null)
        }
        _ => return Err(malformed("not a number type")),
    })
}

fn read_value(
    ty: &FieldType,
    r: &mut Reader,
    depth: usize,
) -> Result<Option<Value>, ProtobufError> {
    Ok(match ty {
        FieldType::Str => Some(Value::String(
            String::from_utf8(r.bytes()?.to_vec())
                .map_err(|_| malformed("invalid UTF-8 in string field"))?,
        )),
        FieldType::Bytes => Some(bytes_to_json(r.bytes()?)),
        FieldType::Message(name) => {
            let body = r.bytes()?;
            if wellknown::is_wellknown(name) {
                wellknown::decode(name, body)?
            } else {
                Some(decode_message(name, body, depth + 1)?)
            }
        }
        FieldType::Map(..) => return Err(malformed("nested map")),
        number => Some(read_number(number, r)?),
    })
}

fn read_map_entry(
    k: &FieldType,
    v: &FieldType,
    buf: &[u8],
    depth: usize,
) -> Result<(String, Option<Value>), ProtobufError> {
    let mut r = Reader::new(buf);
    let mut key = String::new();
    let mut value = None;
    while !r.done() {
        let (tag, wire) = r.tag()?;
        match tag {
            1 if wire == LEN && *k == FieldType::Str => {
                key = String::from_utf8(r.bytes()?.to_vec())
                    .map_err(|_| malformed("invalid UTF-8 in map key"))?;
            }
            2 => {
                let probe = Field {
                    tag: 2,
                    json: "value",
                    ty: v.clone(),
                    repeated: false,
                };
                expect_wire(&probe, wire)?;
                value = read_value(v, &mut r, depth + 1)?;
            }
            _ => r.skip(wire)?,
        }
    }
    // A map value that is a Go zero value is still present in the map.
    let value = value.or_else(|| match v {
        FieldType::Str => Some(Value::String(String::new())),
        FieldType::Bytes => Some(Value::String(String::new())),
        FieldType::Message(_) => Some(Value::Object(Map::new())),
        _ => Some(Value::from(0)),
    });
    Ok((key, value))
}

/// Encodes a JSON object as the body of message `name`.
pub fn encode_message(
    name: &str,
    v: &Value,
    w: &mut Writer,
    depth: usize,
) -> Result<(), ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(malformed("object nests too deeply"));
    }
    let msg = message(name).ok_or_else(|| ProtobufError::UnsupportedKind(name.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| malformed(format!("expected an object for {name}")))?;
    for field in &msg.fields {
        if field.json.is_empty() {
            if let FieldType::Message(inner) = &field.ty {
                let mut sub = Writer::default();
                encode_message(inner, v, &mut sub, depth + 1)?;
                w.bytes(field.tag, &sub.buf);
            }
            continue;
        }
        let Some(value) = obj.get(field.json).filter(|v| !v.is_null()) else {
            continue;
        };
        match (&field.ty, field.repeated) {
            (FieldType::Map(k, vt), _) => {
                let map = value
                    .as_object()
                    .ok_or_else(|| malformed(format!("{} must be an object", field.json)))?;
                for (key, item) in map {
                    let mut entry = Writer::default();
                    if **k == FieldType::Str {
                        entry.bytes(1, key.as_bytes());
                    }
                    write_value(vt, 2, item, &mut entry, depth)?;
                    w.bytes(field.tag, &entry.buf);
                }
            }
            (ty, true) => {
                let items = value
                    .as_array()
                    .ok_or_else(|| malformed(format!("{} must be a list", field.json)))?;
                for item in items {
                    write_value(ty, field.tag, item, w, depth)?;
                }
            }
            (ty, false) => write_value(ty, field.tag, value, w, depth)?,
        }
    }
    Ok(())
}

fn write_value(
    ty: &FieldType,
    tag: u32,
    v: &Value,
    w: &mut Writer,
    depth: usize,
) -> Result<(), ProtobufError> {
    let wrong = || malformed(format!("value {v} does not fit field {tag}"));
    match ty {
        FieldType::Str => w.bytes(tag, v.as_str().ok_or_else(wrong)?.as_bytes()),
        FieldType::Bytes => w.bytes(tag, &json_to_bytes(v)?),
        FieldType::I32 | FieldType::I64 => {
            let n = v.as_i64().ok_or_else(wrong)?;
            w.tag(tag, VARINT);
            w.varint(n as u64);
        }
        FieldType::Bool => {
            w.tag(tag, VARINT);
            w.varint(u64::from(v.as_bool().ok_or_else(wrong)?));
        }
        FieldType::F64 => {
            w.tag(tag, FIXED64);
            w.buf
                .extend_from_slice(&v.as_f64().ok_or_else(wrong)?.to_le_bytes());
        }
        FieldType::Message(name) => {
            if wellknown::is_wellknown(name) {
                w.bytes(tag, &wellknown::encode(name, v)?);
            } else {
                let mut sub = Writer::default();
                encode_message(name, v, &mut sub, depth + 1)?;
                w.bytes(tag, &sub.buf);
            }
        }
        FieldType::Map(..) => return Err(wrong()),
    }
    Ok(())
}
