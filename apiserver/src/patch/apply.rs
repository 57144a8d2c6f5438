//! Server-side apply and the bookkeeping of `metadata.managedFields` for every write.

use super::fieldset::{self, DisplayPath, FieldPath};
use super::PatchError;
use crate::openapi::schemas::{definitions, Definitions};
use crate::types::{FieldCause, Gvk};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug)]
struct ManagedEntry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    fields: BTreeSet<FieldPath>,
}

impl ManagedEntry {
    fn parse(v: &Value) -> Option<Self> {
        Some(ManagedEntry {
            manager: v.get("manager")?.as_str()?.to_string(),
            operation: v
                .get("operation")
                .and_then(Value::as_str)
                .unwrap_or("Update")
                .to_string(),
            api_version: v
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            time: v.get("time").and_then(Value::as_str).map(str::to_string),
            subresource: v
                .get("subresource")
                .and_then(Value::as_str)
                .map(str::to_string),
            fields: v
                .get("fieldsV1")
                .map(fieldset::from_fields_v1)
                .unwrap_or_default(),
        })
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
        });
        if let Some(t) = &self.time {
            v["time"] = t.clone().into();
        }
        v["fieldsType"] = "FieldsV1".into();
        v["fieldsV1"] = fieldset::to_fields_v1(&self.fields);
        if let Some(s) = &self.subresource {
            v["subresource"] = s.clone().into();
        }
        v
    }
}

fn read_entries(obj: Option<&Value>) -> Vec<ManagedEntry> {
    obj.and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(ManagedEntry::parse).collect())
        .unwrap_or_default()
}

