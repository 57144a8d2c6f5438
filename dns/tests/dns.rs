//! ferrokube-dns against a real apiserver (testkit::ApiServer on its own
//! etcd): the names of the Kubernetes DNS specification, garbage and a
//! fuzzed burst, and forwarding to upstreams that are not there.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use rand::{Rng, RngCore};
use testkit::{free_port, wait_for_or, ApiServer, Dns, Etcd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

const WAIT: Duration = Duration::from_secs(30);

fn query_bytes(id: u16, name: &str, t: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_str(name).unwrap(), t));
    m.to_vec().unwrap()
}

/// One UDP exchange of raw bytes; `None` when nothing came back in 3 s.
async fn exchange(server: SocketAddr, bytes: &[u8]) -> Option<Message> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(server).await.unwrap();
    sock.send(bytes).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), sock.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(Message::from_vec(&buf[..n]).expect("the server's answer parses"))
}

async fn ask(server: SocketAddr, name: &str, t: RecordType) -> Message {
    ask_opt(server, name, t)
        .await
        .unwrap_or_else(|| panic!("no answer for {name} {t}"))
}

/// `None` when the datagram or its answer was lost (UDP drops under load).
async fn ask_opt(server: SocketAddr, name: &str, t: RecordType) -> Option<Message> {
    let id = rand::rng().random();
    let m = exchange(server, &query_bytes(id, name, t)).await?;
    assert_eq!(m.metadata.id, id);
    Some(m)
}

async fn ask_tcp(server: SocketAddr, name: &str, t: RecordType) -> Message {
    let mut s = tokio::net::TcpStream::connect(server).await.unwrap();
    let q = query_bytes(7, name, t);
    s.write_all(&(q.len() as u16).to_be_bytes()).await.unwrap();
    s.write_all(&q).await.unwrap();
    let n = s.read_u16().await.unwrap();
    let mut buf = vec![0; n as usize];
    s.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

fn data(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    v
}

/// Waits until `name` answers with `want` (the watch has delivered it).
async fn wait_answer(server: SocketAddr, name: &str, t: RecordType, want: &[&str]) -> Message {
    wait_for_or(WAIT, &format!("{name} {t} -> {want:?}"), || async move {
        let m = ask_opt(server, name, t).await?;
        (data(&m) == want).then_some(m)
    })
    .await
    .unwrap()
}

async fn create<K>(client: &kube::Client, ns: Option<&str>, v: serde_json::Value)
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns.unwrap_or("default"));
    let o: K = serde_json::from_value(v).unwrap();
    api.create(&PostParams::default(), &o).await.unwrap();
}

struct Env {
    _etcd: Etcd,
    _api: ApiServer,
    dns: Dns,
}

/// An apiserver with namespace `shop`: Service `web` (10.96.7.7, port http),
/// headless `db` with a slice of two ready endpoints (db-0 with hostname)
/// and a not-ready one, ExternalName `ext`; and a DNS server watching it,
/// whose upstream is a loopback socket that never answers.
async fn env() -> (Env, UdpSocket) {
    let etcd = Etcd::start().await;
    let api = ApiServer::start(&etcd).await;
    let client = api.client().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(&PostParams::default(), &serde_json::from_value(serde_json::json!({"metadata": {"name": "shop"}})).unwrap())
        .await
        .unwrap();
    create::<Service>(&client, Some("shop"), serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"clusterIP": "10.96.7.7", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    }))
    .await;
    create::<Service>(&client, Some("shop"), serde_json::json!({
        "metadata": {"name": "db"},
        "spec": {"clusterIP": "None", "ports": [{"name": "sql", "port": 5432, "protocol": "TCP"}]}
    }))
    .await;
    create::<EndpointSlice>(&client, Some("shop"), serde_json::json!({
        "metadata": {"name": "db-x1", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.88.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
            {"addresses": ["10.88.0.6"], "conditions": {"ready": true}},
            {"addresses": ["10.88.0.7"], "hostname": "db-2", "conditions": {"ready": false}}
        ],
        "ports": [{"name": "sql", "port": 5432, "protocol": "TCP"}]
    }))
    .await;
    create::<Service>(&client, Some("shop"), serde_json::json!({
        "metadata": {"name": "ext"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com"}
    }))
    .await;
    let hole = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let upstream = hole.local_addr().unwrap().to_string();
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let dns = Dns::start(Some(&api.kubeconfig), listen, &["--upstream", upstream.as_str()]).await;
    (
        Env {
            _etcd: etcd,
            _api: api,
            dns,
        },
        hole,
    )
}

