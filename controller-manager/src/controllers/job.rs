//! The Job controller: run pods to `completions` successes with at most
//! `parallelism` at a time; fail the Job after `backoffLimit` failures or
//! `activeDeadlineSeconds`.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{Ctx, Result, SyncError};
use crate::events::{EventType, Recorder};
use crate::podutil;
use crate::runtime::{run_workers, Expectations, Informers, Key, WorkQueue};

pub const NAME: &str = "job-controller";
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
const BACKOFF_BASE: i64 = 10;
const BACKOFF_MAX: i64 = 360;

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub create: usize,
    /// Wait this long before creating (failure back-off).
    pub create_after: Option<Duration>,
    pub delete: Vec<String>,
    pub status: JobStatus,
    /// (type, reason, message) of a condition reached in this sync.
    pub finished: Option<(&'static str, &'static str, &'static str)>,
    /// Re-check at this time (activeDeadlineSeconds).
    pub requeue: Option<Duration>,
}

fn has_condition(st: &JobStatus, ty: &str) -> bool {
    st.conditions.iter().flatten().any(|c| c.type_ == ty && c.status == "True")
}

fn condition(ty: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: ty.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

fn last_change(p: &Pod) -> Option<Timestamp> {
    let conds = p.status.as_ref().and_then(|s| s.conditions.as_ref());
    conds
        .and_then(|c| c.iter().filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0)).max())
        .or(p.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// Decide from a Job and the pods it controls.
pub fn plan(job: &Job, pods: &[Arc<Pod>], now: Timestamp) -> Plan {
    let mut out = Plan::default();
    let old = job.status.clone().unwrap_or_default();
    let mut st = old.clone();
    let spec = job.spec.clone().unwrap_or_default();
    let active: Vec<&Arc<Pod>> = pods.iter().filter(|p| podutil::is_active(p)).collect();
    let succeeded = pods.iter().filter(|p| podutil::phase(p) == "Succeeded").count() as i32;
    let failed_pods: Vec<&Arc<Pod>> = pods.iter().filter(|p| podutil::phase(p) == "Failed").collect();
    let failed = failed_pods.len() as i32;
    st.active = Some(active.len() as i32);
    st.ready = Some(active.iter().filter(|p| podutil::is_ready(p)).count() as i32);
    st.succeeded = Some(succeeded.max(old.succeeded.unwrap_or(0)));
    st.failed = Some(failed.max(old.failed.unwrap_or(0)));
    if has_condition(&old, "Complete") || has_condition(&old, "Failed") {
        out.status = st;
        return out;
    }
    let start = old.start_time.as_ref().map(|t| t.0).unwrap_or(now);
    if old.start_time.is_none() && !spec.suspend.unwrap_or(false) {
        st.start_time = Some(Time(now));
    }
    let succeeded = st.succeeded.unwrap_or(0);
    let failed = st.failed.unwrap_or(0);
    // With restartPolicy OnFailure, container restarts count as failures.
    let restarts: i32 = active.iter().map(|p| podutil::restarts(p)).sum();
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let active_n = active.len() as i32;

    let mut fail: Option<(&'static str, &'static str)> = None;
    if failed + restarts > backoff_limit {
        fail = Some(("BackoffLimitExceeded", "Job has reached the specified backoff limit"));
    } else if let Some(ads) = spec.active_deadline_seconds {
        let deadline = start + SignedDuration::from_secs(ads);
        if now >= deadline {
            fail = Some(("DeadlineExceeded", "Job was active longer than specified deadline"));
        } else {
            out.requeue = Duration::try_from(deadline.duration_since(now)).ok();
        }
    }
    if let Some((reason, message)) = fail {
        out.delete = active.iter().map(|p| p.name_any()).collect();
        let conds = st.conditions.get_or_insert_with(Vec::new);
        conds.push(condition("FailureTarget", reason, message, now));
        conds.push(condition("Failed", reason, message, now));
        out.finished = Some(("Failed", reason, message));
        out.requeue = None;
        out.status = st;
        return out;
    }
    let complete = match spec.completions {
        Some(c) => succeeded >= c,
        None => succeeded > 0 && active_n == 0,
    };
    if complete {
        let conds = st.conditions.get_or_insert_with(Vec::new);
        conds.push(condition(
            "SuccessCriteriaMet",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
            now,
        ));
        conds.push(condition(
            "Complete",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
            now,
        ));
        st.completion_time = Some(Time(now));
        out.finished = Some(("Complete", "Completed", "Job completed"));
        out.requeue = None;
        out.status = st;
        return out;
    }
    let want = if spec.suspend.unwrap_or(false) {
        0
    } else {
        match spec.completions {
            Some(c) => parallelism.min(c - succeeded).max(0),
            None if succeeded > 0 => 0,
            None => parallelism,
        }
    };
    if active_n < want {
        out.create = (want - active_n) as usize;
        if failed > 0 {
            // Upstream's pod failure back-off: 10s doubling, at most 6 minutes.
            let delay = (BACKOFF_BASE << (failed - 1).min(10)).min(BACKOFF_MAX);
            if let Some(last) = failed_pods.iter().filter_map(|p| last_change(p)).max() {
                let ready_at = last + SignedDuration::from_secs(delay);
                if ready_at > now {
                    out.create_after = Duration::try_from(ready_at.duration_since(now)).ok();
                }
            }
        }
    } else if active_n > want {
        let mut extra: Vec<&Arc<Pod>> = active.clone();
        extra.sort_by_key(|p| std::cmp::Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0)));
        out.delete = extra.iter().take((active_n - want) as usize).map(|p| p.name_any()).collect();
    }
    out.status = st;
    out
}

