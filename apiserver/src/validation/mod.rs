//! The rules the kinds' strategies (`crate::kinds`) are made of: decoding against the schema,
//! defaults, metadata and per-kind validation. Nothing here chooses by kind.

pub mod apps;
pub mod batch;
pub mod core;
pub mod decode;
pub mod defaults;
pub mod field;
pub mod meta;
pub mod names;
pub mod pod;
pub mod quantity;
pub mod scheduling;
pub mod strict;

use crate::types::Gvk;

/// Unknown and duplicate fields of a raw JSON body, in document order, as upstream's strict
/// decoder words them: `unknown field "spec.foo"`, `duplicate field "spec.replicas"`. Join them
/// with ", " after `strict decoding error: ` for the 400 (Strict) or send each as a warning (Warn).
pub fn strict_decoding_errors(gvk: &Gvk, body: &[u8]) -> Vec<String> {
    strict::strict_decoding_errors(gvk, body)
}

/// Whether a JSON body repeats a key anywhere (cheap; see `strict::has_duplicate_fields`).
pub fn has_duplicate_fields(body: &[u8]) -> bool {
    strict::has_duplicate_fields(body)
}

/// Parses a JSON body noting duplicate keys in the same pass (see `strict::parse_noting_duplicates`).
pub fn parse_noting_duplicates(body: &[u8]) -> Result<(serde_json::Value, bool), serde_json::Error> {
    strict::parse_noting_duplicates(body)
}
