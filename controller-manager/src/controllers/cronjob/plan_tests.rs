use super::*;
use k8s_openapi::api::batch::v1::{CronJobSpec, JobCondition, JobSpec, JobStatus, JobTemplateSpec};

const T0: &str = "2024-01-01T00:00:00Z";

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn cj(schedule: &str) -> CronJob {
    CronJob {
        metadata: ObjectMeta {
            name: Some("cj".into()),
            namespace: Some("default".into()),
            uid: Some("cj-uid".into()),
            creation_timestamp: Some(Time(at(T0))),
            ..Default::default()
        },
        spec: Some(CronJobSpec {
            schedule: schedule.into(),
            concurrency_policy: Some("Allow".into()),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(1),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some([("app".to_string(), "nightly".to_string())].into()),
                    annotations: Some([("team".to_string(), "ops".to_string())].into()),
                    ..Default::default()
                }),
                spec: Some(JobSpec { backoff_limit: Some(2), ..Default::default() }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

fn with(mut c: CronJob, f: impl FnOnce(&mut CronJobSpec)) -> CronJob {
    f(c.spec.as_mut().unwrap());
    c
}

fn last_scheduled(mut c: CronJob, t: &str) -> CronJob {
    c.status.get_or_insert_with(Default::default).last_schedule_time = Some(Time(at(t)));
    c
}

/// A job of `cj`: running (`end` None) or finished with `end`'s condition.
fn job(name: &str, start: Option<&str>, end: Option<(&str, &str)>) -> Arc<Job> {
    let owner = podutil::controller_ref(&cj("* * * * *"));
    Arc::new(Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("{name}-uid")),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: None,
        status: Some(JobStatus {
            start_time: start.map(|s| Time(at(s))),
            completion_time: end.filter(|(c, _)| *c == "Complete").map(|(_, t)| Time(at(t))),
            conditions: end.map(|(c, t)| {
                vec![JobCondition {
                    type_: c.into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(at(t))),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    })
}

fn active(mut c: CronJob, jobs: &[&Arc<Job>]) -> CronJob {
    c.status.get_or_insert_with(Default::default).active = Some(jobs.iter().map(|j| object_ref(j)).collect());
    c
}

fn object_ref(j: &Job) -> ObjectReference {
    crate::events::object_reference(j)
}

fn reasons(p: &Plan) -> Vec<&str> {
    p.events.iter().map(|n| n.reason).collect()
}

fn created(p: &Plan) -> &Job {
    &p.create.as_ref().expect("a job to create").0
}

#[test]
fn creates_the_job_for_a_scheduled_time() {
    let p = plan(&cj("*/1 * * * *"), &[], at("2024-01-01T00:01:05Z"));
    let j = created(&p);
    // 2024-01-01T00:01:00Z is 28401121 minutes after the epoch.
    assert_eq!(j.metadata.name.as_deref(), Some("cj-28401121"));
    assert_eq!(p.create.as_ref().unwrap().1, at("2024-01-01T00:01:00Z"));
    let ann = j.metadata.annotations.as_ref().unwrap();
    assert_eq!(ann[SCHEDULED_TIMESTAMP_ANNOTATION], "2024-01-01T00:01:00Z");
    assert_eq!(ann["team"], "ops");
    assert_eq!(j.metadata.labels.as_ref().unwrap()["app"], "nightly");
    let o = &j.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((o.kind.as_str(), o.name.as_str(), o.uid.as_str()), ("CronJob", "cj", "cj-uid"));
    assert_eq!((o.controller, o.block_owner_deletion), (Some(true), Some(true)));
    assert_eq!(j.spec.as_ref().unwrap().backoff_limit, Some(2));
    // Woken for 00:02:00, just after it.
    assert_eq!(p.requeue, Some(Duration::from_millis(55_100)));
    assert!(p.events.is_empty());
}

#[test]
fn nothing_is_due_before_the_first_scheduled_time() {
    let p = plan(&cj("*/5 * * * *"), &[], at("2024-01-01T00:03:00Z"));
    assert!(p.create.is_none());
    assert_eq!(p.requeue, Some(Duration::from_millis(120_100)));
}

#[test]
fn a_scheduled_time_is_started_once() {
    let c = last_scheduled(cj("*/1 * * * *"), "2024-01-01T00:01:00Z");
    let p = plan(&c, &[], at("2024-01-01T00:01:40Z"));
    assert!(p.create.is_none());
    assert_eq!(p.requeue, Some(Duration::from_millis(20_100)));
}

/// Conformance: "CronJob AllowConcurrent".
#[test]
fn allow_starts_a_job_while_another_runs() {
    let running = job("cj-28401120", Some(T0), None);
    let c = active(last_scheduled(cj("*/1 * * * *"), T0), &[&running]);
    let p = plan(&c, std::slice::from_ref(&running), at("2024-01-01T00:01:01Z"));
    assert!(p.create.is_some());
    assert!(p.replace.is_empty());
    assert_eq!(p.status.active.as_ref().map(Vec::len), Some(1));
}

/// Conformance: "CronJob ForbidConcurrent".
#[test]
fn forbid_skips_while_a_job_runs() {
    let running = job("cj-28401120", Some(T0), None);
    let c = with(active(last_scheduled(cj("*/1 * * * *"), T0), &[&running]), |s| {
        s.concurrency_policy = Some("Forbid".into())
    });
    let p = plan(&c, &[running], at("2024-01-01T00:01:01Z"));
    assert!(p.create.is_none());
    assert_eq!(reasons(&p), vec!["JobAlreadyActive"]);
    assert_eq!(p.requeue, Some(Duration::from_millis(59_100)));
}

#[test]
fn forbid_starts_once_the_running_job_finished() {
    let done = job("cj-28401120", Some(T0), Some(("Complete", "2024-01-01T00:00:30Z")));
    let c = with(active(last_scheduled(cj("*/1 * * * *"), T0), &[&done]), |s| {
        s.concurrency_policy = Some("Forbid".into())
    });
    let p = plan(&c, &[done], at("2024-01-01T00:01:01Z"));
    assert_eq!(reasons(&p), vec!["SawCompletedJob"]);
    assert_eq!(p.events[0].message, "Saw completed job: cj-28401120, condition: Complete");
    assert_eq!(p.status.active, None);
    assert_eq!(p.status.last_successful_time, Some(Time(at("2024-01-01T00:00:30Z"))));
    assert!(p.create.is_some());
}

/// Conformance: "CronJob ReplaceConcurrent".
#[test]
fn replace_deletes_the_running_job_then_creates() {
    let running = job("cj-28401120", Some(T0), None);
    let c = with(active(last_scheduled(cj("*/1 * * * *"), T0), &[&running]), |s| {
        s.concurrency_policy = Some("Replace".into())
    });
    let p = plan(&c, &[running], at("2024-01-01T00:01:01Z"));
    assert_eq!(p.replace, vec![Removal { name: "cj-28401120".into(), uid: "cj-28401120-uid".into() }]);
    assert_eq!(created(&p).metadata.name.as_deref(), Some("cj-28401121"));
}

/// Conformance: "CronJob Suspend".
#[test]
fn suspend_starts_nothing_and_leaves_running_jobs_alone() {
    let running = job("cj-28401120", Some(T0), None);
    let c = with(active(cj("*/1 * * * *"), &[&running]), |s| s.suspend = Some(true));
    let p = plan(&c, &[running], at("2024-01-01T00:05:00Z"));
    assert!(p.create.is_none());
    assert!(p.replace.is_empty() && p.history.is_empty());
    assert_eq!(p.requeue, None);
    assert_eq!(p.status.active.as_ref().map(Vec::len), Some(1));
}

#[test]
fn only_the_most_recent_missed_time_is_started() {
    let c = last_scheduled(cj("0 * * * *"), T0);
    let p = plan(&c, &[], at("2024-01-01T03:10:00Z"));
    assert_eq!(p.create.as_ref().unwrap().1, at("2024-01-01T03:00:00Z"));
    assert!(p.events.is_empty());
    assert_eq!(p.requeue, Some(Duration::from_millis(50 * 60_000 + 100)));
}

#[test]
fn a_start_missed_by_more_than_the_deadline_is_skipped() {
    let late = with(last_scheduled(cj("0 * * * *"), T0), |s| s.starting_deadline_seconds = Some(600));
    let p = plan(&late, &[], at("2024-01-01T05:30:00Z"));
    assert!(p.create.is_none());
    // Woken for the next start, 06:00.
    assert_eq!(p.requeue, Some(Duration::from_millis(30 * 60_000 + 100)));
    let in_time = with(last_scheduled(cj("0 * * * *"), T0), |s| s.starting_deadline_seconds = Some(3600));
    assert_eq!(plan(&in_time, &[], at("2024-01-01T05:30:00Z")).create.unwrap().1, at("2024-01-01T05:00:00Z"));
}

#[test]
fn too_many_missed_starts_warn_and_start_the_last() {
    let c = last_scheduled(cj("*/1 * * * *"), T0);
    let p = plan(&c, &[], at("2024-01-03T00:00:30Z"));
    assert_eq!(reasons(&p), vec!["TooManyMissedTimes"]);
    assert_eq!(p.events[0].type_, EventType::Warning);
    assert_eq!(p.create.unwrap().1, at("2024-01-03T00:00:00Z"));
    // A deadline keeps the count small: no warning.
    let c = with(last_scheduled(cj("*/1 * * * *"), T0), |s| s.starting_deadline_seconds = Some(200));
    assert!(plan(&c, &[], at("2024-01-03T00:00:30Z")).events.is_empty());
}

#[test]
fn history_limits_delete_the_oldest_finished_jobs() {
    let ok = |n: &str, start: Option<&str>| job(n, start, Some(("Complete", "2024-01-02T00:00:00Z")));
    let failed = |n: &str, start: &str| job(n, Some(start), Some(("Failed", "2024-01-02T00:00:00Z")));
    let jobs = vec![
        ok("s-unstarted", None),
        ok("s3", Some("2024-01-01T03:00:00Z")),
        ok("s1", Some("2024-01-01T01:00:00Z")),
        ok("s4", Some("2024-01-01T04:00:00Z")),
        ok("s2", Some("2024-01-01T02:00:00Z")),
        failed("f2", "2024-01-01T02:00:00Z"),
        failed("f1", "2024-01-01T01:00:00Z"),
        job("running", Some(T0), None),
    ];
    let c = with(cj("0 0 1 1 *"), |s| s.suspend = Some(true));
    let names: Vec<String> = plan(&c, &jobs, at("2024-01-02T00:00:00Z")).history.into_iter().map(|r| r.name).collect();
    assert_eq!(names, vec!["s1", "s2", "f1"]);
    // No limit keeps them all.
    let c = with(c, |s| {
        s.successful_jobs_history_limit = None;
        s.failed_jobs_history_limit = None;
    });
    assert!(plan(&c, &jobs, at("2024-01-02T00:00:00Z")).history.is_empty());
    let c = with(c, |s| s.failed_jobs_history_limit = Some(0));
    assert_eq!(plan(&c, &jobs, at("2024-01-02T00:00:00Z")).history.len(), 2);
}

#[test]
fn last_successful_time_is_the_latest_completion() {
    let jobs = vec![
        job("a", Some(T0), Some(("Complete", "2024-01-01T00:10:00Z"))),
        job("b", Some(T0), Some(("Complete", "2024-01-01T00:30:00Z"))),
        job("c", Some(T0), Some(("Failed", "2024-01-01T00:50:00Z"))),
    ];
    let p = plan(&last_scheduled(cj("0 0 1 1 *"), T0), &jobs, at("2024-01-01T01:00:00Z"));
    assert_eq!(p.status.last_successful_time, Some(Time(at("2024-01-01T00:30:00Z"))));
}

#[test]
fn an_active_job_that_went_missing_is_dropped() {
    let gone = job("cj-28401120", Some(T0), None);
    let p = plan(&active(last_scheduled(cj("0 0 1 1 *"), T0), &[&gone]), &[], at("2024-01-01T00:00:30Z"));
    assert_eq!(reasons(&p), vec!["MissingJob"]);
    assert_eq!(p.events[0].message, "Active job went missing: cj-28401120");
    assert_eq!(p.status.active, None);
}

/// `kubectl create job --from=cronjob/cj`: a job the CronJob controls but
/// did not start. It is reported, never deleted while it runs, does not
/// hold back Forbid, and counts in the history once finished.
#[test]
fn a_manually_created_job_is_reported_not_adopted() {
    let mut manual = (*job("cj-manual-x1", Some(T0), None)).clone();
    manual.metadata.annotations = Some([("cronjob.kubernetes.io/instantiate".to_string(), "manual".to_string())].into());
    let manual = Arc::new(manual);
    let c = with(last_scheduled(cj("*/1 * * * *"), T0), |s| s.concurrency_policy = Some("Forbid".into()));
    let p = plan(&c, std::slice::from_ref(&manual), at("2024-01-01T00:01:01Z"));
    assert_eq!(reasons(&p), vec!["UnexpectedJob"]);
    assert_eq!(p.events[0].message, "Saw a job that the controller did not create or forgot: cj-manual-x1");
    assert!(p.create.is_some());
    assert!(p.history.is_empty() && p.replace.is_empty());
    assert_eq!(p.status.active, None);
    let done = job("cj-manual-x1", Some(T0), Some(("Complete", "2024-01-01T00:00:40Z")));
    let c = with(c, |s| s.successful_jobs_history_limit = Some(0));
    let p = plan(&c, &[done], at("2024-01-01T00:00:50Z"));
    assert!(p.events.is_empty());
    assert_eq!(p.history.len(), 1);
    assert_eq!(p.status.last_successful_time, Some(Time(at("2024-01-01T00:00:40Z"))));
}

#[test]
fn jobs_are_owned_by_their_controller_reference_name() {
    let c = cj("* * * * *");
    assert!(is_owned(&c, &job("x", None, None)));
    let mut other = (*job("y", None, None)).clone();
    other.metadata.owner_references.as_mut().unwrap()[0].name = "another".into();
    assert!(!is_owned(&c, &other));
    other.metadata.owner_references = None;
    assert!(!is_owned(&c, &other));
}

#[test]
fn the_time_zone_decides_when_and_what_the_annotation_says() {
    let c = with(cj("0 9 * * *"), |s| s.time_zone = Some("Asia/Tokyo".into()));
    // 09:00 in Tokyo is 00:00 UTC.
    let p = plan(&c, &[], at("2024-01-02T00:00:30Z"));
    let (j, when) = p.create.as_ref().unwrap();
    assert_eq!(*when, at("2024-01-02T00:00:00Z"));
    assert_eq!(j.metadata.annotations.as_ref().unwrap()[SCHEDULED_TIMESTAMP_ANNOTATION], "2024-01-02T09:00:00+09:00");
    let ny = with(cj("0 9 * * *"), |s| s.time_zone = Some("America/New_York".into()));
    assert_eq!(plan(&ny, &[], at("2024-01-01T14:00:10Z")).create.unwrap().1, at("2024-01-01T14:00:00Z"));
    assert!(plan(&ny, &[], at("2024-01-01T13:59:00Z")).create.is_none());
}

#[test]
fn an_unknown_time_zone_or_schedule_is_reported_and_not_retried() {
    let c = with(cj("* * * * *"), |s| s.time_zone = Some("Mars/Olympus".into()));
    let p = plan(&c, &[], at("2024-01-01T00:05:00Z"));
    assert_eq!(reasons(&p), vec!["UnknownTimeZone"]);
    assert_eq!(p.events[0].message, "invalid timeZone: \"Mars/Olympus\": unknown time zone Mars/Olympus");
    assert!(p.create.is_none() && p.requeue.is_none());
    let p = plan(&cj("61 * * * *"), &[], at("2024-01-01T00:05:00Z"));
    assert_eq!(reasons(&p), vec!["UnparseableSchedule"]);
    assert_eq!(p.events[0].message, "unparseable schedule: \"61 * * * *\" : end of range (61) above maximum (59): 61");
    let p = plan(&cj("0 0 30 2 *"), &[], at("2024-01-01T00:05:00Z"));
    assert_eq!(reasons(&p), vec!["InvalidSchedule"]);
    assert!(p.create.is_none() && p.requeue.is_none());
}

#[test]
fn a_legacy_tz_prefix_still_runs_in_that_zone() {
    let p = plan(&cj("TZ=Asia/Tokyo 0 9 * * *"), &[], at("2024-01-02T00:00:30Z"));
    assert_eq!(reasons(&p), vec!["UnsupportedSchedule"]);
    assert_eq!(p.create.unwrap().1, at("2024-01-02T00:00:00Z"));
}

#[test]
fn a_cronjob_being_deleted_only_updates_its_status() {
    let done = job("cj-28401120", Some(T0), Some(("Complete", "2024-01-01T00:00:30Z")));
    let mut c = active(cj("*/1 * * * *"), &[&done]);
    c.metadata.deletion_timestamp = Some(Time(at("2024-01-01T00:01:00Z")));
    let p = plan(&c, &[done], at("2024-01-01T00:05:00Z"));
    assert!(p.create.is_none() && p.requeue.is_none());
    assert_eq!(p.status.active, None);
}

#[test]
fn every_descriptor_counts_from_the_last_start() {
    let c = last_scheduled(cj("@every 90s"), "2024-01-01T00:10:00Z");
    let p = plan(&c, &[], at("2024-01-01T00:11:31Z"));
    assert_eq!(p.create.unwrap().1, at("2024-01-01T00:11:30Z"));
}
