//! PriorityClass validation (upstream pkg/apis/scheduling/validation).

use super::field::{self, Path};
use crate::admission::SYSTEM_PRIORITY_CLASSES;
use crate::types::FieldCause;
use serde_json::{json, Value};

/// Upstream's HighestUserDefinablePriority.
const HIGHEST_USER_DEFINABLE: i64 = 1_000_000_000;
const SYSTEM_PREFIX: &str = "system-";
const PREEMPTION_POLICIES: &[&str] = &["PreemptLowerPriority", "Never"];

pub fn validate_priority_class(obj: &Value) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let value = obj.get("value").and_then(Value::as_i64).unwrap_or(0);
    let global_default = obj.get("globalDefault").and_then(Value::as_bool).unwrap_or(false);
    if name.starts_with(SYSTEM_PREFIX) {
        // Only the built-in system classes, with their own values, may use the prefix.
        let known = SYSTEM_PRIORITY_CLASSES.iter().find(|(n, _)| *n == name);
        let problem = match known {
            None => Some(format!("{name} is not a known system priority class")),
            Some((_, v)) if *v != value => Some(format!("value of {name} PriorityClass must be {v}")),
            Some(_) if global_default => Some(format!("globalDefault of {name} PriorityClass must be false")),
            Some(_) => None,
        };
        if let Some(p) = problem {
            errs.push(field::forbidden(
                &Path::new("metadata").child("name"),
                &format!("priority class names with '{SYSTEM_PREFIX}' prefix are reserved for system use only. error: {p}"),
            ));
        }
    } else if value > HIGHEST_USER_DEFINABLE {
        errs.push(field::forbidden(
            &Path::new("value"),
            &format!("maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE}"),
        ));
    }
    if let Some(policy) = obj.get("preemptionPolicy").filter(|p| !p.is_null()) {
        if !policy.as_str().is_some_and(|p| PREEMPTION_POLICIES.contains(&p)) {
            errs.push(field::not_supported(&Path::new("preemptionPolicy"), policy, PREEMPTION_POLICIES));
        }
    }
    errs
}

/// value and preemptionPolicy may not change; description and globalDefault may.
pub fn validate_priority_class_update(obj: &Value, old: &Value) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    if obj.get("value").unwrap_or(&json!(0)) != old.get("value").unwrap_or(&json!(0)) {
        errs.push(field::forbidden(&Path::new("value"), "may not be changed in an update."));
    }
    let policy = |v: &Value| v.get("preemptionPolicy").cloned().unwrap_or(Value::Null);
    if policy(obj) != policy(old) {
        errs.push(field::invalid(&Path::new("preemptionPolicy"), &policy(obj), field::IMMUTABLE));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pc(name: &str, value: i64) -> Value {
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
               "value": value, "preemptionPolicy": "PreemptLowerPriority"})
    }

    #[test]
    fn priority_class_endpoints_refuse_immutable_changes() {
        let old = pc("high", 1000);
        let mut described = old.clone();
        described["description"] = json!("now described");
        assert!(validate_priority_class_update(&described, &old).is_empty());
        let mut revalued = old.clone();
        revalued["value"] = json!(2000);
        let errs = validate_priority_class_update(&revalued, &old);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "value");
        let mut repolicied = old.clone();
        repolicied["preemptionPolicy"] = json!("Never");
        assert_eq!(validate_priority_class_update(&repolicied, &old)[0].field, "preemptionPolicy");
    }

    #[test]
    fn user_priorities_stay_below_the_system_range() {
        assert!(validate_priority_class(&pc("high", HIGHEST_USER_DEFINABLE)).is_empty());
        assert_eq!(validate_priority_class(&pc("higher", HIGHEST_USER_DEFINABLE + 1))[0].field, "value");
        assert!(validate_priority_class(&pc("system-node-critical", 2_000_001_000)).is_empty());
        assert_eq!(validate_priority_class(&pc("system-mine", 5))[0].field, "metadata.name");
        assert_eq!(validate_priority_class(&pc("system-node-critical", 5))[0].field, "metadata.name");
        let mut bad = pc("p", 1);
        bad["preemptionPolicy"] = json!("Sometimes");
        assert_eq!(validate_priority_class(&bad)[0].field, "preemptionPolicy");
    }
}
