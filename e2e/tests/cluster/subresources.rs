//! The API surface kubectl and older clients use: exec over SPDY (kubectl 1.27), attach,
//! the pod, service and node proxies, /openapi/v2 (kubectl 1.27's apply validation and
//! explain), autoscaling/v1 beside v2, and VolumeAttachments.

use std::process::Output;
use std::time::Duration;

use e2e::pods::{is_running, wait_pod};
use e2e::table;
use e2e::{shared_cluster, TestNs, POD_START};
use testkit::wait_for_or;

/// The older kubectl on this machine: it speaks only SPDY for exec and attach and reads
/// /openapi/v2 for validation and explain.
const KUBECTL_1_27: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27";

/// `kubectl.1.27 -n <ns> args...` with a fresh cache, optionally feeding `stdin`.
async fn kubectl_1_27(ns: &TestNs<'_>, args: &[&str], stdin: Option<&str>) -> Output {
    kubectl_with(KUBECTL_1_27, ns, args, stdin).await
}

async fn kubectl_with(program: &str, ns: &TestNs<'_>, args: &[&str], stdin: Option<&str>) -> Output {
    use tokio::io::AsyncWriteExt;
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg("--kubeconfig").arg(ns.cluster.kubeconfig()).arg("--cache-dir").arg(cache.path()).args(["-n", &ns.name]).args(args);
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("running {program}: {e}"));
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.unwrap();
    }
    drop(input);
    tokio::time::timeout(Duration::from_secs(120), child.wait_with_output()).await.expect("kubectl did not finish").unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

const WEB: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: nginx\n    image: nginx\n    ports:\n    - {name: http, containerPort: 80}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 8080, targetPort: 80}\n";

/// "Proxy, validate Proxy responses" and "Proxy, validate ProxyWithPath responses": nginx's
/// page and a path under it through pods/proxy (by port number and by port name) and
/// services/proxy (by port name, by number, with the scheme), with `kubectl get --raw`.
#[tokio::test]
async fn conformance_proxy_validate_proxy_responses_through_pod_and_service_proxy() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "proxy").await;
    ns.apply_yaml(WEB).await;
    wait_pod(&ns.pods(), "web", POD_START, "Running", is_running).await;
    let n = &ns.name;
    for path in [
        format!("/api/v1/namespaces/{n}/pods/web:80/proxy/"),
        format!("/api/v1/namespaces/{n}/pods/web:http/proxy/"),
        format!("/api/v1/namespaces/{n}/pods/http:web:80/proxy/"),
    ] {
        let page = ns.kubectl_ok(&["get", "--raw", &path]).await;
        assert!(page.contains("Welcome to nginx!"), "{path}: {page}");
    }
    // The demo server answers /healthz: the path after /proxy reaches it.
    let health = ns.kubectl_ok(&["get", "--raw", &format!("/api/v1/namespaces/{n}/pods/web:80/proxy/healthz")]).await;
    assert!(!health.contains("Welcome to nginx!"), "{health}");
    // A service is reached at a ready endpoint, once its Endpoints list the pod.
    for path in [
        format!("/api/v1/namespaces/{n}/services/web:http/proxy/"),
        format!("/api/v1/namespaces/{n}/services/web:8080/proxy/"),
        format!("/api/v1/namespaces/{n}/services/http:web:http/proxy/"),
        format!("/api/v1/namespaces/{n}/services/web/proxy/"),
    ] {
        wait_for_or(Duration::from_secs(30), &format!("nginx's page through {path}"), || async {
            let out = ns.kubectl(&["get", "--raw", &path]).await;
            Some(()).filter(|_| String::from_utf8_lossy(&out.stdout).contains("Welcome to nginx!"))
        })
        .await
        .unwrap();
    }
    // Bad names are upstream's errors, not 5xx.
    let out = ns.kubectl(&["get", "--raw", &format!("/api/v1/namespaces/{n}/services/nope/proxy/")]).await;
    assert!(text(&out).contains("NotFound"), "{}", text(&out));
    let out = ns.kubectl(&["get", "--raw", &format!("/api/v1/namespaces/{n}/pods/ftp:web:80/proxy/")]).await;
    assert!(text(&out).contains("BadRequest"), "{}", text(&out));
}

