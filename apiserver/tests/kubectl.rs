//! The real kubectl 1.33 against a real apiserver and etcd: every command the issue lists that
//! needs no kubelet (logs and exec are covered by the e2e crate against real kubelets).

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::Harness;

fn k(kc: &Path, args: &[&str]) -> (bool, String) {
    let out = testkit::kubectl(kc, args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn ok(kc: &Path, args: &[&str]) -> String {
    let (success, text) = k(kc, args);
    assert!(success, "kubectl {args:?} failed:\n{text}");
    text
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, '3600']\n";
const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ssa\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: ssa}}\n  template:\n    metadata: {labels: {app: ssa}}\n    spec:\n      containers: [{name: c, image: nginx}]\n";

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_drives_the_apiserver() {
    let h = Harness::start().await;
    let kc = h.api.kubeconfig.clone();
    let dir = tempfile::tempdir().unwrap();
    tokio::task::spawn_blocking(move || run_all(&kc, dir.path())).await.unwrap();
}

fn run_all(kc: &Path, dir: &Path) {
    discovery_commands(kc);
    apply_client_and_server_side(kc, dir);
    create_commands(kc, dir);
    get_variants(kc);
    label_annotate_patch_edit(kc, dir);
    scale_and_describe(kc);
    get_watch_sees_new_pods(kc);
    deletes(kc);
}

fn discovery_commands(kc: &Path) {
    assert!(ok(kc, &["version"]).contains("Server Version: v1.33"));
    let res = ok(kc, &["api-resources"]);
    for r in ["pods", "deployments", "leases", "priorityclasses", "endpointslices", "poddisruptionbudgets"] {
        assert!(res.contains(r), "{r} missing from api-resources:\n{res}");
    }
    let vs = ok(kc, &["api-versions"]);
    assert!(vs.contains("apps/v1") && vs.contains("events.k8s.io/v1"), "{vs}");
    assert!(ok(kc, &["explain", "pod.spec"]).contains("FIELD: spec <PodSpec>"));
}

fn apply_client_and_server_side(kc: &Path, dir: &Path) {
    let pod = write(dir, "pod.yaml", POD);
    assert!(ok(kc, &["apply", "-f", &pod]).contains("pod/web created"));
    assert!(ok(kc, &["apply", "-f", &pod]).contains("pod/web unchanged"));
    write(dir, "pod.yaml", &POD.replace("app: web", "app: web2"));
    assert!(ok(kc, &["apply", "-f", &pod]).contains("pod/web configured"));
    assert_eq!(ok(kc, &["get", "pod", "web", "-o", "jsonpath={.metadata.labels.app}"]), "web2");
    let d = write(dir, "deploy.yaml", DEPLOY);
    assert!(ok(kc, &["apply", "--server-side", "-f", &d]).contains("serverside-applied"));
    write(dir, "deploy.yaml", &DEPLOY.replace("replicas: 1", "replicas: 2"));
    ok(kc, &["apply", "--server-side", "-f", &d]);
    assert_eq!(ok(kc, &["get", "deploy", "ssa", "-o", "jsonpath={.spec.replicas} {.metadata.generation}"]), "2 2");
    // Client-side apply first, then server-side with a changed value: upstream moves the
    // fields of kubectl-client-side-apply to kubectl without a conflict.
    let csa = write(dir, "csa.yaml", &DEPLOY.replace("name: ssa", "name: csa"));
    assert!(ok(kc, &["apply", "-f", &csa]).contains("deployment.apps/csa created"));
    write(dir, "csa.yaml", &DEPLOY.replace("name: ssa", "name: csa").replace("replicas: 1", "replicas: 3"));
    let (success, text) = k(kc, &["diff", "--server-side", "-f", &csa]);
    assert!(!text.contains("conflict"), "diff --server-side: {success} {text}");
    assert!(text.contains("replicas: 3"), "{text}");
    ok(kc, &["apply", "--server-side", "-f", &csa]);
    assert_eq!(ok(kc, &["get", "deploy", "csa", "-o", "jsonpath={.spec.replicas}"]), "3");
    let managers = ok(kc, &["get", "deploy", "csa", "--show-managed-fields", "-o", "jsonpath={.metadata.managedFields[*].manager}"]);
    assert!(managers.contains("kubectl"), "{managers}");
}

fn create_commands(kc: &Path, dir: &Path) {
    let f = write(dir, "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fromfile}\ndata: {a: b}\n");
    assert!(ok(kc, &["create", "-f", &f]).contains("configmap/fromfile created"));
    // These go through client-go's typed clients, which send protobuf bodies.
    assert!(ok(kc, &["create", "deployment", "web", "--image=nginx", "--replicas=2"]).contains("deployment.apps/web created"));
    assert!(ok(kc, &["create", "namespace", "team"]).contains("namespace/team created"));
    assert!(ok(kc, &["create", "configmap", "cm1", "--from-literal=a=b"]).contains("configmap/cm1 created"));
    assert!(ok(kc, &["create", "secret", "generic", "s1", "--from-literal=x=y"]).contains("secret/s1 created"));
    assert!(ok(kc, &["run", "r1", "--image=busybox", "-n", "team"]).contains("pod/r1 created"));
    let (success, text) = k(kc, &["create", "namespace", "team"]);
    assert!(!success && text.contains("AlreadyExists"), "{text}");
}

