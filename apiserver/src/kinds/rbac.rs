//! rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding
//! (upstream pkg/registry/rbac and pkg/apis/rbac/validation). Who may write them
//! (escalation prevention) is `crate::authz::escalation`, at the authorization layer.

use crate::registry::strategy::Strategy;
use crate::table::{arr, s, Column};
use crate::types::FieldCause;
use crate::validation::field::{self, Path};
use crate::validation::meta::{self, NameRule};
use serde_json::{json, Value};

pub const GROUP: &str = "rbac.authorization.k8s.io";

pub struct Roles;
pub struct ClusterRoles;
pub struct RoleBindings;
pub struct ClusterRoleBindings;

const ROLE_COLUMNS: &[Column] = &[Column("Name", "string", 0), Column("Created At", "date", 0)];
const BINDING_COLUMNS: &[Column] = &[
    Column("Name", "string", 0),
    Column("Role", "string", 0),
    Column("Age", "string", 0),
    Column("Users", "string", 1),
    Column("Groups", "string", 1),
    Column("ServiceAccounts", "string", 1),
];

fn role_cells(obj: &Value) -> Vec<Value> {
    vec![json!(s(obj, "/metadata/name")), json!(s(obj, "/metadata/creationTimestamp"))]
}

/// NAME, ROLE (Kind/name), AGE, then the subjects by kind as upstream's printer joins them.
fn binding_cells(obj: &Value) -> Vec<Value> {
    let mut cells = crate::table::name_and_age(obj);
    cells.insert(1, json!(format!("{}/{}", s(obj, "/roleRef/kind"), s(obj, "/roleRef/name"))));
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for sub in arr(obj, "/subjects") {
        match s(sub, "/kind") {
            "User" => users.push(s(sub, "/name").to_string()),
            "Group" => groups.push(s(sub, "/name").to_string()),
            "ServiceAccount" => sas.push(format!("{}:{}", s(sub, "/namespace"), s(sub, "/name"))),
            _ => {}
        }
    }
    cells.extend([json!(users.join(", ")), json!(groups.join(", ")), json!(sas.join(", "))]);
    cells
}

/// v1 defaults: roleRef.apiGroup and the subjects' apiGroup by kind.
fn default_binding(obj: &mut Value) {
    if let Some(r) = obj.get_mut("roleRef").and_then(Value::as_object_mut) {
        if r.get("apiGroup").and_then(Value::as_str).is_none_or(str::is_empty) {
            r.insert("apiGroup".into(), json!(GROUP));
        }
    }
    if let Some(subjects) = obj.get_mut("subjects").and_then(Value::as_array_mut) {
        for sub in subjects.iter_mut().filter_map(Value::as_object_mut) {
            if sub.get("apiGroup").and_then(Value::as_str).is_none_or(str::is_empty) {
                match sub.get("kind").and_then(Value::as_str) {
                    Some("User") | Some("Group") => {
                        sub.insert("apiGroup".into(), json!(GROUP));
                    }
                    Some("ServiceAccount") => {
                        sub.insert("apiGroup".into(), json!(""));
                    }
                    _ => {}
                }
            }
        }
    }
}

fn strs(v: &Value, key: &str) -> Vec<String> {
    v.get(key).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect()).unwrap_or_default()
}

/// Upstream's ValidatePolicyRule.
pub fn validate_rule(rule: &Value, namespaced: bool, path: &Path) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    if strs(rule, "verbs").is_empty() {
        errs.push(field::required(&path.child("verbs"), "verbs must contain at least one value"));
    }
    let urls = rule.get("nonResourceURLs").cloned().unwrap_or(Value::Null);
    if !strs(rule, "nonResourceURLs").is_empty() {
        if namespaced {
            errs.push(field::invalid(&path.child("nonResourceURLs"), &urls, "namespaced rules cannot apply to non-resource URLs"));
        }
        if !strs(rule, "apiGroups").is_empty() || !strs(rule, "resources").is_empty() || !strs(rule, "resourceNames").is_empty() {
            errs.push(field::invalid(&path.child("nonResourceURLs"), &urls, "rules cannot apply to both regular resources and non-resource URLs"));
        }
        return errs;
    }
    if strs(rule, "apiGroups").is_empty() {
        errs.push(field::required(&path.child("apiGroups"), "resource rules must supply at least one api group"));
    }
    if strs(rule, "resources").is_empty() {
        errs.push(field::required(&path.child("resources"), "resource rules must supply at least one resource"));
    }
    errs
}

fn validate_rules(obj: &Value, namespaced: bool) -> Vec<FieldCause> {
    let path = Path::new("rules");
    arr(obj, "/rules").iter().enumerate().flat_map(|(i, r)| validate_rule(r, namespaced, &path.index(i))).collect()
}

fn validate_role_ref(obj: &Value, kinds: &[&str]) -> Vec<FieldCause> {
    let path = Path::new("roleRef");
    let mut errs = Vec::new();
    let group = obj.pointer("/roleRef/apiGroup").cloned().unwrap_or(json!(""));
    if group != json!(GROUP) {
        errs.push(field::not_supported(&path.child("apiGroup"), &group, &[GROUP]));
    }
    let kind = obj.pointer("/roleRef/kind").cloned().unwrap_or(json!(""));
    if !kind.as_str().is_some_and(|k| kinds.contains(&k)) {
        errs.push(field::not_supported(&path.child("kind"), &kind, kinds));
    }
    let name = s(obj, "/roleRef/name");
    if name.is_empty() {
        errs.push(field::required(&path.child("name"), ""));
    } else if name == "." || name == ".." || name.contains('/') || name.contains('%') {
        errs.push(field::invalid(&path.child("name"), &json!(name), "may not contain '/' or '%', and may not be '.' or '..'"));
    }
    errs
}

