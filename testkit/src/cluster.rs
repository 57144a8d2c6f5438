//! A whole cluster: etcd, apiserver, registry with the demo images,
//! scheduler, controller-manager and N kubelets, each with its own containerd.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use nix::fcntl::{Flock, FlockArg};

use crate::reaper::{Guard, Live};
use crate::{
    free_port, kubectl_async, kubectl_ok, try_bin, wait_for_or, ApiServer, Containerd, Error, Etcd,
    Process, Registry, TestDir,
};

pub const SCHEDULER: &str = "ferrokube-scheduler";
pub const CONTROLLER_MANAGER: &str = "ferrokube-controller-manager";
pub const KUBELET: &str = "ferrokube-kubelet";
pub const PROXY: &str = "ferrokube-proxy";

/// Where node slots are locked, so concurrent clusters (in this or another
/// test process) never share a bridge name or a pod CIDR.
const SLOT_DIR: &str = "/tmp/ferrokube-testkit-node-slots";
/// Where cluster slots are locked: each cluster's service CIDR, dummy host interface and
/// nft tables (docs/CONTRACTS.md, "Service networking").
const CLUSTER_SLOT_DIR: &str = "/tmp/ferrokube-testkit-cluster-slots";
/// Cluster slots 0..=MAX_CLUSTER_SLOT, so 10.(100+slot) stays an address.
const MAX_CLUSTER_SLOT: u8 = 150;

#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub nodes: usize,
    pub scheduler_args: Vec<String>,
    pub controller_manager_args: Vec<String>,
    pub apiserver_args: Vec<String>,
    /// Extra flags for every kubelet.
    pub kubelet_args: Vec<String>,
    /// How long to wait for every node to be Ready.
    pub ready_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            nodes: 1,
            scheduler_args: Vec::new(),
            controller_manager_args: Vec::new(),
            apiserver_args: Vec::new(),
            kubelet_args: Vec::new(),
            ready_timeout: Duration::from_secs(120),
        }
    }
}

/// One node: a kubelet and its containerd.
#[derive(Debug)]
pub struct ClusterNode {
    pub name: String,
    /// `10.88.<slot>.0/24`.
    pub pod_cidr: String,
    /// `fk<slot>`.
    pub bridge: String,
    /// The kubelet's HTTPS port.
    pub port: u16,
    pub kubeconfig: PathBuf,
    pub root_dir: PathBuf,
    kubelet: Process,
    /// This node's ferrokube-proxy and the nft table it owns (`ferrokube-t<slot>n<i>`).
    pub proxy: Process,
    pub nft_table: String,
    pub proxy_metrics: String,
    _nft: Guard,
    pub containerd: Containerd,
    _bridge: Guard,
    dir: TestDir,
    _slot: Flock<File>,
}

impl ClusterNode {
    /// `kill -9` the kubelet (its containers keep running, as upstream).
    pub fn kill_kubelet(&mut self) {
        self.kubelet.kill();
    }

    /// Start the kubelet again with the same flags.
    pub fn start_kubelet(&mut self) -> Result<(), Error> {
        self.kubelet.start_again()
    }

    pub fn kubelet(&mut self) -> &mut Process {
        &mut self.kubelet
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Field order is drop order: nodes go first, etcd last.
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<ClusterNode>,
    pub scheduler: Process,
    pub controller_manager: Process,
    pub apiserver: ApiServer,
    pub registry: Registry,
    pub etcd: Etcd,
    dir: TestDir,
    /// `10.(100+slot).0.0/16`.
    pub service_cidr: String,
    /// The dummy host interface's address `10.87.<slot>.1`: the apiserver's advertise
    /// address, which pods reach through the kubernetes Service.
    pub host_ip: std::net::Ipv4Addr,
    pub host_link: String,
    pub slot: u8,
    _host_link: Guard,
    /// Puts route_localnet (which the proxies set for NodePorts on 127.0.0.1) back when
    /// the last cluster on the machine goes, at drop or at exit.
    _route_localnet: Option<Guard>,
    /// The cluster DNS (ferrokube-dns) on `host_ip:53`, behind `kube-system/kube-dns`
    /// at [`Cluster::dns_service_ip`]; kubelets pass that IP to ClusterFirst pods.
    pub dns: crate::Dns,
    _cluster_slot: Flock<File>,
}

const ROUTE_LOCALNET: &str = "/proc/sys/net/ipv4/conf/all/route_localnet";

fn ip(args: &[&str]) -> Result<(), Error> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::io("running ip", e))?;
    if !out.status.success() {
        return Err(Error::io(
            format!("ip {}", args.join(" ")),
            std::io::Error::other(String::from_utf8_lossy(&out.stderr).to_string()),
        ));
    }
    Ok(())
}

