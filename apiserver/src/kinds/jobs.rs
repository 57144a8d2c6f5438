//! batch/v1 Jobs: the generated selector and template labels, status reset, generation,
//! validation and printJob's columns.

use crate::registry::strategy::Strategy;
use crate::table::{arr, human_duration, i, s, Column};
use crate::types::FieldCause;
use crate::validation::{batch, defaults};
use serde_json::{json, Value};

pub struct Jobs;

impl Strategy for Jobs {
    fn default(&self, obj: &mut Value) {
        defaults::job(obj);
        // Upstream generates the selector from the uid; a Job defaulted before the registry
        // assigned one gets its uid here, so that selector and labels agree.
        let needs_uid = obj.pointer("/metadata/uid").and_then(Value::as_str).is_none_or(str::is_empty);
        if needs_uid && obj.pointer("/spec/selector").is_none_or(Value::is_null) {
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("uid".into(), Value::String(uuid::Uuid::new_v4().to_string()));
            }
        }
        batch::generate_job_selector(obj);
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({});
    }
    fn bumps_generation(&self) -> bool {
        true
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        batch::validate_job(obj)
    }
    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        batch::validate_job_update(obj, old)
    }
    fn columns(&self) -> &'static [Column] {
        &[Column("Name", "string", 0), Column("Status", "string", 0), Column("Completions", "string", 0), Column("Duration", "string", 0), Column("Age", "string", 0)]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        let age = cells.pop().unwrap_or_default();
        let completions = obj.pointer("/spec/completions").and_then(Value::as_i64).unwrap_or(1);
        let succeeded = i(obj, "/status/succeeded");
        let conds = arr(obj, "/status/conditions");
        let has = |t: &str| conds.iter().any(|c| s(c, "/type") == t && s(c, "/status") == "True");
        let status = if has("Complete") {
            "Complete"
        } else if has("Failed") {
            "Failed"
        } else if obj.pointer("/metadata/deletionTimestamp").is_some() {
            "Terminating"
        } else {
            "Running"
        };
        let duration = match (obj.pointer("/status/startTime").and_then(Value::as_str), obj.pointer("/status/completionTime").and_then(Value::as_str)) {
            (Some(st), end) => {
                let st = chrono::DateTime::parse_from_rfc3339(st).ok();
                let end = end.and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok()).map(|e| e.with_timezone(&chrono::Utc)).unwrap_or_else(chrono::Utc::now);
                st.map(|st| human_duration((end - st.with_timezone(&chrono::Utc)).num_seconds())).unwrap_or_default()
            }
            _ => String::new(),
        };
        cells.extend([json!(status), json!(format!("{succeeded}/{completions}")), json!(duration), age]);
        cells
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::strategy::validate_create;
    use crate::resources::lookup;

    #[test]
    fn job_without_uid_still_gets_a_matching_selector() {
        let mut job = json!({"metadata": {"name": "pi"},
                             "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "busybox"}]}}}});
        Jobs.default(&mut job);
        let uid = job["metadata"]["uid"].as_str().unwrap().to_string();
        assert_eq!(job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"], uid.as_str());
        job["metadata"]["namespace"] = json!("default");
        let jobs = lookup("batch", "v1", "jobs").unwrap();
        assert!(validate_create(jobs, &job).is_empty(), "{:?}", validate_create(jobs, &job));
    }
}
