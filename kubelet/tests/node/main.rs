//! Integration tests of the kubelet against a real containerd, real CNI
//! plugins and a local registry. No apiserver: pods go to the workers directly.

mod harness;

use std::sync::Arc;

use harness::{phase, pod, Node};
use testkit::Registry;
use tokio::sync::OnceCell;

static REGISTRY: OnceCell<Arc<Registry>> = OnceCell::const_new();

async fn registry() -> Arc<Registry> {
    REGISTRY
        .get_or_init(|| async { Arc::new(Registry::start_with_images().await) })
        .await
        .clone()
}

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

fn terminated(
    s: &k8s_openapi::api::core::v1::PodStatus,
    i: usize,
) -> Option<k8s_openapi::api::core::v1::ContainerStateTerminated> {
    s.container_statuses
        .as_ref()?
        .get(i)?
        .state
        .as_ref()?
        .terminated
        .clone()
}

fn waiting_reason(s: &k8s_openapi::api::core::v1::PodStatus, i: usize) -> Option<String> {
    s.container_statuses
        .as_ref()?
        .get(i)?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

/// [sig-node] Downward API, EmptyDir, HostPath, env and command as upstream
/// merges them; Variable Expansion in args and subPathExpr; hostAliases; sysctls.
#[tokio::test(flavor = "multi_thread")]
async fn env_command_working_dir_and_volumes() {
    let node = Node::start(registry().await).await;
    let host = tempfile::tempdir().unwrap();
    let p = pod(&format!(
        r#"
metadata: {{name: vol, labels: {{app: web}}}}
spec:
  restartPolicy: Never
  hostAliases: [{{ip: 123.45.67.89, hostnames: [foo, bar]}}]
  securityContext: {{sysctls: [{{name: kernel.shm_rmid_forced, value: "1"}}]}}
  volumes:
  - {{name: out, hostPath: {{path: "{}"}}}}
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: mem, emptyDir: {{medium: Memory}}}}
  - name: info
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
      - {{path: mem_limit, resourceFieldRef: {{containerName: main, resource: limits.memory, divisor: 1Mi}}}}
  containers:
  - name: main
    image: busybox
    workingDir: /work
    resources: {{limits: {{memory: 64Mi}}}}
    command: ["sh", "-c"]
    args:
    - |
      echo "$GREETING $POD_NAME $(pwd)" > /out/env
      cat /etc/info/name > /out/name; echo >> /out/name; cat /etc/info/labels >> /out/name
      echo hi > /scratch/a && cat /scratch/a > /out/scratch
      grep -q " /mem tmpfs" /proc/mounts && echo tmpfs > /out/mem
      touch /etc/info/x 2>/dev/null || echo ro > /out/ro
      hostname > /out/hostname
      echo "$@" > /out/args
      cat /etc/info/mem_limit > /out/mem_limit
      grep foo /etc/hosts > /out/hosts
      cat /proc/sys/kernel/shm_rmid_forced > /out/sysctl
      echo sub > /by-name/file
    - sh
    - "$(POD_NAME) $$(POD_NAME) $(UNSET)"
    env:
    - {{name: NAME, value: world}}
    - {{name: GREETING, value: "hello $(NAME)"}}
    - name: POD_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
    volumeMounts:
    - {{name: out, mountPath: /out}}
    - {{name: scratch, mountPath: /scratch, subPath: sub}}
    - {{name: out, mountPath: /by-name, subPathExpr: "pods/$(POD_NAME)"}}
    - {{name: mem, mountPath: /mem}}
    - {{name: info, mountPath: /etc/info}}
"#,
        host.path().display()
    ));
    node.run(&p).await;
    let st = node
        .wait_status("vol", 60, "pod Succeeded", |s| {
            (phase(s) == "Succeeded").then(|| s.clone())
        })
        .await;
    assert_eq!(
        terminated(&st, 0).unwrap().reason.as_deref(),
        Some("Completed")
    );
    let read = |f: &str| std::fs::read_to_string(host.path().join(f)).unwrap_or_default();
    assert_eq!(read("env"), "hello world vol /work\n");
    assert_eq!(read("name"), "vol\napp=\"web\"");
    assert_eq!(read("scratch"), "hi\n");
    assert_eq!(read("mem"), "tmpfs\n");
    assert_eq!(read("ro"), "ro\n");
    assert_eq!(read("hostname"), "vol\n");
    // [sig-node] Variable Expansion: in args, and in a volume subpath.
    assert_eq!(read("args"), "vol $(POD_NAME) $(UNSET)\n");
    assert_eq!(read("pods/vol/file"), "sub\n");
    assert_eq!(read("mem_limit"), "64");
    assert_eq!(read("hosts"), "123.45.67.89\tfoo\tbar\n");
    assert_eq!(read("sysctl"), "1\n");
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

