//! Field selectors over the fields each kind supports (metadata.name and
//! metadata.namespace everywhere, plus per-kind fields); the syntax and
//! matching are `apimachinery::fields`.

use super::SelectorError;
use serde_json::Value;

/// A parsed `fieldSelector` whose every field is supported for the kind it was parsed for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(pub apimachinery::fields::Selector);

/// The field labels each kind supports (`*` = every kind) and the JSON pointer each reads.
const FIELDS: &[(&str, &str, &str)] = &[
    ("*", "metadata.name", "/metadata/name"),
    ("*", "metadata.namespace", "/metadata/namespace"),
    ("Pod", "spec.nodeName", "/spec/nodeName"),
    ("Pod", "spec.schedulerName", "/spec/schedulerName"),
    ("Pod", "spec.serviceAccountName", "/spec/serviceAccountName"),
    ("Pod", "spec.restartPolicy", "/spec/restartPolicy"),
    ("Pod", "status.phase", "/status/phase"),
    ("Pod", "status.podIP", "/status/podIP"),
    ("Pod", "status.nominatedNodeName", "/status/nominatedNodeName"),
    ("Node", "spec.unschedulable", "/spec/unschedulable"),
    ("Namespace", "status.phase", "/status/phase"),
    ("Secret", "type", "/type"),
    ("Event", "involvedObject.kind", "/involvedObject/kind"),
    ("Event", "involvedObject.namespace", "/involvedObject/namespace"),
    ("Event", "involvedObject.name", "/involvedObject/name"),
    ("Event", "involvedObject.uid", "/involvedObject/uid"),
    ("Event", "involvedObject.apiVersion", "/involvedObject/apiVersion"),
    ("Event", "involvedObject.resourceVersion", "/involvedObject/resourceVersion"),
    ("Event", "involvedObject.fieldPath", "/involvedObject/fieldPath"),
    ("Event", "reason", "/reason"),
    ("Event", "reportingComponent", "/reportingComponent"),
    ("Event", "source", "/source/component"),
    ("Event", "type", "/type"),
    ("Job", "status.successful", "/status/succeeded"),
    ("ReplicaSet", "status.replicas", "/status/replicas"),
];

/// The JSON pointer a supported field label reads, for `kind`.
fn pointer_for(kind: &str, field: &str) -> Option<&'static str> {
    FIELDS.iter().find(|(k, f, _)| (*k == "*" || *k == kind) && *f == field).map(|(_, _, p)| *p)
}

/// Every pointer some field selector reads: what a cache must keep of an object to match
/// field selectors without the whole object.
pub fn selectable_pointers() -> impl Iterator<Item = &'static str> {
    FIELDS.iter().map(|(_, _, p)| *p)
}

fn field_value(obj: &Value, pointer: &str) -> String {
    match obj.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

impl FieldSelector {
    /// Parses `s` for objects of `kind`; unsupported field labels are an error (400).
    pub fn parse(s: &str, kind: &str) -> Result<Self, SelectorError> {
        let sel = apimachinery::fields::Selector::parse(s).map_err(|e| match e {
            apimachinery::fields::FieldSelectorError::Term { selector, term } => SelectorError::Field(selector, term),
            other => SelectorError::Field(s.into(), other.to_string()),
        })?;
        if let Some(r) = sel.requirements.iter().find(|r| pointer_for(kind, &r.field).is_none()) {
            return Err(SelectorError::UnsupportedField(r.field.clone()));
        }
        Ok(FieldSelector(sel))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, kind: &str, obj: &Value) -> bool {
        self.0.matches(|field| pointer_for(kind, field).map(|p| field_value(obj, p)))
    }

    /// The single name this selector pins, for `metadata.name=X` watches and lists.
    pub fn exact_name(&self) -> Option<&str> {
        self.0.requires_exact_match("metadata.name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_fields_and_negation() {
        let pod = json!({"metadata": {"name": "a", "namespace": "d"}, "spec": {"nodeName": "n1", "schedulerName": "default-scheduler"}, "status": {"phase": "Running"}});
        for (sel, want) in [
            ("spec.nodeName=n1", true),
            ("spec.nodeName=", false),
            ("spec.nodeName=n1,status.phase!=Succeeded,status.phase!=Failed", true),
            ("status.phase!=Running", false),
            ("metadata.name==a,metadata.namespace=d", true),
            ("spec.schedulerName=default-scheduler", true),
        ] {
            assert_eq!(FieldSelector::parse(sel, "Pod").unwrap().matches("Pod", &pod), want, "{sel}");
        }
    }

    #[test]
    fn unbound_pods_match_empty_node_name() {
        let pod = json!({"metadata": {"name": "a"}, "spec": {}});
        assert!(FieldSelector::parse("spec.nodeName=", "Pod").unwrap().matches("Pod", &pod));
    }

    #[test]
    fn event_involved_object() {
        let ev = json!({"metadata": {"name": "e"}, "involvedObject": {"uid": "u1", "name": "web", "namespace": "default"}});
        let s = FieldSelector::parse("involvedObject.uid=u1,involvedObject.name=web,involvedObject.namespace=default", "Event").unwrap();
        assert!(s.matches("Event", &ev));
    }

    #[test]
    fn unsupported_field_is_rejected() {
        assert!(matches!(FieldSelector::parse("spec.foo=1", "Pod"), Err(SelectorError::UnsupportedField(_))));
        assert!(FieldSelector::parse("garbage", "Pod").is_err());
    }
}
