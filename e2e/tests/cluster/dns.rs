//! Cluster DNS (issue 13): pods get upstream's resolv.conf, and resolve the
//! cluster's names through the kube-dns Service (ferrokube-dns on the host
//! address, DNATed by the service proxy) with busybox's nslookup.

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::pods::{pod_ip, wait_pod, wait_pods};
use e2e::{shared_cluster, TestNs, POD_START};
use testkit::wait_for_or;

const RESOLVE: Duration = Duration::from_secs(60);

fn sleeper(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n{extra}  containers:\n  - {{name: c, image: busybox, command: [\"sleep\", \"3600\"]}}\n"
    )
}

/// The addresses `nslookup name [server]` prints for `name`, once it
/// resolves to exactly `want` (retried: endpoints and rules settle).
async fn wait_resolves(ns: &TestNs<'_>, pod: &str, name: &str, server: Option<&str>, want: &BTreeSet<String>) {
    let mut args = vec!["exec", pod, "--", "nslookup", name];
    args.extend(server);
    wait_for_or(RESOLVE, &format!("{name} -> {want:?} from {pod}"), || {
        let args = args.clone();
        async move {
            let out = ns.kubectl(&args).await;
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            // Addresses after the "Name:" line (the first Address is the server's).
            let got: BTreeSet<String> = text
                .split_once("Name:")
                .map(|(_, answers)| {
                    answers
                        .lines()
                        .filter_map(|l| l.trim().strip_prefix("Address:"))
                        .map(|a| a.trim().split(' ').next().unwrap_or_default().to_string())
                        .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
                        .collect()
                })
                .unwrap_or_default();
            (got == *want).then_some(())
        }
    })
    .await
    .unwrap();
}

/// [sig-network] DNS should provide DNS for the cluster: a ClusterFirst
/// busybox pod has upstream's resolv.conf (the kube-dns Service IP, the
/// namespace's search path, ndots:5) and resolves kubernetes.default.
#[tokio::test]
async fn should_provide_dns_for_the_cluster_with_upstreams_resolv_conf() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "dns").await;
    ns.apply_yaml(&sleeper("client", "")).await;
    wait_pod(&ns.pods(), "client", POD_START, "Running", e2e::pods::is_running).await;
    let resolv = ns.kubectl_ok(&["exec", "client", "--", "cat", "/etc/resolv.conf"]).await;
    // The host's last search line is appended, as upstream does.
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let host_search: Vec<String> = host
        .lines()
        .filter_map(|l| l.strip_prefix("search "))
        .last()
        .map(|l| l.split_whitespace().filter(|d| *d != ".").map(|d| d.trim_end_matches('.').to_string()).collect())
        .unwrap_or_default();
    let mut search = format!("search {0}.svc.cluster.local svc.cluster.local cluster.local", ns.name);
    for s in host_search.iter().filter(|s| !["svc.cluster.local", "cluster.local"].contains(&s.as_str())) {
        search.push(' ');
        search.push_str(s);
    }
    assert_eq!(
        resolv,
        format!("{search}\nnameserver {}\noptions ndots:5\n", cluster.dns_service_ip())
    );
    let kubernetes = BTreeSet::from([cluster.kubernetes_service_ip().to_string()]);
    // From the DNS server's own address, then through the Service IP.
    let direct = cluster.host_ip.to_string();
    wait_resolves(&ns, "client", "kubernetes.default.svc.cluster.local", Some(&direct), &kubernetes).await;
    wait_resolves(&ns, "client", "kubernetes.default.svc.cluster.local", None, &kubernetes).await;
}

