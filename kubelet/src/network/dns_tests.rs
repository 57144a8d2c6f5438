use super::*;

fn configurer() -> DnsConfigurer {
    DnsConfigurer {
        cluster_dns: vec!["10.96.0.10".parse().unwrap()],
        cluster_domain: "cluster.local".into(),
        host: ResolvConf::parse(
            "nameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example\noptions timeout:2\n",
        ),
    }
}

fn pod(spec: serde_json::Value) -> Pod {
    let mut spec = spec;
    spec["containers"] = serde_json::json!([]);
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p", "namespace": "shop", "uid": "u1"},
        "spec": spec,
    }))
    .unwrap()
}

fn file(c: &DnsConfigurer, spec: serde_json::Value) -> String {
    let (cfg, events) = c.pod_dns(&pod(spec)).unwrap();
    assert!(events.is_empty(), "{events:?}");
    resolv_conf(&cfg)
}

/// [sig-network] DNS should support configurable pod resolv.conf
/// (the ClusterFirst half: upstream's search path and ndots).
#[test]
fn cluster_first_is_the_cluster_dns_with_the_search_path_and_ndots_5() {
    let c = configurer();
    let want = "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n\
                nameserver 10.96.0.10\noptions ndots:5\n";
    assert_eq!(file(&c, serde_json::json!({})), want);
    assert_eq!(file(&c, serde_json::json!({"dnsPolicy": "ClusterFirst"})), want);
    assert_eq!(
        file(&c, serde_json::json!({"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": true})),
        want
    );
}

#[test]
fn default_and_host_network_cluster_first_are_the_hosts_resolv_conf() {
    let c = configurer();
    let want = "search corp.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions timeout:2\n";
    assert_eq!(file(&c, serde_json::json!({"dnsPolicy": "Default"})), want);
    assert_eq!(
        file(&c, serde_json::json!({"dnsPolicy": "ClusterFirst", "hostNetwork": true})),
        want
    );
}

/// [sig-network] DNS should support configurable pod DNS nameservers
#[test]
fn none_is_only_the_pods_dns_config() {
    let c = configurer();
    let got = file(
        &c,
        serde_json::json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.1.1.1"], "searches": ["resolv.conf.local"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}),
    );
    assert_eq!(got, "search resolv.conf.local\nnameserver 1.1.1.1\noptions ndots:2 edns0\n");
}

#[test]
fn dns_config_merges_after_the_policy_and_overrides_options() {
    let c = configurer();
    let got = file(
        &c,
        serde_json::json!({"dnsConfig": {
            "nameservers": ["10.96.0.10", "192.0.2.99"],
            "searches": ["svc.cluster.local", "extra.example"],
            "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}]}}),
    );
    assert_eq!(
        got,
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example extra.example\n\
         nameserver 10.96.0.10\nnameserver 192.0.2.99\noptions ndots:1 single-request\n"
    );
}

#[test]
fn without_cluster_dns_cluster_first_falls_back_to_default_with_an_event() {
    let mut c = configurer();
    c.cluster_dns.clear();
    let (cfg, events) = c.pod_dns(&pod(serde_json::json!({}))).unwrap();
    assert_eq!(cfg.servers, ["192.0.2.53", "192.0.2.54"]);
    assert_eq!(events[0].reason, "MissingClusterDNS");
    assert!(events[0].message.contains("Falling back to \"Default\" policy"), "{}", events[0].message);
}

#[test]
fn limits_cut_nameservers_and_search_paths_with_events() {
    let c = configurer();
    let searches: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
    let (cfg, events) = c
        .pod_dns(&pod(serde_json::json!({"dnsConfig": {
            "nameservers": ["1.1.1.1", "1.0.0.1", "8.8.8.8"], "searches": searches}})))
        .unwrap();
    assert_eq!(cfg.servers, ["10.96.0.10", "1.1.1.1", "1.0.0.1"]);
    assert_eq!(cfg.searches.len(), MAX_SEARCH_PATHS);
    assert_eq!(events.len(), 2);
    assert!(events[0].message.starts_with(
        "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 10.96.0.10 1.1.1.1 1.0.0.1"
    ));
    assert_eq!(events[1].reason, "DNSConfigForming");
    assert!(events[1].message.starts_with("Search Line limits were exceeded"));

    // 2048 characters in all: domains are dropped from the end.
    let mut cfg = DnsConfig {
        searches: (0..20).map(|i| format!("{i:02}{}", "x".repeat(120))).collect(),
        ..Default::default()
    };
    let ev = fit_limits(&mut cfg);
    assert_eq!(ev.len(), 1);
    assert!(cfg.searches.join(" ").len() <= MAX_SEARCH_CHARS);
    assert_eq!(cfg.searches.len(), 16);
    // A domain longer than 253 characters is dropped.
    let mut cfg = DnsConfig {
        searches: vec!["a".repeat(254), "ok.example".into()],
        ..Default::default()
    };
    assert_eq!(fit_limits(&mut cfg).len(), 1);
    assert_eq!(cfg.searches, ["ok.example"]);
}

#[test]
fn an_unknown_policy_is_an_error() {
    assert!(configurer().pod_dns(&pod(serde_json::json!({"dnsPolicy": "Bogus"}))).is_err());
}
