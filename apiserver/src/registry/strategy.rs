//! Per-kind rules (upstream's RESTCreateStrategy/RESTUpdateStrategy/RESTGracefulDeleteStrategy
//! and its TableConvertor), one `Strategy` object per kind in `crate::kinds`, plus the generic
//! parts every write shares: which half of an object the main resource and the status
//! subresource may change, when generation moves, and the finalizers a delete adds.

use crate::resources::ResourceRow;
use crate::table::Column;
use crate::types::FieldCause;
use crate::validation::field;
use crate::validation::meta::{self, NameRule};
use serde_json::{json, Map, Value};

/// Which part of an object an update is allowed to change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Main,
    Status,
    /// Namespace `finalize`: only spec.finalizers.
    Finalize,
    /// pods/binding: the server itself sets spec.nodeName and the PodScheduled condition,
    /// which update validation would refuse from a client.
    Binding,
}

/// What one kind does differently. Every method has the behaviour of a kind without rules of
/// its own, so a strategy states only what sets its kind apart.
pub trait Strategy: Send + Sync + 'static {
    /// Upstream's SetDefaults for the kind, on create and on every update of the main resource.
    fn default(&self, _obj: &mut Value) {}
    /// What create resets before validation (PrepareForCreate): status, mostly.
    fn prepare_for_create(&self, _obj: &mut Value) {}
    /// Whether a change of `spec` moves metadata.generation (and create starts it at 1).
    fn bumps_generation(&self) -> bool {
        false
    }
    /// The syntax of metadata.name.
    fn name_rule(&self) -> NameRule {
        NameRule::Subdomain
    }
    /// The kind's own rules on create; metadata is checked by the caller.
    fn validate(&self, _obj: &Value) -> Vec<FieldCause> {
        Vec::new()
    }
    /// The kind's own rules on update (immutable fields); `validate` runs too.
    fn validate_update(&self, _obj: &Value, _old: &Value) -> Vec<FieldCause> {
        Vec::new()
    }
    /// Seconds a delete waits (CheckGracefulDelete); 0 deletes at once.
    fn grace_period(&self, _obj: &Value, _requested: Option<i64>) -> i64 {
        0
    }
    /// Whether an immediate delete answers with the object instead of a Status
    /// (upstream's ReturnDeletedObject).
    fn return_deleted_object(&self) -> bool {
        false
    }
    /// Whether something but metadata.finalizers holds the object back from deletion.
    fn blocks_deletion(&self, _obj: &Value) -> bool {
        false
    }
    /// What a delete that has to wait marks on the object besides deletionTimestamp
    /// (a namespace turns Terminating). True when it changed something.
    fn mark_deleting(&self, _obj: &mut Value) -> bool {
        false
    }
    /// Whether Orphan and Foreground deletes add their finalizer to this kind.
    fn takes_propagation_finalizers(&self) -> bool {
        true
    }
    /// Whether admission reads this kind's deletion from the watch cache, so a delete must
    /// return only once the cache has it (NamespaceLifecycle and namespaces).
    fn deletion_gates_admission(&self) -> bool {
        false
    }
    /// A kind that is never stored (TokenReview, SubjectAccessReview): only create is served,
    /// by a handler in `crate::handlers::computed`.
    fn create_only(&self) -> bool {
        false
    }
    /// `kubectl get` columns; NAME and AGE unless the kind prints more.
    fn columns(&self) -> &'static [Column] {
        crate::table::DEFAULT_COLUMNS
    }
    /// The cells of one row, matching `columns`.
    fn cells(&self, obj: &Value) -> Vec<Value> {
        crate::table::name_and_age(obj)
    }
}

/// Validation on create: metadata, then the kind's rules. Empty means valid.
pub fn validate_create(row: &ResourceRow, obj: &Value) -> Vec<FieldCause> {
    let mut errs = meta::validate_object_meta(obj, row.strategy.name_rule(), row.namespaced());
    errs.extend(row.strategy.validate(obj));
    errs
}

/// Validation on update: everything create checks, immutable metadata, and the kind's
/// update rules.
pub fn validate_update(row: &ResourceRow, obj: &Value, old: &Value) -> Vec<FieldCause> {
    let mut errs = validate_create(row, obj);
    for key in ["name", "namespace", "uid"] {
        let (new_v, old_v) = (obj.get("metadata").and_then(|m| m.get(key)), old.get("metadata").and_then(|m| m.get(key)));
        if old_v.is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty())) && new_v.is_some() && new_v != old_v {
            let shown = new_v.cloned().unwrap_or(Value::Null);
            errs.push(field::invalid(&field::Path::new("metadata").child(key), &shown, field::IMMUTABLE));
        }
    }
    errs.extend(row.strategy.validate_update(obj, old));
    errs
}

fn ensure_obj<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object) {
        v[key] = json!({});
    }
    v[key].as_object_mut().expect("just set to an object")
}

/// Create's generic part after the kind's own: generation starts at 1 where it counts.
pub fn prepare_for_create(row: &ResourceRow, obj: &mut Value) {
    // Decoding has made sure of this on every request path; the strategies may rely on it.
    if !obj.is_object() {
        return;
    }
    row.strategy.prepare_for_create(obj);
    if row.strategy.bumps_generation() {
        ensure_obj(obj, "metadata").insert("generation".into(), json!(1));
    }
}

