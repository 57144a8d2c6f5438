//! `ferrokube-proxy`: one per node; programs Services into nftables.

use clap::Parser;
use proxy::metrics::Metrics;
use proxy::nftables::NftBackend;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(name = "ferrokube-proxy", about = "Service proxy (nftables mode) for one node")]
struct Flags {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
    /// The node whose endpoints count as local.
    #[arg(long)]
    hostname_override: Option<String>,
    /// Pod addresses; other sources reaching a cluster IP are masqueraded.
    #[arg(long)]
    cluster_cidr: Option<String>,
    #[arg(long, default_value = "127.0.0.1:10249")]
    metrics_bind_address: String,
    /// The nft table (family ip) this proxy owns.
    #[arg(long, default_value = "ferrokube")]
    nft_table: String,
    /// NodePorts answer on 127.0.0.1 too, which needs net.ipv4.conf.all.route_localnet=1
    /// (kube-proxy's --iptables-localhost-nodeports).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    localhost_nodeports: bool,
    #[arg(long, default_value = "200ms", value_parser = apimachinery::duration::parse_duration)]
    min_sync_period: std::time::Duration,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// Sync a synthetic state (N Services × M endpoints) into --nft-table, then change one
    /// endpoint; print both sync times and the RSS; remove the table.
    Bench {
        #[arg(long, default_value_t = 1000)]
        services: u32,
        #[arg(long, default_value_t = 10)]
        endpoints: u32,
    },
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let flags = Flags::parse();
    if let Some(Cmd::Bench { services, endpoints }) = flags.command {
        match proxy::bench::run(&flags.nft_table, services, endpoints) {
            Ok(r) => {
                println!("full_sync_seconds {:.3}", r.full.as_secs_f64());
                println!("incremental_sync_seconds {:.4}", r.incremental.as_secs_f64());
                println!("rules {}", r.rules);
                println!("rss_kib {}", r.rss_kib);
                return;
            }
            Err(e) => fail(&e.to_string()),
        }
    }
    let Some(node) = flags.hostname_override.clone() else { fail("--hostname-override is required") };
    let cluster_cidr = match flags.cluster_cidr.as_deref().map(proxy::state::parse_cidr) {
        Some(None) => fail(&format!("invalid --cluster-cidr {:?}", flags.cluster_cidr.unwrap_or_default())),
        Some(c) => c,
        None => None,
    };
    if flags.localhost_nodeports {
        // As kube-proxy: DNAT of 127.0.0.1 to a pod needs localhost sources routed off lo.
        if let Err(e) = std::fs::write("/proc/sys/net/ipv4/conf/all/route_localnet", "1") {
            tracing::warn!(error = %e, "cannot set route_localnet; NodePorts on 127.0.0.1 will not work");
        }
    }
    let client = match apimachinery::kubeconfig::client(flags.kubeconfig.as_deref()).await {
        Ok(c) => c,
        Err(e) => fail(&e.to_string()),
    };
    let metrics = Arc::new(Metrics::new());
    let listener = match tokio::net::TcpListener::bind(&flags.metrics_bind_address).await {
        Ok(l) => l,
        Err(e) => fail(&format!("cannot listen on {}: {e}", flags.metrics_bind_address)),
    };
    let m = metrics.clone();
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/metrics", axum::routing::get(move || {
            let m = m.clone();
            async move { m.encode() }
        }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let cfg = proxy::watch::Config { node, cluster_cidr, min_sync_period: flags.min_sync_period };
    tracing::info!(table = %flags.nft_table, "syncing Services into nftables");
    proxy::watch::run(client, cfg, NftBackend::new(&flags.nft_table), metrics).await;
}

fn fail(msg: &str) -> ! {
    eprintln!("ferrokube-proxy: {msg}");
    std::process::exit(1);
}