/// The project's host interface for a cluster: `fkhost<slot>` with `10.87.<slot>.1/32`.
fn host_link(slot: u8) -> Result<(String, std::net::Ipv4Addr, Guard), Error> {
    let name = format!("fkhost{slot}");
    let addr = std::net::Ipv4Addr::new(10, 87, slot, 1);
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &name])
        .stderr(std::process::Stdio::null())
        .status();
    let guard = Guard::new(Live::Link(name.clone()));
    // A dummy interface where the kernel has the module; a bridge without ports holds a
    // local address just as well (this machine's kernel has no dummy driver).
    if ip(&["link", "add", &name, "type", "dummy"]).is_err() {
        ip(&["link", "add", &name, "type", "bridge"])?;
    }
    ip(&["addr", "add", &format!("{addr}/32"), "dev", &name])?;
    ip(&["link", "set", &name, "up"])?;
    Ok((name, addr, guard))
}

/// Lock the lowest free node slot (0..=250); the lock dies with the process.
fn take_slot() -> Result<(u8, Flock<File>), Error> {
    lock_slot(SLOT_DIR)
}

/// Lock the lowest free slot (0..=250) under `dir`, held until the lock is dropped
/// or the process dies: for bridge names and subnets no concurrent test may share.
pub fn lock_slot(dir: &str) -> Result<(u8, Flock<File>), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating node slot dir", e))?;
    for slot in 0..=250u8 {
        let path = Path::new(dir).join(format!("slot-{slot}"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        if let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            return Ok((slot, lock));
        }
    }
    Err(Error::io(
        "taking a node slot",
        std::io::Error::other("all 251 node slots are in use"),
    ))
}

impl Cluster {
    /// Start everything and wait until every node is Ready; panics with the
    /// logs of what failed.
    pub async fn start(opts: ClusterOptions) -> Cluster {
        match Self::try_start(opts).await {
            Ok(c) => c,
            Err(e) => panic!("starting cluster: {e}"),
        }
    }

