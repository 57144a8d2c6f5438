use clap::Parser;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let opts = controller_manager::options::Options::parse();
    if let Err(e) = controller_manager::run(opts).await {
        eprintln!("ferrokube-controller-manager: {e}");
        std::process::exit(1);
    }
}
