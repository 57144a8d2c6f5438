//! Command-line flags (see docs/CONTRACTS.md).

use std::path::PathBuf;

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "ferrokube-kubelet", about = "ferrokube node agent")]
pub struct Flags {
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    #[arg(long)]
    pub node_name: String,
    #[arg(long, default_value = "127.0.0.1")]
    pub node_ip: String,
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    pub containerd_socket: PathBuf,
    #[arg(long, default_value = "/var/lib/ferrokube-kubelet")]
    pub root_dir: PathBuf,
    #[arg(long, default_value = "10.88.0.0/24")]
    pub pod_cidr: String,
    #[arg(long, default_value_t = 10250)]
    pub port: u16,
    /// REGISTRY=URL, e.g. docker.io=http://127.0.0.1:5000; repeatable.
    #[arg(long)]
    pub registry_mirror: Vec<String>,
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// Callers without credentials are system:anonymous (upstream's default is true; here
    /// they get 401 unless this is set).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub anonymous_auth: bool,
    /// AlwaysAllow or Webhook (SubjectAccessReview); Webhook when there is a kubeconfig.
    #[arg(long, value_enum)]
    pub authorization_mode: Option<crate::auth::AuthorizationMode>,
    #[arg(long, default_value = "/usr/lib/cni")]
    pub cni_bin_dir: PathBuf,
    #[arg(long, default_value = "fk0")]
    pub bridge_name: String,
    #[arg(long, default_value_t = 110)]
    pub max_pods: i64,
    /// Resources kept for the system, e.g. cpu=100m,memory=100Mi.
    #[arg(long, default_value = "")]
    pub system_reserved: String,
    /// Resources kept for Kubernetes daemons, e.g. cpu=100m,memory=100Mi.
    #[arg(long, default_value = "")]
    pub kube_reserved: String,
    /// The cluster DNS server pods with dnsPolicy ClusterFirst use; repeatable.
    #[arg(long)]
    pub cluster_dns: Vec<std::net::IpAddr>,
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// The resolv.conf that dnsPolicy Default pods get, and whose search
    /// domains ClusterFirst pods add to the cluster's.
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
}

/// Parses `cpu=100m,memory=100Mi` into (milli-CPU, bytes).
pub fn parse_reserved(s: &str) -> Result<(i64, i64), String> {
    let (mut cpu, mut mem) = (0, 0);
    for kv in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("reservation {kv:?}: expected NAME=QUANTITY"))?;
        match k.trim() {
            "cpu" => {
                cpu = apimachinery::Quantity::parse(v.trim())
                    .map_err(|e| format!("reservation cpu={v:?}: {e}"))?
                    .milli_value()
            }
            "memory" => {
                mem = apimachinery::Quantity::parse(v.trim())
                    .map_err(|e| format!("reservation memory={v:?}: {e}"))?
                    .value()
            }
            "pid" | "ephemeral-storage" => {}
            other => return Err(format!("reservation of unknown resource {other:?}")),
        }
    }
    Ok((cpu, mem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_parse_and_reject_garbage() {
        assert_eq!(parse_reserved("cpu=100m,memory=1Mi"), Ok((100, 1 << 20)));
        assert_eq!(parse_reserved(""), Ok((0, 0)));
        assert!(parse_reserved("cpu").is_err());
        assert!(parse_reserved("gpu=1").is_err());
        assert!(parse_reserved("memory=lots").is_err());
    }
}

impl Flags {
    /// Checks what clap can't: CIDR and IP shapes, bridge name length.
    pub fn validate(&self) -> Result<(), String> {
        self.node_ip
            .parse::<std::net::IpAddr>()
            .map_err(|_| format!("--node-ip {:?} is not an IP address", self.node_ip))?;
        let (ip, len) = self
            .pod_cidr
            .split_once('/')
            .ok_or_else(|| format!("--pod-cidr {:?} is not a CIDR", self.pod_cidr))?;
        ip.parse::<std::net::Ipv4Addr>()
            .map_err(|_| format!("--pod-cidr {:?} is not a CIDR", self.pod_cidr))?;
        let len: u8 = len
            .parse()
            .map_err(|_| format!("--pod-cidr {:?} is not a CIDR", self.pod_cidr))?;
        if len > 30 {
            return Err(format!("--pod-cidr {:?} is too small", self.pod_cidr));
        }
        if self.bridge_name.is_empty() || self.bridge_name.len() > 15 {
            return Err(format!(
                "--bridge-name {:?} must be 1-15 characters",
                self.bridge_name
            ));
        }
        if self.node_name.is_empty() {
            return Err("--node-name must not be empty".into());
        }
        crate::runtime::image_ref::Mirrors::parse(&self.registry_mirror)?;
        parse_reserved(&self.system_reserved).map_err(|e| format!("--system-reserved: {e}"))?;
        parse_reserved(&self.kube_reserved).map_err(|e| format!("--kube-reserved: {e}"))?;
        Ok(())
    }
}