    pub async fn try_start(opts: ClusterOptions) -> Result<Cluster, Error> {
        // Fail fast, before starting anything, if a binary is missing.
        let scheduler_bin = try_bin(SCHEDULER)?;
        let cm_bin = try_bin(CONTROLLER_MANAGER)?;
        let kubelet_bin = try_bin(KUBELET)?;
        let proxy_bin = try_bin(PROXY)?;

        // Pods on different nodes reach each other through the host's routes
        // between the bridges (what hack/install-deps.sh also sets).
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1");
        let dir = TestDir::new("cluster")?;
        let (slot, cluster_slot) = lock_slot(CLUSTER_SLOT_DIR)?;
        if slot > MAX_CLUSTER_SLOT {
            return Err(Error::io("taking a cluster slot", std::io::Error::other("all cluster slots are in use")));
        }
        let route_localnet = std::fs::read_to_string(ROUTE_LOCALNET)
            .is_ok_and(|v| v.trim() == "0")
            .then(|| {
                Guard::new(Live::Sysctl {
                    path: ROUTE_LOCALNET.into(),
                    value: "0".into(),
                    slot_dir: CLUSTER_SLOT_DIR.into(),
                    slot,
                })
            });
        let (link, host_ip, host_guard) = host_link(slot)?;
        let service_cidr = format!("10.{}.0.0/16", 100 + slot as u32);
        let etcd = Etcd::try_start().await?;
        let mut api_args: Vec<String> = vec![
            "--service-cluster-ip-range".into(),
            service_cidr.clone(),
            "--advertise-address".into(),
            host_ip.to_string(),
        ];
        api_args.extend(opts.apiserver_args.iter().cloned());
        let apiserver = ApiServer::try_start(&etcd, &api_args).await?;
        let registry = Registry::try_start().await?;
        registry.push_images().await?;

        let kc = apiserver.try_issue_kubeconfig("system:kube-scheduler", &[])?;
        let mut args = vec![
            "--kubeconfig".to_string(),
            kc.display().to_string(),
            "--port".into(),
            free_port().to_string(),
        ];
        args.extend(opts.scheduler_args.iter().cloned());
        let scheduler = Process::spawn("scheduler", &scheduler_bin, args, dir.path())?;

        let kc = apiserver.try_issue_kubeconfig("system:kube-controller-manager", &[])?;
        let mut args = vec![
            "--kubeconfig".to_string(),
            kc.display().to_string(),
            "--port".into(),
            free_port().to_string(),
        ];
        args.extend(opts.controller_manager_args.iter().cloned());
        let controller_manager = Process::spawn("controller-manager", &cm_bin, args, dir.path())?;

        // Cluster DNS as the kube-dns ServiceAccount (bootstrap role system:kube-dns).
        let kc = apiserver.try_issue_kubeconfig(
            "system:serviceaccount:kube-system:kube-dns",
            &["system:serviceaccounts", "system:serviceaccounts:kube-system"],
        )?;
        let dns = crate::Dns::try_start(Some(&kc), (host_ip, 53).into(), &[] as &[&str]).await?;
        let dns_service_ip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 100 + slot, 0, 0)) + 10);
        crate::dns::apply_kube_dns(&apiserver.kubeconfig, &dns_service_ip.to_string(), &host_ip.to_string())
            .await?;

        let mut cluster = Cluster {
            nodes: Vec::new(),
            scheduler,
            controller_manager,
            apiserver,
            registry,
            etcd,
            dir,
            service_cidr,
            host_ip,
            host_link: link,
            slot,
            _host_link: host_guard,
            _route_localnet: route_localnet,
            dns,
            _cluster_slot: cluster_slot,
        };
        for i in 0..opts.nodes {
            let node = cluster
                .start_node(i, &kubelet_bin, &proxy_bin, &opts.kubelet_args)
                .await?;
            cluster.nodes.push(node);
        }
        cluster.wait_nodes_ready(opts.ready_timeout).await?;
        // The default StorageClass `standard` (ferrokube.io/local-path,
        // WaitForFirstConsumer, reclaim Delete), from the manifest, as kind applies its own.
        const DEFAULT_STORAGE_CLASS: &str =
            concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/storageclass-standard.yaml");
        cluster.kubectl_ok(&["apply", "-f", DEFAULT_STORAGE_CLASS]).await?;
        Ok(cluster)
    }

    async fn start_node(
        &self,
        i: usize,
        kubelet_bin: &Path,
        proxy_bin: &Path,
        extra: &[String],
    ) -> Result<ClusterNode, Error> {
        let (slot, lock) = take_slot()?;
        let name = format!("node-{i}");
        let pod_cidr = format!("10.88.{slot}.0/24");
        let bridge = format!("fk{slot}");
        // A bridge left by a crashed earlier run would carry a stale address.
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &bridge])
            .stderr(std::process::Stdio::null())
            .status();
        let bridge_guard = Guard::new(Live::Link(bridge.clone()));
        let containerd = Containerd::try_start().await?;
        let dir = TestDir::new(&format!("kubelet{i}"))?;
        let root_dir = dir.subdir("root")?;
        let kubeconfig = self
            .apiserver
            .try_issue_kubeconfig(&format!("system:node:{name}"), &["system:nodes"])?;
        let port = free_port();
        let mut args = vec![
            "--kubeconfig".to_string(),
            kubeconfig.display().to_string(),
            "--node-name".into(),
            name.clone(),
            "--node-ip".into(),
            "127.0.0.1".into(),
            "--containerd-socket".into(),
            containerd.socket.display().to_string(),
            "--root-dir".into(),
            root_dir.display().to_string(),
            "--pod-cidr".into(),
            pod_cidr.clone(),
            "--port".into(),
            port.to_string(),
            "--registry-mirror".into(),
            format!("docker.io=http://{}", self.registry.addr),
            "--client-ca-file".into(),
            self.apiserver.ca_file().display().to_string(),
            "--cni-bin-dir".into(),
            "/usr/lib/cni".into(),
            "--bridge-name".into(),
            bridge.clone(),
            "--cluster-dns".into(),
            self.dns_service_ip().to_string(),
            "--cluster-domain".into(),
            "cluster.local".into(),
        ];
        args.extend(extra.iter().cloned());
        let kubelet = Process::spawn(&format!("kubelet-{name}"), kubelet_bin, args, dir.path())?;
        // One proxy per node; all nodes share this host's kernel, so each owns a table.
        let nft_table = format!("ferrokube-t{}n{i}", self.slot);
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "ip", &nft_table])
            .stderr(std::process::Stdio::null())
            .status();
        let nft_guard = Guard::new(Live::NftTable(nft_table.clone()));
        let proxy_kc = self.apiserver.try_issue_kubeconfig("system:kube-proxy", &[])?;
        let proxy_metrics = format!("127.0.0.1:{}", free_port());
        let proxy_args = vec![
            "--kubeconfig".to_string(),
            proxy_kc.display().to_string(),
            "--hostname-override".into(),
            name.clone(),
            "--cluster-cidr".into(),
            "10.88.0.0/16".into(),
            "--metrics-bind-address".into(),
            proxy_metrics.clone(),
            "--nft-table".into(),
            nft_table.clone(),
        ];
        let proxy = Process::spawn(&format!("proxy-{name}"), proxy_bin, proxy_args, dir.path())?;
        Ok(ClusterNode {
            name,
            pod_cidr,
            bridge,
            port,
            kubeconfig,
            root_dir,
            kubelet,
            proxy,
            nft_table,
            proxy_metrics,
            _nft: nft_guard,
            containerd,
            _bridge: bridge_guard,
            dir,
            _slot: lock,
        })
    }

    /// Wait until every node of this cluster is registered and Ready.
    pub async fn wait_nodes_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let client = self.apiserver.client().await;
        let nodes: Api<Node> = Api::all(client);
        let want: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        let res = wait_for_or(timeout, "every node Ready", || {
            let nodes = nodes.clone();
            let want = want.clone();
            async move {
                let list = nodes.list(&ListParams::default()).await.ok()?;
                let ready = list.items.iter().filter(|n| {
                    want.iter().any(|w| Some(w) == n.metadata.name.as_ref()) && node_is_ready(n)
                });
                (ready.count() == want.len()).then_some(())
            }
        })
        .await;
        if let Err(e) = res {
            // Name a crashed component rather than just "timed out".
            self.check_running()?;
            for n in &mut self.nodes {
                n.kubelet.check_running()?;
            }
            return Err(e);
        }
        Ok(())
    }

    /// An error for the first component that has exited.
    pub fn check_running(&mut self) -> Result<(), Error> {
        self.scheduler.check_running()?;
        self.controller_manager.check_running()?;
        self.apiserver.process().check_running()?;
        for n in &mut self.nodes {
            n.containerd.process().check_running()?;
        }
        Ok(())
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.apiserver.kubeconfig
    }

    /// A kube client as admin.
    pub async fn client(&self) -> kube::Client {
        self.apiserver.client().await
    }

    /// kubectl.1.33 against this cluster.
    pub async fn kubectl<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Output {
        kubectl_async(self.kubeconfig(), args).await
    }

    /// kubectl.1.33; stdout, or an error carrying stdout+stderr.
    pub async fn kubectl_ok<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Result<String, Error> {
        kubectl_ok(self.kubeconfig(), args).await
    }

    pub fn node(&self, name: &str) -> Option<&ClusterNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut ClusterNode> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Print every component's log tail (for a shared cluster, whose drop
    /// never runs while a test is failing).
    pub fn print_logs(&self) {
        let mut logs: Vec<(String, PathBuf)> = vec![
            ("etcd".into(), self.etcd.dir().join("etcd.log")),
            (
                "apiserver".into(),
                self.apiserver.dir().join("apiserver.log"),
            ),
            ("scheduler".into(), self.scheduler.log_path().to_path_buf()),
            (
                "controller-manager".into(),
                self.controller_manager.log_path().to_path_buf(),
            ),
            ("dns".into(), self.dns.log_path()),
        ];
        for n in &self.nodes {
            logs.push((
                format!("kubelet {}", n.name),
                n.kubelet.log_path().to_path_buf(),
            ));
            logs.push((
                format!("proxy {}", n.name),
                n.proxy.log_path().to_path_buf(),
            ));
            logs.push((
                format!("containerd {}", n.name),
                n.containerd.dir().join("containerd.log"),
            ));
        }
        for (name, path) in logs {
            eprintln!(
                "----- {name} log ({}) -----\n{}\n----- end {name} -----",
                path.display(),
                crate::process::log_tail(&path, 16 * 1024)
            );
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The n-th address of the service CIDR (1: the kubernetes Service, 10: kube-dns).
    pub fn service_ip(&self, n: u32) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 100 + self.slot, 0, 0)) + n)
    }

    pub fn kubernetes_service_ip(&self) -> std::net::Ipv4Addr {
        self.service_ip(1)
    }

    pub fn dns_service_ip(&self) -> std::net::Ipv4Addr {
        self.service_ip(10)
    }
}

/// Ready=True among the node's conditions.
pub fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};

    fn node(ready: &str) -> Node {
        Node {
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_ready_true_counts_as_ready() {
        assert!(node_is_ready(&node("True")));
        assert!(!node_is_ready(&node("Unknown")));
        assert!(!node_is_ready(&Node::default()));
    }

    #[test]
    fn node_slots_are_exclusive() {
        let (a, _la) = take_slot().unwrap();
        let (b, _lb) = take_slot().unwrap();
        assert_ne!(a, b);
    }
}
