//! A pod's `/etc/resolv.conf`, as upstream's kubelet composes it
//! (pkg/kubelet/network/dns) and containerd writes it: the pod's dnsPolicy
//! picks the cluster DNS or the host's resolvers, `spec.dnsConfig` is merged
//! in, and the result is cut to the resolver's limits with a warning Event.

use std::net::IpAddr;

use apimachinery::resolvconf::{merge_options, ResolvConf};
use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};

/// Upstream's validation.MaxDNSNameservers.
pub const MAX_NAMESERVERS: usize = 3;
/// Upstream's validation.MaxDNSSearchPaths.
pub const MAX_SEARCH_PATHS: usize = 32;
/// Upstream's validation.MaxDNSSearchListChars.
pub const MAX_SEARCH_CHARS: usize = 2048;
/// A search domain longer than a DNS-1123 subdomain makes glibc abort.
const MAX_SEARCH_DOMAIN: usize = 253;

/// The kubelet's DNS settings: `--cluster-dns`, `--cluster-domain` and the
/// host's resolv.conf (`--resolv-conf`).
#[derive(Debug, Clone, Default)]
pub struct DnsConfigurer {
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    pub host: ResolvConf,
}

/// Which resolvers a pod gets (upstream's podDNSType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodDnsType {
    Cluster,
    Host,
    None,
}

/// What goes into a resolv.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// A warning the kubelet records on the pod (reason, message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsEvent {
    pub reason: &'static str,
    pub message: String,
}

/// The upstream options of a ClusterFirst pod.
const DEFAULT_OPTIONS: &[&str] = &["ndots:5"];

/// The pod's DNS type from its dnsPolicy; hostNetwork turns ClusterFirst
/// into Default, as upstream (ClusterFirstWithHostNet keeps the cluster).
pub fn pod_dns_type(pod: &Pod) -> Result<PodDnsType, String> {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    match spec.and_then(|s| s.dns_policy.as_deref()).unwrap_or("ClusterFirst") {
        "None" => Ok(PodDnsType::None),
        "ClusterFirstWithHostNet" => Ok(PodDnsType::Cluster),
        "ClusterFirst" if !host_network => Ok(PodDnsType::Cluster),
        "ClusterFirst" | "Default" => Ok(PodDnsType::Host),
        other => Err(format!("invalid DNSPolicy={other}")),
    }
}

/// Drops later duplicates, keeping the first of each.
fn omit_duplicates(v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.into_iter().filter(|s| seen.insert(s.clone())).collect()
}

impl DnsConfigurer {
    /// The pod's resolv.conf contents and the Events to record about it.
    pub fn pod_dns(&self, pod: &Pod) -> Result<(DnsConfig, Vec<DnsEvent>), String> {
        let mut events = Vec::new();
        let host = DnsConfig {
            servers: self.host.nameservers.clone(),
            searches: self.host.searches.clone(),
            options: self.host.options.clone(),
        };
        let mut ty = pod_dns_type(pod)?;
        if ty == PodDnsType::Cluster && self.cluster_dns.is_empty() {
            let policy = pod
                .spec
                .as_ref()
                .and_then(|s| s.dns_policy.clone())
                .unwrap_or_else(|| "ClusterFirst".into());
            events.push(DnsEvent {
                reason: "MissingClusterDNS",
                message: format!(
                    "pod: {:?}. kubelet does not have ClusterDNS IP configured and cannot create Pod using {policy:?} policy. Falling back to \"Default\" policy.",
                    format!(
                        "{}_{}({})",
                        pod.metadata.name.as_deref().unwrap_or_default(),
                        pod.metadata.namespace.as_deref().unwrap_or_default(),
                        pod.metadata.uid.as_deref().unwrap_or_default()
                    )
                ),
            });
            ty = PodDnsType::Host;
        }
        let mut cfg = match ty {
            PodDnsType::None => DnsConfig::default(),
            PodDnsType::Host => host,
            PodDnsType::Cluster => DnsConfig {
                servers: self.cluster_dns.iter().map(IpAddr::to_string).collect(),
                searches: self.cluster_searches(pod, &host.searches),
                options: DEFAULT_OPTIONS.iter().map(|s| s.to_string()).collect(),
            },
        };
        if let Some(extra) = pod.spec.as_ref().and_then(|s| s.dns_config.as_ref()) {
            cfg = append_dns_config(cfg, extra);
        }
        events.extend(fit_limits(&mut cfg));
        Ok((cfg, events))
    }

