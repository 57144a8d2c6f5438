//! The Node object: registration, status heartbeats and the node Lease.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::runtime::Runtime;

pub struct NodeInfo {
    pub name: String,
    pub ip: String,
    pub port: i32,
    pub pod_cidr: String,
    pub max_pods: i64,
    /// Kept out of allocatable: (milli-CPU, bytes).
    pub reserved: (i64, i64),
    /// `<root dir>/local-path`, published as the node's
    /// `ferrokube.io/local-path-root` annotation for the local-path provisioner.
    pub local_path_root: String,
}

fn read_trim(p: &str) -> String {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn capacity(max_pods: i64) -> BTreeMap<String, Quantity> {
    let (cpu_milli, mem) = crate::node::capacity::node_capacity();
    let mut m = BTreeMap::new();
    m.insert("cpu".into(), Quantity(format!("{}", cpu_milli / 1000)));
    m.insert("memory".into(), Quantity(format!("{}Ki", mem / 1024)));
    m.insert("pods".into(), Quantity(max_pods.to_string()));
    m.insert("ephemeral-storage".into(), Quantity("10Gi".into()));
    m
}

/// Conditions for the current health; transition times kept from `prev` when unchanged.
pub fn conditions(
    runtime_ok: bool,
    prev: &[NodeCondition],
    now: chrono::DateTime<Utc>,
) -> Vec<NodeCondition> {
    let mk = |type_: &str, status: &str, reason: &str, message: &str| {
        let last = prev
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone());
        NodeCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_heartbeat_time: Some(crate::ktime::time(now)),
            last_transition_time: Some(last.unwrap_or(crate::ktime::time(now))),
        }
    };
    vec![
        mk(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        mk(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        mk(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        if runtime_ok {
            mk(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
            )
        } else {
            mk(
                "Ready",
                "False",
                "KubeletNotReady",
                "container runtime is down",
            )
        },
    ]
}

fn status(info: &NodeInfo, runtime_version: &str, conds: Vec<NodeCondition>) -> NodeStatus {
    let cap = capacity(info.max_pods);
    let (cpu_milli, mem) = crate::node::capacity::node_capacity();
    let mut alloc = cap.clone();
    alloc.insert(
        "cpu".into(),
        Quantity(format!("{}m", (cpu_milli - info.reserved.0).max(0))),
    );
    alloc.insert(
        "memory".into(),
        Quantity(format!("{}Ki", ((mem - info.reserved.1) / 1024).max(0))),
    );
    NodeStatus {
        capacity: Some(cap),
        allocatable: Some(alloc),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: info.ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: info.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: info.port }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: match std::env::consts::ARCH {
                "x86_64" => "amd64".into(),
                "aarch64" => "arm64".into(),
                a => a.into(),
            },
            operating_system: "linux".into(),
            os_image: std::fs::read_to_string("/etc/os-release")
                .ok()
                .and_then(|s| {
                    s.lines().find_map(|l| {
                        l.strip_prefix("PRETTY_NAME=")
                            .map(|v| v.trim_matches('"').to_string())
                    })
                })
                .unwrap_or_else(|| "Linux".into()),
            kernel_version: read_trim("/proc/sys/kernel/osrelease"),
            kubelet_version: "v1.33.0".into(),
            kube_proxy_version: String::new(),
            container_runtime_version: runtime_version.into(),
            machine_id: read_trim("/etc/machine-id"),
            system_uuid: read_trim("/sys/class/dmi/id/product_uuid"),
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
            swap: None,
        }),
        conditions: Some(conds),
        ..Default::default()
    }
}

