//! The scheduler proper: cluster events feed the cache and the queue; the
//! loop pops a pod, runs its profile's algorithm against a snapshot,
//! assumes the pod on the chosen node and binds it asynchronously. A
//! failed bind un-assumes and requeues; a pod that fits nowhere gets
//! preemption, a FailedScheduling event and the PodScheduled=False
//! condition.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use apimachinery::phase::is_pod_terminal as is_terminal;
use k8s_openapi::api::core::v1::{Node, Pod};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::algorithm::{Algorithm, ScheduleError};
use crate::api::{ApiError, ClusterApi, Unschedulable};
use crate::cache::Cache;
use crate::events::EventRecorder;
use crate::framework::{pod_key, CycleState, Framework, PodInfo, Snapshot};
use crate::metrics::Metrics;
use crate::queue::{Clock, QueuedPodInfo, SchedulingQueue};

struct State {
    cache: Cache,
    queue: SchedulingQueue,
    snapshot: Snapshot,
    algorithm: Algorithm,
    /// Keys seen since the last watch (re)start, to drop what vanished.
    relist_pods: Option<HashSet<String>>,
    relist_nodes: Option<HashSet<String>>,
    /// Whether the first full list of pods / nodes has been seen: no pod
    /// is scheduled before, as upstream waits for its informers to sync.
    pods_synced: bool,
    nodes_synced: bool,
}

pub struct Scheduler {
    state: Mutex<State>,
    wake: Notify,
    api: Arc<dyn ClusterApi>,
    /// Bounds concurrent API writes (binds, pod status), so a burst of
    /// scheduled pods queues here instead of opening a connection each.
    writes: Arc<Semaphore>,
    /// Events go through their own queue and never hold a write permit.
    events: EventRecorder,
    profiles: BTreeMap<String, Arc<Framework>>,
    pub metrics: Arc<Metrics>,
}

/// Concurrent API writes in flight at most.
pub const MAX_INFLIGHT_WRITES: usize = 64;

fn assigned_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn scheduler_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .filter(|s| !s.is_empty())
        .unwrap_or(crate::profile::DEFAULT_SCHEDULER_NAME)
}

/// Whether a node update can change scheduling decisions (status
/// heartbeats alone cannot).
fn node_changed_for_scheduling(old: Option<&Node>, new: &Node) -> bool {
    let Some(old) = old else { return true };
    let spec = |n: &Node| n.spec.as_ref().map(|s| (s.unschedulable, s.taints.clone()));
    let status = |n: &Node| {
        n.status
            .as_ref()
            .map(|s| (s.allocatable.clone(), s.images.as_ref().map(|i| i.len())))
    };
    let conds = |n: &Node| {
        n.status.as_ref().and_then(|s| s.conditions.as_ref()).map(|c| {
            c.iter()
                .map(|c| (c.type_.clone(), c.status.clone()))
                .collect::<Vec<_>>()
        })
    };
    old.metadata.labels != new.metadata.labels
        || spec(old) != spec(new)
        || status(old) != status(new)
        || conds(old) != conds(new)
}