fn get_variants(kc: &Path) {
    let table = ok(kc, &["get", "pods"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert!(table.contains("web") && table.contains("Pending"));
    let wide = ok(kc, &["get", "pods", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("IP") && wide.contains("NODE"));
    assert!(ok(kc, &["get", "pod", "web", "-o", "yaml"]).contains("kind: Pod"));
    let json: serde_json::Value = serde_json::from_str(&ok(kc, &["get", "pods", "-o", "json"])).unwrap();
    assert_eq!(json["kind"], "List");
    assert!(ok(kc, &["get", "pods", "-l", "app=web2"]).contains("web"));
    assert!(ok(kc, &["get", "pods", "-l", "app=nothing"]).contains("No resources found"));
    assert!(ok(kc, &["get", "pods", "--field-selector", "metadata.name=web"]).contains("web"));
    let all = ok(kc, &["get", "pods", "-A"]);
    assert!(all.starts_with("NAMESPACE") && all.contains("team") && all.contains("r1"), "{all}");
    let deploy = ok(kc, &["get", "deploy"]);
    assert!(deploy.lines().next().unwrap().split_whitespace().eq(["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]), "{deploy}");
    let (success, text) = k(kc, &["get", "pod", "nope"]);
    assert!(!success && text.contains("Error from server (NotFound): pods \"nope\" not found"), "{text}");
}

fn label_annotate_patch_edit(kc: &Path, dir: &Path) {
    assert!(ok(kc, &["label", "pod", "web", "tier=front"]).contains("labeled"));
    assert!(ok(kc, &["annotate", "pod", "web", "note=hi"]).contains("annotated"));
    ok(kc, &["patch", "pod", "web", "-p", r#"{"metadata":{"labels":{"smp":"yes"}}}"#]);
    ok(kc, &["patch", "pod", "web", "--type=merge", "-p", r#"{"metadata":{"labels":{"merge":"yes"}}}"#]);
    ok(kc, &["patch", "pod", "web", "--type=json", "-p", r#"[{"op":"add","path":"/metadata/labels/json","value":"yes"}]"#]);
    let labels = ok(kc, &["get", "pod", "web", "-o", "jsonpath={.metadata.labels}"]);
    for l in ["tier", "smp", "merge", "json"] {
        assert!(labels.contains(l), "{labels}");
    }
    let (success, text) = k(kc, &["patch", "pod", "web", "--type=json", "-p", r#"[{"op":"test","path":"/metadata/name","value":"x"}]"#]);
    assert!(!success, "{text}");
    let editor = write(dir, "editor.sh", "#!/bin/sh\nsed -i 's/a: b/a: edited/' \"$1\"\n");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = Command::new(testkit::KUBECTL)
        .args(["--kubeconfig", kc.to_str().unwrap(), "edit", "configmap", "cm1"])
        .env("KUBE_EDITOR", &editor)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ok(kc, &["get", "cm", "cm1", "-o", "jsonpath={.data.a}"]), "edited");
}

fn scale_and_describe(kc: &Path) {
    assert!(ok(kc, &["scale", "deployment", "web", "--replicas=3"]).contains("scaled"));
    assert_eq!(ok(kc, &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]), "3");
    let d = ok(kc, &["describe", "deployment", "web"]);
    assert!(d.contains("Replicas:") && d.contains("3 desired"), "{d}");
    let p = ok(kc, &["describe", "pod", "web"]);
    assert!(p.contains("Name:") && p.contains("QoS Class:"), "{p}");
    // describe node needs a Node; register one as a kubelet would.
    let node = r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"},"status":{"conditions":[{"type":"Ready","status":"True"}],"addresses":[{"type":"InternalIP","address":"127.0.0.1"}]}}"#;
    let out = Command::new(testkit::KUBECTL)
        .args(["--kubeconfig", kc.to_str().unwrap(), "create", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(node.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let n = ok(kc, &["describe", "node", "n1"]);
    assert!(n.contains("Name:") && n.contains("n1"), "{n}");
    let nodes = ok(kc, &["get", "nodes"]);
    assert!(nodes.lines().next().unwrap().split_whitespace().eq(["NAME", "STATUS", "ROLES", "AGE", "VERSION"]), "{nodes}");
}

fn get_watch_sees_new_pods(kc: &Path) {
    let mut child = Command::new(testkit::KUBECTL)
        .args(["--kubeconfig", kc.to_str().unwrap(), "get", "pods", "-w", "--request-timeout=60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The initial table first, then the watched creation.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let mut created = false;
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if line.starts_with("watched") {
                    break;
                }
                seen.push(line);
            }
            Err(_) if !created && seen.iter().any(|l| l.starts_with("web")) => {
                ok(kc, &["run", "watched", "--image=busybox"]);
                created = true;
            }
            Err(_) => {}
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(created, "initial list never printed: {seen:?}");
    assert!(Instant::now() < deadline, "kubectl get -w never showed the new pod: {seen:?}");
}

fn deletes(kc: &Path) {
    ok(kc, &["label", "cm", "cm1", "fromfile", "group=x"]);
    assert!(ok(kc, &["delete", "cm", "-l", "group=x"]).contains("deleted"));
    assert!(ok(kc, &["get", "cm"]).contains("No resources found") || !ok(kc, &["get", "cm"]).contains("cm1"));
    // web is unbound: it goes at once and --wait returns.
    assert!(ok(kc, &["delete", "pod", "web", "--wait=true", "--timeout=30s"]).contains("pod \"web\" deleted"));
    assert!(ok(kc, &["delete", "deploy", "--all"]).contains("deleted"));
    assert!(ok(kc, &["get", "deploy"]).contains("No resources found"));
}
