//! Field selectors: `f=v`, `f==v`, `f!=v`, ANDed, over the fields each kind supports
//! (metadata.name and metadata.namespace everywhere, plus per-kind fields).

use super::SelectorError;
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub value: String,
    pub negate: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

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
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector::default());
        }
        for part in s.split(',') {
            let p = part.trim();
            let (field, value, negate) = if let Some((f, v)) = p.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = p.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = p.split_once('=') {
                (f, v, false)
            } else {
                return Err(SelectorError::Field(s.into(), p.into()));
            };
            let field = field.trim();
            if pointer_for(kind, field).is_none() {
                return Err(SelectorError::UnsupportedField(field.into()));
            }
            requirements.push(FieldRequirement { field: field.into(), value: value.trim().into(), negate });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, kind: &str, obj: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let Some(ptr) = pointer_for(kind, &r.field) else { return false };
            (field_value(obj, ptr) == r.value) != r.negate
        })
    }

    /// The single name this selector pins, for `metadata.name=X` watches and lists.
    pub fn exact_name(&self) -> Option<&str> {
        self.requirements.iter().find(|r| r.field == "metadata.name" && !r.negate).map(|r| r.value.as_str())
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
