//! One container's setup: env, command, volumes, images, security
//! context, termination messages and memory limits.

use crate::harness::{phase, pod, Node};
use crate::{registry, terminated, terminated_named, waiting_reason};

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
