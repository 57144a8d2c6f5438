//! The pure half of the CronJob controller: from a CronJob, the Jobs it
//! controls and the time, what to create, delete, report and write, as
//! upstream's cronjob controller v2 (syncCronJob and cleanupFinishedJobs).

use std::sync::Arc;
use std::time::Duration;

use apimachinery::cron::{self, Schedule, Tz};
use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use crate::events::EventType;
use crate::podutil;

/// The annotation upstream puts on each Job it starts.
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Upstream warns past this many missed starts and starts only the last.
pub const MANY_MISSED: i64 = 100;
/// Requeues land this long after the scheduled time, so the time has come.
pub const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

/// An Event the sync writes about the CronJob.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub type_: EventType,
    pub reason: &'static str,
    pub message: String,
}

/// A Job to delete (Background), and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Removal {
    pub name: String,
    pub uid: String,
}

/// What one sync of a CronJob should do, in this order: write `events`,
/// delete `replace`, create `create`, delete `history`, write `status`.
#[derive(Debug, Default)]
pub struct Plan {
    /// The status once the observations are made (finished and missing jobs
    /// out of `active`, lastSuccessfulTime); `replace` and `create` still
    /// to be applied by the sync as they succeed.
    pub status: CronJobStatus,
    pub events: Vec<Note>,
    /// concurrencyPolicy Replace: the active jobs to delete before creating.
    pub replace: Vec<Removal>,
    /// The Job for the scheduled time, and that time.
    pub create: Option<(Job, Timestamp)>,
    /// Finished jobs beyond the history limits, oldest first.
    pub history: Vec<Removal>,
    /// When the next scheduled time comes (assuming `create` succeeds).
    pub requeue: Option<Duration>,
}

pub fn to_chrono(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32).unwrap_or_default()
}

