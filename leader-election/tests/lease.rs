//! Two candidates against a real apiserver: one leads; when it stops
//! renewing, the other takes over after the lease duration.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use leader_election::{LeaderElector, LeaseConfig};
use testkit::{wait_for_or, ApiServer, Etcd};

fn config(id: &str) -> LeaseConfig {
    LeaseConfig {
        namespace: "default".into(),
        name: "le-test".into(),
        identity: id.into(),
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(300),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_then_fail_over() {
    let etcd = Etcd::start().await;
    let api = ApiServer::start(&etcd).await;
    let client = api.client().await;

    let (a_leads, a_task) = LeaderElector::new(client.clone(), config("a")).spawn();
    let mut a = a_leads.clone();
    tokio::time::timeout(Duration::from_secs(20), a.wait_for(|l| *l))
        .await
        .expect("a leads")
        .expect("channel");

    let (b_leads, b_task) = LeaderElector::new(client.clone(), config("b")).spawn();
    // b sees a live holder: it does not lead while a renews.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let l = leases.get("le-test").await.unwrap();
    assert_eq!(l.spec.unwrap().holder_identity.as_deref(), Some("a"));
    assert!(!*b_leads.borrow());

    a_task.abort();
    let mut b = b_leads.clone();
    tokio::time::timeout(Duration::from_secs(10), b.wait_for(|l| *l))
        .await
        .expect("b takes over")
        .expect("channel");
    let l = wait_for_or(Duration::from_secs(5), "lease held by b", || {
        let leases = leases.clone();
        async move {
            leases
                .get("le-test")
                .await
                .ok()
                .filter(|l| l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some("b"))
        }
    })
    .await
    .unwrap();
    assert_eq!(l.spec.unwrap().lease_transitions, Some(1));
    b_task.abort();
}
