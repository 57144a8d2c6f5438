//! The apimachinery types whose JSON form is not their message shape: Time, MicroTime, Duration,
//! Quantity, IntOrString, RawExtension and FieldsV1.

use super::wire::{Reader, Writer, FIXED64, LEN, VARINT};
use super::ProtobufError;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

pub const TIME: &str = "apimachinery.pkg.apis.meta.v1.Time";
pub const MICRO_TIME: &str = "apimachinery.pkg.apis.meta.v1.MicroTime";
pub const DURATION: &str = "apimachinery.pkg.apis.meta.v1.Duration";
pub const QUANTITY: &str = "apimachinery.pkg.api.resource.Quantity";
pub const INT_OR_STRING: &str = "apimachinery.pkg.util.intstr.IntOrString";
pub const RAW_EXTENSION: &str = "apimachinery.pkg.runtime.RawExtension";
pub const FIELDS_V1: &str = "apimachinery.pkg.apis.meta.v1.FieldsV1";

pub fn is_wellknown(name: &str) -> bool {
    matches!(
        name,
        TIME | MICRO_TIME | DURATION | QUANTITY | INT_OR_STRING | RAW_EXTENSION | FIELDS_V1
    )
}

fn malformed(msg: impl Into<String>) -> ProtobufError {
    ProtobufError::Malformed(msg.into())
}

/// Reads the scalar fields of a small message: varints and length-delimited bytes by number.
/// A field number with its varint value (Ok) or its length-delimited bytes (Err).
type RawField<'a> = (u32, Result<u64, &'a [u8]>);

fn fields(buf: &[u8]) -> Result<Vec<RawField<'_>>, ProtobufError> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while !r.done() {
        let (field, wire) = r.tag()?;
        match wire {
            VARINT => out.push((field, Ok(r.varint()?))),
            LEN => out.push((field, Err(r.bytes()?))),
            other => r.skip(other)?,
        }
    }
    Ok(out)
}

fn utf8(b: &[u8]) -> Result<String, ProtobufError> {
    String::from_utf8(b.to_vec()).map_err(|_| malformed("invalid UTF-8 in string field"))
}

/// Decodes one well-known message; None means the Go zero value that JSON omits.
pub fn decode(name: &str, buf: &[u8]) -> Result<Option<Value>, ProtobufError> {
    let fs = fields(buf)?;
    let int = |n: u32| {
        fs.iter().rev().find_map(|(f, v)| {
            if *f == n {
                v.as_ref().ok().copied()
            } else {
                None
            }
        })
    };
    let bytes = |n: u32| {
        fs.iter().rev().find_map(|(f, v)| {
            if *f == n {
                v.as_ref().err().copied()
            } else {
                None
            }
        })
    };
    Ok(match name {
        TIME | MICRO_TIME => {
            let secs = int(1).unwrap_or(0) as i64;
            let nanos = int(2).unwrap_or(0) as i32;
            if secs == 0 && nanos == 0 {
                return Ok(None);
            }
            let t = DateTime::<Utc>::from_timestamp(secs, nanos.max(0) as u32)
                .ok_or_else(|| malformed("time out of range"))?;
            let format = if name == TIME {
                SecondsFormat::Secs
            } else {
                SecondsFormat::Micros
            };
            Some(Value::String(t.to_rfc3339_opts(format, true)))
        }
        DURATION => Some(Value::String(format_duration(int(1).unwrap_or(0) as i64))),
        QUANTITY => Some(Value::String(
            bytes(1).map(utf8).transpose()?.unwrap_or_default(),
        )),
        INT_OR_STRING => {
            if int(1).unwrap_or(0) == 1 {
                Some(Value::String(
                    bytes(3).map(utf8).transpose()?.unwrap_or_default(),
                ))
            } else {
                Some(Value::from(int(2).unwrap_or(0) as i32))
            }
        }
        RAW_EXTENSION | FIELDS_V1 => match bytes(1) {
            None | Some([]) => None,
            Some(raw) => {
                Some(serde_json::from_slice(raw).map_err(|e| malformed(format!("raw JSON: {e}")))?)
            }
        },
        _ => None,
    })
}

