//! Liveness and readiness probes.

use crate::harness::{pod, Node};
use crate::registry;

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
