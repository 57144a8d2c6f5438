//! The loop against a fake API: no cluster, no sleeps.

use super::*;
use crate::profile::load_profiles;
use crate::queue::FakeClock;
use crate::testing::*;
use futures::future::BoxFuture;

#[derive(Default)]
struct FakeApi {
    binds: Mutex<Vec<(String, String)>>,
    events: Mutex<Vec<(String, &'static str, String)>>,
    statuses: Mutex<Vec<(String, Unschedulable)>>,
    deleted: Mutex<Vec<String>>,
    fail_binds: Mutex<usize>,
}

impl ClusterApi for FakeApi {
    fn bind(&self, pod: Arc<Pod>, node: String) -> BoxFuture<'static, Result<(), ApiError>> {
        let fail = {
            let mut f = self.fail_binds.lock().unwrap();
            let fail = *f > 0;
            *f = f.saturating_sub(1);
            fail
        };
        if !fail {
            self.binds.lock().unwrap().push((pod_key(&pod), node));
        }
        Box::pin(async move {
            if fail {
                Err(ApiError::Kube(kube::Error::Api(
                    kube::core::Status::failure("etcd unavailable", "InternalError")
                        .with_code(500)
                        .boxed(),
                )))
            } else {
                Ok(())
            }
        })
    }
    fn event(
        &self,
        pod: Arc<Pod>,
        _: String,
        _: &'static str,
        reason: &'static str,
        message: String,
    ) -> BoxFuture<'static, Result<(), ApiError>> {
        self.events.lock().unwrap().push((pod_key(&pod), reason, message));
        Box::pin(async { Ok(()) })
    }
    fn set_unschedulable(&self, pod: Arc<Pod>, status: Unschedulable) -> BoxFuture<'static, Result<(), ApiError>> {
        self.statuses.lock().unwrap().push((pod_key(&pod), status));
        Box::pin(async { Ok(()) })
    }
    fn delete_pod(&self, pod: Arc<Pod>, _: String) -> BoxFuture<'static, Result<(), ApiError>> {
        self.deleted.lock().unwrap().push(pod_key(&pod));
        Box::pin(async { Ok(()) })
    }
}

fn scheduler(api: Arc<FakeApi>, clock: Arc<FakeClock>) -> Arc<Scheduler> {
    Scheduler::new(api, load_profiles(None).unwrap(), clock, Algorithm::with_seed(9))
}

/// Runs spawned bind/event tasks to completion.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn hundred_pods_on_three_small_nodes_never_overcommit() {
    let api = Arc::new(FakeApi::default());
    let s = scheduler(api.clone(), Arc::new(FakeClock::default()));
    for n in ["n1", "n2", "n3"] {
        s.on_node_apply(node(n, "1", "1Gi", "110"));
    }
    for i in 0..100 {
        s.on_pod_apply(pod(&format!("p{i}"), "100m", "10Mi"));
    }
    // Every attempt runs before any bind completes: only assumed pods count.
    while s.schedule_one() {}
    settle().await;
    let binds = api.binds.lock().unwrap().clone();
    assert_eq!(binds.len(), 30, "10 x 100m per 1-cpu node");
    for n in ["n1", "n2", "n3"] {
        assert_eq!(binds.iter().filter(|(_, b)| b == n).count(), 10, "{n}");
    }
    let events = api.events.lock().unwrap();
    let failed: Vec<_> = events.iter().filter(|e| e.1 == "FailedScheduling").collect();
    assert_eq!(failed.len(), 70);
    assert!(
        failed[0].2.starts_with("0/3 nodes are available: 3 Insufficient cpu."),
        "{}",
        failed[0].2
    );
    assert_eq!(events.iter().filter(|e| e.1 == "Scheduled").count(), 30);
    assert!(events
        .iter()
        .any(|e| e.2 == "Successfully assigned default/p0 to n1" || e.2.starts_with("Successfully assigned default/")));
    assert_eq!(api.statuses.lock().unwrap().len(), 70);
}

#[tokio::test]
async fn failed_bind_unassumes_and_requeues() {
    let api = Arc::new(FakeApi::default());
    *api.fail_binds.lock().unwrap() = 1;
    let clock = Arc::new(FakeClock::default());
    let s = scheduler(api.clone(), clock.clone());
    s.on_node_apply(node("n1", "1", "1Gi", "110"));
    s.on_pod_apply(pod("a", "800m", "0"));
    assert!(s.schedule_one());
    settle().await;
    assert!(api.binds.lock().unwrap().is_empty());
    {
        let st = s.lock();
        assert!(!st.cache.is_assumed("default/a"));
        assert_eq!(st.queue.sizes().backoff, 1);
    }
    // A second pod can use the space the failed one released.
    s.on_pod_apply(pod("b", "800m", "0"));
    assert!(s.schedule_one());
    settle().await;
    assert_eq!(
        api.binds.lock().unwrap().as_slice(),
        &[("default/b".to_string(), "n1".to_string())]
    );
}

