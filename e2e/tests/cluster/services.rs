//! Services carry traffic (issue 13): ferrokube-proxy on each node routes cluster IPs and
//! NodePorts to ready endpoints, across nodes, back to a pod itself (hairpin), sticks with
//! ClientIP affinity, and pods reach the apiserver through the kubernetes Service.

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::pods::{wait_pod, wait_pods};
use e2e::{shared_cluster, TestNs, POD_START};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use testkit::wait_for_or;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// nginx pods that serve their own hostname, pinned one per node, ready while /tmp/ready exists.
fn web_pod(name: &str, node: &str, app: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {app}, pod: {name}}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: nginx
    command: ["sh", "-c", "hostname > /usr/share/nginx/html/index.html; touch /tmp/ready; exec nginx -g 'daemon off;'"]
    ports: [{{containerPort: 80}}]
    readinessProbe:
      exec: {{command: ["cat", "/tmp/ready"]}}
      periodSeconds: 1
      failureThreshold: 1
"#
    )
}

fn client_pod(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: c, image: busybox, command: [\"sleep\", \"3600\"]}}\n"
    )
}

fn service(name: &str, selector: &str, extra: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {selector}\n  ports: [{{port: 80, targetPort: 80}}]\n{extra}")
}

fn is_ready(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn service_of(ns: &TestNs<'_>, name: &str) -> Service {
    Api::<Service>::namespaced(ns.client.clone(), &ns.name).get(name).await.expect("service")
}

/// The ready endpoint addresses the Service's slices list.
async fn ready_endpoints(ns: &TestNs<'_>, svc: &str) -> BTreeSet<String> {
    let slices: Api<EndpointSlice> = Api::namespaced(ns.client.clone(), &ns.name);
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={svc}"));
    let mut out = BTreeSet::new();
    for s in slices.list(&lp).await.map(|l| l.items).unwrap_or_default() {
        for e in s.endpoints {
            if e.conditions.as_ref().and_then(|c| c.ready) == Some(true) {
                out.extend(e.addresses);
            }
        }
    }
    out
}

async fn wait_endpoints(ns: &TestNs<'_>, svc: &str, want: &BTreeSet<String>) {
    wait_for_or(Duration::from_secs(60), &format!("{svc}'s ready endpoints {want:?}"), || async {
        (ready_endpoints(ns, svc).await == *want).then_some(())
    })
    .await
    .unwrap();
}

/// `n` fetches of `url` from inside pod `from`, one hostname per line (a failed fetch
/// prints FAIL).
async fn fetch_n(ns: &TestNs<'_>, from: &str, url: &str, n: usize) -> Vec<String> {
    let script = format!("for i in $(seq {n}); do timeout 5 wget -qO- {url} || echo FAIL; done");
    let out = ns.kubectl_ok(&["exec", from, "--", "sh", "-c", &script]).await;
    out.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
}

/// Answers from `url` once the proxy has the Service programmed: retried until every one
/// of `n` fetches answers.
async fn fetch_until_served(ns: &TestNs<'_>, from: &str, url: &str, n: usize) -> Vec<String> {
    wait_for_or(Duration::from_secs(60), &format!("{url} served from {from}"), || async {
        let got = fetch_n(ns, from, url, n).await;
        (got.len() == n && !got.iter().any(|l| l == "FAIL")).then_some(got)
    })
    .await
    .unwrap()
}

async fn http_get_host(addr: &str) -> Option<String> {
    let mut s = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr)).await.ok()?.ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    text.split("\r\n\r\n").nth(1).map(|b| b.trim().to_string())
}