pub fn to_jiff(t: DateTime<Utc>) -> Timestamp {
    Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The condition type a finished Job ended with (Complete or Failed).
pub fn finished_condition(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

/// Is this Job one of the CronJob's? Upstream goes by the controller
/// reference's name, so `kubectl create job --from=cronjob/x` Jobs count.
pub fn is_owned(cj: &CronJob, job: &Job) -> bool {
    podutil::controller_of(&job.metadata)
        .is_some_and(|c| c.kind == "CronJob" && Some(&c.name) == cj.metadata.name.as_ref())
}

/// Upstream's job name for a scheduled time: minutes since the epoch.
pub fn job_name(cj: &CronJob, scheduled: DateTime<Utc>) -> String {
    format!("{}-{}", cj.metadata.name.as_deref().unwrap_or_default(), scheduled.timestamp().div_euclid(60))
}

#[derive(Debug, PartialEq)]
enum Missed {
    None,
    Few,
    Many,
}

/// The result of upstream's mostRecentScheduleTime.
struct Recent {
    earliest: DateTime<Utc>,
    most_recent: Option<DateTime<Utc>>,
    missed: Missed,
}

/// The schedule and zone the CronJob runs by, or the Event saying why not.
fn schedule_of(cj: &CronJob, events: &mut Vec<Note>) -> Option<(Schedule, Option<Tz>)> {
    let spec = cj.spec.as_ref()?;
    let mut tz = None;
    if let Some(zone) = &spec.time_zone {
        match cron::parse_time_zone(zone) {
            Ok(z) => tz = Some(z),
            Err(e) => {
                events.push(warn("UnknownTimeZone", format!("invalid timeZone: {zone:?}: {e}")));
                return None;
            }
        }
    }
    if spec.suspend == Some(true) {
        return None;
    }
    let mut text = spec.schedule.as_str();
    // Objects older than the refusal of TZ in schedules still run by it.
    if text.starts_with("TZ=") || text.starts_with("CRON_TZ=") {
        events.push(warn(
            "UnsupportedSchedule",
            format!("CRON_TZ or TZ used in schedule {text:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details"),
        ));
        let (prefix, rest) = text.split_once(' ').unwrap_or((text, ""));
        let zone = prefix.split_once('=').map(|(_, z)| z).unwrap_or_default();
        match zone.parse::<Tz>() {
            Ok(z) => tz = Some(z),
            Err(_) => {
                events.push(warn("UnparseableSchedule", format!("unparseable schedule: {text:?} : provided bad location {zone}: unknown time zone {zone}")));
                return None;
            }
        }
        text = rest.trim();
    }
    match cron::parse_schedule(text) {
        Ok(s) => Some((s, tz)),
        Err(e) => {
            events.push(warn("UnparseableSchedule", format!("unparseable schedule: {:?} : {e}", spec.schedule)));
            None
        }
    }
}

/// The latest scheduled time not yet started, and how many were missed.
fn most_recent(cj: &CronJob, now: DateTime<Utc>, sched: &Schedule, tz: Option<Tz>, with_deadline: bool) -> Result<Recent, String> {
    let status = cj.status.as_ref();
    let mut earliest = status
        .and_then(|s| s.last_schedule_time.as_ref())
        .or(cj.metadata.creation_timestamp.as_ref())
        .map(|t| to_chrono(t.0))
        .unwrap_or(now);
    if let Some(sds) = cj.spec.as_ref().and_then(|s| s.starting_deadline_seconds).filter(|_| with_deadline) {
        // Nothing before the deadline will be started anyway.
        let deadline = now - chrono::Duration::seconds(sds);
        if deadline > earliest {
            earliest = deadline;
        }
    }
    let never = || "time difference between two schedules is less than 1 second".to_string();
    let none = |most_recent| Ok(Recent { earliest, most_recent, missed: Missed::None });
    let t1 = sched.next_after(earliest, tz).ok_or_else(never)?;
    if now < t1 {
        return none(None);
    }
    let t2 = sched.next_after(t1, tz).ok_or_else(never)?;
    if now < t2 {
        return none(Some(t1));
    }
    let between = (t2 - t1).num_seconds();
    if between < 1 {
        return Err(never());
    }
    // Upstream's rough count: intervals of the first gap that fit until now.
    let missed_n = (now - t1).num_seconds() / between + 1;
    let most_recent = sched.latest_in(earliest, now, tz);
    let missed = if missed_n > MANY_MISSED { Missed::Many } else { Missed::Few };
    Ok(Recent { earliest, most_recent, missed })
}

/// How long until the first scheduled time after the last one handled.
fn next_duration(cj: &CronJob, now: DateTime<Utc>, sched: &Schedule, tz: Option<Tz>) -> Option<Duration> {
    let base = match most_recent(cj, now, sched, tz, false) {
        Err(_) => now,
        Ok(Recent { most_recent: Some(t), .. }) => t,
        Ok(Recent { missed: Missed::None, earliest, .. }) => earliest,
        Ok(_) => now,
    };
    let next = sched.next_after(base, tz)?;
    Some((next - now).to_std().unwrap_or_default() + NEXT_SCHEDULE_DELTA)
}

fn warn(reason: &'static str, message: String) -> Note {
    Note { type_: EventType::Warning, reason, message }
}

fn normal(reason: &'static str, message: String) -> Note {
    Note { type_: EventType::Normal, reason, message }
}

/// Decide from a CronJob, the Jobs that exist and are its own (by
/// [`is_owned`]; a Job in `status.active` that the cache lacks must have
/// been looked up by the caller), and the time.
pub fn plan(cj: &CronJob, jobs: &[Arc<Job>], now: Timestamp) -> Plan {
    let now = to_chrono(now);
    let mut out = Plan { status: cj.status.clone().unwrap_or_default(), ..Default::default() };
    observe(&mut out, jobs);
    out.history = history(cj, jobs);
    if cj.metadata.deletion_timestamp.is_some() {
        return out;
    }
    let Some((sched, tz)) = schedule_of(cj, &mut out.events) else {
        return out;
    };
    // Upstream reads the status as the observations left it.
    let mut seen = cj.clone();
    seen.status = Some(out.status.clone());
    let scheduled = match most_recent(&seen, now, &sched, tz, true) {
        Err(e) => {
            let s = &cj.spec.as_ref().map(|s| s.schedule.clone()).unwrap_or_default();
            out.events.push(warn("InvalidSchedule", format!("invalid schedule: {s} : {e}")));
            return out;
        }
        Ok(r) => {
            if r.missed == Missed::Many {
                out.events.push(warn(
                    "TooManyMissedTimes",
                    "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
                ));
            }
            r.most_recent.filter(|t| *t <= now)
        }
    };
    out.requeue = next_duration(&seen, now, &sched, tz);
    let Some(scheduled) = scheduled else {
        return out;
    };
    let spec = cj.spec.as_ref().expect("schedule_of needs a spec");
    if let Some(sds) = spec.starting_deadline_seconds {
        if scheduled + chrono::Duration::seconds(sds) < now {
            let when = scheduled.format("%a, %d %b %Y %H:%M:%S %z");
            out.events.push(warn("MissSchedule", format!("Missed scheduled time to start a job: {when}")));
            return out;
        }
    }
    let name = job_name(cj, scheduled);
    let active = out.status.active.as_deref().unwrap_or_default();
    let last = out.status.last_schedule_time.as_ref().map(|t| to_chrono(t.0));
    if active.iter().any(|r| r.name.as_deref() == Some(name.as_str())) || last == Some(scheduled) {
        return out;
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            out.events.push(normal(
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            ));
            return out;
        }
        Some("Replace") => {
            out.replace = active
                .iter()
                .map(|r| Removal { name: r.name.clone().unwrap_or_default(), uid: r.uid.clone().unwrap_or_default() })
                .collect();
        }
        _ => {}
    }
    out.create = Some((job_for(cj, scheduled, tz, name), to_jiff(scheduled)));
    // The requeue counts from this start, as once the status shows it.
    seen.status.get_or_insert_with(Default::default).last_schedule_time = Some(Time(to_jiff(scheduled)));
    out.requeue = next_duration(&seen, now, &sched, tz);
    out
}

/// Drop finished and vanished jobs from `active`; note the last success.
fn observe(out: &mut Plan, jobs: &[Arc<Job>]) {
    let st = &mut out.status;
    let in_active = |st: &CronJobStatus, uid: &str| st.active.iter().flatten().any(|r| r.uid.as_deref() == Some(uid));
    for j in jobs {
        let uid = j.metadata.uid.as_deref().unwrap_or_default();
        let name = j.metadata.name.as_deref().unwrap_or_default();
        let found = in_active(st, uid);
        match finished_condition(j) {
            None if !found => out.events.push(warn(
                "UnexpectedJob",
                format!("Saw a job that the controller did not create or forgot: {name}"),
            )),
            None => {}
            Some(cond) => {
                if found {
                    remove_active(st, uid);
                    out.events.push(normal("SawCompletedJob", format!("Saw completed job: {name}, condition: {cond}")));
                }
                let done = j.status.as_ref().and_then(|s| s.completion_time.clone());
                if cond == "Complete" && done.is_some() && st.last_successful_time.as_ref().is_none_or(|t| Some(t) < done.as_ref()) {
                    st.last_successful_time = done;
                }
            }
        }
    }
    let missing: Vec<ObjectReference> = st
        .active
        .iter()
        .flatten()
        .filter(|r| !jobs.iter().any(|j| j.metadata.uid == r.uid))
        .cloned()
        .collect();
    for r in missing {
        let name = r.name.clone().unwrap_or_default();
        out.events.push(normal("MissingJob", format!("Active job went missing: {name}")));
        remove_active(st, r.uid.as_deref().unwrap_or_default());
    }
}

pub fn remove_active(st: &mut CronJobStatus, uid: &str) {
    if let Some(a) = st.active.as_mut() {
        a.retain(|r| r.uid.as_deref() != Some(uid));
        if a.is_empty() {
            st.active = None;
        }
    }
}

/// The finished jobs beyond successfulJobsHistoryLimit/failedJobsHistoryLimit,
/// oldest start first (unstarted last, then by name) as upstream sorts them.
fn history(cj: &CronJob, jobs: &[Arc<Job>]) -> Vec<Removal> {
    let spec = cj.spec.as_ref();
    let mut out = Vec::new();
    for (cond, limit) in [
        ("Complete", spec.and_then(|s| s.successful_jobs_history_limit)),
        ("Failed", spec.and_then(|s| s.failed_jobs_history_limit)),
    ] {
        // No limit set keeps everything, as upstream.
        let Some(limit) = limit else { continue };
        let mut finished: Vec<&Arc<Job>> = jobs.iter().filter(|j| finished_condition(j) == Some(cond)).collect();
        let extra = finished.len().saturating_sub(limit.max(0) as usize);
        finished.sort_by_key(|j| {
            let start = j.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0);
            (start.is_none(), start, j.metadata.name.clone())
        });
        out.extend(finished.into_iter().take(extra).map(|j| Removal {
            name: j.metadata.name.clone().unwrap_or_default(),
            uid: j.metadata.uid.clone().unwrap_or_default(),
        }));
    }
    out
}

/// Upstream's getJobFromTemplate2: the template's labels, annotations and
/// spec, the scheduled time (in the CronJob's zone) as an annotation, and a
/// controller reference.
fn job_for(cj: &CronJob, scheduled: DateTime<Utc>, tz: Option<Tz>, name: String) -> Job {
    let template = cj.spec.as_ref().map(|s| s.job_template.clone()).unwrap_or_default();
    let tm = template.metadata.unwrap_or_default();
    let mut annotations = tm.annotations.unwrap_or_default();
    let when = scheduled.with_timezone(&tz.unwrap_or(Tz::UTC)).to_rfc3339_opts(SecondsFormat::Secs, true);
    annotations.insert(SCHEDULED_TIMESTAMP_ANNOTATION.into(), when);
    Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: cj.metadata.namespace.clone(),
            labels: tm.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![podutil::controller_ref(cj)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