fn write_entries(obj: &mut Value, entries: &[ManagedEntry]) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(ManagedEntry::to_json)
        .collect();
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// The part of an object whose ownership is tracked: user-settable metadata and the spec-like
/// fields, never identity, system metadata or status.
fn tracked(obj: &Value) -> Value {
    let mut out = Map::new();
    let Some(map) = obj.as_object() else {
        return Value::Object(out);
    };
    for (k, v) in map {
        match k.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                let mut meta = Map::new();
                for key in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(v) = v.get(key) {
                        meta.insert(key.into(), v.clone());
                    }
                }
                if !meta.is_empty() {
                    out.insert(k.clone(), Value::Object(meta));
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

fn root_schema(gvk: &Gvk) -> Option<&'static Value> {
    let defs = definitions();
    defs.root_for(gvk).and_then(|n| defs.schemas.get(n))
}

pub fn server_side_apply(
    gvk: &Gvk,
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, PatchError> {
    if !applied.is_object() {
        return Err(PatchError::Malformed(
            "error decoding YAML: the applied configuration is not an object".into(),
        ));
    }
    if manager.is_empty() {
        return Err(PatchError::Malformed(
            "PATCH, application/apply-patch+yaml requires fieldManager to be set".into(),
        ));
    }
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(PatchError::Malformed(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let kind = applied
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or(&gvk.kind);
    let api_version = applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| gvk.api_version());
    if kind != gvk.kind || api_version != gvk.api_version() {
        return Err(PatchError::Malformed(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            gvk.api_version()
        )));
    }
    let defs = definitions();
    let schema = root_schema(gvk);
    let config = tracked(applied);
    let new_set = fieldset::field_set(&config, schema, defs);
    let mut entries = read_entries(current);
    let live = current.cloned().unwrap_or_else(|| {
        let mut fresh = json!({"apiVersion": gvk.api_version(), "kind": gvk.kind, "metadata": {}});
        if let Some(meta) = applied.get("metadata").and_then(Value::as_object) {
            for key in ["name", "namespace", "generateName"] {
                if let Some(v) = meta.get(key) {
                    fresh["metadata"][key] = v.clone();
                }
            }
        }
        fresh
    });
    let mut merged = live.clone();
    merge(&mut merged, &config, schema, defs, 0);
    let mine = |e: &ManagedEntry| {
        e.manager == manager && e.operation == "Apply" && e.subresource.is_none()
    };
    let old_set: BTreeSet<FieldPath> = entries
        .iter()
        .filter(|e| mine(e))
        .flat_map(|e| e.fields.clone())
        .collect();
    // Fields this manager applied before and no longer applies are removed unless someone else owns them.
    for path in old_set.difference(&new_set) {
        let shared = entries.iter().any(|e| !mine(e) && e.fields.contains(path));
        // A field under one the configuration now sets as a whole (an atomic struct or list) was
        // already replaced by the merge.
        let covered = (1..path.len()).any(|n| new_set.contains(&path[..n]));
        if !shared && !covered {
            fieldset::remove_path(&mut merged, path);
        }
    }
    let changed = fieldset::changed(&tracked(&live), &tracked(&merged), schema, defs);
    let mut conflicts: Vec<(usize, FieldPath)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if mine(e) || e.manager == manager {
            continue;
        }
        for path in e.fields.intersection(&new_set) {
            if changed.contains(path) {
                conflicts.push((i, path.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        // Upstream's lastAppliedManager: taking over from client-side apply is not a conflict
        // for the fields its last-applied configuration still holds as they are live.
        // Those fields then move as a forced apply moves them.
        let allowed = allowed_by_last_applied(&live, schema, defs);
        let real: Vec<(usize, FieldPath)> = conflicts.iter().filter(|(_, path)| !allowed.contains(path)).cloned().collect();
        if !real.is_empty() {
            return Err(conflict_error(&entries, &real));
        }
    }
    for (i, path) in &conflicts {
        entries[*i].fields.remove(path);
    }
    entries.retain(|e| !mine(e));
    entries.push(ManagedEntry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: gvk.api_version(),
        time: Some(now.to_string()),
        subresource: None,
        fields: new_set,
    });
    write_entries(&mut merged, &entries);
    update_last_applied(&mut merged, applied);
    Ok(merged)
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn last_applied(obj: &Value) -> Option<Value> {
    let text = obj.pointer("/metadata/annotations")?.get(LAST_APPLIED)?.as_str()?;
    serde_json::from_str::<Value>(text).ok().filter(Value::is_object)
}

/// The fields of the last-applied configuration whose live values are still the ones it set.
fn allowed_by_last_applied(live: &Value, schema: Option<&'static Value>, defs: &'static Definitions) -> BTreeSet<FieldPath> {
    let Some(config) = last_applied(live) else { return BTreeSet::new() };
    let config = tracked(&config);
    let mut with_config = live.clone();
    merge(&mut with_config, &config, schema, defs, 0);
    let modified = fieldset::changed(&tracked(live), &tracked(&with_config), schema, defs);
    fieldset::field_set(&config, schema, defs).difference(&modified).cloned().collect()
}

/// Upstream's lastAppliedUpdater: an object that carries the client-side annotation keeps it
/// in step with what server-side apply applied, so a later client-side apply computes its
/// patch from the truth.
fn update_last_applied(merged: &mut Value, applied: &Value) {
    if merged.pointer("/metadata/annotations").and_then(|a| a.get(LAST_APPLIED)).is_none() {
        return;
    }
    let mut config = applied.clone();
    if let Some(a) = config.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
        a.remove(LAST_APPLIED);
        if a.is_empty() {
            if let Some(m) = config.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("annotations");
            }
        }
    }
    merged["metadata"]["annotations"][LAST_APPLIED] = Value::String(config.to_string());
}

/// upstream: `Apply failed with 1 conflict: conflict with "m" using v1: .spec.replicas`.
fn conflict_error(entries: &[ManagedEntry], conflicts: &[(usize, FieldPath)]) -> PatchError {
    let causes: Vec<FieldCause> = conflicts
        .iter()
        .map(|(i, path)| FieldCause {
            reason: "FieldManagerConflict".into(),
            message: format!("conflict with {}", who(&entries[*i])),
            field: DisplayPath(path).to_string(),
        })
        .collect();
    let message = if causes.len() == 1 {
        format!(
            "Apply failed with 1 conflict: {}: {}",
            causes[0].message, causes[0].field
        )
    } else {
        // Grouped by manager, managers sorted as upstream sorts their identifiers.
        let mut by_manager: Vec<(String, String, Vec<String>)> = Vec::new();
        for (i, path) in conflicts {
            let e = &entries[*i];
            let sort_key = format!(
                "{}\0{}\0{}",
                e.manager,
                e.operation,
                e.subresource.as_deref().unwrap_or("")
            );
            let owner = format!("conflicts with {}", who(e));
            match by_manager.iter_mut().find(|(k, _, _)| *k == sort_key) {
                Some((_, _, paths)) => paths.push(DisplayPath(path).to_string()),
                None => by_manager.push((sort_key, owner, vec![DisplayPath(path).to_string()])),
            }
        }
        by_manager.sort();
        let by_manager: Vec<(String, Vec<String>)> =
            by_manager.into_iter().map(|(_, o, p)| (o, p)).collect();
        let body: Vec<String> = by_manager
            .iter()
            .map(|(who, paths)| {
                format!(
                    "{who}:\n{}",
                    paths
                        .iter()
                        .map(|p| format!("- {p}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            })
            .collect();
        format!(
            "Apply failed with {} conflicts: {}",
            causes.len(),
            body.join("\n")
        )
    };
    PatchError::Conflict { message, causes }
}

/// upstream's `printManager`: `"m" using apps/v1` for Update managers, `"m"` for appliers,
/// with ` with subresource "scale"` after the name when there is one.
fn who(e: &ManagedEntry) -> String {
    let mut out = format!("\"{}\"", e.manager);
    if let Some(sub) = &e.subresource {
        out.push_str(&format!(" with subresource \"{sub}\""));
    }
    if e.operation == "Update" {
        out.push_str(&format!(" using {}", e.api_version));
    }
    out
}

/// Merges an applied configuration into the live object: maps deeply, associative lists by
/// their key, other lists atomically.
fn merge(
    live: &mut Value,
    config: &Value,
    schema: Option<&'static Value>,
    defs: &'static Definitions,
    depth: usize,
) {
    let (Some(live_map), Some(config_map)) = (live.as_object_mut(), config.as_object()) else {
        *live = config.clone();
        return;
    };
    if depth > 96 {
        return;
    }
    for (key, value) in config_map {
        let child_schema = schema.and_then(|s| defs.child(s, key));
        match (live_map.get_mut(key), value) {
            (Some(existing @ Value::Object(_)), Value::Object(_))
                if !child_schema.is_some_and(|s| defs.is_free_form(s) || defs.is_atomic(s)) =>
            {
                merge(existing, value, child_schema, defs, depth + 1);
            }
            (Some(Value::Array(existing)), Value::Array(items)) => {
                let meta = schema
                    .and_then(|s| defs.field_patch_meta(s, key))
                    .filter(|m| m.merges());
                let elem = child_schema.and_then(|s| defs.element(s));
                match meta {
                    Some(m) => match m.merge_key {
                        Some(k)
                            if items
                                .iter()
                                .chain(existing.iter())
                                .all(|i| i.get(k).is_some()) =>
                        {
                            for item in items {
                                match existing.iter_mut().find(|e| e.get(k) == item.get(k)) {
                                    Some(found) => merge(found, item, elem, defs, depth + 1),
                                    None => existing.push(item.clone()),
                                }
                            }
                        }
                        Some(_) => *existing = items.clone(),
                        None => {
                            for item in items {
                                if !existing.contains(item) {
                                    existing.push(item.clone());
                                }
                            }
                        }
                    },
                    None => *existing = items.clone(),
                }
            }
            _ => {
                live_map.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Records a non-apply write by `manager`: the fields it changed move to its Update entry.
/// `subresource` is `Some("status")`/`Some("scale")` for writes through a subresource; status
/// writes track the status fields, which writes to the main resource never own.
pub fn record_update(
    gvk: &Gvk,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
) {
    if manager.is_empty() || !new.get("metadata").is_some_and(Value::is_object) {
        return;
    }
    let defs = definitions();
    let schema = root_schema(gvk);
    let view = |v: &Value| {
        if subresource == Some("status") {
            status_only(v)
        } else {
            tracked(v)
        }
    };
    let sent = new
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(|l| !l.is_empty());
    let mut entries = if sent {
        read_entries(Some(new))
    } else {
        read_entries(old)
    };
    let changed = match old {
        Some(old) => fieldset::changed(&view(old), &view(new), schema, defs),
        None => fieldset::field_set(&view(new), schema, defs),
    };
    let present = view(new);
    let changed: BTreeSet<FieldPath> = changed
        .into_iter()
        .filter(|p| fieldset_contains_path(&present, p))
        .collect();
    let is_mine = |e: &ManagedEntry| {
        e.manager == manager && e.operation == "Update" && e.subresource.as_deref() == subresource
    };
    for e in entries.iter_mut().filter(|e| !is_mine(e)) {
        for path in &changed {
            e.fields.remove(path);
        }
    }
    if changed.is_empty() {
        write_entries(new, &entries);
        return;
    }
    match entries.iter_mut().find(|e| is_mine(e)) {
        Some(e) => {
            e.fields.extend(changed);
            e.time = Some(now.to_string());
            e.api_version = gvk.api_version();
        }
        None => entries.push(ManagedEntry {
            manager: manager.to_string(),
            operation: "Update".into(),
            api_version: gvk.api_version(),
            time: Some(now.to_string()),
            subresource: subresource.map(str::to_string),
            fields: changed,
        }),
    }
    write_entries(new, &entries);
}

fn status_only(obj: &Value) -> Value {
    match obj.get("status") {
        Some(status) => json!({ "status": status }),
        None => json!({}),
    }
}

/// Removed fields are nobody's; only paths present in the new object are recorded.
fn fieldset_contains_path(obj: &Value, path: &[fieldset::PathElement]) -> bool {
    fieldset::path_exists(obj, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gvk() -> Gvk {
        Gvk::new("apps", "v1", "Deployment")
    }

    fn deploy(replicas: i64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}})
    }

    #[test]
    fn apply_of_an_absent_object_creates_it_with_an_apply_entry() {
        let out = server_side_apply(
            &gvk(),
            None,
            &deploy(1),
            "kubectl",
            false,
            "2024-01-01T00:00:00Z",
        )
        .unwrap();
        assert_eq!(out["spec"]["replicas"], 1);
        assert_eq!(out["metadata"]["name"], "web");
        let mf = &out["metadata"]["managedFields"][0];
        assert_eq!(mf["manager"], "kubectl");
        assert_eq!(mf["operation"], "Apply");
        assert_eq!(mf["apiVersion"], "apps/v1");
        assert_eq!(mf["fieldsType"], "FieldsV1");
        assert_eq!(mf["time"], "2024-01-01T00:00:00Z");
        assert!(mf["fieldsV1"]["f:spec"]["f:replicas"].is_object());
    }

    #[test]
    fn apply_conflicts_with_a_client_side_manager_and_force_takes_ownership() {
        let mut live = deploy(1);
        record_update(
            &gvk(),
            None,
            &mut live,
            "kubectl-client-side-apply",
            None,
            "t0",
        );
        let err =
            server_side_apply(&gvk(), Some(&live), &deploy(3), "kubectl", false, "t1").unwrap_err();
        match err {
            PatchError::Conflict { message, causes } => {
                assert_eq!(message, "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas");
                assert_eq!(causes[0].reason, "FieldManagerConflict");
                assert_eq!(causes[0].field, ".spec.replicas");
            }
            other => panic!("expected conflict, got {other:?}"),
        }
        // Applying the same values shares ownership instead of conflicting.
        assert!(server_side_apply(&gvk(), Some(&live), &deploy(1), "kubectl", false, "t1").is_ok());
        let out =
            server_side_apply(&gvk(), Some(&live), &deploy(3), "kubectl", true, "t1").unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        let entries = out["metadata"]["managedFields"].as_array().unwrap();
        let csa = entries
            .iter()
            .find(|e| e["manager"] == "kubectl-client-side-apply")
            .unwrap();
        assert!(csa["fieldsV1"]["f:spec"].get("f:replicas").is_none());
    }

    /// kubectl apply --server-side after client-side apply: the fields the last-applied
    /// annotation holds as they are live pass to the server-side manager without a conflict.
    #[test]
    fn server_side_apply_takes_over_from_client_side_apply_without_conflict() {
        let mut csa = deploy(1);
        csa["metadata"]["annotations"] = json!({LAST_APPLIED: deploy(1).to_string()});
        let mut live = csa.clone();
        record_update(&gvk(), None, &mut live, "kubectl-client-side-apply", None, "t0");
        let out = server_side_apply(&gvk(), Some(&live), &deploy(3), "kubectl", false, "t1").expect("no conflict");
        assert_eq!(out["spec"]["replicas"], 3);
        let entries = out["metadata"]["managedFields"].as_array().unwrap();
        let csa_entry = entries.iter().find(|e| e["manager"] == "kubectl-client-side-apply").unwrap();
        assert!(csa_entry["fieldsV1"]["f:spec"].get("f:replicas").is_none(), "ownership moved");
        let annotation: Value = serde_json::from_str(out["metadata"]["annotations"][LAST_APPLIED].as_str().unwrap()).unwrap();
        assert_eq!(annotation["spec"]["replicas"], 3, "the annotation follows the apply");
        // Someone else changed the field since: that is a real conflict.
        let mut drifted = live.clone();
        drifted["spec"]["replicas"] = json!(2);
        record_update(&gvk(), Some(&live), &mut drifted, "kubectl-scale", None, "t2");
        assert!(matches!(server_side_apply(&gvk(), Some(&drifted), &deploy(3), "kubectl", false, "t3"), Err(PatchError::Conflict { .. })));
    }

    #[test]
    fn conflicts_with_several_managers_are_grouped_and_appliers_print_without_version() {
        let live = server_side_apply(&gvk(), None, &deploy(1), "zeta", false, "t0").unwrap();
        let mut scaled = live.clone();
        scaled["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        record_update(&gvk(), Some(&live), &mut scaled, "alpha", None, "t1");
        let mut wanted = deploy(7);
        wanted["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:3");
        match server_side_apply(&gvk(), Some(&scaled), &wanted, "kubectl", false, "t2") {
            Err(PatchError::Conflict { message, causes }) => {
                assert_eq!(
                    message,
                    "Apply failed with 2 conflicts: conflicts with \"alpha\" using apps/v1:\n- .spec.template.spec.containers[name=\"nginx\"].image\nconflicts with \"zeta\":\n- .spec.replicas"
                );
                assert_eq!(causes.len(), 2);
            }
            other => panic!("expected conflicts, got {other:?}"),
        }
    }

    #[test]
    fn fields_dropped_from_the_applied_config_are_removed() {
        let mut first = deploy(1);
        first["metadata"]["labels"] = json!({"a": "1", "b": "2"});
        let live = server_side_apply(&gvk(), None, &first, "kubectl", false, "t0").unwrap();
        let mut second = deploy(1);
        second["metadata"]["labels"] = json!({"a": "1"});
        let out = server_side_apply(&gvk(), Some(&live), &second, "kubectl", false, "t1").unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"a": "1"}));
    }

    #[test]
    fn fields_now_owned_as_a_whole_are_not_pruned() {
        let mut live = server_side_apply(&gvk(), None, &deploy(1), "kubectl", false, "t0").unwrap();
        // An entry written when the selector was tracked field by field.
        live["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:selector"] =
            json!({"f:matchLabels": {"f:app": {}}});
        let out =
            server_side_apply(&gvk(), Some(&live), &deploy(1), "kubectl", false, "t1").unwrap();
        assert_eq!(
            out["spec"]["selector"],
            json!({"matchLabels": {"app": "web"}})
        );
    }

    #[test]
    fn containers_merge_by_name_across_managers() {
        let live = server_side_apply(&gvk(), None, &deploy(1), "a", false, "t0").unwrap();
        let mut other = deploy(1);
        other["spec"]["template"]["spec"]["containers"] =
            json!([{"name": "side", "image": "busybox"}]);
        other["spec"].as_object_mut().unwrap().remove("replicas");
        let out = server_side_apply(&gvk(), Some(&live), &other, "b", false, "t1").unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn record_update_moves_changed_fields() {
        let mut live = deploy(1);
        record_update(&gvk(), None, &mut live, "kubectl-create", None, "t0");
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(5);
        record_update(
            &gvk(),
            Some(&live),
            &mut scaled,
            "kubectl-scale",
            None,
            "t1",
        );
        let entries = scaled["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert!(entries[0]["fieldsV1"]["f:spec"].get("f:replicas").is_none());
        assert_eq!(entries[1]["manager"], "kubectl-scale");
        assert_eq!(entries[1]["operation"], "Update");
        assert!(entries[1]["fieldsV1"]["f:spec"]["f:replicas"].is_object());
    }

    #[test]
    fn scale_subresource_owner_conflicts_with_apply() {
        let live = server_side_apply(&gvk(), None, &deploy(2), "kubectl", false, "t0").unwrap();
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(5);
        record_update(
            &gvk(),
            Some(&live),
            &mut scaled,
            "kubectl-scale",
            Some("scale"),
            "t1",
        );
        let entry = &scaled["metadata"]["managedFields"][1];
        assert_eq!(entry["subresource"], "scale");
        match server_side_apply(&gvk(), Some(&scaled), &deploy(3), "kubectl", false, "t2") {
            Err(PatchError::Conflict { message, .. }) => assert_eq!(
                message,
                "Apply failed with 1 conflict: conflict with \"kubectl-scale\" with subresource \"scale\" using apps/v1: .spec.replicas"
            ),
            other => panic!("expected conflict, got {other:?}"),
        }
    }

    #[test]
    fn status_writes_own_status_fields() {
        let live = deploy(1);
        let mut new = live.clone();
        new["status"] = json!({"replicas": 1});
        record_update(
            &gvk(),
            Some(&live),
            &mut new,
            "controller",
            Some("status"),
            "t",
        );
        let entry = &new["metadata"]["managedFields"][0];
        assert_eq!(entry["subresource"], "status");
        assert!(entry["fieldsV1"]["f:status"]["f:replicas"].is_object());
    }

    #[test]
    fn bad_applied_configs_are_malformed() {
        assert!(matches!(
            server_side_apply(&gvk(), None, &json!([1]), "m", false, "t"),
            Err(PatchError::Malformed(_))
        ));
        assert!(matches!(
            server_side_apply(&gvk(), None, &deploy(1), "", false, "t"),
            Err(PatchError::Malformed(_))
        ));
    }
}
