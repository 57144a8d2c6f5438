//! High availability: two schedulers with --leader-elect; exactly one
//! binds, and the other takes over within the lease duration when the
//! leader is killed.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use support::*;

const LEASE_FLAGS: &[&str] = &[
    "--leader-elect",
    "--lease-namespace",
    "default",
    "--leader-elect-lease-duration",
    "4s",
    "--leader-elect-renew-deadline",
    "3s",
    "--leader-elect-retry-period",
    "500ms",
];

async fn holder(env: &Env) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "default");
    leases
        .get_opt("kube-scheduler")
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_fail_over_binds_each_pod_once() {
    let mut env = Env::start().await;
    env.create_node(node("n1", "8", "8Gi")).await;
    for id in ["sched-a", "sched-b"] {
        let mut flags = LEASE_FLAGS.to_vec();
        flags.extend(["--identity", id]);
        env.start_scheduler(&flags);
    }
    let leader = testkit::wait_for_or(WAIT, "a lease holder", || holder(&env))
        .await
        .unwrap();

    env.create_pod(&pod("before", "100m", "10Mi")).await;
    env.wait_bound("before").await;

    // Kill the leader; the other must take over within the lease duration
    // (plus its retry period and the time to list and bind).
    let idx = if leader == "sched-a" { 0 } else { 1 };
    env.schedulers[idx].kill();
    let killed_at = Instant::now();
    env.create_pod(&pod("after", "100m", "10Mi")).await;
    env.wait_bound("after").await;
    let took = killed_at.elapsed();
    let new_leader = holder(&env).await.unwrap();
    assert_ne!(new_leader, leader);
    assert!(took < Duration::from_secs(4 + 6), "fail-over took {took:?}");

    for (pod, by) in [("before", &leader), ("after", &new_leader)] {
        let events = env.events_for(pod, "Scheduled").await;
        assert_eq!(events.len(), 1, "{pod} bound once");
        assert_eq!(
            events[0].reporting_instance.as_deref(),
            Some(by.as_str()),
            "{pod} bound by the leader"
        );
    }
}