/// Fields of metadata that only the server sets; a client's update never changes them.
const SERVER_METADATA: &[&str] =
    &["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "namespace", "name"];

/// Merges an update of `part` into `old`: the main resource ignores status, the status
/// subresource ignores everything but status (and labels/annotations, as upstream allows
/// for nodes), and server-owned metadata never changes. Bumps generation on spec changes.
pub fn prepare_for_update(row: &ResourceRow, part: Part, old: &Value, mut new: Value) -> Value {
    match part {
        Part::Main => {
            if row.has_subresource("status") {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(o) = new.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
        }
        Part::Status => {
            let mut merged = old.clone();
            match new.get("status") {
                Some(s) => merged["status"] = s.clone(),
                None => {
                    if let Some(o) = merged.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            // Keep the client's resourceVersion so it still acts as a precondition.
            if let Some(rv) = new.pointer("/metadata/resourceVersion").cloned() {
                ensure_obj(&mut merged, "metadata").insert("resourceVersion".into(), rv);
            }
            if let Some(uid) = new.pointer("/metadata/uid").cloned() {
                ensure_obj(&mut merged, "metadata").insert("uid".into(), uid);
            }
            new = merged;
        }
        Part::Binding => {}
        Part::Finalize => {
            let mut merged = old.clone();
            let fin = new.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
            ensure_obj(&mut merged, "spec").insert("finalizers".into(), fin);
            new = merged;
        }
    }
    if let (Some(old_meta), Some(new_meta)) = (old.get("metadata").and_then(Value::as_object), new.get_mut("metadata").and_then(Value::as_object_mut)) {
        for k in SERVER_METADATA {
            // The UID stays as the client sent it: a mismatch is a precondition failure, checked later.
            if *k == "uid" && new_meta.contains_key("uid") {
                continue;
            }
            match old_meta.get(*k) {
                Some(v) => {
                    new_meta.insert((*k).into(), v.clone());
                }
                None => {
                    new_meta.remove(*k);
                }
            }
        }
    }
    if row.strategy.bumps_generation() && part == Part::Main {
        let spec_changed = old.get("spec") != new.get("spec");
        let gen = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
        let gen = if spec_changed { gen + 1 } else { gen };
        ensure_obj(&mut new, "metadata").insert("generation".into(), json!(gen));
    }
    new
}

/// The finalizer a propagation policy asks for (upstream: orphan / foregroundDeletion).
pub fn propagation_finalizer(policy: Option<&str>) -> Option<&'static str> {
    match policy {
        Some("Orphan") => Some("orphan"),
        Some("Foreground") => Some("foregroundDeletion"),
        _ => None,
    }
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default()
}

/// Whether the object may not go yet: finalizers, or what its kind holds it back with.
pub fn blocks_deletion(row: &ResourceRow, obj: &Value) -> bool {
    !finalizers(obj).is_empty() || row.strategy.blocks_deletion(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;

    #[test]
    fn main_update_ignores_status_and_status_update_ignores_spec() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let old = json!({"metadata": {"name": "d", "generation": 1, "uid": "u"}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let new = json!({"metadata": {"name": "d"}, "spec": {"replicas": 3}, "status": {"replicas": 9}});
        let main = prepare_for_update(deploy, Part::Main, &old, new.clone());
        assert_eq!(main["spec"]["replicas"], 3);
        assert_eq!(main["status"]["replicas"], 1);
        assert_eq!(main["metadata"]["generation"], 2);
        assert_eq!(main["metadata"]["uid"], "u");
        let status = prepare_for_update(deploy, Part::Status, &old, new);
        assert_eq!(status["spec"]["replicas"], 1);
        assert_eq!(status["status"]["replicas"], 9);
        assert_eq!(status["metadata"]["generation"], 1);
    }

    #[test]
    fn metadata_only_change_keeps_generation() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let old = json!({"metadata": {"name": "d", "generation": 4}, "spec": {"replicas": 1}});
        let new = json!({"metadata": {"name": "d", "labels": {"a": "b"}}, "spec": {"replicas": 1}});
        assert_eq!(prepare_for_update(deploy, Part::Main, &old, new)["metadata"]["generation"], 4);
    }

    #[test]
    fn update_keeps_name_and_uid_immutable() {
        let pods = lookup("", "v1", "pods").unwrap();
        let old = json!({"metadata": {"name": "a", "uid": "1"}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
        let mut new = old.clone();
        new["metadata"]["uid"] = json!("2");
        assert_eq!(validate_update(pods, &new, &old)[0].field, "metadata.uid");
    }

    #[test]
    fn names_follow_the_kind_rule() {
        let errs = validate_create(lookup("", "v1", "namespaces").unwrap(), &json!({"metadata": {"name": "a.b"}}));
        assert!(errs[0].message.contains("RFC 1123 label"));
        let errs = validate_create(lookup("", "v1", "services").unwrap(), &json!({"metadata": {"name": "1svc", "namespace": "d"}, "spec": {"clusterIP": "None"}}));
        assert!(errs[0].message.contains("DNS-1035 label"));
    }
}
