//! The kubelet in a whole cluster (etcd, apiserver, scheduler,
//! controller-manager, kubelets with their containerds): driven with kubectl.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use testkit::{wait_for_or, Cluster, ClusterOptions};

fn write(dir: &std::path::Path, name: &str, yaml: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, yaml).unwrap();
    p.display().to_string()
}

async fn wait_pod(c: &Cluster, name: &str, secs: u64, what: &str, f: impl Fn(&Pod) -> bool) -> Pod {
    let api: Api<Pod> = Api::namespaced(c.client().await, "default");
    let r = wait_for_or(Duration::from_secs(secs), what, || {
        let api = api.clone();
        let f = &f;
        async move { api.get_opt(name).await.ok().flatten().filter(|p| f(p)) }
    })
    .await;
    match r {
        Ok(p) => p,
        Err(e) => {
            c.print_logs();
            let p = api.get_opt(name).await.ok().flatten();
            panic!(
                "{e}: {}",
                serde_json::to_string_pretty(&p.map(|p| p.status)).unwrap()
            );
        }
    }
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// [sig-node] Pods should be submitted and removed; kubectl logs and exec
/// go through the apiserver to the kubelet server.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_apply_busybox_runs_then_logs_exec_and_delete() {
    let c = Cluster::start(ClusterOptions {
        nodes: 1,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // An address of this cluster's service range (10.(100+slot).0.0/16), asked for explicitly.
    let foo_ip = c.service_ip(10 * 256 + 10).to_string();
    let f = write(
        dir.path(),
        "pod.yaml",
        &r#"
apiVersion: v1
kind: Service
metadata: {name: fooservice}
spec:
  clusterIP: FOO_IP
  ports: [{name: http, port: 8765, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: envpod}
spec:
  restartPolicy: Never
  containers:
  - {name: main, image: busybox, command: ["env"]}
---
apiVersion: v1
kind: Pod
metadata: {name: bb}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 1; done"]
"#.replace("FOO_IP", &foo_ip),
    );
    c.kubectl_ok(&["apply", "-f", &f]).await.unwrap();
    let p = wait_pod(&c, "bb", 90, "pod bb Running", |p| phase(p) == "Running").await;
    let st = p.status.unwrap();
    assert!(st.pod_ip.unwrap().starts_with("10.88."));
    let node = c
        .kubectl_ok(&[
            "get",
            "node",
            "node-0",
            "-o",
            "jsonpath={.status.nodeInfo.containerRuntimeVersion}",
        ])
        .await
        .unwrap();
    assert!(node.starts_with("containerd://"), "{node}");

    let logs = wait_for_or(Duration::from_secs(20), "kubectl logs", || {
        let c = &c;
        async move {
            c.kubectl_ok(&["logs", "bb"])
                .await
                .ok()
                .filter(|l| l.contains("started"))
        }
    })
    .await
    .unwrap();
    assert_eq!(logs, "started\n");
    // kubectl logs --since and --since-time reach the kubelet through the apiserver.
    assert_eq!(
        c.kubectl_ok(&["logs", "bb", "--since=1h"]).await.unwrap(),
        "started\n"
    );
    let later = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(
        c.kubectl_ok(&["logs", "bb", &format!("--since-time={later}")])
            .await
            .unwrap(),
        ""
    );

    // Exec's exit code through the apiserver depends on its relay forwarding
    // the kubelet's close frame; the stdout is the kubelet's part.
    let out = c
        .kubectl(&["exec", "bb", "--", "sh", "-c", "echo out; hostname"])
        .await;
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("out\nbb\n"),
        "{out:?}"
    );
    // [sig-node] Pods should contain environment variables for services.
    wait_pod(&c, "envpod", 60, "envpod Succeeded", |p| {
        phase(p) == "Succeeded"
    })
    .await;
    let env = c.kubectl_ok(&["logs", "envpod"]).await.unwrap();
    for want in [
        format!("FOOSERVICE_SERVICE_HOST={foo_ip}"),
        "FOOSERVICE_SERVICE_PORT=8765".to_string(),
        "FOOSERVICE_SERVICE_PORT_HTTP=8765".to_string(),
        format!("FOOSERVICE_PORT=tcp://{foo_ip}:8765"),
        format!("FOOSERVICE_PORT_8765_TCP_ADDR={foo_ip}"),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} in {env}");
    }

    c.kubectl_ok(&[
        "delete",
        "pod",
        "bb",
        "envpod",
        "--wait=true",
        "--timeout=60s",
    ])
    .await
    .unwrap();
    let api: Api<Pod> = Api::namespaced(c.client().await, "default");
    assert!(api.get_opt("bb").await.unwrap().is_none());
    let left = c.nodes[0].containerd.container_ids().unwrap();
    assert!(left.is_empty(), "{left:?}");
}

/// [sig-node] ConfigMap and Secret as env and volumes; a pod referring to a
/// missing ConfigMap waits in ContainerCreating with a FailedMount event, then
/// starts once the ConfigMap exists.
#[tokio::test(flavor = "multi_thread")]
async fn config_maps_and_secrets_as_env_and_volumes() {
    let c = Cluster::start(ClusterOptions {
        nodes: 1,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "objs.yaml",
        r#"
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: cfg}
spec:
  restartPolicy: Never
  volumes:
  - {name: cm, configMap: {name: settings}}
  - {name: sec, secret: {secretName: creds}}
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo $MODE $PASSWORD $(cat /etc/cm/mode) $(cat /etc/sec/password)"]
    env:
    - name: MODE
      valueFrom: {configMapKeyRef: {name: settings, key: mode}}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: creds, key: password}}
    volumeMounts:
    - {name: cm, mountPath: /etc/cm}
    - {name: sec, mountPath: /etc/sec}
"#,
    );
    c.kubectl_ok(&["apply", "-f", &f]).await.unwrap();
    let p = wait_pod(&c, "cfg", 60, "waiting for the ConfigMap", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs[0].state.as_ref()?.waiting.as_ref()?.reason.clone())
            .as_deref()
            == Some("ContainerCreating")
    })
    .await;
    assert_eq!(phase(&p), "Pending");
    let events = wait_for_or(Duration::from_secs(30), "FailedMount event", || {
        let c = &c;
        async move {
            c.kubectl_ok(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=cfg",
                "-o",
                "jsonpath={.items[*].reason}",
            ])
            .await
            .ok()
            .filter(|e| e.contains("FailedMount"))
        }
    })
    .await
    .unwrap();
    assert!(events.contains("FailedMount"), "{events}");
    c.kubectl_ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
    ])
    .await
    .unwrap();
    wait_pod(&c, "cfg", 60, "pod Succeeded", |p| phase(p) == "Succeeded").await;
    let logs = c.kubectl_ok(&["logs", "cfg"]).await.unwrap();
    assert_eq!(logs, "fast s3cret fast s3cret\n");
}