    /// `<ns>.svc.<domain> svc.<domain> <domain>`, then the host's.
    fn cluster_searches(&self, pod: &Pod, host: &[String]) -> Vec<String> {
        let d = self.cluster_domain.trim_end_matches('.');
        if d.is_empty() {
            return host.to_vec();
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let mut v = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.to_string()];
        v.extend(host.iter().cloned());
        omit_duplicates(v)
    }
}

/// Upstream's appendDNSConfig: the pod's nameservers and searches after the
/// policy's, its options overriding options of the same name.
fn append_dns_config(mut cfg: DnsConfig, extra: &PodDNSConfig) -> DnsConfig {
    cfg.servers.extend(extra.nameservers.iter().flatten().cloned());
    cfg.servers = omit_duplicates(cfg.servers);
    cfg.searches.extend(extra.searches.iter().flatten().cloned());
    cfg.searches = omit_duplicates(cfg.searches);
    let pod_opts = extra.options.iter().flatten().filter_map(|o| {
        let name = o.name.clone()?;
        Some(match &o.value {
            Some(v) => format!("{name}:{v}"),
            None => name,
        })
    });
    cfg.options = merge_options(&cfg.options, pod_opts);
    cfg
}

/// Cuts nameservers to 3 and searches to 32 domains of 2048 characters in
/// all (longest-first from the end), as upstream's formDNSConfigFitsLimits.
pub fn fit_limits(cfg: &mut DnsConfig) -> Vec<DnsEvent> {
    let mut events = Vec::new();
    if cfg.servers.len() > MAX_NAMESERVERS {
        cfg.servers.truncate(MAX_NAMESERVERS);
        events.push(DnsEvent {
            reason: "DNSConfigForming",
            message: format!(
                "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
                cfg.servers.join(" ")
            ),
        });
    }
    let mut exceeded = false;
    if cfg.searches.len() > MAX_SEARCH_PATHS {
        cfg.searches.truncate(MAX_SEARCH_PATHS);
        exceeded = true;
    }
    let before = cfg.searches.len();
    cfg.searches.retain(|s| s.len() <= MAX_SEARCH_DOMAIN);
    exceeded |= cfg.searches.len() != before;
    let line = cfg.searches.join(" ").len();
    if line > MAX_SEARCH_CHARS {
        let mut cut = 0;
        let mut n = 0;
        for s in cfg.searches.iter().rev() {
            cut += s.len() + 1;
            n += 1;
            if line - cut <= MAX_SEARCH_CHARS {
                break;
            }
        }
        let keep = cfg.searches.len() - n;
        cfg.searches.truncate(keep);
        exceeded = true;
    }
    if exceeded {
        events.push(DnsEvent {
            reason: "DNSConfigForming",
            message: format!(
                "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
                cfg.searches.join(" ")
            ),
        });
    }
    events
}

/// The file as containerd's CRI writes it from a DNSConfig.
pub fn resolv_conf(cfg: &DnsConfig) -> String {
    let mut out = String::new();
    if !cfg.searches.is_empty() {
        out.push_str(&format!("search {}\n", cfg.searches.join(" ")));
    }
    for s in &cfg.servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !cfg.options.is_empty() {
        out.push_str(&format!("options {}\n", cfg.options.join(" ")));
    }
    out
}

/// Writes the pod's resolv.conf into its pod dir (once per sandbox, as the
/// runtime does) and records the Events; the containers bind-mount it.
pub fn write_pod_resolv_conf(k: &crate::context::Kubelet, pod: &Pod) -> Result<(), String> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let (cfg, events) = k.dns.pod_dns(pod)?;
    for e in events {
        tracing::warn!(pod = ?pod.metadata.name, reason = e.reason, "{}", e.message);
        k.events.pod_event(pod, "Warning", e.reason, e.message, None);
    }
    let path = resolv_conf_path(k, &uid);
    std::fs::create_dir_all(k.pod_dir(&uid)).map_err(|e| e.to_string())?;
    std::fs::write(&path, resolv_conf(&cfg)).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Where a pod's resolv.conf lives on the node.
pub fn resolv_conf_path(k: &crate::context::Kubelet, uid: &str) -> std::path::PathBuf {
    k.pod_dir(uid).join("resolv.conf")
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;