/// Encodes one well-known message's body from its JSON form.
pub fn encode(name: &str, v: &Value) -> Result<Vec<u8>, ProtobufError> {
    let mut w = Writer::default();
    match name {
        TIME | MICRO_TIME => {
            let s = v
                .as_str()
                .ok_or_else(|| malformed("time must be a string"))?;
            let t = DateTime::parse_from_rfc3339(s)
                .map_err(|e| malformed(format!("parsing time {s:?}: {e}")))?;
            w.tag(1, VARINT);
            w.varint(t.timestamp() as u64);
            w.tag(2, VARINT);
            w.varint(u64::from(t.timestamp_subsec_nanos()));
        }
        DURATION => {
            let s = v
                .as_str()
                .ok_or_else(|| malformed("duration must be a string"))?;
            let ns = apimachinery::duration::parse_nanos(s)
                .map_err(|_| malformed(format!("time: invalid duration {s:?}")))?;
            w.tag(1, VARINT);
            w.varint(ns as u64);
        }
        QUANTITY => {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(malformed("quantities must match the regular expression")),
            };
            w.bytes(1, s.as_bytes());
        }
        INT_OR_STRING => match v {
            Value::Number(n) => {
                let i = n
                    .as_i64()
                    .and_then(|i| i32::try_from(i).ok())
                    .ok_or_else(|| malformed("int out of range"))?;
                w.tag(1, VARINT);
                w.varint(0);
                w.tag(2, VARINT);
                w.varint(i as i64 as u64);
                w.bytes(3, b"");
            }
            Value::String(s) => {
                w.tag(1, VARINT);
                w.varint(1);
                w.tag(2, VARINT);
                w.varint(0);
                w.bytes(3, s.as_bytes());
            }
            _ => return Err(malformed("IntOrString must be an int or a string")),
        },
        RAW_EXTENSION | FIELDS_V1 => {
            let raw = serde_json::to_vec(v).map_err(|e| malformed(e.to_string()))?;
            w.bytes(1, &raw);
        }
        _ => return Err(malformed(format!("not a well-known type: {name}"))),
    }
    let _ = FIXED64;
    Ok(w.buf)
}

/// `bytes` fields are base64 strings in JSON.
pub fn bytes_to_json(b: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(b))
}

pub fn json_to_bytes(v: &Value) -> Result<Vec<u8>, ProtobufError> {
    let s = v
        .as_str()
        .ok_or_else(|| malformed("bytes must be a base64 string"))?;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| malformed(format!("illegal base64 data: {e}")))
}

/// Go's `time.Duration.String()`.
pub fn format_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (unit, div) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&trim_fraction(u, div));
        out.push_str(unit);
    } else {
        let h = u / 3_600_000_000_000;
        let m = (u / 60_000_000_000) % 60;
        let s_ns = u % 60_000_000_000;
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&trim_fraction(s_ns, 1_000_000_000));
        out.push('s');
    }
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

fn trim_fraction(v: u64, div: u64) -> String {
    let whole = v / div;
    let frac = v % div;
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn well_known_round_trips() {
        for (name, v) in [
            (TIME, json!("2024-05-01T10:20:30Z")),
            (MICRO_TIME, json!("2024-05-01T10:20:30.123456Z")),
            (QUANTITY, json!("500m")),
            (INT_OR_STRING, json!(8080)),
            (INT_OR_STRING, json!("25%")),
            (RAW_EXTENSION, json!({"a": [1, 2]})),
            (DURATION, json!("1h0m0s")),
        ] {
            let bytes = encode(name, &v).unwrap();
            assert_eq!(decode(name, &bytes).unwrap(), Some(v), "{name}");
        }
        assert_eq!(decode(TIME, &[]).unwrap(), None, "the zero time is omitted");
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(format_duration(90_000_000_000), "1m30s");
        assert_eq!(format_duration(1_500_000_000), "1.5s");
        assert_eq!(format_duration(300_000_000), "300ms");
    }
}
