//! Controller history, as upstream's pkg/controller/history: the
//! ControllerRevisions in which the StatefulSet and DaemonSet controllers
//! snapshot each pod template they have rolled out. `kubectl rollout
//! history` lists them and `kubectl rollout undo` patches an owner with one
//! of them, so their names, labels and `data` follow upstream byte for byte
//! where we can.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use kube::{Api, Resource, ResourceExt};
use serde_json::{json, Value};

use super::{Result, SyncError};
use crate::podutil;

/// Upstream's ControllerRevisionHashLabel: the hash of a revision's data.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// FNV-1 (not 1a: upstream's HashControllerRevision uses fnv.New32).
pub fn fnv32(data: &[u8]) -> u32 {
    data.iter()
        .fold(0x811c9dc5u32, |h, b| h.wrapping_mul(0x01000193) ^ *b as u32)
}

/// HashControllerRevision: FNV-1 of the data, then of the decimal probe
/// (the collision count), in the SafeEncodeString alphabet.
pub fn hash_revision(data: &[u8], probe: Option<i32>) -> String {
    let mut bytes = data.to_vec();
    if let Some(p) = probe {
        bytes.extend_from_slice(p.to_string().as_bytes());
    }
    podutil::safe_encode(fnv32(&bytes))
}

/// ControllerRevisionName: the prefix is cut to 223 bytes so that the name
/// fits in 253.
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let mut end = prefix.len().min(223);
    while !prefix.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{hash}", &prefix[..end])
}

/// JSON as Go's encoding/json writes a map[string]interface{}: keys sorted
/// bytewise, and `<`, `>`, `&`, U+2028 and U+2029 escaped. The revision hash
/// is taken over these bytes, so they must be Go's.
pub fn go_json(v: &Value) -> String {
    let mut out = String::new();
    write_go(v, &mut out);
    out
}

fn write_go(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_str(k, out);
                out.push(':');
                write_go(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go(x, out);
            }
            out.push(']');
        }
        Value::String(s) => write_go_str(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn write_go_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The template as Go encodes a v1.PodTemplateSpec: its ObjectMeta and
/// each container's ResourceRequirements are structs, not pointers, so Go
/// writes `"creationTimestamp":null` and `"resources":{}` where Rust's
/// optional fields write nothing.
fn go_template(t: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or_else(|_| json!({}));
    let Some(m) = v.as_object_mut() else { return v };
    let meta = m.entry("metadata").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        meta.entry("creationTimestamp").or_insert(Value::Null);
    }
    let spec = m.entry("spec").or_insert_with(|| json!({}));
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) else { continue };
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            c.entry("resources").or_insert_with(|| json!({}));
        }
    }
    v
}

/// Upstream's getPatch (StatefulSet and DaemonSet alike): a strategic merge
/// patch that replaces the owner's whole pod template.
pub fn template_patch(t: &PodTemplateSpec) -> Value {
    let mut template = go_template(t);
    if let Some(m) = template.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({ "spec": { "template": template } })
}

/// ApplyRevision for a template-replacing patch: the template it restores.
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.get("spec")?.get("template")?.clone();
    let m = t.as_object_mut()?;
    m.remove("$patch");
    if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("creationTimestamp");
    }
    // Undo go_template, so that a template round-trips unchanged.
    if let Some(spec) = m.get_mut("spec") {
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) else { continue };
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                if c.get("resources") == Some(&json!({})) {
                    c.remove("resources");
                }
            }
        }
    }
    serde_json::from_value(t).ok()
}

/// The bytes a revision's data hashes and compares as.
pub fn data_bytes(rev: &ControllerRevision) -> String {
    rev.data.as_ref().map(|d| go_json(&d.0)).unwrap_or_default()
}

/// NewControllerRevision: named `<parent>-<hash>`, labelled with the
/// template's labels (which the owner's selector, and so kubectl, finds)
/// and the hash, controlled by the parent.
pub fn new_revision<K: Resource<DynamicType = ()>>(
    parent: &K,
    template_labels: Option<&BTreeMap<String, String>>,
    data: Value,
    revision: i64,
    probe: Option<i32>,
) -> ControllerRevision {
    let hash = hash_revision(go_json(&data).as_bytes(), probe);
    let mut labels = template_labels.cloned().unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.clone());
    let meta = parent.meta();
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(meta.name.as_deref().unwrap_or_default(), &hash)),
            namespace: meta.namespace.clone(),
            labels: Some(labels),
            // Upstream copies the owner's annotations, so that
            // kubernetes.io/change-cause shows in `rollout history`.
            annotations: meta.annotations.clone().filter(|a| !a.is_empty()),
            owner_references: Some(vec![podutil::controller_ref(parent)]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision,
    }
}

