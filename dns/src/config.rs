//! Command-line flags (see docs/CONTRACTS.md).

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "ferrokube-dns", about = "ferrokube cluster DNS server")]
pub struct Flags {
    /// Kubeconfig for watching Services and EndpointSlices.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Serve this file of Services and EndpointSlices instead of watching an
    /// apiserver (benches and tests).
    #[arg(long, conflicts_with = "kubeconfig")]
    pub static_zone: Option<PathBuf>,
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// UDP and TCP address to answer on; repeatable. Loopback or a
    /// project-owned interface address only.
    #[arg(long = "listen", default_value = "127.0.0.1:53")]
    pub listen: Vec<SocketAddr>,
    /// TTL of every record in the cluster zone, in seconds.
    #[arg(long, default_value_t = 30)]
    pub ttl: u32,
    /// Upstream resolver (IP or IP:PORT) for other names; repeatable.
    /// Default: the nameservers of --resolv-conf. `none` forwards nowhere.
    #[arg(long)]
    pub upstream: Vec<String>,
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// How long forwarding may take in all before the answer is SERVFAIL.
    #[arg(long, default_value = "2s")]
    pub forward_timeout: String,
    /// /metrics, /health and /ready.
    #[arg(long, default_value = "127.0.0.1:9153")]
    pub metrics_bind_address: SocketAddr,
}

impl Flags {
    /// Checks what clap can't.
    pub fn validate(&self) -> Result<(), String> {
        if self.kubeconfig.is_none() && self.static_zone.is_none() {
            return Err("one of --kubeconfig or --static-zone is required".into());
        }
        let d = self.cluster_domain.trim_end_matches('.');
        if d.is_empty() || hickory_proto::rr::Name::from_ascii(d).is_err() {
            return Err(format!("--cluster-domain {:?} is not a domain name", self.cluster_domain));
        }
        self.forward_timeout()?;
        Ok(())
    }

    pub fn forward_timeout(&self) -> Result<std::time::Duration, String> {
        apimachinery::duration::parse_duration(&self.forward_timeout)
            .map_err(|e| format!("--forward-timeout {:?}: {e}", self.forward_timeout))
    }
}
