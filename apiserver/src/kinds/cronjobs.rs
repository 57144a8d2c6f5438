//! batch/v1 CronJobs (pkg/registry/batch/cronjob, pkg/apis/batch/validation): the schedule and
//! time zone parsed as the controller will parse them, the policies, and printCronJob.

use crate::registry::strategy::Strategy;
use crate::table::{arr, containers_images, human_duration, s, Column};
use crate::types::FieldCause;
use crate::validation::field::{self, Path};
use crate::validation::{defaults, pod};
use serde_json::{json, Value};

/// Job names get an 11-character suffix and must stay within 63.
const MAX_NAME: usize = 52;
const CONCURRENCY: &[&str] = &["Allow", "Forbid", "Replace"];

pub struct CronJobs;

fn validate_schedule(spec: &Value, errs: &mut Vec<FieldCause>) {
    let sp = Path::new("spec");
    match spec.get("schedule").and_then(Value::as_str) {
        None | Some("") => errs.push(field::required(&sp.child("schedule"), "")),
        Some(sched) => {
            if let Err(e) = apimachinery::cron::parse_schedule(sched) {
                errs.push(field::invalid(&sp.child("schedule"), &json!(sched), &e.to_string()));
            }
        }
    }
    if let Some(tz) = spec.get("timeZone").and_then(Value::as_str) {
        if let Err(e) = apimachinery::cron::parse_time_zone(tz) {
            errs.push(field::invalid(&sp.child("timeZone"), &json!(tz), &e.to_string()));
        }
    }
}

impl Strategy for CronJobs {
    fn default(&self, obj: &mut Value) {
        defaults::cron_job(obj);
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({});
    }
    fn bumps_generation(&self) -> bool {
        true
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        let mut errs = Vec::new();
        let name = s(obj, "/metadata/name");
        if name.len() > MAX_NAME {
            errs.push(field::invalid(&Path::new("metadata").child("name"), &json!(name), "must be no more than 52 characters"));
        }
        let sp = Path::new("spec");
        let Some(spec) = obj.get("spec").filter(|s| s.is_object()) else {
            return vec![field::required(&sp.child("schedule"), "")];
        };
        validate_schedule(spec, &mut errs);
        if let Some(v) = spec.get("concurrencyPolicy").filter(|v| !v.as_str().is_some_and(|p| CONCURRENCY.contains(&p))) {
            errs.push(field::not_supported(&sp.child("concurrencyPolicy"), v, CONCURRENCY));
        }
        for key in ["startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
            if let Some(v) = spec.get(key).filter(|v| v.as_i64().is_some_and(|n| n < 0)) {
                errs.push(field::invalid(&sp.child(key), v, "must be greater than or equal to 0"));
            }
        }
        let jp = sp.child("jobTemplate").child("spec");
        match spec.pointer("/jobTemplate/spec/template/spec/restartPolicy") {
            Some(v) if matches!(v.as_str(), Some("OnFailure" | "Never")) => {}
            Some(v) => errs.push(field::not_supported(&jp.child("template").child("spec").child("restartPolicy"), v, &["OnFailure", "Never"])),
            None => errs.push(field::required(&jp.child("template").child("spec").child("restartPolicy"), "valid values: \"OnFailure\", \"Never\"")),
        }
        errs.extend(pod::validate_pod_spec(spec.pointer("/jobTemplate/spec/template/spec"), &jp.child("template").child("spec")));
        errs
    }
    fn columns(&self) -> &'static [Column] {
        &[
            Column("Name", "string", 0), Column("Schedule", "string", 0), Column("Timezone", "string", 0), Column("Suspend", "boolean", 0),
            Column("Active", "integer", 0), Column("Last Schedule", "string", 0), Column("Age", "string", 0),
            Column("Containers", "string", 1), Column("Images", "string", 1), Column("Selector", "string", 1),
        ]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        let age = cells.pop().unwrap_or_default();
        let last = obj
            .pointer("/status/lastScheduleTime")
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()))
            .unwrap_or_else(|| "<none>".into());
        let (c, im) = containers_images(obj, "/spec/jobTemplate/spec/template/spec/containers");
        let tz = obj.pointer("/spec/timeZone").and_then(Value::as_str).unwrap_or("<none>");
        cells.extend([
            json!(s(obj, "/spec/schedule")), json!(tz), json!(obj.pointer("/spec/suspend").and_then(Value::as_bool).unwrap_or(false)),
            json!(arr(obj, "/status/active").len()), json!(last), age, json!(c), json!(im), json!("<none>"),
        ]);
        cells
    }
}