/// [sig-node] An image that does not exist: ErrImagePull, then ImagePullBackOff.
#[tokio::test(flavor = "multi_thread")]
async fn missing_image_goes_err_image_pull_then_back_off() {
    let node = Node::start(registry().await).await;
    let p = pod(r#"
metadata: {name: noimg}
spec:
  containers:
  - {name: main, image: "no-such-image:v1"}
"#);
    node.run(&p).await;
    node.wait_status("noimg", 60, "ErrImagePull", |s| {
        (waiting_reason(s, 0).as_deref() == Some("ErrImagePull")).then_some(())
    })
    .await;
    let st = node
        .wait_status("noimg", 60, "ImagePullBackOff", |s| {
            (waiting_reason(s, 0).as_deref() == Some("ImagePullBackOff")).then(|| s.clone())
        })
        .await;
    assert_eq!(phase(&st), "Pending");
}

/// [sig-node] Probing container: a failing liveness probe restarts the
/// container; readiness (httpGet by port name with headers, tcpSocket) drives Ready.
#[tokio::test(flavor = "multi_thread")]
async fn liveness_restarts_and_readiness_drives_ready() {
    let node = Node::start(registry().await).await;
    let p = pod(r#"
metadata: {name: probes}
spec:
  containers:
  - name: live
    image: busybox
    command: ["sh", "-c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 3600"]
    livenessProbe:
      exec: {command: ["cat", "/tmp/healthy"]}
      periodSeconds: 1
      failureThreshold: 1
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir -p /www; echo ok > /www/index.html; httpd -f -p 8080 -h /www"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe:
      httpGet:
        scheme: HTTP
        path: index.html
        port: http
        httpHeaders: [{name: X-Probe, value: ready}]
      periodSeconds: 1
    startupProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
  - name: never-ready
    image: busybox
    command: ["sleep", "3600"]
    readinessProbe:
      tcpSocket: {port: 9999}
      periodSeconds: 1
"#);
    node.run(&p).await;
    let st = node
        .wait_status("probes", 60, "liveness restart", |s| {
            let cs = s.container_statuses.as_ref()?;
            (cs[0].restart_count >= 1 && cs[1].ready).then(|| s.clone())
        })
        .await;
    let cs = st.container_statuses.as_ref().unwrap();
    assert_eq!(cs[1].started, Some(true));
    assert!(
        !cs[2].ready,
        "a readiness probe on a closed port passed: {st:?}"
    );
    let ready = st
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "False");
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

/// A restarted kubelet adopts running containers without restarting them,
/// and removes the containers of pods that no longer exist.
#[tokio::test(flavor = "multi_thread")]
async fn restarted_kubelet_adopts_containers_and_removes_orphans() {
    let node = Node::start(registry().await).await;
    let keep = pod(r#"
metadata: {name: keep}
spec:
  containers:
  - {name: main, image: busybox, command: ["sleep", "3600"]}
"#);
    let gone = pod(r#"
metadata: {name: gone}
spec:
  containers:
  - {name: main, image: busybox, command: ["sleep", "3600"]}
"#);
    node.run(&keep).await;
    node.run(&gone).await;
    let before = node
        .wait_status("keep", 60, "Running", |s| {
            (phase(s) == "Running").then(|| s.container_statuses.clone().unwrap()[0].clone())
        })
        .await;
    node.wait_status("gone", 60, "Running", |s| {
        (phase(s) == "Running").then_some(())
    })
    .await;
    let node = node.restart_kubelet();
    let live: std::collections::HashSet<String> = [keep.metadata.uid.clone().unwrap()].into();
    kubelet::pod::worker::remove_orphans(&node.k, &live).await;
    node.run(&keep).await;
    let after = node
        .wait_status("keep", 30, "status after restart", |s| {
            s.container_statuses.clone().map(|c| c[0].clone())
        })
        .await;
    assert_eq!(after.container_id, before.container_id);
    assert_eq!(after.restart_count, 0);
    assert!(after.ready);
    assert_eq!(
        node.container_count(gone.metadata.uid.as_deref().unwrap())
            .await,
        0
    );
    assert!(!node
        .k
        .pod_dir(gone.metadata.uid.as_deref().unwrap())
        .exists());
}

mod server;

/// Logs (tailLines, timestamps, limitBytes, previous), exec with exit
/// codes, /pods, /metrics and client-certificate authentication.
#[tokio::test(flavor = "multi_thread")]
async fn logs_and_exec_through_the_kubelet_server() {
    let node = Node::start(registry().await).await;
    server::logs_and_exec_through_the_kubelet_server(&node).await;
}

/// containerd restarted under the kubelet: running pods keep their
/// containers and new pods still start once it is back.
#[tokio::test(flavor = "multi_thread")]
async fn containerd_restart_under_the_kubelet() {
    let mut node = Node::start(registry().await).await;
    let a = pod(r#"
metadata: {name: before}
spec:
  containers:
  - {name: main, image: busybox, command: ["sleep", "3600"]}
"#);
    node.run(&a).await;
    let before = node
        .wait_status("before", 60, "Running", |s| {
            (phase(s) == "Running").then(|| s.container_statuses.clone().unwrap()[0].clone())
        })
        .await;
    node.env.containerd.process().restart().unwrap();
    let b = pod(r#"
metadata: {name: after}
spec:
  containers:
  - {name: main, image: busybox, command: ["sleep", "3600"]}
"#);
    node.run(&b).await;
    node.wait_status("after", 60, "new pod Running after restart", |s| {
        (phase(s) == "Running").then_some(())
    })
    .await;
    let now = node
        .statuses
        .latest("before")
        .unwrap()
        .container_statuses
        .unwrap()[0]
        .clone();
    assert_eq!(now.container_id, before.container_id);
    assert_eq!(now.restart_count, 0);
    assert!(now.state.unwrap().running.is_some());
}

/// A hostPort that is already taken keeps the pod in ContainerCreating
/// (sandbox creation fails) while a free one runs.
#[tokio::test(flavor = "multi_thread")]
async fn taken_host_port_keeps_pod_creating() {
    let node = Node::start(registry().await).await;
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    // Below the kernel's ephemeral range, so no later test's free_port() can land on a port
    // this pod's DNAT rule redirects.
    let free = (20_000..30_000)
        .find(|p| std::net::TcpListener::bind(("0.0.0.0", *p)).is_ok())
        .unwrap();
    let mk = |name: &str, port: u16| {
        pod(&format!(
            r#"
metadata: {{name: {name}}}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
    ports: [{{containerPort: 80, hostPort: {port}}}]
"#
        ))
    };
    node.run(&mk("clash", port)).await;
    node.run(&mk("fine", free)).await;
    node.wait_status("fine", 60, "Running", |s| {
        (phase(s) == "Running").then_some(())
    })
    .await;
    let st = node
        .wait_status("clash", 30, "ContainerCreating", |s| {
            (waiting_reason(s, 0).as_deref() == Some("ContainerCreating")).then(|| s.clone())
        })
        .await;
    assert_eq!(phase(&st), "Pending");
    let ready = st
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "PodReadyToStartContainers")
        .unwrap();
    assert_eq!(ready.status, "False");
    drop(taken);
}

fn terminated_named(
    s: &k8s_openapi::api::core::v1::PodStatus,
    name: &str,
) -> Option<k8s_openapi::api::core::v1::ContainerStateTerminated> {
    s.container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)?
        .state
        .as_ref()?
        .terminated
        .clone()
}

/// [sig-node] Container Runtime blackbox test on terminated container, in one pod:
/// - should report termination message if TerminationMessagePath is set;
/// - should report termination message as empty when pod succeeds and
///   TerminationMessagePolicy FallbackToLogsOnError is set;
/// - should report termination message from log output if TerminationMessagePolicy
///   FallbackToLogsOnError is set;
/// - should report termination message from file when pod succeeds and
///   TerminationMessagePolicy FallbackToLogsOnError is set;
/// - should report termination message if TerminationMessagePath is set as non-root
///   user and at a non-default path.
#[tokio::test(flavor = "multi_thread")]
async fn should_report_termination_message() {
    let node = Node::start(registry().await).await;
    let p = pod(r#"
metadata: {name: term}
spec:
  restartPolicy: Never
  containers:
  - name: file
    image: busybox
    command: ["/bin/sh", "-c"]
    args: ["/bin/echo -n DONE > /dev/termination-log"]
    terminationMessagePath: /dev/termination-log
  - name: succeeded-fallback
    image: busybox
    command: ["/bin/sh", "-c"]
    args: ["/bin/echo -n DONE; /bin/true"]
    terminationMessagePolicy: FallbackToLogsOnError
  - name: log-fallback
    image: busybox
    command: ["/bin/sh", "-c"]
    args: ["/bin/echo -n DONE; /bin/false"]
    terminationMessagePolicy: FallbackToLogsOnError
  - name: file-fallback
    image: busybox
    command: ["/bin/sh", "-c"]
    args: ["/bin/echo -n OK > /dev/termination-custom-log; /bin/true"]
    terminationMessagePath: /dev/termination-custom-log
    terminationMessagePolicy: FallbackToLogsOnError
  - name: non-root
    image: busybox
    command: ["/bin/sh", "-c"]
    args: ["/bin/echo -n DONE > /dev/termination-custom-log"]
    terminationMessagePath: /dev/termination-custom-log
    securityContext: {runAsUser: 1000}
"#);
    node.run(&p).await;
    let names = [
        "file",
        "succeeded-fallback",
        "log-fallback",
        "file-fallback",
        "non-root",
    ];
    let st = node
        .wait_status(
            "term",
            60,
            "every container terminated with its message",
            |s| {
                let all = names.iter().all(|n| terminated_named(s, n).is_some());
                // The log fallback may land a sync after the exit.
                let fallback = terminated_named(s, "log-fallback")?.message.is_some();
                (all && fallback).then(|| s.clone())
            },
        )
        .await;
    let msg = |n: &str| {
        let t = terminated_named(&st, n).unwrap();
        (t.exit_code, t.message)
    };
    assert_eq!(msg("file"), (0, Some("DONE".into())));
    assert_eq!(msg("succeeded-fallback"), (0, None));
    assert_eq!(msg("log-fallback"), (1, Some("DONE".into())));
    assert_eq!(msg("file-fallback"), (0, Some("OK".into())));
    assert_eq!(msg("non-root"), (0, Some("DONE".into())));
    assert_eq!(phase(&st), "Failed");
}

/// runAsNonRoot with an image that runs as root: CreateContainerConfigError,
/// nothing created. [sig-node] Security Context should support
/// pod.Spec.SecurityContext.RunAsUser And pod.Spec.SecurityContext.RunAsGroup:
/// the pod's user, group and supplementalGroups reach the container, and its
/// exec probes.
#[tokio::test(flavor = "multi_thread")]
async fn run_as_non_root_and_pod_security_context() {
    let node = Node::start(registry().await).await;
    let root = pod(r#"
metadata: {name: rootimg}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - {name: main, image: busybox, command: ["sleep", "3600"]}
"#);
    let ids = pod(r#"
metadata: {name: ids}
spec:
  restartPolicy: Never
  securityContext: {runAsUser: 1001, runAsGroup: 2002, supplementalGroups: [3003], runAsNonRoot: true}
  containers:
  - name: main
    image: busybox
    command: ["/bin/sh", "-c", "echo -n $(id -u) $(id -g) $(id -G) > /dev/termination-log"]
"#);
    // Exec probes run as the container's process does: its user, env and cwd.
    let probed = pod(r#"
metadata: {name: probed}
spec:
  securityContext: {runAsUser: 1001}
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
    workingDir: /tmp
    env: [{name: FROM_SPEC, value: "yes"}]
    readinessProbe:
      exec: {command: ["sh", "-c", "test $(id -u) = 1001 && test $PWD = /tmp && test $FROM_SPEC = yes"]}
      periodSeconds: 1
"#);
    node.run(&root).await;
    node.run(&ids).await;
    node.run(&probed).await;
    let st = node
        .wait_status("rootimg", 60, "CreateContainerConfigError", |s| {
            (waiting_reason(s, 0).as_deref() == Some("CreateContainerConfigError"))
                .then(|| s.clone())
        })
        .await;
    let w = st.container_statuses.as_ref().unwrap()[0]
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap();
    let m = w.message.unwrap();
    assert!(
        m.starts_with(
            "container has runAsNonRoot and image will run as root (pod: \"rootimg_default("
        ),
        "{m}"
    );
    assert_eq!(phase(&st), "Pending");
    assert_eq!(
        node.container_count(root.metadata.uid.as_deref().unwrap())
            .await,
        0
    );
    let st = node
        .wait_status("ids", 60, "Succeeded", |s| {
            (phase(s) == "Succeeded").then(|| s.clone())
        })
        .await;
    let m = terminated(&st, 0).unwrap().message.unwrap();
    let mut words = m.split_whitespace();
    assert_eq!(
        (words.next(), words.next()),
        (Some("1001"), Some("2002")),
        "{m}"
    );
    assert!(words.any(|g| g == "3003"), "{m}");
    node.wait_status("probed", 60, "ready by an exec probe as uid 1001", |s| {
        s.container_statuses.as_ref()?.first()?.ready.then_some(())
    })
    .await;
}

/// A container that exceeds its memory limit ends OOMKilled with 137, as
/// upstream reports it from the cgroup's OOM kill.
#[tokio::test(flavor = "multi_thread")]
async fn memory_limit_exceeded_is_oom_killed() {
    let node = Node::start(registry().await).await;
    let p = pod(r#"
metadata: {name: oom}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"]
    resources: {limits: {memory: 16Mi}}
"#);
    node.run(&p).await;
    let st = node
        .wait_status("oom", 60, "Failed", |s| {
            (phase(s) == "Failed").then(|| s.clone())
        })
        .await;
    let t = terminated(&st, 0).unwrap();
    assert_eq!(
        (t.exit_code, t.reason.as_deref()),
        (137, Some("OOMKilled")),
        "{t:?}"
    );
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
