//! The CronJob controller (batch/v1), as upstream's cronjob controller v2:
//! a Job per scheduled time, concurrency policies, starting deadlines,
//! suspend, history limits and time zones. [`plan`] decides; [`register`]
//! wires the CronJob and Job informers and wakes each CronJob at its next
//! scheduled time.

pub mod plan;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::{json, Value};

use super::{is_already_exists, is_not_found, timed, Ctx, Result, SyncError};
use crate::events::{object_reference, EventType, Recorder};
use crate::runtime::{run_workers, Informers, Key, WorkQueue};
pub use plan::{plan, Plan};
use plan::{finished_condition, is_owned, remove_active, Removal};

pub const NAME: &str = "cronjob-controller";

struct State {
    ctx: Ctx,
    cronjobs: Store<CronJob>,
    jobs: Store<Job>,
    recorder: Recorder,
    /// The CronJob as our last status write returned it: newer than the
    /// cache until the watch delivers it, and a sync on the older copy
    /// would report the same completions and starts twice.
    written: Mutex<HashMap<Key, Arc<CronJob>>>,
    /// When each CronJob is already due to be woken, so that every sync
    /// does not leave another timer behind.
    wakeups: Mutex<HashMap<Key, Instant>>,
}

pub fn register(inf: &mut Informers, ctx: &Ctx) {
    let queue: WorkQueue<Key> = WorkQueue::default();
    inf.get::<CronJob>().enqueue_self(&queue);
    inf.get::<Job>().enqueue_controller(&queue, "CronJob");
    let state = Arc::new(State {
        ctx: ctx.clone(),
        cronjobs: inf.store(),
        jobs: inf.store(),
        recorder: Recorder::new(ctx.client.clone(), NAME),
        written: Mutex::default(),
        wakeups: Mutex::default(),
    });
    let metrics = ctx.metrics.clone();
    let workers = ctx.opts.concurrent_syncs;
    let synced = vec![inf.synced::<CronJob>(), inf.synced::<Job>()];
    run_workers(NAME, queue, workers, metrics, synced, move |key| {
        let state = state.clone();
        async move {
            let next = sync(&state, &key).await?;
            Ok::<_, SyncError>(next.and_then(|d| state.wake_after(&key, d)))
        }
    });
}

impl State {
    /// The delay to requeue with, unless a wake-up at about that time or
    /// earlier is already pending.
    fn wake_after(&self, key: &Key, d: Duration) -> Option<Duration> {
        let now = Instant::now();
        let at = now + d;
        let mut w = self.wakeups.lock().unwrap_or_else(|p| p.into_inner());
        match w.get(key) {
            Some(t) if *t > now && *t <= at + Duration::from_secs(1) => None,
            _ => {
                w.insert(key.clone(), at);
                Some(d)
            }
        }
    }

    /// The newer of the cached CronJob and our last write of it.
    fn current(&self, key: &Key, cached: Arc<CronJob>) -> Arc<CronJob> {
        let mut w = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let rv = |c: &CronJob| c.metadata.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok());
        match w.get(key) {
            Some(mine) if rv(mine) > rv(&cached) && mine.metadata.uid == cached.metadata.uid => mine.clone(),
            _ => {
                w.remove(key);
                cached
            }
        }
    }
}

