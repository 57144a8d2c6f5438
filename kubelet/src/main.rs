use std::collections::HashSet;
use std::sync::Arc;

use clap::Parser;
use kubelet::config::Flags;
use kubelet::context::Kubelet;
use kubelet::network::{Cni, CniConfig};
use kubelet::node::status as node_status;
use kubelet::pod;
use kubelet::runtime::containerd::Containerd;
use kubelet::runtime::image_ref::Mirrors;
use kubelet::runtime::Runtime;
use kubelet::server;
use kubelet::status_manager::{ApiStatusWriter, StatusManager};

fn main() {
    // glibc gives each thread that allocates its own arena (up to 8 per core);
    // a kubelet's allocations are small and short, and two arenas keep its RSS
    // from growing with the blocking pool.
    // SAFETY: called before any other thread exists.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
    }
    // Two workers are plenty for a node agent that mostly waits on I/O.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async_main());
}

async fn async_main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let flags = Flags::parse();
    if let Err(e) = flags.validate() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    if let Err(e) = run(flags).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(flags: Flags) -> Result<(), String> {
    std::fs::create_dir_all(&flags.root_dir)
        .map_err(|e| format!("creating {}: {e}", flags.root_dir.display()))?;
    // Bridges of several nodes on one machine reach each other through the host.
    let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1");
    let mirrors = Mirrors::parse(&flags.registry_mirror)?;
    let runtime: Arc<dyn Runtime> = Arc::new(Containerd::new(&flags.containerd_socket, mirrors));
    let client = match &flags.kubeconfig {
        Some(path) => apimachinery::kubeconfig::client(Some(path))
            .await
            .map_err(|e| format!("--kubeconfig: {e}"))?,
        None => return Err("--kubeconfig is required".into()),
    };
    let k = Arc::new(Kubelet {
        node_name: flags.node_name.clone(),
        node_ip: flags.node_ip.clone(),
        root_dir: flags.root_dir.clone(),
        runtime: runtime.clone(),
        network: Arc::new(Cni {
            config: CniConfig {
                bin_dir: flags.cni_bin_dir.clone(),
                bridge: flags.bridge_name.clone(),
                pod_cidr: flags.pod_cidr.clone(),
                ipam_dir: flags.root_dir.join("ipam"),
            },
        }),
        client: Some(client.clone()),
        status: StatusManager::new(Box::new(ApiStatusWriter(client.clone()))),
        events: kubelet::events::Recorder::new(Some(client.clone()), &flags.node_name),
        backoff: Default::default(),
        pods: Default::default(),
        host_ports: Default::default(),
        dns: kubelet::network::dns::DnsConfigurer {
            cluster_dns: flags.cluster_dns.clone(),
            cluster_domain: flags.cluster_domain.clone(),
            host: apimachinery::resolvconf::ResolvConf::read(&flags.resolv_conf)
                .map_err(|e| format!("--resolv-conf {}: {e}", flags.resolv_conf.display()))?,
        },
    });

    let info = Arc::new(node_status::NodeInfo {
        name: flags.node_name.clone(),
        ip: flags.node_ip.clone(),
        port: flags.port as i32,
        pod_cidr: flags.pod_cidr.clone(),
        max_pods: flags.max_pods,
        reserved: {
            let s = kubelet::config::parse_reserved(&flags.system_reserved)?;
            let k = kubelet::config::parse_reserved(&flags.kube_reserved)?;
            (s.0 + k.0, s.1 + k.1)
        },
        // Absolute: the path is written into volumes other components read.
        local_path_root: std::fs::canonicalize(&flags.root_dir)
            .unwrap_or_else(|_| flags.root_dir.clone())
            .join("local-path")
            .display()
            .to_string(),
    });
    // The apiserver may come up after us: retry registration.
    loop {
        match node_status::register(&client, &info, runtime.as_ref()).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, "registering node; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
        }
    }
    tracing::info!(node = %flags.node_name, "node registered");
    let node_uid = kube::Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .get_opt(&flags.node_name)
        .await
        .ok()
        .flatten()
        .and_then(|n| n.metadata.uid);
    tokio::spawn(node_status::status_loop(
        client.clone(),
        info.clone(),
        runtime.clone(),
    ));
    tokio::spawn(node_status::lease_loop(
        client.clone(),
        flags.node_name.clone(),
        node_uid,
    ));

    let srv = server::serve(k.clone(), &flags)
        .await
        .map_err(|e| format!("kubelet server: {e}"))?;
    tokio::spawn(srv);

    let workers = pod::worker::PodWorkers::new(k.clone());
    let k2 = k.clone();
    pod::source::run(
        client,
        flags.node_name.clone(),
        workers,
        move |live: HashSet<String>| {
            let k = k2.clone();
            tokio::spawn(async move { pod::worker::remove_orphans(&k, &live).await });
        },
    )
    .await;
    Ok(())
}