/// "Service, endpoints" and "Service, NodePort Service": nginx behind a NodePort Service
/// answers through its cluster IP from a busybox pod (pods on both nodes, so one answer
/// crosses nodes) and through the NodePort on 127.0.0.1 from the host; a pod whose
/// readiness probe fails gets no more traffic, and comes back once ready again.
#[tokio::test]
async fn conformance_service_endpoints_and_nodeport_reach_ready_pods_on_both_nodes() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "svc").await;
    ns.apply_yaml(&web_pod("web-0", "node-0", "web")).await;
    ns.apply_yaml(&web_pod("web-1", "node-1", "web")).await;
    ns.apply_yaml(&client_pod("client", "node-0")).await;
    ns.apply_yaml(&service("web", "{app: web}", "  type: NodePort\n")).await;
    let pods = wait_pods(&ns.pods(), "app=web", POD_START, "both web pods Ready", |ps| ps.len() == 2 && ps.iter().all(is_ready)).await;
    wait_pod(&ns.pods(), "client", POD_START, "client Running", e2e::pods::is_running).await;
    let ips: BTreeSet<String> = pods.iter().filter_map(e2e::pods::pod_ip).collect();
    wait_endpoints(&ns, "web", &ips).await;
    let svc = service_of(&ns, "web").await;
    let spec = svc.spec.unwrap();
    let cluster_ip = spec.cluster_ip.clone().unwrap();
    assert!(cluster_ip.starts_with(&format!("10.{}.", 100 + cluster.slot)), "{cluster_ip} in {}", cluster.service_cidr);
    let node_port = spec.ports.unwrap()[0].node_port.expect("a NodePort");

    // Both pods answer (20 random choices between 2 all landing on one: 2 in a million).
    let url = format!("http://{cluster_ip}");
    let got: BTreeSet<String> = fetch_until_served(&ns, "client", &url, 20).await.into_iter().collect();
    assert_eq!(got, BTreeSet::from(["web-0".to_string(), "web-1".to_string()]), "web-1 is on the other node");

    // The NodePort on the host's 127.0.0.1.
    let addr = format!("127.0.0.1:{node_port}");
    let answer = wait_for_or(Duration::from_secs(60), "the NodePort on 127.0.0.1 answers", || async { http_get_host(&addr).await.filter(|b| b.starts_with("web-")) })
        .await
        .unwrap();
    assert!(answer == "web-0" || answer == "web-1", "{answer}");

    // web-1 stops being ready: it drops out of the slice and gets no traffic.
    ns.kubectl_ok(&["exec", "web-1", "--", "rm", "/tmp/ready"]).await;
    let web0_ip: BTreeSet<String> = pods.iter().filter(|p| p.metadata.name.as_deref() == Some("web-0")).filter_map(e2e::pods::pod_ip).collect();
    wait_endpoints(&ns, "web", &web0_ip).await;
    let got = wait_for_or(Duration::from_secs(30), "only web-0 answers", || async {
        let got = fetch_n(&ns, "client", &url, 20).await;
        got.iter().all(|l| l == "web-0").then_some(got)
    })
    .await
    .unwrap();
    assert_eq!(got.len(), 20);
    // Ready again: traffic comes back.
    ns.kubectl_ok(&["exec", "web-1", "--", "touch", "/tmp/ready"]).await;
    wait_endpoints(&ns, "web", &ips).await;
    wait_for_or(Duration::from_secs(30), "web-1 answers again", || async {
        fetch_n(&ns, "client", &url, 20).await.iter().any(|l| l == "web-1").then_some(())
    })
    .await
    .unwrap();

    // Hairpin: web-0 reaches itself through a Service that selects only it.
    ns.apply_yaml(&service("self", "{pod: web-0}", "")).await;
    wait_endpoints(&ns, "self", &web0_ip).await;
    let self_ip = service_of(&ns, "self").await.spec.unwrap().cluster_ip.unwrap();
    let got = fetch_until_served(&ns, "web-0", &format!("http://{self_ip}"), 3).await;
    assert!(got.iter().all(|l| l == "web-0"), "{got:?}");
}

/// "Service, ClusterIP type, session affinity to ClientIP": with sessionAffinity ClientIP
/// every request of one client lands on the same pod.
#[tokio::test]
async fn conformance_service_clusterip_session_affinity_client_ip_sticks_to_one_pod() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "affinity").await;
    ns.apply_yaml(&web_pod("sticky-0", "node-0", "sticky")).await;
    ns.apply_yaml(&web_pod("sticky-1", "node-1", "sticky")).await;
    ns.apply_yaml(&client_pod("client", "node-1")).await;
    ns.apply_yaml(&service("sticky", "{app: sticky}", "  sessionAffinity: ClientIP\n")).await;
    let pods = wait_pods(&ns.pods(), "app=sticky", POD_START, "both pods Ready", |ps| ps.len() == 2 && ps.iter().all(is_ready)).await;
    wait_pod(&ns.pods(), "client", POD_START, "client Running", e2e::pods::is_running).await;
    let ips: BTreeSet<String> = pods.iter().filter_map(e2e::pods::pod_ip).collect();
    wait_endpoints(&ns, "sticky", &ips).await;
    let ip = service_of(&ns, "sticky").await.spec.unwrap().cluster_ip.unwrap();
    let got = fetch_until_served(&ns, "client", &format!("http://{ip}"), 20).await;
    let distinct: BTreeSet<&String> = got.iter().collect();
    assert_eq!(distinct.len(), 1, "every request on one pod: {got:?}");
}

/// "Kubernetes Service" and "Find Kubernetes Service in default Namespace": default/kubernetes
/// holds the first address of the range on port 443, and a pod reaches the apiserver through it.
#[tokio::test]
async fn conformance_kubernetes_service_is_listed_and_reachable_from_a_pod() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "master").await;
    let all = ns.kubectl_ok(&["get", "services", "--all-namespaces"]).await;
    assert!(all.lines().any(|l| l.starts_with("default") && l.contains("kubernetes") && l.contains("443/TCP")), "{all}");
    let svc: Service = Api::namespaced(ns.client.clone(), "default").get("kubernetes").await.expect("default/kubernetes");
    let spec = svc.spec.unwrap();
    let ip = cluster.kubernetes_service_ip().to_string();
    assert_eq!(spec.cluster_ip.as_deref(), Some(ip.as_str()));
    assert_eq!(spec.ports.unwrap()[0].port, 443);
    ns.apply_yaml(&client_pod("client", "node-1")).await;
    wait_pod(&ns.pods(), "client", POD_START, "client Running", e2e::pods::is_running).await;
    // TCP to 443 on the Service IP, DNATed to the apiserver on the host's dummy address.
    wait_for_or(Duration::from_secs(60), "the kubernetes Service accepts TCP from a pod", || async {
        // busybox's nc has no -z: connect, send nothing, and exit 0 only if it connected.
        let out = ns.kubectl(&["exec", "client", "--", "sh", "-c", &format!("nc -w 3 {ip} 443 </dev/null")]).await;
        out.status.success().then_some(())
    })
    .await
    .unwrap();
    // HTTPS through busybox's wget: its small TLS client offers no suite the apiserver's
    // rustls accepts (alert 40), so a handshake answer is what proves a TLS server there;
    // anything else (refused, timed out) fails.
    let out = ns.kubectl(&["exec", "client", "--", "wget", "--no-check-certificate", "-qO-", &format!("https://{ip}/healthz")]).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.success() {
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    } else {
        assert!(err.contains("TLS error from peer"), "not a TLS server's answer: {err}");
    }
}
