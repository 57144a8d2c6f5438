//! Command-line flags and upstream's `--controllers` selection syntax.

use std::path::PathBuf;
use std::time::Duration;

use apimachinery::duration::parse_duration;
use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(name = "ferrokube-controller-manager", about = "Runs the control loops of ferrokube")]
pub struct Options {
    /// Path to a kubeconfig; in-cluster or $KUBECONFIG when absent.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Controllers to enable: '*' enables all, 'foo' enables foo, '-foo' disables foo.
    #[arg(long, default_value = "*", value_delimiter = ',')]
    pub controllers: Vec<String>,
    /// Run only while holding the leader Lease.
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    #[arg(long, default_value = "kube-controller-manager")]
    pub leader_elect_resource_name: String,
    #[arg(long, default_value = "kube-system")]
    pub leader_elect_resource_namespace: String,
    /// How long a node may go without renewing its Lease before it is marked Unknown.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// How often the node lifecycle controller checks node health.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub node_monitor_period: Duration,
    /// Terminated pods kept before Pod GC deletes the oldest.
    #[arg(long, default_value_t = 12500)]
    pub terminated_pod_gc_threshold: usize,
    /// HTTPS on --secure-port (alias --port, default 10257; 0 disables) as upstream's.
    #[command(flatten)]
    pub serving: apimachinery::secure_serving::SecureServingFlags,
    /// Workers per controller.
    #[arg(long, default_value_t = 5)]
    pub concurrent_syncs: usize,
    /// Garbage collector workers (upstream's --concurrent-gc-syncs): each
    /// carries out one deletion at a time.
    #[arg(long, default_value_t = 20)]
    pub concurrent_gc_syncs: usize,
    /// The cluster CA published as kube-root-ca.crt (default: the kubeconfig's CA).
    #[arg(long)]
    pub root_ca_file: Option<PathBuf>,
    /// Each controller writes as its own ServiceAccount in kube-system.
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub use_service_account_credentials: bool,
}

/// Every controller this binary knows, by upstream's current name, with the
/// short names older releases used.
pub const KNOWN_CONTROLLERS: &[(&str, &str)] = &[
    ("replicaset-controller", "replicaset"),
    ("deployment-controller", "deployment"),
    ("garbage-collector-controller", "garbagecollector"),
    ("namespace-controller", "namespace"),
    ("serviceaccount-controller", "serviceaccount"),
    ("node-lifecycle-controller", "nodelifecycle"),
    ("job-controller", "job"),
    ("daemonset-controller", "daemonset"),
    ("statefulset-controller", "statefulset"),
    ("endpoints-controller", "endpoint"),
    ("endpointslice-controller", "endpointslice"),
    ("pod-garbage-collector-controller", "podgc"),
    ("cronjob-controller", "cronjob"),
    ("replicationcontroller-controller", "replicationcontroller"),
    ("disruption-controller", "disruption"),
    ("resourcequota-controller", "resourcequota"),
    ("root-ca-certificate-publisher-controller", "root-ca-cert-publisher"),
    ("persistentvolume-binder-controller", "persistentvolume-binder"),
    ("clusterrole-aggregation-controller", "clusterroleaggregation"),
    // Not upstream's: the provisioner k3s and kind run beside it.
    ("local-path-provisioner-controller", "local-path-provisioner"),
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SelectionError {
    #[error("{0:?} is not in the list of known controllers")]
    Unknown(String),
}

fn canonical(name: &str) -> Option<&'static str> {
    KNOWN_CONTROLLERS
        .iter()
        .find(|(long, short)| *long == name || *short == name)
        .map(|(long, _)| *long)
}

/// The enabled controllers (canonical names) for a `--controllers` list, as
/// upstream: a name enables, `-name` disables, `*` enables the rest.
pub fn enabled_controllers(list: &[String]) -> Result<Vec<&'static str>, SelectionError> {
    let mut star = false;
    let mut on = Vec::new();
    let mut off = Vec::new();
    for item in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if item == "*" {
            star = true;
        } else if let Some(n) = item.strip_prefix('-') {
            off.push(canonical(n).ok_or_else(|| SelectionError::Unknown(n.to_string()))?);
        } else {
            on.push(canonical(item).ok_or_else(|| SelectionError::Unknown(item.to_string()))?);
        }
    }
    Ok(KNOWN_CONTROLLERS
        .iter()
        .map(|(long, _)| *long)
        .filter(|c| !off.contains(c) && (on.contains(c) || star))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &str) -> Result<Vec<&'static str>, SelectionError> {
        enabled_controllers(&s.split(',').map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn star_enables_all() {
        assert_eq!(sel("*").unwrap().len(), KNOWN_CONTROLLERS.len());
    }

    #[test]
    fn minus_disables_by_either_name() {
        let s = sel("*,-nodelifecycle,-job-controller").unwrap();
        assert!(!s.contains(&"node-lifecycle-controller"));
        assert!(!s.contains(&"job-controller"));
        assert!(s.contains(&"replicaset-controller"));
    }

    #[test]
    fn explicit_list_without_star() {
        assert_eq!(
            sel("replicaset,deployment-controller").unwrap(),
            vec!["replicaset-controller", "deployment-controller"]
        );
    }

    #[test]
    fn unknown_name_is_refused() {
        assert_eq!(sel("*,-bogus"), Err(SelectionError::Unknown("bogus".into())));
    }

    #[test]
    fn duration_flags_take_go_syntax() {
        let o = Options::try_parse_from(["cm", "--node-monitor-grace-period", "1m30s", "--node-monitor-period", "500ms"]).unwrap();
        assert_eq!(o.node_monitor_grace_period, Duration::from_secs(90));
        assert_eq!(o.node_monitor_period, Duration::from_millis(500));
        // Go's flag parsing refuses a unitless number; so does this one now.
        assert!(Options::try_parse_from(["cm", "--node-monitor-grace-period", "10"]).is_err());
    }

    #[test]
    fn flags_parse() {
        let o = Options::try_parse_from([
            "cm",
            "--leader-elect",
            "--controllers",
            "*,-podgc",
            "--node-monitor-grace-period",
            "10s",
        ])
        .unwrap();
        assert!(o.leader_elect);
        assert_eq!(o.node_monitor_grace_period, Duration::from_secs(10));
        assert_eq!(o.controllers, vec!["*", "-podgc"]);
        assert!(Options::try_parse_from(["cm", "--node-monitor-grace-period", "soon"]).is_err());
    }
}
