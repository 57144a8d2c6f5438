//! A real etcd + apiserver + this controller-manager, for integration tests.
//! No scheduler and no kubelets: tests set pod status themselves where a
//! kubelet would.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use testkit::{ApiServer, Etcd, Process, TestDir};

pub const TIMEOUT: Duration = Duration::from_secs(60);

pub struct Env {
    pub client: Client,
    pub kubeconfig: PathBuf,
    pub metrics_port: u16,
    pub cm: Process,
    pub apiserver: ApiServer,
    pub etcd: Etcd,
    _dir: TestDir,
}

impl Env {
    pub async fn start(extra: &[&str]) -> Env {
        let etcd = Etcd::start().await;
        let apiserver = ApiServer::start(&etcd).await;
        let dir = TestDir::new("controller-manager").expect("temp dir");
        let metrics_port = testkit::free_port();
        let mut args: Vec<String> = vec![
            "--kubeconfig".into(),
            apiserver.kubeconfig.display().to_string(),
            "--port".into(),
            metrics_port.to_string(),
            // Client certificates are signed by the cluster CA; cm_metrics presents the admin's.
            "--client-ca-file".into(),
            apiserver.ca_file().display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let cm = Process::spawn_with_env(
            "controller-manager",
            &testkit::bin("ferrokube-controller-manager"),
            args,
            vec![("RUST_LOG", "info")],
            dir.path(),
        )
        .expect("spawn controller-manager");
        let client = apiserver.client().await;
        Env {
            client,
            kubeconfig: apiserver.kubeconfig.clone(),
            metrics_port,
            cm,
            apiserver,
            etcd,
            _dir: dir,
        }
    }

    pub fn api<K>(&self, ns: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), ns)
    }

    pub async fn kubectl(&self, args: &[&str]) -> std::process::Output {
        testkit::kubectl_async(&self.kubeconfig, args).await
    }

    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        match testkit::kubectl_ok(&self.kubeconfig, args).await {
            Ok(s) => s,
            Err(e) => panic!("kubectl {args:?}: {e}\ncontroller-manager log:\n{}", self.cm.log_tail(4000)),
        }
    }

    /// Pods in `ns` matching a label selector, not being deleted.
    pub async fn live_pods(&self, ns: &str, selector: &str) -> Vec<Pod> {
        let api: Api<Pod> = self.api(ns);
        api.list(&ListParams::default().labels(selector))
            .await
            .map(|l| l.items.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect())
            .unwrap_or_default()
    }

    /// Wait until exactly `n` live pods match.
    pub async fn wait_pods(&self, ns: &str, selector: &str, n: usize) -> Vec<Pod> {
        let r = testkit::wait_for_or(TIMEOUT, &format!("{n} pods matching {selector}"), || async {
            let pods = self.live_pods(ns, selector).await;
            (pods.len() == n).then_some(pods)
        })
        .await;
        match r {
            Ok(p) => p,
            Err(e) => panic!(
                "{e}; have {}\ncontroller-manager log:\n{}",
                self.live_pods(ns, selector).await.len(),
                self.cm.log_tail(4000)
            ),
        }
    }

    /// Act as a kubelet: set phase and the Ready condition on every live pod
    /// matching the selector.
    pub async fn set_pods(&self, ns: &str, selector: &str, phase: &str, ready: bool) {
        let api: Api<Pod> = self.api(ns);
        for (i, p) in self.live_pods(ns, selector).await.into_iter().enumerate() {
            set_pod_status(&api, &p.name_any(), phase, ready, &format!("10.1.{}.{}", i / 250, i % 250 + 1)).await;
        }
    }

    /// The controller-manager's /metrics text, over its HTTPS port with the admin's client
    /// certificate (system:masters, whom the apiserver's SubjectAccessReview allows).
    pub async fn cm_metrics(&self) -> String {
        let Ok(kubeconfig) = kube::config::Kubeconfig::read_from(&self.apiserver.kubeconfig) else { return String::new() };
        let Ok(mut config) = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await else { return String::new() };
        config.cluster_url = format!("https://127.0.0.1:{}", self.metrics_port).parse().expect("url");
        // The serving certificate is self-signed, as upstream's without --tls-cert-file.
        config.accept_invalid_certs = true;
        config.root_cert = None;
        let Ok(client) = Client::try_from(config) else { return String::new() };
        client.request_text(http::Request::get("/metrics").body(Vec::new()).expect("request")).await.unwrap_or_default()
    }

    /// The value of one sample line of the controller-manager's /metrics.
    pub async fn cm_metric(&self, series: &str) -> Option<f64> {
        let text = self.cm_metrics().await;
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    pub async fn create_nodes(&self, names: &[&str]) {
        let api: Api<Node> = Api::all(self.client.clone());
        for n in names {
            let node: Node = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}},
                "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok",
                    "lastHeartbeatTime": now(), "lastTransitionTime": now()}]}
            }))
            .expect("node json");
            let created = api.create(&PostParams::default(), &node).await.expect("create node");
            // Status may be dropped on create; set it through the subresource.
            let _ = api
                .patch_status(
                    &created.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"status": node.status})),
                )
                .await;
        }
    }
}

pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

pub async fn set_pod_status(api: &Api<Pod>, name: &str, phase: &str, ready: bool, ip: &str) {
    let status = json!({"status": {
        "phase": phase,
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": now()}]
    }});
    let _ = api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await;
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub fn meta(name: &str, ns: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        ..Default::default()
    }
}