/// [sig-network] DNS should provide DNS for services
#[tokio::test]
async fn should_provide_dns_for_services() {
    let (env, _hole) = env().await;
    let s = env.dns.addr;
    let m = wait_answer(s, "web.shop.svc.cluster.local.", RecordType::A, &["10.96.7.7"]).await;
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers[0].ttl, 30);
    // Over TCP too.
    let m = ask_tcp(s, "web.shop.svc.cluster.local.", RecordType::A).await;
    assert_eq!(data(&m), ["10.96.7.7"]);

    // Headless: every ready endpoint, and the hostname of each.
    wait_answer(s, "db.shop.svc.cluster.local.", RecordType::A, &["10.88.0.5", "10.88.0.6"]).await;
    let m = ask(s, "db-0.db.shop.svc.cluster.local.", RecordType::A).await;
    assert_eq!(data(&m), ["10.88.0.5"]);
    let m = ask(s, "db-2.db.shop.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "not ready: not published");

    // SRV for named ports, normal and headless.
    let m = ask(s, "_http._tcp.web.shop.svc.cluster.local.", RecordType::SRV).await;
    assert_eq!(data(&m), ["0 100 80 web.shop.svc.cluster.local."]);
    assert_eq!(m.additionals.iter().filter(|r| r.record_type() == RecordType::A).count(), 1);
    let m = ask(s, "_sql._tcp.db.shop.svc.cluster.local.", RecordType::SRV).await;
    assert_eq!(
        data(&m),
        ["0 50 5432 10-88-0-6.db.shop.svc.cluster.local.", "0 50 5432 db-0.db.shop.svc.cluster.local."]
    );

    // Pods, ExternalName, PTR, the schema version.
    let m = ask(s, "10-88-3-4.shop.pod.cluster.local.", RecordType::A).await;
    assert_eq!(data(&m), ["10.88.3.4"]);
    let m = ask(s, "ext.shop.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(data(&m), ["db.example.com."]);
    let m = ask(s, "7.7.96.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(data(&m), ["web.shop.svc.cluster.local."]);
    let m = ask(s, "dns-version.cluster.local.", RecordType::TXT).await;
    assert_eq!(data(&m), ["1.1.0"]);

    // Missing names: NXDOMAIN with the SOA; other types of a name: NODATA.
    let m = ask(s, "nope.shop.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    let m = ask(s, "web.shop.svc.cluster.local.", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);

    let metrics = env.dns.http_get("/metrics").await.unwrap();
    assert!(metrics.contains("coredns_dns_requests_total{"), "{metrics}");
    assert!(metrics.contains("coredns_dns_request_duration_seconds_bucket{"), "{metrics}");
    assert_eq!(env.dns.http_get("/health").await.unwrap(), "OK");
}

#[tokio::test]
async fn deleted_service_goes_and_new_endpoints_come() {
    let (mut env, _hole) = env().await;
    let s = env.dns.addr;
    wait_answer(s, "web.shop.svc.cluster.local.", RecordType::A, &["10.96.7.7"]).await;
    let client = env._api.client().await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "shop");
    svcs.delete("web", &Default::default()).await.unwrap();
    wait_for_or(WAIT, "web NXDOMAIN after delete", || async move {
        let m = ask(s, "web.shop.svc.cluster.local.", RecordType::A).await;
        (m.metadata.response_code == ResponseCode::NXDomain).then_some(())
    })
    .await
    .unwrap();
    create::<EndpointSlice>(&client, Some("shop"), serde_json::json!({
        "metadata": {"name": "db-x2", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.88.1.9"], "hostname": "db-9"}],
        "ports": [{"name": "sql", "port": 5432, "protocol": "TCP"}]
    }))
    .await;
    wait_answer(s, "db-9.db.shop.svc.cluster.local.", RecordType::A, &["10.88.1.9"]).await;
    assert!(env.dns.process().is_running());
}

/// Garbage after a valid header is FORMERR; then 10,000 random and mutated
/// packets, after which the server still answers.
#[tokio::test]
async fn garbage_is_formerr_and_a_fuzzed_burst_leaves_it_answering() {
    let (mut env, _hole) = env().await;
    let s = env.dns.addr;
    wait_answer(s, "web.shop.svc.cluster.local.", RecordType::A, &["10.96.7.7"]).await;

    // Header: id 0xbeef, a query, one question; then a name that runs off the end.
    let mut garbage = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    garbage.extend_from_slice(&[0x3f, b'a', b'b', 0xff, 0xff]);
    let m = exchange(s, &garbage).await.expect("FORMERR answer");
    assert_eq!(m.metadata.id, 0xbeef);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    // A compression pointer loop.
    let mut looped = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    let m = exchange(s, &looped).await.expect("FORMERR answer");
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);

    let valid = query_bytes(1, "web.shop.svc.cluster.local.", RecordType::A);
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut rng = rand::rng();
    let started = Instant::now();
    for i in 0..10_000 {
        let pkt = if i % 2 == 0 {
            let mut p = vec![0u8; rng.random_range(0..600)];
            rng.fill_bytes(&mut p);
            p
        } else {
            let mut p = valid.clone();
            for _ in 0..rng.random_range(1..6) {
                let at = rng.random_range(0..p.len());
                p[at] = rng.random();
            }
            p.truncate(rng.random_range(0..=p.len()));
            p
        };
        sock.send_to(&pkt, s).await.unwrap();
        // Bounded: the burst stops by itself even on a slow machine.
        if started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    // TCP garbage: a length prefix with nothing behind it, and junk.
    for junk in [&[0x00u8, 0x40][..], &[0xff, 0xff, 1, 2, 3][..]] {
        let mut t = tokio::net::TcpStream::connect(s).await.unwrap();
        let _ = t.write_all(junk).await;
    }
    eprintln!("burst of 10,000 packets sent in {:?}", started.elapsed());
    assert!(env.dns.process().is_running(), "the server died under the burst");
    wait_answer(s, "web.shop.svc.cluster.local.", RecordType::A, &["10.96.7.7"]).await;
    let m = ask_tcp(s, "db-0.db.shop.svc.cluster.local.", RecordType::A).await;
    assert_eq!(data(&m), ["10.88.0.5"]);
}

/// An upstream that never answers: names outside the zone are SERVFAIL,
/// within the forward deadline (2 s) and a generous bound, not hanging.
#[tokio::test]
async fn offline_forwarding_fails_fast_with_servfail() {
    let (env, _hole) = env().await;
    let s = env.dns.addr;
    let t = Instant::now();
    let m = ask(s, "example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
    // A closed port refuses at once: SERVFAIL as well.
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let closed = format!("127.0.0.1:{}", free_port());
    let zone = tempfile::NamedTempFile::new().unwrap();
    let d = Dns::start(None, listen, &["--static-zone", zone.path().to_str().unwrap(), "--upstream", &closed]).await;
    let m = ask(d.addr, "example.org.", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    // In-zone names never wait on the upstream.
    let m = ask(d.addr, "nope.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

/// A working upstream's answer is passed back (a loopback fake resolver).
#[tokio::test]
async fn other_names_are_forwarded_to_the_upstream() {
    let up = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let up_addr = up.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0; 1500];
        while let Ok((n, from)) = up.recv_from(&mut buf).await {
            let Ok(q) = Message::from_vec(&buf[..n]) else { continue };
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.metadata.recursion_available = true;
            r.add_queries(q.queries.clone());
            r.add_answer(hickory_proto::rr::Record::from_rdata(
                q.queries[0].name().clone(),
                60,
                hickory_proto::rr::RData::A("192.0.2.80".parse().unwrap()),
            ));
            let _ = up.send_to(&r.to_vec().unwrap(), from).await;
        }
    });
    let zone = tempfile::NamedTempFile::new().unwrap();
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let d = Dns::start(None, listen, &["--static-zone", zone.path().to_str().unwrap(), "--upstream", &up_addr.to_string()]).await;
    let m = ask(d.addr, "www.example.net.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(data(&m), ["192.0.2.80"]);
    assert!(!m.metadata.authoritative);
}