struct State {
    ctx: Ctx,
    jobs: Store<Job>,
    pods: Store<Pod>,
    expectations: Expectations<Key>,
    recorder: Recorder,
}

pub fn register(inf: &mut Informers, ctx: &Ctx) {
    let queue: WorkQueue<Key> = WorkQueue::default();
    inf.get::<Job>().enqueue_self(&queue);
    inf.get::<Pod>().enqueue_controller(&queue, "Job");
    let state = Arc::new(State {
        ctx: ctx.clone(),
        jobs: inf.store(),
        pods: inf.store(),
        expectations: Expectations::with_relister(inf.relister::<Pod>()),
        recorder: Recorder::new(ctx.client.clone(), NAME),
    });
    let metrics = ctx.metrics.clone();
    let workers = ctx.opts.concurrent_syncs;
    let synced = vec![inf.synced::<Job>(), inf.synced::<Pod>()];
    run_workers(NAME, queue, workers, metrics, synced, move |key| {
        let state = state.clone();
        async move { sync(&state, &key).await }
    });
}

async fn sync(st: &State, key: &Key) -> Result<Option<Duration>> {
    let Some(job) = st.jobs.get(&ObjectRef::new(&key.name).within(key.ns())) else {
        st.expectations.forget(key);
        return Ok(None);
    };
    let uid = job.uid().unwrap_or_default();
    let ns = key.ns().to_string();
    let pods = podutil::owned_pods(&st.pods, &ns, &uid);
    let satisfied = st.expectations.pods_satisfied(key, &st.pods, &pods);
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    if !satisfied {
        // Look again without an event: a lost one is a reason to wait.
        return Ok(Some(super::replicaset::RECHECK));
    }
    let now = Timestamp::now();
    let plan = plan(&job, &pods, now);
    let api: Api<Pod> = Api::namespaced(st.ctx.client.clone(), &ns);
    if !plan.delete.is_empty() {
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        for name in &plan.delete {
            match api.delete(name, &dp).await {
                Ok(_) => st
                    .recorder
                    .record(job.as_ref(), EventType::Normal, "SuccessfulDelete", &format!("Deleted pod: {name}")),
                Err(e) if super::is_not_found(&e) => {}
                Err(e) => {
                    st.expectations.expect(key, [], plan.delete.clone());
                    return Err(e.into());
                }
            }
        }
        // After the writes, so that the informer's list epoch follows them.
        st.expectations.expect(key, [], plan.delete.clone());
    }
    let mut requeue = plan.requeue;
    if plan.create > 0 {
        match plan.create_after {
            Some(d) => requeue = Some(requeue.map_or(d, |r| r.min(d))),
            None => create_pods(st, key, &job, &api, plan.create).await?,
        }
    }
    if let Some((ty, reason, message)) = plan.finished {
        let ev = if ty == "Failed" { EventType::Warning } else { EventType::Normal };
        st.recorder.record(job.as_ref(), ev, reason, message);
    }
    if job.status.as_ref() != Some(&plan.status) {
        let v = serde_json::to_value(&plan.status).map_err(|source| SyncError::Encode {
            what: "job status",
            source,
        })?;
        let japi: Api<Job> = Api::namespaced(st.ctx.client.clone(), &ns);
        match japi
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&json!({ "status": v })))
            .await
        {
            Ok(_) => {}
            Err(e) if super::is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(requeue)
}

