//! The request handler behind hickory's server loop: one question in, the
//! cluster zone's answer (or the upstream's) out. hickory itself answers
//! FORMERR to what it cannot parse.

use std::sync::Arc;
use std::time::Instant;

use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::answer::{Lookup, Zone};
use crate::forward::Forwarder;
use crate::metrics::{Metrics, Observation};
use crate::state::SharedState;

/// Largest UDP answer we offer with EDNS (the 2020 DNS flag day's size).
const EDNS_PAYLOAD: u16 = 1232;

pub struct Handler {
    pub zone: Zone,
    pub state: SharedState,
    pub forwarder: Forwarder,
    pub metrics: Arc<Metrics>,
}

/// What was sent, for the metrics.
struct Sent {
    info: ResponseInfo,
    zone: &'static str,
}

fn info_of(metadata: Metadata) -> ResponseInfo {
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

impl Handler {
    async fn respond<R: ResponseHandler>(&self, request: &Request, response: &mut R) -> Sent {
        let edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().clamp(512, EDNS_PAYLOAD));
            e
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = &edns {
            builder.edns(e);
        }
        let error = |rcode: ResponseCode, zone| (rcode, zone);
        let fail = match (request.metadata.op_code, request.request_info()) {
            (OpCode::Query, Ok(info)) => {
                let q = info.query.original();
                if q.query_class() != DNSClass::IN && q.query_class() != DNSClass::ANY {
                    Some(error(ResponseCode::Refused, "."))
                } else if matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR) {
                    // No zone transfers, as CoreDNS without the transfer plugin.
                    Some(error(ResponseCode::Refused, "."))
                } else {
                    None
                }
            }
            (OpCode::Query, Err(_)) => Some(error(ResponseCode::FormErr, ".")),
            _ => Some(error(ResponseCode::NotImp, ".")),
        };
        if let Some((rcode, zone)) = fail {
            let msg = builder.error_msg(&request.metadata, rcode);
            return Sent {
                info: send(response, msg, &request.metadata, rcode).await,
                zone,
            };
        }
        let query = request.queries.queries()[0].original().clone();
        let lookup = {
            // A poisoned lock still holds a usable state: a panicking writer
            // left at worst one object half-applied.
            let st = self.state.read().unwrap_or_else(|e| e.into_inner());
            self.zone.lookup(&st, query.name(), query.query_type())
        };
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        match lookup {
            Lookup::Answer(a) => {
                metadata.authoritative = true;
                metadata.response_code = a.rcode;
                let msg = builder.build(metadata, &a.answers, &a.authorities, None::<&Record>, &a.additionals);
                Sent {
                    info: send(response, msg, &request.metadata, a.rcode).await,
                    zone: "zone",
                }
            }
            Lookup::Forward => {
                let tcp = matches!(request.protocol(), Protocol::Tcp);
                match self.forwarder.forward(request.as_slice(), tcp).await {
                    Ok(up) => {
                        self.metrics.forwarded("upstream", &up.metadata.response_code.to_string());
                        metadata.response_code = up.metadata.response_code;
                        metadata.authoritative = up.metadata.authoritative;
                        metadata.authentic_data = up.metadata.authentic_data;
                        let msg = builder.build(
                            metadata,
                            &up.answers,
                            &up.authorities,
                            None::<&Record>,
                            &up.additionals,
                        );
                        Sent {
                            info: send(response, msg, &request.metadata, metadata.response_code).await,
                            zone: ".",
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, name = %query.name(), "forwarding failed");
                        self.metrics.forwarded("upstream", "error");
                        // Over the concurrency limit: REFUSED, as CoreDNS's forward.
                        let rcode = if matches!(e, crate::forward::ForwardError::Busy(_)) {
                            ResponseCode::Refused
                        } else {
                            ResponseCode::ServFail
                        };
                        let msg = builder.error_msg(&request.metadata, rcode);
                        Sent {
                            info: send(response, msg, &request.metadata, rcode).await,
                            zone: ".",
                        }
                    }
                }
            }
        }
    }
}

async fn send<'a, R: ResponseHandler>(
    response: &mut R,
    msg: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    request: &Metadata,
    rcode: ResponseCode,
) -> ResponseInfo {
    match response.send_response(msg).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, "sending the response failed");
            let mut m = Metadata::response_from_request(request);
            m.response_code = rcode;
            info_of(m)
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let start = Instant::now();
        let sent = self.respond(request, &mut response).await;
        let qtype = request
            .queries
            .queries()
            .first()
            .map_or("other".to_string(), |q| q.query_type().to_string());
        let zone = if sent.zone == "zone" {
            format!("{}.", self.zone.domain)
        } else {
            ".".to_string()
        };
        self.metrics.observe(Observation {
            zone: &zone,
            proto: if matches!(request.protocol(), Protocol::Tcp) {
                "tcp"
            } else {
                "udp"
            },
            family: if request.src().is_ipv4() { "1" } else { "2" },
            qtype,
            rcode: sent.info.response_code.to_string(),
            seconds: start.elapsed().as_secs_f64(),
        });
        sent.info
    }
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
