//! The worker against the fake runtime and the fake network, on a paused
//! clock: grace periods pass in virtual time and tests wait on the fakes' calls.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::watch;
use tokio::time::Instant;

use super::run;
use crate::context::Kubelet;
use crate::network::fake::FakeNetwork;
use crate::runtime::fake::FakeRuntime;

/// Long enough for any of these tests; only reached on a paused clock if the worker hangs.
const LIMIT: Duration = Duration::from_secs(300);

struct Fixture {
    _root: tempfile::TempDir,
    k: Arc<Kubelet>,
    rt: Arc<FakeRuntime>,
    net: Arc<FakeNetwork>,
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::with_image("busybox"));
    let net = Arc::new(FakeNetwork::default());
    let k = Arc::new(Kubelet::for_tests(root.path(), rt.clone(), net.clone()));
    Fixture {
        _root: root,
        k,
        rt,
        net,
    }
}

fn pod(containers: &[&str]) -> Pod {
    let cs: Vec<_> = containers
        .iter()
        .map(|n| serde_json::json!({"name": n, "image": "busybox"}))
        .collect();
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
        "spec": {"containers": cs, "restartPolicy": "Never", "terminationGracePeriodSeconds": 30}
    }))
    .unwrap()
}

fn deleted(mut p: Pod, grace: i64) -> Pod {
    p.metadata.deletion_timestamp = Some(crate::ktime::time(chrono::Utc::now()));
    p.metadata.deletion_grace_period_seconds = Some(grace);
    p
}

fn started(calls: &[String], n: usize) -> bool {
    calls.iter().filter(|c| c.starts_with("start ")).count() >= n
}

fn id_of(rt: &FakeRuntime, name: &str) -> String {
    let cs = rt.containers.lock().unwrap();
    cs.values().find(|c| c.name == name).unwrap().id.clone()
}

/// A force delete (grace 0) that arrives while the pod waits out a 30 s grace
/// period for a container ignoring SIGTERM kills it at once.
#[tokio::test(start_paused = true)]
async fn a_force_delete_mid_termination_kills_at_once() {
    let f = fixture();
    f.rt.ignore_sigterm.lock().unwrap().insert("c".into());
    let (tx, rx) = watch::channel(Some(pod(&["c"])));
    let worker = tokio::spawn(run(f.k.clone(), "u1".into(), rx));
    f.rt.wait_for(|calls| started(calls, 1)).await;
    let id = id_of(&f.rt, "c");

    tx.send(Some(deleted(pod(&["c"]), 30))).unwrap();
    let sigterm = format!("kill {id} 15");
    f.rt.wait_for(|calls| calls.contains(&sigterm)).await;
    let asked = Instant::now();
    tx.send(Some(deleted(pod(&["c"]), 0))).unwrap();
    tokio::time::timeout(LIMIT, worker).await.unwrap().unwrap();

    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "took {:?}",
        asked.elapsed()
    );
    let calls = f.rt.calls.lock().unwrap().clone();
    let sigkill = calls.iter().position(|c| *c == format!("kill {id} 9"));
    assert!(sigkill.is_some(), "{calls:?}");
    assert!(calls.contains(&format!("remove {id}")), "{calls:?}");
}

/// The same, when the pod disappears from the API instead (the channel says `None`).
#[tokio::test(start_paused = true)]
async fn a_pod_gone_from_the_api_mid_termination_is_killed_at_once() {
    let f = fixture();
    f.rt.ignore_sigterm.lock().unwrap().insert("c".into());
    let (tx, rx) = watch::channel(Some(pod(&["c"])));
    let worker = tokio::spawn(run(f.k.clone(), "u1".into(), rx));
    f.rt.wait_for(|calls| started(calls, 1)).await;
    let id = id_of(&f.rt, "c");
    tx.send(Some(deleted(pod(&["c"]), 30))).unwrap();
    let sigterm = format!("kill {id} 15");
    f.rt.wait_for(|calls| calls.contains(&sigterm)).await;
    let asked = Instant::now();
    tx.send(None).unwrap();
    tokio::time::timeout(LIMIT, worker).await.unwrap().unwrap();
    assert!(asked.elapsed() < Duration::from_secs(1));
    assert!(f.rt.calls.lock().unwrap().contains(&format!("kill {id} 9")));
}

