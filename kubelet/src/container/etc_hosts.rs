//! The kubelet-managed `/etc/hosts` and `/etc/hostname` of a pod, as upstream
//! writes them: localhost entries, the pod's own name (with its subdomain's
//! FQDN), then the spec's hostAliases.

use k8s_openapi::api::core::v1::Pod;

/// The domain of the cluster's DNS names; upstream's default `--cluster-domain`.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// spec.hostname, else the pod's name; a DNS label holds at most 63 bytes.
pub fn hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    let mut n = name.chars().take(63).collect::<String>();
    // Truncation must not leave a trailing '-' or '.', as upstream trims.
    while n.ends_with('-') || n.ends_with('.') {
        n.pop();
    }
    n
}

/// `<subdomain>.<namespace>.svc.cluster.local` when the pod has a subdomain.
pub fn domain(pod: &Pod) -> Option<String> {
    let sub = pod
        .spec
        .as_ref()?
        .subdomain
        .clone()
        .filter(|s| !s.is_empty())?;
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    Some(format!("{sub}.{ns}.svc.{CLUSTER_DOMAIN}"))
}

/// The hosts file for a pod whose IP is `ip` (unknown before its sandbox).
pub fn hosts_file(pod: &Pod, ip: Option<&str>) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    let name = hostname(pod);
    if let Some(ip) = ip {
        match domain(pod) {
            Some(d) => out.push_str(&format!("{ip}\t{name}.{d}\t{name}\n")),
            None => out.push_str(&format!("{ip}\t{name}\n")),
        }
    }
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.clone())
        .unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            out.push_str(&format!(
                "{}\t{}\n",
                a.ip,
                a.hostnames.unwrap_or_default().join("\t")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "shop"},
            "spec": spec,
        }))
        .unwrap()
    }

    /// [sig-node] Kubelet when scheduling an agnhost Pod with hostAliases
    /// should write entries to /etc/hosts.
    #[test]
    fn host_aliases_follow_the_pods_own_entry() {
        let p = pod(serde_json::json!({
            "containers": [],
            "hostAliases": [
                {"ip": "123.45.67.89", "hostnames": ["foo", "bar"]},
                {"ip": "::2", "hostnames": ["v6"]}
            ]
        }));
        let h = hosts_file(&p, Some("10.88.0.5"));
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(
            h.contains("fe00::2\tip6-allrouters\n10.88.0.5\tweb-0\n"),
            "{h}"
        );
        assert!(h.ends_with(
            "10.88.0.5\tweb-0\n\n# Entries added by HostAliases.\n123.45.67.89\tfoo\tbar\n::2\tv6\n"
        ));
    }

    #[test]
    fn hostname_and_subdomain_give_the_fqdn() {
        let p =
            pod(serde_json::json!({"containers": [], "hostname": "db", "subdomain": "backend"}));
        assert_eq!(hostname(&p), "db");
        let h = hosts_file(&p, Some("10.0.0.1"));
        assert!(
            h.ends_with("10.0.0.1\tdb.backend.shop.svc.cluster.local\tdb\n"),
            "{h}"
        );
        assert!(!hosts_file(&p, None).contains("db"));
    }

    #[test]
    fn long_names_are_cut_to_a_dns_label() {
        let mut p = pod(serde_json::json!({"containers": []}));
        p.metadata.name = Some(format!("{}-{}", "a".repeat(62), "b".repeat(10)));
        assert_eq!(hostname(&p), "a".repeat(62));
    }
}