/// [sig-network] DNS should provide DNS for services: a ClusterIP Service
/// resolves to its IP, a headless one to every ready pod.
#[tokio::test]
async fn should_provide_dns_for_services_and_headless_resolves_to_every_pod() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "dnssvc").await;
    let mut yaml = String::new();
    for i in 0..2 {
        yaml.push_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: web-{i}, labels: {{app: web}}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: c, image: busybox, command: [\"sleep\", \"3600\"]}}\n---\n"
        ));
    }
    yaml.push_str("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80}]\n---\n");
    yaml.push_str("apiVersion: v1\nkind: Service\nmetadata: {name: web-headless}\nspec:\n  clusterIP: None\n  selector: {app: web}\n  ports: [{name: http, port: 80}]\n---\n");
    yaml.push_str(&sleeper("client", ""));
    ns.apply_yaml(&yaml).await;
    let pods = wait_pods(&ns.pods(), "app=web", POD_START, "2 Running", |p| {
        p.len() == 2 && p.iter().all(e2e::pods::is_running)
    })
    .await;
    wait_pod(&ns.pods(), "client", POD_START, "Running", e2e::pods::is_running).await;
    let ips: BTreeSet<String> = pods.iter().filter_map(pod_ip).collect();
    let svc: k8s_openapi::api::core::v1::Service =
        kube::Api::namespaced(ns.client.clone(), &ns.name).get("web").await.unwrap();
    let cluster_ip = svc.spec.unwrap().cluster_ip.unwrap();
    wait_resolves(&ns, "client", &format!("web.{}.svc.cluster.local", ns.name), None, &BTreeSet::from([cluster_ip])).await;
    wait_resolves(&ns, "client", &format!("web-headless.{}.svc.cluster.local", ns.name), None, &ips).await;
}

/// [sig-network] DNS should provide DNS for pods for Hostname: a StatefulSet
/// pod resolves as `web-0.web.<ns>.svc.cluster.local`, and its /etc/hosts
/// names its FQDN.
#[tokio::test]
async fn should_provide_dns_for_pods_for_hostname_statefulset_web_0() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "dnssts").await;
    ns.apply_yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  clusterIP: None\n  selector: {app: web}\n  ports: [{name: http, port: 80}]\n---\n\
         apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: web}\nspec:\n  replicas: 1\n  serviceName: web\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - {name: c, image: busybox, command: [\"sleep\", \"3600\"]}\n",
    )
    .await;
    let pod = wait_pod(&ns.pods(), "web-0", POD_START, "Running", e2e::pods::is_running).await;
    let ip = pod_ip(&pod).unwrap();
    let fqdn = format!("web-0.web.{}.svc.cluster.local", ns.name);
    let hosts = ns.kubectl_ok(&["exec", "web-0", "--", "cat", "/etc/hosts"]).await;
    assert!(hosts.contains(&format!("{ip}\t{fqdn}\tweb-0")), "{hosts}");
    wait_resolves(&ns, "web-0", &fqdn, None, &BTreeSet::from([ip])).await;
}

/// [sig-network] DNS should support configurable pod DNS nameservers:
/// dnsPolicy None takes only the pod's dnsConfig.
#[tokio::test]
async fn should_support_configurable_pod_dns_nameservers() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "dnscfg").await;
    ns.apply_yaml(&sleeper(
        "custom",
        "  dnsPolicy: None\n  dnsConfig:\n    nameservers: [\"1.1.1.1\"]\n    searches: [\"resolv.conf.local\"]\n    options: [{name: ndots, value: \"2\"}]\n",
    ))
    .await;
    wait_pod(&ns.pods(), "custom", POD_START, "Running", e2e::pods::is_running).await;
    let resolv = ns.kubectl_ok(&["exec", "custom", "--", "cat", "/etc/resolv.conf"]).await;
    assert_eq!(resolv, "search resolv.conf.local\nnameserver 1.1.1.1\noptions ndots:2\n");
    // A bad dnsConfig is refused as upstream does.
    let out = ns
        .kubectl(&["run", "bad", "--image=busybox", "--overrides", r#"{"spec":{"dnsPolicy":"None"}}"#])
        .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must provide `dnsConfig` when `dnsPolicy` is None"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
