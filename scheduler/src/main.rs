//! ferrokube-scheduler: flags, client, /healthz + /metrics, optional
//! leader election, then the scheduling loop.

use std::sync::Arc;
use std::time::Duration;

use apimachinery::duration::parse_duration;
use clap::Parser;
use leader_election::{LeaderElector, LeaseConfig};
use scheduler::algorithm::Algorithm;
use scheduler::api::KubeApi;
use scheduler::queue::RealClock;
use scheduler::scheduler::Scheduler;

#[derive(Parser, Debug)]
#[command(
    name = "ferrokube-scheduler",
    about = "Binds pending pods to nodes, as kube-scheduler"
)]
struct Flags {
    /// Kubeconfig to reach the apiserver (in-cluster/env inference when absent).
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
    /// KubeSchedulerConfiguration YAML adding or replacing profiles.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Run only while holding the Lease.
    #[arg(long, default_value_t = false)]
    leader_elect: bool,
    #[arg(long, default_value = "kube-scheduler")]
    lease_name: String,
    #[arg(long, default_value = "kube-system")]
    lease_namespace: String,
    #[arg(long = "leader-elect-lease-duration", default_value = "15s", value_parser = parse_duration)]
    lease_duration: Duration,
    #[arg(long = "leader-elect-renew-deadline", default_value = "10s", value_parser = parse_duration)]
    renew_deadline: Duration,
    #[arg(long = "leader-elect-retry-period", default_value = "2s", value_parser = parse_duration)]
    retry_period: Duration,
    /// Leader-election identity (default: hostname_pid).
    #[arg(long)]
    identity: Option<String>,
    #[command(flatten)]
    serving: apimachinery::secure_serving::SecureServingFlags,
}

async fn client(flags: &Flags) -> Result<kube::Client, String> {
    apimachinery::kubeconfig::client(flags.kubeconfig.as_deref()).await.map_err(|e| e.to_string())
}

fn identity(flags: &Flags) -> String {
    flags.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        format!("{host}_{}", std::process::id())
    })
}

async fn run(flags: Flags) -> Result<(), String> {
    let extra = match &flags.config {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| format!("reading --config {}: {e}", p.display()))?),
        None => None,
    };
    let profiles = scheduler::profile::load_profiles(extra.as_deref()).map_err(|e| e.to_string())?;
    let client = client(&flags).await?;
    let id = identity(&flags);
    let api = Arc::new(KubeApi::new(client.clone(), &id));
    let sched = Scheduler::new(api, profiles, Arc::new(RealClock), Algorithm::default());

    // HTTPS on 10259 as kube-scheduler: health open, /metrics for whom the apiserver allows.
    if let Some(addr) = flags.serving.serve(scheduler::server::app(sched.metrics.clone()), client.clone(), 10259).await.map_err(|e| e.to_string())? {
        tracing::info!(addr = %addr, "serving /healthz and /metrics over HTTPS");
    }

    tokio::spawn(scheduler::memory::trim_freed_memory());

    let work = {
        let client = client.clone();
        let sched = sched.clone();
        move || async move {
            let _tasks = scheduler::informer::start(client, sched.clone());
            sched.run().await
        }
    };
    if flags.leader_elect {
        let config = LeaseConfig {
            namespace: flags.lease_namespace.clone(),
            name: flags.lease_name.clone(),
            identity: id,
            lease_duration: flags.lease_duration,
            renew_deadline: flags.renew_deadline,
            retry_period: flags.retry_period,
        };
        tracing::info!(lease = %format!("{}/{}", config.namespace, config.name), "attempting to acquire leader lease");
        LeaderElector::new(client, config)
            .run(work)
            .await
            .map_err(|e| e.to_string())
    } else {
        work().await;
        Ok(())
    }
}

fn main() {
    scheduler::memory::limit_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(async_main());
}

async fn async_main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let flags = Flags::parse();
    if let Err(e) = run(flags).await {
        eprintln!("ferrokube-scheduler: {e}");
        std::process::exit(1);
    }
}