/// Upstream's ValidateRoleBindingSubject.
fn validate_subject(sub: &Value, namespaced: bool, path: &Path) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    let name = s(sub, "/name");
    if name.is_empty() {
        errs.push(field::required(&path.child("name"), ""));
    }
    let group = sub.get("apiGroup").cloned().unwrap_or(json!(""));
    match s(sub, "/kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                for msg in crate::validation::names::dns1123_subdomain(name) {
                    errs.push(field::invalid(&path.child("name"), &json!(name), &msg));
                }
            }
            if group.as_str().is_some_and(|g| !g.is_empty()) {
                errs.push(field::not_supported(&path.child("apiGroup"), &group, &[""]));
            }
            if !namespaced && s(sub, "/namespace").is_empty() {
                errs.push(field::required(&path.child("namespace"), ""));
            }
        }
        "User" | "Group" => {
            if group != json!(GROUP) {
                errs.push(field::not_supported(&path.child("apiGroup"), &group, &[GROUP]));
            }
        }
        _ => {
            let kind = sub.get("kind").cloned().unwrap_or(json!(""));
            errs.push(field::not_supported(&path.child("kind"), &kind, &["ServiceAccount", "User", "Group"]));
        }
    }
    errs
}

fn validate_binding(obj: &Value, namespaced: bool) -> Vec<FieldCause> {
    let kinds: &[&str] = if namespaced { &["Role", "ClusterRole"] } else { &["ClusterRole"] };
    let mut errs = validate_role_ref(obj, kinds);
    let path = Path::new("subjects");
    for (i, sub) in arr(obj, "/subjects").iter().enumerate() {
        errs.extend(validate_subject(sub, namespaced, &path.index(i)));
    }
    errs
}

fn role_ref_immutable(obj: &Value, old: &Value) -> Vec<FieldCause> {
    let (new_ref, old_ref) = (obj.get("roleRef").cloned().unwrap_or(Value::Null), old.get("roleRef").cloned().unwrap_or(Value::Null));
    if new_ref != old_ref {
        return vec![field::invalid(&Path::new("roleRef"), &new_ref, "cannot change roleRef")];
    }
    Vec::new()
}

impl Strategy for Roles {
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        validate_rules(obj, true)
    }
    fn columns(&self) -> &'static [Column] {
        ROLE_COLUMNS
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        role_cells(obj)
    }
}

impl Strategy for ClusterRoles {
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        let mut errs = validate_rules(obj, false);
        if let Some(agg) = obj.get("aggregationRule").filter(|a| !a.is_null()) {
            let path = Path::new("aggregationRule").child("clusterRoleSelectors");
            let selectors = arr(agg, "/clusterRoleSelectors");
            if selectors.is_empty() {
                errs.push(field::required(&path, "at least one clusterRoleSelector required if aggregationRule is non-nil"));
            }
            for (i, sel) in selectors.iter().enumerate() {
                errs.extend(meta::validate_label_selector(sel, &path.index(i)));
            }
        }
        errs
    }
    fn columns(&self) -> &'static [Column] {
        ROLE_COLUMNS
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        role_cells(obj)
    }
}

impl Strategy for RoleBindings {
    fn default(&self, obj: &mut Value) {
        default_binding(obj)
    }
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        validate_binding(obj, true)
    }
    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        role_ref_immutable(obj, old)
    }
    fn columns(&self) -> &'static [Column] {
        BINDING_COLUMNS
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        binding_cells(obj)
    }
}

impl Strategy for ClusterRoleBindings {
    fn default(&self, obj: &mut Value) {
        default_binding(obj)
    }
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        validate_binding(obj, false)
    }
    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        role_ref_immutable(obj, old)
    }
    fn columns(&self) -> &'static [Column] {
        BINDING_COLUMNS
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        binding_cells(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(errs: &[FieldCause]) -> Vec<&str> {
        errs.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn rules_need_verbs_groups_and_resources() {
        let role = json!({"rules": [{"apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"]}]});
        assert_eq!(fields(&Roles.validate(&role)), ["rules[0].verbs", "rules[1].apiGroups", "rules[1].resources"]);
        let urls = json!({"rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]});
        assert!(ClusterRoles.validate(&urls).is_empty());
        assert_eq!(fields(&Roles.validate(&urls)), ["rules[0].nonResourceURLs"]);
    }

    #[test]
    fn bindings_check_role_ref_and_subjects() {
        let mut b = json!({"roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "sa"}, {"kind": "Robot", "name": "x"}, {"kind": "Group"}]});
        ClusterRoleBindings.default(&mut b);
        assert_eq!(b["subjects"][0]["apiGroup"], GROUP);
        assert_eq!(fields(&ClusterRoleBindings.validate(&b)), ["roleRef.kind", "subjects[1].namespace", "subjects[2].kind", "subjects[3].name"]);
        assert!(RoleBindings.validate(&json!({"roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "view"}})).is_empty());
    }

    #[test]
    fn role_ref_is_immutable() {
        let old = json!({"roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "view"}});
        let new = json!({"roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "edit"}});
        assert_eq!(fields(&RoleBindings.validate_update(&new, &old)), ["roleRef"]);
    }

    #[test]
    fn binding_table_names_role_and_subjects() {
        let b = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "a"}, {"kind": "Group", "name": "g"}, {"kind": "ServiceAccount", "namespace": "n", "name": "s"}]});
        let cells = ClusterRoleBindings.cells(&b);
        assert_eq!(cells[1], "ClusterRole/view");
        assert_eq!(cells[3..], [json!("a"), json!("g"), json!("n:s")]);
    }
}