impl Scheduler {
    pub fn new(
        api: Arc<dyn ClusterApi>,
        profiles: BTreeMap<String, Arc<Framework>>,
        clock: Arc<dyn Clock>,
        algorithm: Algorithm,
    ) -> Arc<Self> {
        let metrics = Arc::new(Metrics::default());
        Arc::new(Scheduler {
            state: Mutex::new(State {
                cache: Cache::default(),
                queue: SchedulingQueue::new(clock),
                snapshot: Snapshot::default(),
                algorithm,
                relist_pods: None,
                relist_nodes: None,
                pods_synced: false,
                nodes_synced: false,
            }),
            wake: Notify::new(),
            events: EventRecorder::new(api.clone(), metrics.clone()),
            api,
            writes: Arc::new(Semaphore::new(MAX_INFLIGHT_WRITES)),
            profiles,
            metrics,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not wedge the scheduler: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_responsible(&self, pod: &Pod) -> bool {
        self.profiles.contains_key(scheduler_name(pod))
    }

    // ---- cluster events ----

    pub fn on_pod_apply(&self, pod: Pod) {
        let key = pod_key(&pod);
        let mut st = self.lock();
        if let Some(seen) = st.relist_pods.as_mut() {
            seen.insert(key.clone());
        }
        if is_terminal(&pod) {
            st.queue.delete(&key);
            if st.cache.remove_pod(&key) {
                st.queue.move_all_to_active_or_backoff();
            }
        } else if assigned_node(&pod).is_some() {
            st.queue.delete(&key);
            st.cache.add_or_update_pod(Arc::new(PodInfo::bound(pod)));
        } else if self.is_responsible(&pod) && pod.metadata.deletion_timestamp.is_none() && !st.cache.is_assumed(&key) {
            st.queue.update(Arc::new(PodInfo::new(Arc::new(pod))));
        }
        drop(st);
        self.wake.notify_one();
    }

    pub fn on_pod_delete(&self, pod: &Pod) {
        self.remove_pod_key(&pod_key(pod));
    }

    fn remove_pod_key(&self, key: &str) {
        let mut st = self.lock();
        st.queue.delete(key);
        if st.cache.remove_pod(key) {
            // Freed resources may let waiting pods fit.
            st.queue.move_all_to_active_or_backoff();
        }
        drop(st);
        self.wake.notify_one();
    }

    pub fn on_node_apply(&self, node: Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut st = self.lock();
        if let Some(seen) = st.relist_nodes.as_mut() {
            seen.insert(name.clone());
        }
        let changed = node_changed_for_scheduling(st.cache.node(&name).map(|n| n.node.as_ref()), &node);
        st.cache.add_or_update_node(Arc::new(node));
        if changed {
            st.queue.move_all_to_active_or_backoff();
        }
        drop(st);
        self.wake.notify_one();
    }

    /// A claim, volume or class changed: pods waiting on storage may fit now.
    pub fn on_storage_change(&self) {
        self.lock().queue.move_all_to_active_or_backoff();
        self.wake.notify_one();
    }

    pub fn on_node_delete(&self, node: &Node) {
        self.lock()
            .cache
            .remove_node(node.metadata.name.as_deref().unwrap_or(""));
    }

    /// A watch (re)started: remember what the relist shows.
    pub fn pods_relist_started(&self) {
        self.lock().relist_pods = Some(HashSet::new());
    }

    /// The relist is complete: forget pods it did not show.
    pub fn pods_relist_done(&self) {
        let gone: Vec<String> = {
            let mut st = self.lock();
            st.pods_synced = true;
            self.wake.notify_one();
            let Some(seen) = st.relist_pods.take() else { return };
            st.cache
                .pod_keys()
                .into_iter()
                .filter(|k| !seen.contains(k) && !st.cache.is_assumed(k))
                .collect()
        };
        for k in gone {
            self.remove_pod_key(&k);
        }
    }

    pub fn nodes_relist_started(&self) {
        self.lock().relist_nodes = Some(HashSet::new());
    }

    pub fn nodes_relist_done(&self) {
        let mut st = self.lock();
        st.nodes_synced = true;
        self.wake.notify_one();
        let Some(seen) = st.relist_nodes.take() else { return };
        for n in st.cache.node_names() {
            if !seen.contains(&n) {
                st.cache.remove_node(&n);
            }
        }
    }

    // ---- the loop ----

    /// Schedules pods until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        loop {
            let synced = {
                let st = self.lock();
                st.pods_synced && st.nodes_synced
            };
            if synced {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), self.wake.notified()).await;
        }
        tracing::info!("caches synced; scheduling");
        loop {
            loop {
                // A bind slot first: pods wait in the queue, not as bind
                // tasks parked on the semaphore (which cost memory and hold
                // assumed pods for longer).
                let Ok(permit) = self.writes.clone().acquire_owned().await else { return };
                if !self.schedule_one_with(Some(permit)) {
                    break;
                }
                // Let watch events and bind completions in between pods.
                tokio::task::yield_now().await;
            }
            let wait = {
                let st = self.lock();
                let now = st.queue.now();
                st.queue
                    .next_wakeup()
                    .map(|t| t.saturating_duration_since(now))
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(1))
            };
            let _ = tokio::time::timeout(wait.max(Duration::from_millis(5)), self.wake.notified()).await;
        }
    }

    /// One pod through one attempt; false if the queue had nothing ready.
    pub fn schedule_one(self: &Arc<Self>) -> bool {
        self.schedule_one_with(None)
    }

    /// As [`Scheduler::schedule_one`], binding with `permit` if given (else
    /// the bind task waits for one).
    fn schedule_one_with(self: &Arc<Self>, permit: Option<OwnedSemaphorePermit>) -> bool {
        let mut st = self.lock();
        let sizes_before = st.queue.sizes();
        self.metrics.queue_sizes(sizes_before);
        let Some((qp, cycle)) = st.queue.pop() else {
            return false;
        };
        let key = qp.info.key.clone();
        let Some(fw) = self.profiles.get(scheduler_name(&qp.info.pod)).cloned() else {
            st.queue.done(&key);
            return true;
        };
        let start = Instant::now();
        let st = &mut *st;
        st.cache.update_snapshot(&mut st.snapshot);
        let mut state = CycleState::default();
        let result = st.algorithm.schedule(&fw, &mut state, &qp.info, &st.snapshot);
        match result {
            Ok(r) => {
                let assumed = Arc::new(qp.info.assumed_on(&r.node));
                st.cache.assume_pod(assumed.clone(), &r.node);
                let reserve = fw.run_reserve(&state, &assumed, &r.node);
                if !reserve.is_success() {
                    st.cache.forget_pod(&key);
                    st.queue.add_backoff(qp.clone());
                    self.metrics
                        .attempt("error", &fw.scheduler_name, start.elapsed().as_secs_f64());
                    self.publish_failure(
                        &fw,
                        &qp,
                        format!("running Reserve plugin {}: {}", reserve.plugin, reserve.message()),
                        None,
                    );
                    return true;
                }
                self.metrics
                    .attempt("scheduled", &fw.scheduler_name, start.elapsed().as_secs_f64());
                tracing::debug!(pod = %key, node = %r.node, evaluated = r.evaluated_nodes, feasible = r.feasible_nodes, "assumed");
                self.spawn_bind(fw, qp, r.node, state, permit);
            }
            Err(ScheduleError::Fit(mut fit)) => {
                let post = fw.run_post_filter(&state, &qp.info, &st.snapshot, &fit.statuses);
                let mut nominated = None;
                if let Some(post) = post {
                    fit.post_filter_msg = post.message.clone();
                    if let Some(node) = post.nominated_node {
                        self.metrics.preemption(post.victims.len());
                        self.spawn_preemption(&fw, &qp, &node, post.victims);
                        nominated = Some(node);
                    }
                }
                st.queue.add_unschedulable(qp.clone(), cycle);
                self.metrics
                    .attempt("unschedulable", &fw.scheduler_name, start.elapsed().as_secs_f64());
                self.publish_failure(&fw, &qp, fit.message(), nominated);
            }
            Err(e @ ScheduleError::NoNodes) => {
                st.queue.add_unschedulable(qp.clone(), cycle);
                self.metrics
                    .attempt("unschedulable", &fw.scheduler_name, start.elapsed().as_secs_f64());
                self.publish_failure(&fw, &qp, e.message(), None);
            }
            Err(e @ ScheduleError::Internal(_)) => {
                st.queue.add_backoff(qp.clone());
                self.metrics
                    .attempt("error", &fw.scheduler_name, start.elapsed().as_secs_f64());
                self.publish_failure(&fw, &qp, e.message(), None);
            }
        }
        true
    }

    fn publish_failure(&self, fw: &Framework, qp: &QueuedPodInfo, message: String, nominated_node: Option<String>) {
        tracing::info!(pod = %qp.info.key, %message, "unable to schedule pod");
        let api = self.api.clone();
        let pod = qp.info.pod.clone();
        self.events.record(
            pod.clone(),
            fw.scheduler_name.clone(),
            "Warning",
            "FailedScheduling",
            message.clone(),
        );
        let writes = self.writes.clone();
        tokio::spawn(async move {
            let _permit = writes.acquire_owned().await;
            if let Err(e) = api
                .set_unschedulable(
                    pod,
                    Unschedulable {
                        message,
                        nominated_node,
                    },
                )
                .await
            {
                tracing::warn!(error = %e, "updating PodScheduled condition");
            }
        });
    }

    fn spawn_preemption(&self, fw: &Framework, qp: &QueuedPodInfo, node: &str, victims: Vec<Arc<PodInfo>>) {
        let api = self.api.clone();
        let preemptor = qp.info.pod.clone();
        let component = fw.scheduler_name.clone();
        let node = node.to_string();
        tokio::spawn(async move {
            for v in victims {
                let msg = format!(
                    "Preempted by pod {} on node {node}",
                    preemptor.metadata.uid.as_deref().unwrap_or("")
                );
                let _ = api
                    .event(v.pod.clone(), component.clone(), "Normal", "Preempted", msg)
                    .await;
                match api.delete_pod(v.pod.clone(), component.clone()).await {
                    Ok(()) | Err(ApiError::Gone(_)) => {}
                    Err(e) => tracing::warn!(victim = %v.key, error = %e, "deleting preemption victim"),
                }
            }
        });
    }

    fn spawn_bind(
        self: &Arc<Self>,
        fw: Arc<Framework>,
        qp: QueuedPodInfo,
        node: String,
        state: CycleState,
        permit: Option<OwnedSemaphorePermit>,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            let permit = match permit {
                Some(p) => Ok(p),
                None => this.writes.clone().acquire_owned().await,
            };
            let key = qp.info.key.clone();
            let start = Instant::now();
            let pre_bind = fw.run_pre_bind(&state, &qp.info, &node).await;
            let result = if pre_bind.is_success() {
                this.api.bind(qp.info.pod.clone(), node.clone()).await
            } else {
                Err(ApiError::PreBind(format!("running PreBind plugin {}: {}", pre_bind.plugin, pre_bind.message())))
            };
            drop(permit);
            this.metrics
                .bind(result.is_ok(), &fw.scheduler_name, start.elapsed().as_secs_f64());
            // Update the cache and queue under the lock; publish after it.
            let event = {
                let mut st = this.lock();
                match result {
                    Ok(()) => {
                        st.queue.done(&key);
                        let ns = qp.info.namespace();
                        Some((
                            "Normal",
                            "Scheduled",
                            format!("Successfully assigned {ns}/{} to {node}", qp.info.name()),
                        ))
                    }
                    Err(ApiError::Gone(reason)) => {
                        // Bound elsewhere or deleted: the watch tells the truth.
                        tracing::info!(pod = %key, %reason, "binding refused; not retrying");
                        st.cache.forget_pod(&key);
                        fw.run_unreserve(&state, &qp.info, &node);
                        st.queue.done(&key);
                        st.queue.move_all_to_active_or_backoff();
                        None
                    }
                    Err(e) => {
                        tracing::warn!(pod = %key, error = %e, "binding failed; requeueing");
                        st.cache.forget_pod(&key);
                        fw.run_unreserve(&state, &qp.info, &node);
                        st.queue.add_backoff(qp.clone());
                        st.queue.move_all_to_active_or_backoff();
                        Some(("Warning", "FailedScheduling", format!("Binding rejected: {e}")))
                    }
                }
            };
            this.wake.notify_one();
            if let Some((type_, reason, msg)) = event {
                this.events
                    .record(qp.info.pod.clone(), fw.scheduler_name.clone(), type_, reason, msg);
            }
        });
    }
}

#[cfg(test)]
mod tests;
