//! `ferrokube-apiserver`: serves the Kubernetes API over HTTPS, backed by etcd.
//! `ferrokube-apiserver kubeconfig ...` issues a client kubeconfig signed by the cluster CA.

use apiserver::admission::AdmissionConfig;
use apiserver::server::{run, ServerOptions};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "ferrokube-apiserver", about = "Kubernetes-compatible API server backed by etcd")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[arg(long, default_value = "http://127.0.0.1:2379", value_delimiter = ',')]
    etcd_servers: Vec<String>,
    #[arg(long, default_value = "/registry")]
    etcd_prefix: String,
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: String,
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    #[arg(long, default_value = "/var/lib/ferrokube/pki")]
    cert_dir: PathBuf,
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Requests without credentials are system:anonymous (else 401).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    anonymous_auth: bool,
    #[arg(long, default_value = apiserver::auth::token::serviceaccount::DEFAULT_ISSUER)]
    service_account_issuer: String,
    /// Audiences a token must name to authenticate here (default: the issuer).
    #[arg(long, value_delimiter = ',')]
    api_audiences: Vec<String>,
    /// PKCS#8 PEM key to sign ServiceAccount tokens with (default: <cert-dir>/sa.key, created).
    #[arg(long)]
    service_account_signing_key_file: Option<PathBuf>,
    /// Longest token a TokenRequest gets (a Go duration; 0: no cap).
    #[arg(long, value_parser = apimachinery::duration::parse_duration)]
    service_account_max_token_expiration: Option<std::time::Duration>,
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    service_account_extend_token_expiration: bool,
    #[arg(long)]
    service_account_jwks_uri: Option<String>,
    #[arg(long, default_value_t = 300)]
    default_not_ready_toleration_seconds: i64,
    #[arg(long, default_value_t = 300)]
    default_unreachable_toleration_seconds: i64,
    /// How long Events are kept (a Go duration).
    #[arg(long, default_value = "1h", value_parser = apimachinery::duration::parse_duration)]
    event_ttl: std::time::Duration,
    /// How often etcd's history is compacted (a Go duration; 0 disables).
    #[arg(long, default_value = "5m", value_parser = apimachinery::duration::parse_duration)]
    etcd_compaction_interval: std::time::Duration,
    /// The CIDR Service cluster IPs come from.
    #[arg(long, default_value = "10.96.0.0/16", value_parser = |s: &str| apiserver::allocator::IpRange::parse(s).map_err(|e| e.to_string()))]
    service_cluster_ip_range: apiserver::allocator::IpRange,
    /// The ports NodePort Services get (FROM-TO).
    #[arg(long, default_value = "30000-32767", value_parser = |s: &str| apiserver::allocator::PortRange::parse(s).map_err(|e| e.to_string()))]
    service_node_port_range: apiserver::allocator::PortRange,
    /// The address pods reach this apiserver at (the kubernetes Service's endpoint); it is
    /// also listened on.
    #[arg(long)]
    advertise_address: Option<std::net::Ipv4Addr>,
    /// How often Service IP and NodePort allocations are repaired (a Go duration).
    #[arg(long, default_value = "3m", value_parser = apimachinery::duration::parse_duration)]
    service_allocation_repair_interval: std::time::Duration,
    /// Authorizers after system:masters, in order: Node, RBAC, AlwaysAllow.
    #[arg(long, default_value = "Node,RBAC", value_delimiter = ',')]
    authorization_mode: Vec<String>,
    /// Where audit events go, one JSON line per request (`-`: standard output).
    #[arg(long)]
    audit_log_path: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Issue a client certificate and write a kubeconfig that embeds it.
    Kubeconfig {
        #[arg(long)]
        cert_dir: PathBuf,
        #[arg(long)]
        server: String,
        #[arg(long)]
        user: String,
        #[arg(long = "group")]
        groups: Vec<String>,
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Some(Command::Kubeconfig { cert_dir, server, user, groups, out }) = cli.command {
        if let Err(e) = apiserver::auth::kubeconfig::write_kubeconfig(&cert_dir, &server, &user, &groups, &out) {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
        return;
    }
    let opts = ServerOptions {
        etcd_servers: cli.etcd_servers,
        etcd_prefix: cli.etcd_prefix,
        bind_address: cli.bind_address,
        secure_port: cli.secure_port,
        cert_dir: cli.cert_dir,
        token_auth_file: cli.token_auth_file,
        authn: apiserver::server::AuthnOptions {
            anonymous_auth: cli.anonymous_auth,
            service_account_issuer: cli.service_account_issuer,
            api_audiences: cli.api_audiences,
            service_account_signing_key_file: cli.service_account_signing_key_file,
            service_account_max_token_expiration: cli.service_account_max_token_expiration,
            service_account_extend_token_expiration: cli.service_account_extend_token_expiration,
            service_account_jwks_uri: cli.service_account_jwks_uri,
        },
        admission: AdmissionConfig {
            default_not_ready_toleration_seconds: cli.default_not_ready_toleration_seconds,
            default_unreachable_toleration_seconds: cli.default_unreachable_toleration_seconds,
        },
        event_ttl: cli.event_ttl,
        etcd_compaction_interval: cli.etcd_compaction_interval,
        services: apiserver::controlplane::ServiceNetworkOptions {
            cluster_ip_range: cli.service_cluster_ip_range,
            node_port_range: cli.service_node_port_range,
            advertise_address: cli.advertise_address,
            repair_interval: cli.service_allocation_repair_interval,
        },
        authorization_modes: cli.authorization_mode,
        audit_log_path: cli.audit_log_path,
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(opts)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