/// EqualRevision: the same hash label (when both have one) and the same data.
pub fn equal(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    let (ha, hb) = (a.labels().get(HASH_LABEL), b.labels().get(HASH_LABEL));
    if ha.is_some() && hb.is_some() && ha != hb {
        return false;
    }
    data_bytes(a) == data_bytes(b)
}

/// SortControllerRevisions: by revision, then creation time, then name.
pub fn sort(revs: &mut [Arc<ControllerRevision>]) {
    revs.sort_by(|a, b| {
        (a.revision, a.metadata.creation_timestamp.as_ref().map(|t| t.0), a.name_any()).cmp(&(
            b.revision,
            b.metadata.creation_timestamp.as_ref().map(|t| t.0),
            b.name_any(),
        ))
    });
}

/// The revision number after the newest of `sorted`.
pub fn next_revision(sorted: &[Arc<ControllerRevision>]) -> i64 {
    sorted.last().map_or(1, |r| r.revision + 1)
}

/// The cached revisions in `ns` controlled by `owner_uid`, sorted.
pub fn owned(cache: &Store<ControllerRevision>, ns: &str, owner_uid: &str) -> Vec<Arc<ControllerRevision>> {
    let mut revs: Vec<_> = cache
        .state()
        .into_iter()
        .filter(|r| {
            r.metadata.namespace.as_deref() == Some(ns)
                && podutil::is_controlled_by(&r.metadata, owner_uid)
                && r.metadata.deletion_timestamp.is_none()
        })
        .collect();
    sort(&mut revs);
    revs
}

/// What to do so that `wanted` is the newest revision.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// The newest revision already holds this template.
    Keep(Arc<ControllerRevision>),
    /// An older one does (a rollback): renumber it to the newest.
    Renumber(Arc<ControllerRevision>, i64),
    Create(ControllerRevision),
}

/// The StatefulSet controller's choice in getStatefulSetRevisions.
pub fn plan_update(sorted: &[Arc<ControllerRevision>], wanted: ControllerRevision) -> Step {
    match sorted.iter().rev().find(|r| equal(r, &wanted)) {
        Some(r) if sorted.last().is_some_and(|l| Arc::ptr_eq(l, r)) => Step::Keep(r.clone()),
        Some(r) => Step::Renumber(r.clone(), wanted.revision),
        None => Step::Create(wanted),
    }
}

/// truncateHistory: revisions neither current, updating, nor worn by a
/// pod are history, and the oldest of them beyond `limit` go.
pub fn prune(sorted: &[Arc<ControllerRevision>], live: &BTreeSet<String>, limit: i32) -> Vec<String> {
    let history: Vec<String> = sorted.iter().map(|r| r.name_any()).filter(|n| !live.contains(n)).collect();
    let excess = history.len().saturating_sub(limit.max(0) as usize);
    history.into_iter().take(excess).collect()
}