/// Creates the Node, or reconciles spec.podCIDR and labels on AlreadyExists.
pub async fn register(
    client: &kube::Client,
    info: &NodeInfo,
    rt: &dyn Runtime,
) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let version = rt
        .version()
        .await
        .unwrap_or_else(|_| "containerd://unknown".into());
    let mut labels = BTreeMap::new();
    labels.insert("kubernetes.io/hostname".to_string(), info.name.clone());
    labels.insert("kubernetes.io/os".to_string(), "linux".to_string());
    labels.insert("kubernetes.io/arch".to_string(), "amd64".to_string());
    labels.insert("beta.kubernetes.io/os".to_string(), "linux".to_string());
    labels.insert("beta.kubernetes.io/arch".to_string(), "amd64".to_string());
    let annotations = BTreeMap::from([(
        apimachinery::volume::ANN_LOCAL_PATH_ROOT.to_string(),
        info.local_path_root.clone(),
    )]);
    let node = Node {
        metadata: ObjectMeta {
            name: Some(info.name.clone()),
            labels: Some(labels.clone()),
            annotations: Some(annotations.clone()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(info.pod_cidr.clone()),
            pod_cidrs: Some(vec![info.pod_cidr.clone()]),
            ..Default::default()
        }),
        status: Some(status(info, &version, conditions(true, &[], Utc::now()))),
    };
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = serde_json::json!({"metadata": {"labels": labels, "annotations": annotations}, "spec": {"podCIDR": info.pod_cidr, "podCIDRs": [info.pod_cidr]}});
            api.patch(
                &info.name,
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await?;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Patches node status on change and at least every minute.
pub async fn status_loop(client: kube::Client, info: Arc<NodeInfo>, rt: Arc<dyn Runtime>) {
    let api: Api<Node> = Api::all(client.clone());
    let mut last_sent: Option<(bool, String)> = None;
    let mut last_at = tokio::time::Instant::now();
    loop {
        let version = rt.version().await;
        let runtime_ok = version.is_ok();
        let version = version.unwrap_or_else(|_| "containerd://unknown".into());
        let due = last_at.elapsed() >= Duration::from_secs(60);
        if due || last_sent.as_ref() != Some(&(runtime_ok, version.clone())) {
            let prev = api
                .get_opt(&info.name)
                .await
                .ok()
                .flatten()
                .and_then(|n| n.status)
                .and_then(|s| s.conditions)
                .unwrap_or_default();
            let st = status(&info, &version, conditions(runtime_ok, &prev, Utc::now()));
            let body = serde_json::json!({"status": st});
            match api
                .patch_status(&info.name, &PatchParams::default(), &Patch::Strategic(body))
                .await
            {
                Ok(_) => {
                    last_sent = Some((runtime_ok, version));
                    last_at = tokio::time::Instant::now();
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    let _ = register(&client, &info, rt.as_ref()).await;
                }
                Err(e) => tracing::warn!(error = %e, "patching node status"),
            }
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// Renews the node Lease in kube-node-lease every 10s.
pub async fn lease_loop(client: kube::Client, node: String, node_uid: Option<String>) {
    let api: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    loop {
        let now = crate::ktime::micro(Utc::now());
        let owner = node_uid.clone().map(|uid| {
            vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.clone(),
                uid,
                ..Default::default()
            }]
        });
        let res = match api.get_opt(&node).await {
            Ok(Some(mut l)) => {
                let spec = l.spec.get_or_insert_with(Default::default);
                spec.holder_identity = Some(node.clone());
                spec.lease_duration_seconds = Some(40);
                spec.renew_time = Some(now);
                api.replace(&node, &PostParams::default(), &l)
                    .await
                    .map(|_| ())
            }
            Ok(None) => {
                let l = Lease {
                    metadata: ObjectMeta {
                        name: Some(node.clone()),
                        namespace: Some("kube-node-lease".into()),
                        owner_references: owner,
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(node.clone()),
                        lease_duration_seconds: Some(40),
                        renew_time: Some(now),
                        ..Default::default()
                    }),
                };
                api.create(&PostParams::default(), &l).await.map(|_| ())
            }
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            tracing::debug!(error = %e, "renewing node lease");
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}
