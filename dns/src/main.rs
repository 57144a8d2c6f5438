use std::sync::atomic::Ordering;

use clap::Parser;
use dns::server::Setup;
use dns::Flags;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let flags = Flags::parse();
    if let Err(e) = flags.validate() {
        eprintln!("ferrokube-dns: {e}");
        std::process::exit(2);
    }
    // One thread: a DNS answer is microseconds of work, and a small
    // footprint matters more here than parallelism.
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrokube-dns: starting the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(flags)) {
        eprintln!("ferrokube-dns: {e}");
        std::process::exit(1);
    }
}

async fn run(flags: Flags) -> Result<(), String> {
    let setup = Setup::from_flags(&flags).map_err(|e| e.to_string())?;
    let metrics = setup.metrics.clone();
    let state = setup.state.clone();
    if let Some(path) = &flags.static_zone {
        let mut st = state.write().unwrap_or_else(|e| e.into_inner());
        let n = dns::static_zone::load_file(&mut st, path).map_err(|e| e.to_string())?;
        tracing::info!(objects = n, file = %path.display(), "static zone loaded");
        metrics.ready.store(true, Ordering::Relaxed);
    }
    let http = tokio::net::TcpListener::bind(flags.metrics_bind_address)
        .await
        .map_err(|e| format!("binding {}: {e}", flags.metrics_bind_address))?;
    let app = dns::metrics::app(metrics.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(http, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    if let Some(kc) = &flags.kubeconfig {
        let client = apimachinery::kubeconfig::client(Some(kc)).await.map_err(|e| e.to_string())?;
        tokio::spawn(dns::watch::run(client, state, metrics));
    }
    setup.serve().await.map_err(|e| e.to_string())
}