async fn sync(st: &State, key: &Key) -> Result<Option<Duration>> {
    let Some(cached) = st.cronjobs.get(&ObjectRef::new(&key.name).within(key.ns())) else {
        st.written.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        st.wakeups.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        return Ok(None);
    };
    let mut cj = st.current(key, cached);
    let ns = key.ns().to_string();
    let job_api: Api<Job> = Api::namespaced(st.ctx.client.clone(), &ns);
    let mut jobs: Vec<Arc<Job>> = st
        .jobs
        .state()
        .into_iter()
        .filter(|j| j.metadata.namespace.as_deref() == Some(ns.as_str()) && is_owned(&cj, j))
        .collect();
    // A slow watch must not make an active job look gone: ask the API.
    let active = cj.status.as_ref().and_then(|s| s.active.clone()).unwrap_or_default();
    let unseen: Vec<_> = active.iter().filter(|r| !jobs.iter().any(|j| j.metadata.uid == r.uid)).collect();
    for r in unseen {
        match timed(job_api.get(r.name.as_deref().unwrap_or_default())).await? {
            Ok(j) if j.metadata.uid == r.uid => jobs.push(Arc::new(j)),
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // A running job missing from status.active may only be our own status
    // write the cache has not shown yet: read the CronJob from the API.
    let in_active = |cj: &CronJob, j: &Job| cj.status.iter().flat_map(|s| s.active.iter().flatten()).any(|r| r.uid == j.metadata.uid);
    if jobs.iter().any(|j| finished_condition(j).is_none() && !in_active(&cj, j)) {
        let api: Api<CronJob> = Api::namespaced(st.ctx.client.clone(), &ns);
        match timed(api.get(&key.name)).await? {
            Ok(fresh) => cj = Arc::new(fresh),
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    let plan = plan(&cj, &jobs, Timestamp::now());
    for n in &plan.events {
        st.recorder.record(cj.as_ref(), n.type_, n.reason, &n.message);
    }
    let mut status = plan.status.clone();
    let result = carry_out(st, &cj, &job_api, &plan, &mut status).await;
    write_status(st, key, &cj, status).await?;
    result?;
    Ok(plan.requeue)
}

/// The writes of a plan, in upstream's order; `status` follows what succeeded.
async fn carry_out(st: &State, cj: &CronJob, api: &Api<Job>, plan: &Plan, status: &mut CronJobStatus) -> Result<()> {
    for r in &plan.replace {
        if let Err(e) = delete_job(st, cj, api, r, status).await {
            return Err(SyncError::Invalid(format!("could not replace job {}/{}: {e}", cj.namespace().unwrap_or_default(), r.name)));
        }
    }
    if let Some((job, scheduled)) = &plan.create {
        let name = job.metadata.name.clone().unwrap_or_default();
        let created = match timed(api.create(&PostParams::default(), job)).await? {
            Ok(j) => {
                st.recorder.record(cj, EventType::Normal, "SuccessfulCreate", &format!("Created job {name}"));
                Some(j)
            }
            Err(e) if is_already_exists(&e) => {
                // Created earlier but the status write was lost: record it
                // now, if it is ours; someone else's is theirs to track.
                let j = timed(api.get(&name)).await??;
                let ours = crate::podutil::is_controlled_by(&j.metadata, cj.metadata.uid.as_deref().unwrap_or_default());
                let listed = status.active.iter().flatten().any(|r| r.uid == j.metadata.uid);
                (ours && !listed).then_some(j)
            }
            Err(e) => {
                st.recorder.record(cj, EventType::Warning, "FailedCreate", &format!("Error creating job: {e}"));
                return Err(e.into());
            }
        };
        if let Some(j) = created {
            status.active.get_or_insert_with(Vec::new).push(object_reference(&j));
            status.last_schedule_time = Some(Time(*scheduled));
        }
    }
    for r in &plan.history {
        // A failed history deletion is retried at the next sync anyway.
        let _ = delete_job(st, cj, api, r, status).await;
    }
    Ok(())
}

async fn delete_job(st: &State, cj: &CronJob, api: &Api<Job>, r: &Removal, status: &mut CronJobStatus) -> Result<()> {
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match timed(api.delete(&r.name, &dp)).await? {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => {
            st.recorder.record(cj, EventType::Warning, "FailedDelete", &format!("Deleted job: {e}"));
            return Err(e.into());
        }
    }
    remove_active(status, &r.uid);
    st.recorder.record(cj, EventType::Normal, "SuccessfulDelete", &format!("Deleted job {}", r.name));
    Ok(())
}

/// The status as a merge patch: absent fields become nulls so they clear.
fn status_patch(status: &CronJobStatus) -> Result<Value> {
    let mut v = serde_json::to_value(status).map_err(|source| SyncError::Encode { what: "cronjob status", source })?;
    for field in ["active", "lastScheduleTime", "lastSuccessfulTime"] {
        if v.get(field).is_none() {
            v[field] = Value::Null;
        }
    }
    Ok(json!({ "status": v }))
}

async fn write_status(st: &State, key: &Key, cj: &CronJob, status: CronJobStatus) -> Result<()> {
    if cj.status.clone().unwrap_or_default() == status {
        return Ok(());
    }
    let api: Api<CronJob> = Api::namespaced(st.ctx.client.clone(), key.ns());
    match timed(api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&status_patch(&status)?))).await? {
        Ok(written) => {
            st.written.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), Arc::new(written));
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
