//! A kubelet core (pod workers, real containerd, real CNI) without an
//! apiserver: pods are handed to the workers directly and statuses recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kubelet::context::Kubelet;
use kubelet::network::{Cni, CniConfig};
use kubelet::pod::worker::PodWorkers;
use kubelet::runtime::containerd::Containerd as ContainerdRuntime;
use kubelet::runtime::image_ref::Mirrors;
use kubelet::runtime::Runtime;
use kubelet::status_manager::{StatusError, StatusManager, StatusWriter};
use testkit::{wait_for_or, Containerd, Registry};

#[derive(Default, Clone)]
pub struct Statuses(pub Arc<Mutex<HashMap<String, Vec<PodStatus>>>>);

#[async_trait::async_trait]
impl StatusWriter for Statuses {
    async fn patch_status(
        &self,
        _ns: &str,
        name: &str,
        _uid: &str,
        s: &PodStatus,
    ) -> Result<(), StatusError> {
        self.0
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .push(s.clone());
        Ok(())
    }
}

impl Statuses {
    pub fn latest(&self, name: &str) -> Option<PodStatus> {
        self.0
            .lock()
            .unwrap()
            .get(name)
            .and_then(|v| v.last().cloned())
    }
}

/// What outlives a kubelet restart: containerd, the root dir, the bridge.
pub struct NodeEnv {
    pub containerd: Containerd,
    pub registry: Arc<Registry>,
    pub bridge: String,
    pub root: tempfile::TempDir,
    pub slot: u8,
    /// Held for the node's life: no concurrent test takes the same bridge or subnet.
    _slot_lock: Arc<nix::fcntl::Flock<std::fs::File>>,
}

pub struct Node {
    pub k: Arc<Kubelet>,
    pub workers: PodWorkers,
    pub statuses: Statuses,
    pub env: NodeEnv,
}

/// Where the node tests lock their bridge and subnet slots. Two tests on one bridge
/// delete each other's bridge, and on this machine a connect to an unrouted pod IP is
/// answered by the network, so a TCP probe on a closed port would pass.
const SLOT_DIR: &str = "/tmp/ferrokube-kubelet-test-slots";

impl Node {
    pub async fn start(registry: Arc<Registry>) -> Node {
        let containerd = Containerd::start().await;
        let root = tempfile::Builder::new()
            .prefix("fk-kubelet-test")
            .tempdir()
            .unwrap();
        let (slot, lock) = testkit::cluster::lock_slot(SLOT_DIR).expect("a free bridge slot");
        let bridge = format!("fkt{slot}");
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &bridge])
            .stderr(std::process::Stdio::null())
            .status();
        Self::with(NodeEnv {
            containerd,
            registry,
            bridge,
            root,
            slot,
            _slot_lock: Arc::new(lock),
        })
    }

    /// A new kubelet on the same root dir and containerd; the old workers stop where they stand.
    pub fn restart_kubelet(self) -> Node {
        let Node { workers, env, .. } = self;
        workers.shutdown();
        Self::with(env)
    }

    fn with(env: NodeEnv) -> Node {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let mirrors = Mirrors::parse(&[format!("docker.io=http://{}", env.registry.addr)]).unwrap();
        let runtime: Arc<dyn Runtime> =
            Arc::new(ContainerdRuntime::new(&env.containerd.socket, mirrors));
        let statuses = Statuses::default();
        let k = Arc::new(Kubelet {
            node_name: "test-node".into(),
            node_ip: "127.0.0.1".into(),
            root_dir: env.root.path().to_path_buf(),
            runtime,
            network: Arc::new(Cni {
                config: CniConfig {
                    bin_dir: "/usr/lib/cni".into(),
                    bridge: env.bridge.clone(),
                    pod_cidr: format!("10.99.{}.0/24", env.slot),
                    ipam_dir: env.root.path().join("ipam"),
                },
            }),
            client: None,
            status: StatusManager::new(Box::new(statuses.clone())),
            events: kubelet::events::Recorder::new(None, "test-node"),
            backoff: Default::default(),
            pods: Default::default(),
            host_ports: Default::default(),
            dns: Default::default(),
        });
        let workers = PodWorkers::new(k.clone());
        Node {
            k,
            workers,
            statuses,
            env,
        }
    }

    pub async fn run(&self, pod: &Pod) {
        self.workers.update(pod.clone()).await;
    }

    /// Waits until `f` holds on the latest status of pod `name`.
    pub async fn wait_status<T>(
        &self,
        name: &str,
        secs: u64,
        what: &str,
        f: impl Fn(&PodStatus) -> Option<T>,
    ) -> T {
        let st = self.statuses.clone();
        let r = wait_for_or(Duration::from_secs(secs), what, || {
            let s = st.latest(name);
            let v = s.as_ref().and_then(&f);
            async move { v }
        })
        .await;
        match r {
            Ok(v) => v,
            Err(e) => panic!(
                "{e}; last status: {}",
                serde_json::to_string_pretty(&self.statuses.latest(name)).unwrap()
            ),
        }
    }

    pub async fn container_count(&self, uid: &str) -> usize {
        self.k
            .runtime
            .list_containers()
            .await
            .unwrap()
            .iter()
            .filter(|c| c.pod_uid == uid)
            .count()
    }
}

impl Drop for NodeEnv {
    fn drop(&mut self) {
        // Namespaces and IPs of pods still around; containers die with containerd.
        if let Ok(entries) = std::fs::read_dir(self.root.path().join("pods")) {
            for e in entries.flatten() {
                let ns = kubelet::network::PodNamespaces::new(e.path().join("ns"));
                ns.remove();
                if let Ok(vols) = std::fs::read_dir(e.path().join("volumes")) {
                    for v in vols.flatten() {
                        let _ = nix::mount::umount2(&v.path(), nix::mount::MntFlags::MNT_DETACH);
                    }
                }
            }
        }
        remove_hostport_rules(&format!("10.99.{}", self.slot));
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The portmap plugin's DNAT chains into one node's subnet. Pods still running when a test
/// ends never get their CNI DEL, and a leaked rule hijacks whatever later listens on that
/// port on this machine (it once took a later test's etcd client port). The cluster
/// scripts' cleanup serves here too.
fn remove_hostport_rules(subnet: &str) {
    let common = testkit::repo_root().join("hack/lib/cluster-common.sh");
    let _ = std::process::Command::new("bash")
        .args([
            "-c",
            r#"source "$1" && POD_CIDR_PREFIX="$2" remove_hostport_rules"#,
            "bash",
        ])
        .arg(&common)
        .arg(subnet)
        .stderr(std::process::Stdio::null())
        .status();
}

pub fn pod(yaml: &str) -> Pod {
    let mut p: Pod = serde_yaml::from_str(yaml).unwrap();
    p.metadata.uid = Some(format!("uid-{:016x}", rand::random::<u64>()));
    p.metadata.namespace.get_or_insert_with(|| "default".into());
    p
}

pub fn phase(s: &PodStatus) -> &str {
    s.phase.as_deref().unwrap_or("")
}

impl Node {
    /// Distinct container messages seen so far, for failure output.
    pub fn history(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in self
            .statuses
            .0
            .lock()
            .unwrap()
            .get(name)
            .into_iter()
            .flatten()
        {
            for cs in s.container_statuses.iter().flatten() {
                let v = serde_json::to_string(&cs.state).unwrap();
                if !out.contains(&v) {
                    out.push(v);
                }
            }
        }
        out
    }
}