/// Without a newer update the grace period is honoured: SIGKILL only at its end.
#[tokio::test(start_paused = true)]
async fn a_graceful_delete_waits_out_the_grace_period() {
    let f = fixture();
    f.rt.ignore_sigterm.lock().unwrap().insert("c".into());
    let (tx, rx) = watch::channel(Some(pod(&["c"])));
    let worker = tokio::spawn(run(f.k.clone(), "u1".into(), rx));
    f.rt.wait_for(|calls| started(calls, 1)).await;
    let asked = Instant::now();
    tx.send(Some(deleted(pod(&["c"]), 30))).unwrap();
    tokio::time::timeout(LIMIT, worker).await.unwrap().unwrap();
    assert!(
        asked.elapsed() >= Duration::from_secs(30),
        "{:?}",
        asked.elapsed()
    );
}

/// Updates that arrive while a sync is under way are not queued: the worker's
/// next round sees only the newest, and the one in between never runs.
#[tokio::test(start_paused = true)]
async fn a_newer_desired_pod_replaces_an_older_pending_one() {
    let f = fixture();
    let held = f.rt.pull_gate.write().await;
    let (tx, rx) = watch::channel(Some(pod(&["one"])));
    let worker = tokio::spawn(run(f.k.clone(), "u1".into(), rx));
    // The first sync is now stuck pulling the image for "one".
    f.rt.wait_for(|calls| calls.iter().any(|c| c.starts_with("pull ")))
        .await;
    tx.send(Some(pod(&["two"]))).unwrap();
    tx.send(Some(pod(&["three"]))).unwrap();
    drop(held);
    f.rt.wait_for(|calls| started(calls, 2)).await;
    assert_eq!(*f.rt.created.lock().unwrap(), ["one", "three"]);
    tx.send(None).unwrap();
    tokio::time::timeout(LIMIT, worker).await.unwrap().unwrap();
}

/// A pod that finished releases its network then; its deletion, and any later
/// cleanup of the same UID, do not release it again.
#[tokio::test(start_paused = true)]
async fn a_terminated_pod_releases_its_network_exactly_once() {
    let f = fixture();
    let (tx, rx) = watch::channel(Some(pod(&["c"])));
    let worker = tokio::spawn(run(f.k.clone(), "u1".into(), rx));
    f.rt.wait_for(|calls| started(calls, 1)).await;
    assert_eq!(f.net.count("setup u1"), 1);
    f.rt.exit(&id_of(&f.rt, "c"), 0);

    // The status the API would hand back: the pod has Succeeded.
    let mut done = pod(&["c"]);
    done.status = Some(k8s_openapi::api::core::v1::PodStatus {
        phase: Some("Succeeded".into()),
        ..Default::default()
    });
    tx.send(Some(done.clone())).unwrap();
    // The worker ends only after a full termination, so wait for the teardown first.
    f.net
        .wait_for(|calls| calls.iter().any(|c| c == "teardown u1"))
        .await;
    tx.send(Some(deleted(done, 30))).unwrap();
    tokio::time::timeout(LIMIT, worker).await.unwrap().unwrap();
    super::cleanup(&f.k, "u1", &[]).await;

    assert_eq!(f.net.count("teardown u1"), 1, "{:?}", f.net.calls);
    assert_eq!(f.net.count("setup u1"), 1);
    assert!(!f.k.pod_dir("u1").exists());
}

/// A running pod that is deleted releases its network once, at the end.
#[tokio::test(start_paused = true)]
async fn a_deleted_running_pod_releases_its_network_once() {
    let f = fixture();
    let (tx, rx) = watch::channel(Some(pod(&["c"])));
    let worker = tokio::spawn(run(f.k.clone(), "u1".into(), rx));
    f.rt.wait_for(|calls| started(calls, 1)).await;
    tx.send(Some(deleted(pod(&["c"]), 30))).unwrap();
    tokio::time::timeout(LIMIT, worker).await.unwrap().unwrap();
    assert_eq!(f.net.count("teardown u1"), 1);
}