/// CreateControllerRevision: on a name taken by different data, count a
/// collision and try the next name. Returns the revision and the count.
pub async fn create<K: Resource<DynamicType = ()>>(
    api: &Api<ControllerRevision>,
    parent: &K,
    mut rev: ControllerRevision,
    mut collisions: i32,
) -> Result<(ControllerRevision, i32)> {
    let data = rev.data.as_ref().map(|d| d.0.clone()).unwrap_or(Value::Null);
    loop {
        let hash = hash_revision(go_json(&data).as_bytes(), Some(collisions));
        let name = revision_name(&parent.meta().name.clone().unwrap_or_default(), &hash);
        rev.metadata.name = Some(name.clone());
        rev.metadata.labels.get_or_insert_with(BTreeMap::new).insert(HASH_LABEL.into(), hash);
        match super::timed(api.create(&PostParams::default(), &rev)).await? {
            Ok(created) => return Ok((created, collisions)),
            Err(e) if super::is_already_exists(&e) => {
                let existing = super::timed(api.get(&name)).await??;
                if equal(&existing, &rev) {
                    return Ok((existing, collisions));
                }
                collisions = collisions.checked_add(1).ok_or_else(|| {
                    SyncError::Invalid(format!("controller revision {name}: collision count overflow"))
                })?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// UpdateControllerRevision of the revision number only (data is immutable).
pub async fn renumber(api: &Api<ControllerRevision>, name: &str, revision: i64) -> Result<ControllerRevision> {
    let patch = json!({ "revision": revision });
    Ok(super::timed(api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))).await??)
}

/// Delete revisions, ignoring the ones already gone.
pub async fn delete_all(api: &Api<ControllerRevision>, names: &[String]) -> Result<()> {
    for name in names {
        match super::timed(api.delete(name, &DeleteParams::default())).await? {
            Ok(_) => {}
            Err(e) if super::is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSet;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .unwrap()
    }

    fn owner() -> StatefulSet {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default", "uid": "u"}})).unwrap()
    }

    fn rev(image: &str, n: i64) -> Arc<ControllerRevision> {
        let t = template(image);
        let labels = t.metadata.as_ref().and_then(|m| m.labels.as_ref());
        Arc::new(new_revision(&owner(), labels, template_patch(&t), n, Some(0)))
    }

    #[test]
    fn fnv1_matches_the_reference_vectors() {
        // From the FNV reference (draft-eastlake-fnv): FNV-1 32-bit.
        assert_eq!(fnv32(b""), 0x811c9dc5);
        assert_eq!(fnv32(b"a"), 0x050c5d7e);
        assert_eq!(fnv32(b"abc"), 0x439c2f4b);
    }

    #[test]
    fn patch_is_go_encoded_with_sorted_keys() {
        let p = go_json(&template_patch(&template("busybox:1.36")));
        assert_eq!(
            p,
            r#"{"spec":{"template":{"$patch":"replace","metadata":{"creationTimestamp":null,"labels":{"app":"web"}},"spec":{"containers":[{"image":"busybox:1.36","name":"c","resources":{}}]}}}}"#
        );
        assert_eq!(go_json(&json!({"b": "<&>", "a": 1})), r#"{"a":1,"b":"\u003c\u0026\u003e"}"#);
    }

    #[test]
    fn hash_is_stable_and_follows_data_and_collisions() {
        let a = rev("busybox:1.36", 1);
        let data = go_json(&template_patch(&template("busybox:1.36")));
        let expected = podutil::safe_encode(fnv32(format!("{data}0").as_bytes()));
        assert_eq!(a.name_any(), format!("web-{expected}"));
        assert_eq!(a.labels().get(HASH_LABEL), Some(&expected));
        assert_eq!(a.name_any(), rev("busybox:1.36", 7).name_any(), "the number is not hashed");
        assert_ne!(a.name_any(), rev("busybox:1.37", 1).name_any());
        assert_ne!(hash_revision(data.as_bytes(), Some(0)), hash_revision(data.as_bytes(), Some(1)));
        assert_eq!(revision_name(&"x".repeat(300), "h").len(), 225);
    }

    #[test]
    fn template_round_trips_through_a_revision() {
        assert_eq!(template_of(&rev("nginx", 1)), Some(template("nginx")));
    }

    #[test]
    fn unchanged_template_keeps_the_newest_revision() {
        let revs = vec![rev("a", 1), rev("b", 2)];
        assert_eq!(plan_update(&revs, (*rev("b", 3)).clone()), Step::Keep(revs[1].clone()));
    }

    #[test]
    fn an_older_identical_revision_is_renumbered_not_recreated() {
        let revs = vec![rev("a", 1), rev("b", 2)];
        assert_eq!(plan_update(&revs, (*rev("a", 3)).clone()), Step::Renumber(revs[0].clone(), 3));
        assert!(matches!(plan_update(&revs, (*rev("c", 3)).clone()), Step::Create(r) if r.revision == 3));
    }

    #[test]
    fn pruning_removes_the_oldest_unused_revisions() {
        let revs: Vec<_> = (1..=5).map(|i| rev(&format!("img{i}"), i)).collect();
        let names: Vec<String> = revs.iter().map(|r| r.name_any()).collect();
        // img1 is still worn by a pod, img5 is current: of img2..img4, keep 1.
        let live: BTreeSet<String> = [names[0].clone(), names[4].clone()].into();
        assert_eq!(prune(&revs, &live, 1), vec![names[1].clone(), names[2].clone()]);
        assert!(prune(&revs, &live, 10).is_empty());
    }
}
