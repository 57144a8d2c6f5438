//! Shared harness for the scheduler's integration tests: a real etcd and
//! apiserver, Node objects created through the API (no kubelets), and
//! ferrokube-scheduler processes.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, Event, Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodSpec, ResourceRequirements, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use testkit::{ApiServer, Etcd, Process, TestDir};

pub const WAIT: Duration = Duration::from_secs(60);

pub struct Env {
    pub client: kube::Client,
    pub api: ApiServer,
    pub etcd: Etcd,
    pub dir: TestDir,
    pub schedulers: Vec<Process>,
}

impl Env {
    pub async fn start() -> Env {
        let etcd = Etcd::start().await;
        let api = ApiServer::start(&etcd).await;
        let client = api.client().await;
        let dir = TestDir::new("scheduler-it").expect("temp dir");
        Env {
            client,
            api,
            etcd,
            dir,
            schedulers: Vec::new(),
        }
    }

    /// Starts a scheduler with extra flags; returns its index.
    pub fn start_scheduler(&mut self, extra: &[&str]) -> usize {
        let kc = self.api.issue_kubeconfig("system:kube-scheduler", &[]);
        let mut args = vec![
            "--kubeconfig".to_string(),
            kc.display().to_string(),
            "--port".into(),
            testkit::free_port().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let name = format!("scheduler-{}", self.schedulers.len());
        let p = Process::spawn(&name, &testkit::bin("ferrokube-scheduler"), args, self.dir.path())
            .expect("spawn scheduler");
        self.schedulers.push(p);
        self.schedulers.len() - 1
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    pub async fn create_node(&self, node: Node) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let name = node.metadata.name.clone().unwrap_or_default();
        let status = node.status.clone();
        nodes.create(&PostParams::default(), &node).await.expect("create node");
        // Status is written through the status subresource, as a kubelet does.
        nodes
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .expect("node status");
    }

    pub async fn create_pod(&self, pod: &Pod) {
        self.pods()
            .create(&PostParams::default(), pod)
            .await
            .expect("create pod");
    }

    /// Waits until the pod is bound; returns its node.
    pub async fn wait_bound(&self, name: &str) -> String {
        let pods = self.pods();
        let name = name.to_string();
        testkit::wait_for_or(WAIT, &format!("pod {name} bound"), || {
            let pods = pods.clone();
            let name = name.clone();
            async move {
                pods.get(&name)
                    .await
                    .ok()
                    .and_then(|p| p.spec.and_then(|s| s.node_name))
            }
        })
        .await
        .unwrap_or_else(|e| {
            self.print_logs();
            panic!("{e}")
        })
    }

    /// Waits for the PodScheduled=False condition with a message that
    /// starts with `prefix`; returns the message.
    pub async fn wait_unschedulable(&self, name: &str, prefix: &str) -> String {
        let pods = self.pods();
        let last = std::sync::Mutex::new(String::new());
        let found = testkit::wait_for_or(WAIT, &format!("pod {name} unschedulable with {prefix:?}"), || {
            let pods = pods.clone();
            let last = &last;
            async move {
                let p = pods.get(name).await.ok()?;
                let c = p.status?.conditions?.into_iter().find(|c| c.type_ == "PodScheduled")?;
                let msg = c.message.unwrap_or_default();
                *last.lock().unwrap() = msg.clone();
                (c.status == "False" && c.reason.as_deref() == Some("Unschedulable") && msg.starts_with(prefix))
                    .then_some(msg)
            }
        })
        .await;
        found.unwrap_or_else(|e| {
            self.print_logs();
            panic!("{e}; last message: {:?}", last.lock().unwrap())
        })
    }

    /// The pod's events with this reason, waiting for at least one: the
    /// scheduler writes events from a background queue, after the bind or
    /// the status they describe.
    pub async fn events_for(&self, pod: &str, reason: &str) -> Vec<Event> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), "default");
        testkit::wait_for_or(WAIT, &format!("{reason} event for {pod}"), || {
            let events = events.clone();
            async move {
                let list = events.list(&ListParams::default()).await.ok()?;
                let found: Vec<Event> = list
                    .items
                    .into_iter()
                    .filter(|e| e.involved_object.name.as_deref() == Some(pod) && e.reason.as_deref() == Some(reason))
                    .collect();
                (!found.is_empty()).then_some(found)
            }
        })
        .await
        .unwrap_or_else(|e| {
            self.print_logs();
            panic!("{e}")
        })
    }

    /// Bound pods per node.
    pub async fn placement(&self) -> BTreeMap<String, Vec<Pod>> {
        let mut out: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
        for p in self.pods().list(&ListParams::default()).await.expect("list pods").items {
            if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
                out.entry(n).or_default().push(p);
            }
        }
        out
    }

    pub fn print_logs(&self) {
        for s in &self.schedulers {
            s.print_log();
        }
    }
}

pub fn node(name: &str, cpu: &str, memory: &str) -> Node {
    let alloc: BTreeMap<String, Quantity> = [
        ("cpu".to_string(), Quantity(cpu.into())),
        ("memory".to_string(), Quantity(memory.into())),
        ("pods".to_string(), Quantity("110".into())),
    ]
    .into();
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("kubernetes.io/hostname".to_string(), name.to_string())].into()),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            capacity: Some(alloc.clone()),
            allocatable: Some(alloc),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: Some("KubeletReady".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

pub fn labeled(mut n: Node, labels: &[(&str, &str)]) -> Node {
    let l = n.metadata.labels.get_or_insert_with(Default::default);
    for (k, v) in labels {
        l.insert(k.to_string(), v.to_string());
    }
    n
}

pub fn tainted(mut n: Node, key: &str, effect: &str) -> Node {
    n.spec.get_or_insert_with(Default::default).taints = Some(vec![Taint {
        key: key.into(),
        effect: effect.into(),
        ..Default::default()
    }]);
    n
}

pub fn pod(name: &str, cpu: &str, memory: &str) -> Pod {
    let requests: BTreeMap<String, Quantity> = [
        ("cpu".to_string(), Quantity(cpu.into())),
        ("memory".to_string(), Quantity(memory.into())),
    ]
    .into();
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some("busybox".into()),
                resources: Some(ResourceRequirements {
                    requests: Some(requests),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            // No kubelets: deletions must not wait for one.
            termination_grace_period_seconds: Some(0),
            ..Default::default()
        }),
        status: None,
    }
}

pub fn with_labels(mut p: Pod, labels: &[(&str, &str)]) -> Pod {
    p.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    p
}

pub fn with_scheduler(mut p: Pod, name: &str) -> Pod {
    p.spec.as_mut().unwrap().scheduler_name = Some(name.into());
    p
}

pub fn cpu_millis(p: &Pod) -> i64 {
    let q = &p.spec.as_ref().unwrap().containers[0]
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap()["cpu"]
        .0;
    q.strip_suffix('m')
        .map(|m| m.parse().unwrap())
        .unwrap_or_else(|| q.parse::<i64>().unwrap() * 1000)
}
