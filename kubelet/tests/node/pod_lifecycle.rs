//! A pod's life: running, restarts with back-off, completion phases,
//! graceful deletion, init containers, sidecars and activeDeadlineSeconds.

use crate::harness::{phase, pod, Node};
use crate::{registry, terminated, waiting_reason};

/// [sig-node] Pods should be submitted and removed: the walking skeleton.
#[tokio::test(flavor = "multi_thread")]
async fn pod_runs_busybox_and_reports_running_with_ip() {
    let node = Node::start(registry().await).await;
    let p = pod(r#"
metadata: {name: bb}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo hello from $(hostname); sleep 3600"]
"#);
    node.run(&p).await;
    let st = node
        .wait_status("bb", 60, "pod Running", |s| {
            (phase(s) == "Running").then(|| s.clone())
        })
        .await;
    let ip = st.pod_ip.clone().unwrap();
    assert!(ip.starts_with("10.99."), "{ip}");
    assert_eq!(st.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(st.qos_class.as_deref(), Some("BestEffort"));
    let cs = &st.container_statuses.as_ref().unwrap()[0];
    assert!(cs.ready, "{:#?}", node.history("bb"));
    assert!(cs
        .container_id
        .as_ref()
        .unwrap()
        .starts_with("containerd://"));
    assert!(cs.image_id.contains("@sha256:"), "{}", cs.image_id);
    let ready = st
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
}

/// [sig-node] Pods should have their restart count and back off crashing containers.
#[tokio::test(flavor = "multi_thread")]
async fn restart_always_backs_off_with_crash_loop_and_keeps_last_state() {
    let node = Node::start(registry().await).await;
    let p = pod(r#"
metadata: {name: crash}
spec:
  containers:
  - {name: main, image: busybox, command: ["sh", "-c", "echo boom; exit 1"]}
"#);
    node.run(&p).await;
    let st = node
        .wait_status("crash", 60, "CrashLoopBackOff", |s| {
            (waiting_reason(s, 0).as_deref() == Some("CrashLoopBackOff")).then(|| s.clone())
        })
        .await;
    let cs = &st.container_statuses.as_ref().unwrap()[0];
    assert!(cs.restart_count >= 1, "{cs:?}");
    let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(last.exit_code, 1);
    assert_eq!(last.reason.as_deref(), Some("Error"));
    assert_eq!(phase(&st), "Running");
    let msg = cs
        .state
        .as_ref()
        .unwrap()
        .waiting
        .as_ref()
        .unwrap()
        .message
        .clone()
        .unwrap();
    assert!(
        msg.starts_with("back-off 10s restarting failed container=main"),
        "{msg}"
    );
}

/// [sig-node] Pods with restartPolicy Never/OnFailure end Failed/Succeeded with exit codes.
#[tokio::test(flavor = "multi_thread")]
async fn run_to_completion_phases_and_exit_codes() {
    let node = Node::start(registry().await).await;
    let never = pod(r#"
metadata: {name: never}
spec:
  restartPolicy: Never
  containers:
  - {name: main, image: busybox, command: ["sh", "-c", "exit 3"]}
"#);
    let onfail = pod(r#"
metadata: {name: onfail}
spec:
  restartPolicy: OnFailure
  initContainers:
  - {name: init, image: busybox, command: ["true"]}
  containers:
  - {name: main, image: busybox, command: ["sh", "-c", "echo done"]}
"#);
    let missing = pod(r#"
metadata: {name: nocmd}
spec:
  restartPolicy: Never
  containers:
  - {name: main, image: busybox, command: ["/does-not-exist"]}
"#);
    node.run(&never).await;
    node.run(&onfail).await;
    node.run(&missing).await;
    let st = node
        .wait_status("never", 60, "Failed", |s| {
            (phase(s) == "Failed").then(|| s.clone())
        })
        .await;
    let t = terminated(&st, 0).unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));
    let st = node
        .wait_status("onfail", 60, "Succeeded", |s| {
            (phase(s) == "Succeeded").then(|| s.clone())
        })
        .await;
    assert_eq!(
        terminated(&st, 0).unwrap().reason.as_deref(),
        Some("Completed")
    );
    let init = &st.init_container_statuses.as_ref().unwrap()[0];
    assert_eq!(
        init.state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        0
    );
    let st = node
        .wait_status("nocmd", 60, "Failed", |s| {
            (phase(s) == "Failed").then(|| s.clone())
        })
        .await;
    let t = terminated(&st, 0).unwrap();
    assert_eq!(
        (t.exit_code, t.reason.as_deref()),
        (128, Some("StartError"))
    );
    assert!(t.message.unwrap().contains("does-not-exist"));
}

/// [sig-node] Pods should support graceful deletion: preStop, then SIGTERM,
/// SIGKILL after the grace period, and everything released.
#[tokio::test(flavor = "multi_thread")]
async fn graceful_deletion_runs_pre_stop_then_sigterm_then_kills() {
    let node = Node::start(registry().await).await;
    let host = tempfile::tempdir().unwrap();
    let mut p = pod(&format!(
        r#"
metadata: {{name: grace}}
spec:
  terminationGracePeriodSeconds: 3
  volumes:
  - {{name: out, hostPath: {{path: "{}"}}}}
  containers:
  - name: polite
    image: busybox
    command: ["sh", "-c", "trap 'echo term > /out/term; exit 0' TERM; while true; do sleep 0.2; done"]
    lifecycle:
      preStop:
        exec: {{command: ["sh", "-c", "echo prestop > /out/prestop"]}}
    volumeMounts: [{{name: out, mountPath: /out}}]
  - name: stubborn
    image: busybox
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"]
"#,
        host.path().display()
    ));
    node.run(&p).await;
    node.wait_status("grace", 60, "Running", |s| {
        (phase(s) == "Running" && s.container_statuses.as_ref()?.iter().all(|c| c.ready))
            .then_some(())
    })
    .await;
    let uid = p.metadata.uid.clone().unwrap();
    assert_eq!(node.container_count(&uid).await, 2);
    let t0 = std::time::Instant::now();
    p.metadata.deletion_timestamp = Some(kubelet::ktime::time(chrono::Utc::now()));
    p.metadata.deletion_grace_period_seconds = Some(3);
    node.run(&p).await;
    let k = node.k.clone();
    let u = uid.clone();
    testkit::wait_for_or(
        std::time::Duration::from_secs(30),
        "containers and pod directory removed",
        || {
            let k = k.clone();
            let u = u.clone();
            async move {
                // The pod directory goes last, after the containers are removed.
                let containers_gone = k
                    .runtime
                    .list_containers()
                    .await
                    .ok()
                    .is_some_and(|cs| !cs.iter().any(|c| c.pod_uid == u));
                (containers_gone && !k.pod_dir(&u).exists()).then_some(())
            }
        },
    )
    .await
    .unwrap();
    // The stubborn container ignores SIGTERM, so only SIGKILL at the grace period ends it.
    assert!(
        t0.elapsed() >= std::time::Duration::from_secs(3),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("prestop")).unwrap(),
        "prestop\n"
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("term")).unwrap(),
        "term\n"
    );
    assert!(!node.k.pod_dir(&uid).exists());
}

/// [sig-node] InitContainer should not start app containers and fail the pod
/// if init containers fail on a RestartNever pod.
#[tokio::test(flavor = "multi_thread")]
async fn should_not_start_app_containers_and_fail_the_pod_if_init_containers_fail_on_a_restart_never_pod(
) {
    let node = Node::start(registry().await).await;
    let p = pod(r#"
metadata: {name: initfail}
spec:
  restartPolicy: Never
  initContainers:
  - {name: init1, image: busybox, command: ["/bin/false"]}
  - {name: init2, image: busybox, command: ["/bin/true"]}
  containers:
  - {name: run1, image: busybox, command: ["sleep", "3600"]}
"#);
    node.run(&p).await;
    let st = node
        .wait_status("initfail", 60, "Failed", |s| {
            (phase(s) == "Failed").then(|| s.clone())
        })
        .await;
    let inits = st.init_container_statuses.as_ref().unwrap();
    let t = inits[0]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (1, Some("Error")));
    assert_eq!(inits[0].restart_count, 0);
    assert!(
        inits[1].state.as_ref().unwrap().waiting.is_some(),
        "{inits:?}"
    );
    assert_eq!(waiting_reason(&st, 0).as_deref(), Some("PodInitializing"));
    let initialized = st
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Initialized")
        .unwrap();
    assert_eq!(initialized.status, "False");
    // Only init1 ever ran.
    assert_eq!(
        node.container_count(p.metadata.uid.as_deref().unwrap())
            .await,
        1
    );
}

/// Sidecars (init containers with restartPolicy Always) start first, let the
/// next init container run once running, stay beside the main containers and
/// count for Ready; a pod whose main container completes is Succeeded.
#[tokio::test(flavor = "multi_thread")]
async fn sidecar_init_containers_run_beside_the_main_containers() {
    let node = Node::start(registry().await).await;
    let mk = |name: &str, policy: &str, main: &str| {
        pod(&format!(
            r#"
metadata: {{name: {name}}}
spec:
  restartPolicy: {policy}
  initContainers:
  - {{name: side, image: busybox, restartPolicy: Always, command: ["sleep", "3600"]}}
  - {{name: init, image: busybox, command: ["true"]}}
  containers:
  - {{name: main, image: busybox, command: ["sh", "-c", "{main}"]}}
"#
        ))
    };
    node.run(&mk("sidecar", "Always", "sleep 3600")).await;
    node.run(&mk("sidecar-job", "Never", "echo done")).await;
    let st = node
        .wait_status("sidecar", 60, "Running and Ready", |s| {
            let ready = s
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            (phase(s) == "Running" && ready).then(|| s.clone())
        })
        .await;
    let inits = st.init_container_statuses.as_ref().unwrap();
    let side = &inits[0];
    assert!(side.state.as_ref().unwrap().running.is_some(), "{side:?}");
    assert!(side.ready);
    assert_eq!(side.started, Some(true));
    let t = inits[1]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!(t.reason.as_deref(), Some("Completed"));
    node.wait_status("sidecar-job", 60, "Succeeded", |s| {
        (phase(s) == "Succeeded").then_some(())
    })
    .await;
}

/// [sig-node] Pods should allow activeDeadlineSeconds to be updated: once
/// past it the pod is Failed with reason DeadlineExceeded.
#[tokio::test(flavor = "multi_thread")]
async fn active_deadline_seconds_fails_the_pod() {
    let node = Node::start(registry().await).await;
    let p = pod(r#"
metadata: {name: deadline}
spec:
  activeDeadlineSeconds: 2
  containers:
  - {name: main, image: busybox, command: ["sleep", "3600"]}
"#);
    node.run(&p).await;
    let st = node
        .wait_status("deadline", 60, "Failed", |s| {
            (phase(s) == "Failed").then(|| s.clone())
        })
        .await;
    assert_eq!(st.reason.as_deref(), Some("DeadlineExceeded"));
}