async fn create_pods(st: &State, key: &Key, job: &Job, api: &Api<Pod>, n: usize) -> Result<()> {
    let Some(template) = job.spec.as_ref().map(|s| &s.template) else {
        return Ok(());
    };
    let mut pod = podutil::pod_from_template(template, key.ns(), podutil::controller_ref(job), &format!("{}-", key.name));
    let labels = pod.metadata.labels.get_or_insert_with(Default::default);
    let uid = job.uid().unwrap_or_default();
    for (k, v) in [
        (JOB_NAME_LABEL, key.name.as_str()),
        ("job-name", key.name.as_str()),
        (CONTROLLER_UID_LABEL, uid.as_str()),
        ("controller-uid", uid.as_str()),
    ] {
        labels.entry(k.to_string()).or_insert_with(|| v.to_string());
    }
    for batch in super::slow_start_batches(n) {
        let pp = PostParams::default();
        let results = join_all((0..batch).map(|_| api.create(&pp, &pod))).await;
        let mut created = Vec::new();
        let mut err = None;
        for r in results {
            match r {
                Ok(p) => {
                    st.recorder.record(
                        job,
                        EventType::Normal,
                        "SuccessfulCreate",
                        &format!("Created pod: {}", p.name_any()),
                    );
                    created.push(p.name_any());
                }
                Err(e) => {
                    st.recorder
                        .record(job, EventType::Warning, "FailedCreate", &format!("Error creating: {e}"));
                    err.get_or_insert(e);
                }
            }
        }
        st.expectations.expect(key, created, []);
        if let Some(e) = err {
            return Err(e.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podutil::fixtures::{pod, with_phase};
    use k8s_openapi::api::batch::v1::JobSpec;

    fn job(completions: Option<i32>, parallelism: i32, backoff: i32) -> Job {
        Job {
            spec: Some(JobSpec {
                completions,
                parallelism: Some(parallelism),
                backoff_limit: Some(backoff),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pods(phases: &[&str]) -> Vec<Arc<Pod>> {
        phases
            .iter()
            .enumerate()
            .map(|(i, ph)| Arc::new(with_phase(pod(&format!("p{i}"), &[]), ph, false)))
            .collect()
    }

    #[test]
    fn runs_up_to_parallelism_but_not_beyond_completions() {
        let now = Timestamp::now();
        assert_eq!(plan(&job(Some(5), 2, 6), &[], now).create, 2);
        let p = plan(&job(Some(3), 2, 6), &pods(&["Succeeded", "Succeeded", "Running"]), now);
        assert_eq!(p.create, 0);
        assert_eq!(p.status.succeeded, Some(2));
        assert_eq!(p.status.active, Some(1));
        assert!(p.status.start_time.is_some());
    }

    #[test]
    fn completes_when_completions_succeed() {
        let p = plan(&job(Some(2), 2, 6), &pods(&["Succeeded", "Succeeded"]), Timestamp::now());
        assert_eq!(p.finished.map(|f| f.0), Some("Complete"));
        assert!(has_condition(&p.status, "Complete"));
        assert!(p.status.completion_time.is_some());
    }

    #[test]
    fn fails_after_backoff_limit_and_kills_active_pods() {
        let p = plan(&job(Some(3), 1, 1), &pods(&["Failed", "Failed", "Running"]), Timestamp::now());
        assert_eq!(p.finished.map(|f| f.1), Some("BackoffLimitExceeded"));
        assert_eq!(p.delete, vec!["p2".to_string()]);
        assert!(has_condition(&p.status, "Failed"));
    }

    #[test]
    fn failures_back_off_before_the_next_pod() {
        let now = Timestamp::now();
        let mut failed = with_phase(pod("p0", &[]), "Failed", false);
        failed.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_transition_time = Some(Time(now));
        let p = plan(&job(Some(1), 1, 6), &[Arc::new(failed.clone())], now);
        assert_eq!(p.create, 1);
        assert!(p
            .create_after
            .is_some_and(|d| d > Duration::from_secs(1) && d <= Duration::from_secs(10)));
        // Long after the failure, the replacement is created at once.
        let later = now + SignedDuration::from_secs(11);
        assert_eq!(plan(&job(Some(1), 1, 6), &[Arc::new(failed)], later).create_after, None);
    }

    #[test]
    fn active_deadline_fails_the_job() {
        let mut j = job(Some(1), 1, 6);
        let now = Timestamp::now();
        j.spec.as_mut().unwrap().active_deadline_seconds = Some(5);
        j.status = Some(JobStatus {
            start_time: Some(Time(now - SignedDuration::from_secs(10))),
            ..Default::default()
        });
        let p = plan(&j, &pods(&["Running"]), now);
        assert_eq!(p.finished.map(|f| f.1), Some("DeadlineExceeded"));
        assert_eq!(p.delete.len(), 1);
    }

    #[test]
    fn a_finished_job_does_nothing() {
        let mut j = job(Some(1), 1, 6);
        j.status = Some(JobStatus {
            conditions: Some(vec![condition("Complete", "x", "y", Timestamp::now())]),
            ..Default::default()
        });
        let p = plan(&j, &[], Timestamp::now());
        assert_eq!(p.create, 0);
        assert!(p.finished.is_none());
    }
}