/// nodes/proxy reaches the node's kubelet API with the apiserver's client certificate.
#[tokio::test]
async fn nodes_proxy_reaches_the_kubelets_healthz_and_pods() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "nodeproxy").await;
    let node = &cluster.nodes[0].name;
    let health = ns.kubectl_ok(&["get", "--raw", &format!("/api/v1/nodes/{node}/proxy/healthz")]).await;
    assert_eq!(health.trim(), "ok");
    let pods = ns.kubectl_ok(&["get", "--raw", &format!("/api/v1/nodes/{node}/proxy/pods")]).await;
    let pods: serde_json::Value = serde_json::from_str(&pods).unwrap();
    assert_eq!(pods["kind"], "PodList");
}

/// kubectl 1.27 speaks only SPDY/3.1 for exec: output, stdin and the exit code come back.
#[tokio::test]
async fn kubectl_1_27_exec_over_spdy_returns_output_stdin_and_exit_code() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "spdyexec").await;
    ns.apply_yaml("apiVersion: v1\nkind: Pod\nmetadata:\n  name: sh\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: sh\n    image: busybox\n    command: [sleep, \"3600\"]\n").await;
    wait_pod(&ns.pods(), "sh", POD_START, "Running", is_running).await;
    let out = kubectl_1_27(&ns, &["exec", "sh", "--", "echo", "hi"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let out = kubectl_1_27(&ns, &["exec", "-i", "sh", "--", "cat"], Some("through stdin\n")).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n", "{}", text(&out));
    let out = kubectl_1_27(&ns, &["exec", "sh", "--", "sh", "-c", "echo oops >&2; exit 3"], None).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("oops"), "{}", text(&out));
    // kubectl 1.33 falls back to the same SPDY path when told not to use WebSockets.
    let out = tokio::process::Command::new(testkit::KUBECTL)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["--cache-dir", tempfile::tempdir().unwrap().path().to_str().unwrap(), "-n", &ns.name, "exec", "sh", "--", "echo", "spdy"])
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "spdy\n", "{}", text(&out));
}

/// `kubectl attach -i` (WebSocket, 1.33) and `kubectl.1.27 attach -i` (SPDY) join a running
/// container's own stdin and stdout; the session ends when the container exits.
#[tokio::test]
async fn kubectl_attach_joins_the_containers_stdin_and_stdout_over_websocket_and_spdy() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "attach").await;
    for name in ["att133", "att127"] {
        ns.apply_yaml(&format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: busybox\n    stdin: true\n    stdinOnce: true\n    command: [sh, -c, \"read line; echo got:$line\"]\n")).await;
        wait_pod(&ns.pods(), name, POD_START, "Running", is_running).await;
    }
    let out = kubectl_with(testkit::KUBECTL, &ns, &["attach", "-i", "att133"], Some("hello\n")).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("got:hello"), "{}", text(&out));
    let out = kubectl_1_27(&ns, &["attach", "-i", "att127"], Some("old client\n")).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("got:old client"), "{}", text(&out));
    // What the container wrote is in its log too.
    let logs = ns.kubectl_ok(&["logs", "att127"]).await;
    assert_eq!(logs, "got:old client\n");
    // `kubectl run -i --rm` attaches, then deletes the pod.
    let out = kubectl_with(testkit::KUBECTL, &ns, &["run", "once", "-i", "--rm", "--restart=Never", "--image=busybox", "--", "sh", "-c", "read l; echo ran:$l"], Some("x\n")).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("ran:x"), "{}", text(&out));
    assert!(text(&out).contains("pod \"once\" deleted"), "{}", text(&out));
}