#[tokio::test]
async fn unschedulable_pod_is_retried_when_a_node_appears() {
    let api = Arc::new(FakeApi::default());
    let clock = Arc::new(FakeClock::default());
    let s = scheduler(api.clone(), clock.clone());
    s.on_pod_apply(pod("a", "100m", "0"));
    assert!(s.schedule_one());
    assert!(!s.schedule_one(), "parked in unschedulable");
    settle().await;
    assert_eq!(
        api.statuses.lock().unwrap()[0].1.message,
        "no nodes available to schedule pods"
    );
    s.on_node_apply(node("n1", "1", "1Gi", "110"));
    assert!(!s.schedule_one(), "still in its 1 s backoff");
    clock.advance(Duration::from_secs(1));
    assert!(s.schedule_one());
    settle().await;
    assert_eq!(api.binds.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn pods_for_other_schedulers_and_bound_pods_are_left_alone() {
    let api = Arc::new(FakeApi::default());
    let s = scheduler(api.clone(), Arc::new(FakeClock::default()));
    s.on_node_apply(node("n1", "1", "1Gi", "110"));
    let mut other = pod("o", "0", "0");
    other.spec.as_mut().unwrap().scheduler_name = Some("someone-else".into());
    s.on_pod_apply(other);
    s.on_pod_apply(on_node(pod("b", "500m", "0"), "n1"));
    assert!(!s.schedule_one());
    s.on_pod_apply(pod("c", "600m", "0"));
    assert!(s.schedule_one());
    settle().await;
    assert!(api.binds.lock().unwrap().is_empty(), "the bound pod's 500m counts");
}

#[tokio::test]
async fn preemption_nominates_and_deletes_victims() {
    let api = Arc::new(FakeApi::default());
    let s = scheduler(api.clone(), Arc::new(FakeClock::default()));
    s.on_node_apply(node("n1", "1", "1Gi", "110"));
    s.on_pod_apply(with_priority(on_node(pod("low", "800m", "0"), "n1"), 0));
    s.on_pod_apply(with_priority(pod("high", "800m", "0"), 1000));
    assert!(s.schedule_one());
    settle().await;
    assert_eq!(api.deleted.lock().unwrap().as_slice(), &["default/low".to_string()]);
    let statuses = api.statuses.lock().unwrap();
    assert_eq!(statuses[0].1.nominated_node.as_deref(), Some("n1"));
    // The victim's deletion frees the node for the preemptor.
    drop(statuses);
    s.on_pod_delete(&on_node(pod("low", "800m", "0"), "n1"));
    let st = s.lock();
    assert_eq!(st.queue.sizes().unschedulable, 0);
}

#[tokio::test]
async fn malformed_node_and_bad_pods_do_not_stall_the_queue() {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    let api = Arc::new(FakeApi::default());
    let s = scheduler(api.clone(), Arc::new(FakeClock::default()));
    let mut bad = node("bad", "1", "1Gi", "110");
    bad.status
        .as_mut()
        .unwrap()
        .allocatable
        .as_mut()
        .unwrap()
        .insert("memory".into(), Quantity("a-lot".into()));
    s.on_node_apply(bad);
    s.on_node_apply(node("good", "1", "1Gi", "110"));
    let mut gpu = pod("gpu", "0", "0");
    gpu.spec.as_mut().unwrap().containers[0]
        .resources
        .as_mut()
        .unwrap()
        .requests
        .as_mut()
        .unwrap()
        .insert("example.com/gpu".into(), Quantity("1".into()));
    s.on_pod_apply(gpu);
    s.on_pod_apply(pod("ok", "100m", "0"));
    while s.schedule_one() {}
    settle().await;
    assert_eq!(
        api.binds.lock().unwrap().as_slice(),
        &[("default/ok".to_string(), "good".to_string())]
    );
    let events = api.events.lock().unwrap();
    let gpu_msg = &events.iter().find(|e| e.0 == "default/gpu").unwrap().2;
    assert!(gpu_msg.contains("1 Insufficient example.com/gpu"), "{gpu_msg}");
    assert!(gpu_msg.contains("1 node(s) had invalid allocatable"), "{gpu_msg}");
}
