use super::*;
use crate::state::ClusterState;

fn state() -> ClusterState {
    let mut st = ClusterState::default();
    let svc = |v: serde_json::Value| serde_json::from_value(v).unwrap();
    st.apply_service(&svc(serde_json::json!({
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    })));
    st.apply_service(&svc(serde_json::json!({
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {"clusterIP": "None", "ports": [{"name": "sql", "port": 5432}]}
    })));
    st.apply_service(&svc(serde_json::json!({
        "metadata": {"name": "ext", "namespace": "shop"},
        "spec": {"type": "ExternalName", "externalName": "example.com"}
    })));
    st.apply_slice(
        &serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db-1", "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.88.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.88.0.6"], "conditions": {"ready": true}},
                {"addresses": ["10.88.0.7"], "hostname": "db-2", "conditions": {"ready": false}}
            ],
            "ports": [{"name": "sql", "port": 5432, "protocol": "TCP"}]
        }))
        .unwrap(),
    );
    st
}

fn zone() -> Zone {
    Zone::new("cluster.local", 30)
}

fn ask(q: &str, t: RecordType) -> Answer {
    match zone().lookup(&state(), &Name::from_ascii(q).unwrap(), t) {
        Lookup::Answer(a) => a,
        Lookup::Forward => panic!("{q} was forwarded"),
    }
}

fn data(records: &[Record]) -> Vec<String> {
    let mut v: Vec<String> = records.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    v
}

/// [sig-network] DNS should provide DNS for services
#[test]
fn cluster_ip_service_has_its_a_record() {
    let a = ask("web.shop.svc.cluster.local.", RecordType::A);
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert_eq!(data(&a.answers), ["10.96.0.20"]);
    assert_eq!(a.answers[0].ttl, 30);
    // The asker's case is kept on the owner name.
    let a = ask("WEB.Shop.svc.cluster.local.", RecordType::A);
    assert_eq!(a.answers[0].name.to_ascii(), "WEB.Shop.svc.cluster.local.");
}

#[test]
fn existing_name_of_another_type_is_nodata_with_soa() {
    let a = ask("web.shop.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert!(a.answers.is_empty());
    assert_eq!(a.authorities[0].record_type(), RecordType::SOA);
}

#[test]
fn missing_names_are_nxdomain_with_the_zone_soa() {
    for q in [
        "nope.shop.svc.cluster.local.",
        "web.other.svc.cluster.local.",
        "other.svc.cluster.local.",
        "x.cluster.local.",
        "nobody.db.shop.svc.cluster.local.",
        "_nope._tcp.web.shop.svc.cluster.local.",
    ] {
        let a = ask(q, RecordType::A);
        assert_eq!(a.rcode, ResponseCode::NXDomain, "{q}");
        assert_eq!(a.authorities.len(), 1, "{q}");
        let soa = &a.authorities[0];
        assert_eq!(soa.name.to_ascii(), "cluster.local.");
        assert!(soa.data.to_string().starts_with("ns.dns.cluster.local. hostmaster.cluster.local."));
    }
}

/// A headless Service: every ready endpoint, each also by its hostname.
#[test]
fn headless_service_resolves_to_ready_endpoints() {
    let a = ask("db.shop.svc.cluster.local.", RecordType::A);
    assert_eq!(data(&a.answers), ["10.88.0.5", "10.88.0.6"]);
    let a = ask("db-0.db.shop.svc.cluster.local.", RecordType::A);
    assert_eq!(data(&a.answers), ["10.88.0.5"]);
    // An endpoint without hostname is named by its address.
    let a = ask("10-88-0-6.db.shop.svc.cluster.local.", RecordType::A);
    assert_eq!(data(&a.answers), ["10.88.0.6"]);
    // A not-ready endpoint is not published.
    assert_eq!(ask("db-2.db.shop.svc.cluster.local.", RecordType::A).rcode, ResponseCode::NXDomain);
}

#[test]
fn srv_records_for_named_ports() {
    let a = ask("_http._tcp.web.shop.svc.cluster.local.", RecordType::SRV);
    assert_eq!(data(&a.answers), ["0 100 80 web.shop.svc.cluster.local."]);
    assert_eq!(data(&a.additionals), ["10.96.0.20"]);
    let a = ask("_sql._tcp.db.shop.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        data(&a.answers),
        [
            "0 50 5432 10-88-0-6.db.shop.svc.cluster.local.",
            "0 50 5432 db-0.db.shop.svc.cluster.local."
        ]
    );
    assert_eq!(a.additionals.len(), 2);
    assert_eq!(ask("_sql._udp.db.shop.svc.cluster.local.", RecordType::SRV).rcode, ResponseCode::NXDomain);
}

#[test]
fn external_name_is_a_cname() {
    for t in [RecordType::A, RecordType::CNAME, RecordType::AAAA] {
        let a = ask("ext.shop.svc.cluster.local.", t);
        assert_eq!(a.answers.len(), 1);
        assert_eq!(a.answers[0].record_type(), RecordType::CNAME);
        assert_eq!(a.answers[0].data.to_string(), "example.com.");
    }
}

#[test]
fn pod_records_answer_their_own_address() {
    let a = ask("10-88-1-7.any.pod.cluster.local.", RecordType::A);
    assert_eq!(data(&a.answers), ["10.88.1.7"]);
    assert_eq!(ask("10-88-1.any.pod.cluster.local.", RecordType::A).rcode, ResponseCode::NXDomain);
}

#[test]
fn dns_version_and_apex() {
    let a = ask("dns-version.cluster.local.", RecordType::TXT);
    assert_eq!(data(&a.answers), ["1.1.0"]);
    let a = ask("cluster.local.", RecordType::SOA);
    assert_eq!(a.answers[0].record_type(), RecordType::SOA);
    let a = ask("cluster.local.", RecordType::NS);
    assert_eq!(data(&a.answers), ["ns.dns.cluster.local."]);
    // svc.<zone> and <ns>.svc.<zone> exist, empty.
    assert_eq!(ask("svc.cluster.local.", RecordType::A).rcode, ResponseCode::NoError);
    assert_eq!(ask("shop.svc.cluster.local.", RecordType::A).rcode, ResponseCode::NoError);
}

#[test]
fn ptr_for_service_ips_and_headless_endpoints_others_forwarded() {
    let a = ask("20.0.96.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(data(&a.answers), ["web.shop.svc.cluster.local."]);
    let a = ask("5.0.88.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(data(&a.answers), ["db-0.db.shop.svc.cluster.local."]);
    let z = zone();
    let st = state();
    let other = Name::from_str("1.0.0.127.in-addr.arpa.").unwrap();
    assert_eq!(z.lookup(&st, &other, RecordType::PTR), Lookup::Forward);
    let out = Name::from_str("example.com.").unwrap();
    assert_eq!(z.lookup(&st, &out, RecordType::A), Lookup::Forward);
}