/// kubectl 1.27 validates `apply -f` and runs `explain` against /openapi/v2 (protobuf).
#[tokio::test]
async fn kubectl_1_27_apply_validates_and_explain_reads_openapi_v2() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "openapiv2").await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  selector: {matchLabels: {app: d}}\n  template:\n    metadata: {labels: {app: d}}\n    spec: {containers: [{name: c, image: busybox, command: [sleep, \"3600\"]}]}\n";
    std::fs::write(&good, deployment).unwrap();
    let out = kubectl_1_27(&ns, &["apply", "--validate=true", "-f", good.to_str().unwrap()], None).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("deployment.apps/d created"), "{}", text(&out));
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, deployment.replace("name: d\nspec:", "name: e\nspec:\n  replica: 2")).unwrap();
    let out = kubectl_1_27(&ns, &["apply", "--validate=true", "-f", bad.to_str().unwrap()], None).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("unknown field \"spec.replica\""), "{}", text(&out));
    let out = kubectl_1_27(&ns, &["explain", "deployment.spec"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    let explained = String::from_utf8_lossy(&out.stdout);
    assert!(explained.contains("KIND:       Deployment") || explained.contains("KIND:     Deployment"), "{explained}");
    assert!(explained.contains("minReadySeconds"), "{explained}");
    let out = kubectl_1_27(&ns, &["explain", "hpa.spec.targetCPUUtilizationPercentage", "--api-version=autoscaling/v1"], None).await;
    assert!(out.status.success(), "{}", text(&out));
}

/// `kubectl autoscale` (autoscaling/v2 from 1.33, v1 from 1.27) makes an HPA readable in
/// both versions, shown with upstream's columns and listed by `kubectl get all`.
#[tokio::test]
async fn kubectl_autoscale_creates_an_hpa_readable_as_v1_and_v2() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "autoscale").await;
    ns.kubectl_ok(&["create", "deployment", "web", "--image=nginx"]).await;
    ns.kubectl_ok(&["autoscale", "deployment", "web", "--min=1", "--max=3", "--cpu-percent=50"]).await;
    let out = kubectl_1_27(&ns, &["autoscale", "deployment", "web", "--name=old", "--min=2", "--max=4", "--cpu-percent=60"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    let v1 = ns.kubectl_ok(&["get", "horizontalpodautoscalers.v1.autoscaling", "web", "-o", "jsonpath={.apiVersion} {.spec.targetCPUUtilizationPercentage}"]).await;
    assert_eq!(v1, "autoscaling/v1 50");
    let v2 = ns.kubectl_ok(&["get", "horizontalpodautoscalers.v2.autoscaling", "old", "-o", "jsonpath={.apiVersion} {.spec.metrics[0].resource.target.averageUtilization}"]).await;
    assert_eq!(v2, "autoscaling/v2 60");
    let out = ns.kubectl_ok(&["get", "hpa"]).await;
    let rows = table::parse(&out);
    assert_eq!(rows.len(), 2, "{out}");
    let web = rows.iter().find(|r| table::cell(r, "NAME") == "web").expect("web row");
    assert_eq!(table::cell(web, "REFERENCE"), "Deployment/web", "{out}");
    assert_eq!(table::cell(web, "TARGETS"), "cpu: <unknown>/50%", "{out}");
    assert_eq!((table::cell(web, "MINPODS"), table::cell(web, "MAXPODS")), ("1", "3"), "{out}");
    for col in ["REPLICAS", "AGE"] {
        assert!(out.lines().next().unwrap().contains(col), "{out}");
    }
    let all = ns.kubectl_ok(&["get", "all"]).await;
    assert!(all.contains("horizontalpodautoscaler.autoscaling/web"), "{all}");
    assert_eq!(all.matches("horizontalpodautoscaler.autoscaling/web ").count(), 1, "listed once, in the preferred version:\n{all}");
    let described = ns.kubectl_ok(&["describe", "hpa", "web"]).await;
    assert!(described.contains("Reference:") && described.contains("Deployment/web"), "{described}");
}

/// "VolumeAttachment, lifecycle": create, read, patch a label, list by it, delete; update
/// a second one's labels; delete the rest by collection.
#[tokio::test]
async fn conformance_volume_attachment_lifecycle() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "va").await;
    let node = &cluster.nodes[0].name;
    let id = ns.name.clone();
    let va = |name: &str| format!("apiVersion: storage.k8s.io/v1\nkind: VolumeAttachment\nmetadata:\n  name: {name}\n  labels: {{test: {id}}}\nspec:\n  attacher: e2e.csi.example.com\n  nodeName: {node}\n  source: {{persistentVolumeName: pv-{name}}}\n");
    let first = format!("{id}-1");
    ns.apply_yaml(&va(&first)).await;
    let got = ns.kubectl_ok(&["get", "volumeattachment", &first, "-o", "jsonpath={.metadata.name} {.spec.attacher}"]).await;
    assert_eq!(got, format!("{first} e2e.csi.example.com"));
    ns.kubectl_ok(&["label", "volumeattachment", &first, "patched=true"]).await;
    let listed = ns.kubectl_ok(&["get", "volumeattachments", "-l", "patched=true", "-o", "name"]).await;
    assert_eq!(listed.trim(), format!("volumeattachment.storage.k8s.io/{first}"));
    let table_out = ns.kubectl_ok(&["get", "volumeattachment", &first]).await;
    let rows = table::parse(&table_out);
    assert_eq!(table::cell(&rows[0], "ATTACHER"), "e2e.csi.example.com", "{table_out}");
    assert_eq!(table::cell(&rows[0], "PV"), format!("pv-{first}"), "{table_out}");
    assert_eq!(table::cell(&rows[0], "ATTACHED"), "false", "{table_out}");
    ns.kubectl_ok(&["delete", "volumeattachment", &first]).await;
    let (second, third) = (format!("{id}-2"), format!("{id}-3"));
    ns.apply_yaml(&va(&second)).await;
    ns.apply_yaml(&va(&third)).await;
    ns.kubectl_ok(&["label", "volumeattachment", &second, "updated=yes"]).await;
    assert_eq!(ns.kubectl_ok(&["get", "volumeattachment", &second, "-o", "jsonpath={.metadata.labels.updated}"]).await, "yes");
    // The spec is fixed once created.
    let out = ns.kubectl(&["patch", "volumeattachment", &third, "--type=merge", "-p", "{\"spec\":{\"nodeName\":\"elsewhere\"}}"]).await;
    assert!(text(&out).contains("field is immutable"), "{}", text(&out));
    ns.kubectl_ok(&["delete", "volumeattachments", "-l", &format!("test={id}")]).await;
    let left = ns.kubectl_ok(&["get", "volumeattachments", "-l", &format!("test={id}"), "-o", "name"]).await;
    assert_eq!(left.trim(), "");
}

/// Port-forward over a plain WebSocket (`v4.channel.k8s.io`, `?ports=80`), the protocol
/// kube-rs and the Python client speak: nginx's page through the data channel.
#[tokio::test]
async fn port_forward_over_a_plain_websocket_reaches_nginx() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "wsportfwd").await;
    ns.apply_yaml(WEB).await;
    wait_pod(&ns.pods(), "web", POD_START, "Running", is_running).await;
    let mut pf = ns.pods().portforward("web", &[80]).await.expect("WebSocket port-forward");
    let mut conn = pf.take_stream(80).expect("port 80's stream");
    conn.write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n").await.unwrap();
    let mut page = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut page)).await.expect("nginx answered").unwrap();
    let page = String::from_utf8_lossy(&page);
    assert!(page.starts_with("HTTP/1.1 200 OK") && page.contains("Welcome to nginx!"), "{page}");
    drop(conn);
    pf.abort();
}
