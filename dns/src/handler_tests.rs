//! The handler with hickory messages built in memory: no sockets, except
//! the forwarding cases' loopback "upstreams".

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hickory_server::net::runtime::TokioTime;
use hickory_server::net::NetError;
use hickory_server::proto::op::{Message, MessageType, Query};
use hickory_server::proto::rr::Name;
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::zone_handler::MessageResponse;

use super::*;
use crate::state::ClusterState;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut bytes = Vec::new();
        let mut enc = BinEncoder::new(&mut bytes);
        let info = response.destructive_emit(&mut enc)?;
        *self.0.lock().unwrap() = Some(bytes);
        Ok(info)
    }
}

fn handler(upstreams: Vec<SocketAddr>) -> Handler {
    let mut st = ClusterState::default();
    st.apply_service(
        &serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]}
        }))
        .unwrap(),
    );
    Handler {
        zone: Zone::new("cluster.local", 30),
        state: Arc::new(RwLock::new(st)),
        forwarder: Forwarder::new(upstreams, Duration::from_millis(500)),
        metrics: Arc::new(Metrics::new("dns://test".into())),
    }
}

fn query(name: &str, t: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 4242;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_str(name).unwrap(), t));
    m.to_vec().unwrap()
}

async fn ask(h: &Handler, bytes: Vec<u8>, proto: Protocol) -> Message {
    let req = Request::from_bytes(bytes, "127.0.0.1:5353".parse().unwrap(), proto).unwrap();
    let cap = Capture::default();
    h.handle_request::<_, TokioTime>(&req, cap.clone()).await;
    let bytes = cap.0.lock().unwrap().take().expect("no response sent");
    Message::from_vec(&bytes).unwrap()
}

#[tokio::test]
async fn zone_answers_are_authoritative_and_keep_the_id() {
    let h = handler(vec![]);
    let m = ask(&h, query("kubernetes.default.svc.cluster.local.", RecordType::A), Protocol::Udp).await;
    assert_eq!(m.metadata.id, 4242);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert!(m.metadata.authoritative);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers[0].data.to_string(), "10.96.0.1");
    let m = ask(&h, query("nope.default.svc.cluster.local.", RecordType::A), Protocol::Tcp).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    let metrics = h.metrics.encode();
    assert!(metrics.contains("coredns_dns_requests_total{server=\"dns://test\",zone=\"cluster.local.\",proto=\"tcp\""), "{metrics}");
    assert!(metrics.contains("coredns_dns_request_duration_seconds_bucket"), "{metrics}");
}

#[tokio::test]
async fn two_questions_are_formerr_and_other_opcodes_notimp() {
    let h = handler(vec![]);
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_str("a.cluster.local.").unwrap(), RecordType::A));
    m.add_query(Query::query(Name::from_str("b.cluster.local.").unwrap(), RecordType::A));
    let r = ask(&h, m.to_vec().unwrap(), Protocol::Udp).await;
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    let mut m = Message::query();
    m.metadata.op_code = OpCode::Status;
    m.add_query(Query::query(Name::from_str("a.cluster.local.").unwrap(), RecordType::A));
    let r = ask(&h, m.to_vec().unwrap(), Protocol::Udp).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NotImp);
    let r = ask(&h, query("cluster.local.", RecordType::AXFR), Protocol::Tcp).await;
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
}

#[tokio::test]
async fn without_upstream_other_names_are_servfail() {
    let h = handler(vec![]);
    let m = ask(&h, query("example.com.", RecordType::A), Protocol::Udp).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(!m.metadata.authoritative);
}

#[tokio::test]
async fn forwarded_answers_come_back_and_a_silent_upstream_is_servfail() {
    // An upstream that answers every query with 192.0.2.7.
    let up = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let up_addr = up.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0; 1500];
        while let Ok((n, from)) = up.recv_from(&mut buf).await {
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut r = Message::response(q.metadata.id, OpCode::Query);
            r.metadata.recursion_available = true;
            r.add_queries(q.queries.clone());
            r.add_answer(Record::from_rdata(
                q.queries[0].name().clone(),
                60,
                hickory_server::proto::rr::RData::A("192.0.2.7".parse().unwrap()),
            ));
            up.send_to(&r.to_vec().unwrap(), from).await.unwrap();
        }
    });
    // A black hole first: its share of the deadline runs out, the next answers.
    let hole = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let h = handler(vec![hole.local_addr().unwrap(), up_addr]);
    let m = ask(&h, query("example.com.", RecordType::A), Protocol::Udp).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.metadata.id, 4242);
    assert_eq!(m.answers[0].data.to_string(), "192.0.2.7");
    // Unknown reverse names fall through to the upstream too.
    let m = ask(&h, query("7.2.0.192.in-addr.arpa.", RecordType::PTR), Protocol::Udp).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let h = handler(vec![hole.local_addr().unwrap()]);
    let m = ask(&h, query("example.com.", RecordType::A), Protocol::Udp).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}
