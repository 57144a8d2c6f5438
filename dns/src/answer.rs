//! Answers for names in the cluster zone: a pure function from the cluster
//! state and one question to the records of a response, as the Kubernetes DNS
//! specification and CoreDNS's kubernetes plugin give them.

use std::net::IpAddr;
use std::str::FromStr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::name::{self, ZoneName};
use crate::state::{ClusterState, ServiceKind};

/// The version of the DNS schema served, for `dns-version.<zone>` TXT.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// The authoritative zone: its domain and the TTL of every record.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Lowercase, without the trailing dot (`cluster.local`).
    pub domain: String,
    pub ttl: u32,
}

/// A response's code and sections.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

/// Where a question goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// Answered from the cluster state, authoritatively.
    Answer(Answer),
    /// Not ours: forwarded to the upstream resolvers.
    Forward,
}

impl Zone {
    pub fn new(domain: &str, ttl: u32) -> Zone {
        Zone {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            ttl,
        }
    }

    fn fqdn(&self, rel: &str) -> Name {
        // Labels come from Kubernetes names (DNS-1123), so this only fails on
        // garbage in the API, which then simply has no record.
        Name::from_str(&format!("{rel}.{}.", self.domain)).unwrap_or_else(|_| Name::root())
    }

    fn origin(&self) -> Name {
        Name::from_str(&format!("{}.", self.domain)).unwrap_or_else(|_| Name::root())
    }

    /// The zone's SOA, as CoreDNS writes it.
    pub fn soa(&self, serial: u32) -> Record {
        let rdata = SOA::new(
            self.fqdn("ns.dns"),
            self.fqdn("hostmaster"),
            serial,
            7200,
            1800,
            86400,
            self.ttl,
        );
        Record::from_rdata(self.origin(), self.ttl, RData::SOA(rdata))
    }

    fn addr(&self, owner: &Name, ip: &IpAddr) -> Record {
        let rdata = match ip {
            IpAddr::V4(v4) => RData::A(A(*v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
        };
        Record::from_rdata(owner.clone(), self.ttl, rdata)
    }

    /// Answers `qname`/`qtype`; `qname` keeps the asker's case in the answer.
    pub fn lookup(&self, state: &ClusterState, qname: &Name, qtype: RecordType) -> Lookup {
        let lower = qname.to_lowercase().to_ascii();
        if name::is_reverse(&lower) {
            return match self.reverse(state, qname, &lower) {
                Some(ptrs) if matches!(qtype, RecordType::PTR | RecordType::ANY) => {
                    Lookup::Answer(self.answer(ResponseCode::NoError, ptrs, vec![]))
                }
                // Not a Service's address: the host's resolver knows it, as
                // CoreDNS falls through for in-addr.arpa and ip6.arpa.
                _ => Lookup::Forward,
            };
        }
        let Some(zn) = name::parse(&lower, &self.domain) else {
            return Lookup::Forward;
        };
        let soa = || vec![self.soa(state.serial())];
        let Some((records, additionals)) = self.records(state, qname, &zn) else {
            return Lookup::Answer(Answer {
                rcode: ResponseCode::NXDomain,
                answers: vec![],
                authorities: soa(),
                additionals: vec![],
            });
        };
        // A CNAME answers every type, as it stands for the whole name.
        let cname = records.iter().any(|r| r.record_type() == RecordType::CNAME);
        let answers: Vec<Record> = records
            .into_iter()
            .filter(|r| qtype == RecordType::ANY || cname || r.record_type() == qtype)
            .collect();
        if answers.is_empty() {
            // The name exists without data of this type: NODATA.
            return Lookup::Answer(Answer {
                rcode: ResponseCode::NoError,
                answers,
                authorities: soa(),
                additionals: vec![],
            });
        }
        let additionals = if qtype == RecordType::SRV || qtype == RecordType::ANY {
            additionals
        } else {
            vec![]
        };
        Lookup::Answer(self.answer(ResponseCode::NoError, answers, additionals))
    }

    fn answer(&self, rcode: ResponseCode, answers: Vec<Record>, additionals: Vec<Record>) -> Answer {
        Answer {
            rcode,
            answers,
            authorities: vec![],
            additionals,
        }
    }

    /// Every record at the name (and the SRV targets' addresses), or `None`
    /// when the name does not exist.
    fn records(
        &self,
        state: &ClusterState,
        owner: &Name,
        zn: &ZoneName,
    ) -> Option<(Vec<Record>, Vec<Record>)> {
        let ttl = self.ttl;
        let none = Vec::new;
        Some(match zn {
            ZoneName::Apex => (
                vec![
                    self.soa(state.serial()),
                    Record::from_rdata(owner.clone(), ttl, RData::NS(NS(self.fqdn("ns.dns")))),
                ],
                none(),
            ),
            ZoneName::DnsVersion => (
                vec![Record::from_rdata(
                    owner.clone(),
                    ttl,
                    RData::TXT(TXT::new(vec![SCHEMA_VERSION.into()])),
                )],
                none(),
            ),
            ZoneName::Root | ZoneName::SrvPrefix => (none(), none()),
            ZoneName::Namespace(ns) => {
                let is_pod = owner.to_lowercase().to_ascii().contains(".pod.");
                if !is_pod && !state.namespace_exists(ns) {
                    return None;
                }
                (none(), none())
            }
            ZoneName::Pod { ip, .. } => (vec![self.addr(owner, ip)], none()),
            ZoneName::Service { ns, service } => {
                let svc = state.service(ns, service)?;
                let records = match &svc.kind {
                    ServiceKind::ClusterIp(ips) => ips.iter().map(|ip| self.addr(owner, ip)).collect(),
                    ServiceKind::Headless => state
                        .endpoints(ns, service)
                        .iter()
                        .flat_map(|(e, _)| e.addresses.iter())
                        .map(|ip| self.addr(owner, ip))
                        .collect(),
                    ServiceKind::ExternalName(target) => {
                        let target = Name::from_str(&format!("{}.", target.trim_end_matches('.')))
                            .unwrap_or_else(|_| Name::root());
                        vec![Record::from_rdata(owner.clone(), ttl, RData::CNAME(CNAME(target)))]
                    }
                };
                (records, none())
            }
            ZoneName::Endpoint {
                ns,
                service,
                hostname,
            } => {
                state.service(ns, service)?;
                let mut records = Vec::new();
                for (e, _) in state.endpoints(ns, service) {
                    for ip in &e.addresses {
                        if endpoint_label(e.hostname.as_deref(), ip) == *hostname {
                            records.push(self.addr(owner, ip));
                        }
                    }
                }
                if records.is_empty() {
                    return None;
                }
                (records, none())
            }
            ZoneName::Srv {
                ns,
                service,
                port,
                protocol,
            } => {
                let svc = state.service(ns, service)?;
                let matches = |p: &crate::state::Port| p.name == *port && p.protocol == *protocol;
                let base = format!("{service}.{ns}.svc");
                let mut targets: Vec<(u16, Name, Vec<IpAddr>)> = Vec::new();
                match &svc.kind {
                    ServiceKind::ClusterIp(ips) => {
                        if let Some(p) = svc.ports.iter().find(|p| matches(p)) {
                            targets.push((p.port, self.fqdn(&base), ips.clone()));
                        }
                    }
                    ServiceKind::Headless => {
                        for (e, ports) in state.endpoints(ns, service) {
                            let Some(p) = ports.iter().find(|p| matches(p)) else {
                                continue;
                            };
                            for ip in &e.addresses {
                                let label = endpoint_label(e.hostname.as_deref(), ip);
                                targets.push((p.port, self.fqdn(&format!("{label}.{base}")), vec![*ip]));
                            }
                        }
                    }
                    ServiceKind::ExternalName(_) => {}
                }
                if targets.is_empty() {
                    return None;
                }
                // Equal priority, the weight shared out, as CoreDNS does.
                let weight = (100 / targets.len()).max(1) as u16;
                let mut srv = Vec::new();
                let mut extra = Vec::new();
                for (port, target, ips) in targets {
                    for ip in &ips {
                        extra.push(self.addr(&target, ip));
                    }
                    srv.push(Record::from_rdata(
                        owner.clone(),
                        ttl,
                        RData::SRV(SRV::new(0, weight, port, target)),
                    ));
                }
                (srv, extra)
            }
            ZoneName::Unknown => return None,
        })
    }

    /// PTR records for a Service's cluster IP, or a headless Service's
    /// endpoint address; `None` when no Service has the address.
    fn reverse(&self, state: &ClusterState, owner: &Name, lower: &str) -> Option<Vec<Record>> {
        let ip = name::reverse(lower)?;
        let mut out = Vec::new();
        for ((ns, svc_name), svc) in state.services() {
            match &svc.kind {
                ServiceKind::ClusterIp(ips) if ips.contains(&ip) => {
                    out.push(self.fqdn(&format!("{svc_name}.{ns}.svc")));
                }
                ServiceKind::Headless => {
                    for (e, _) in state.endpoints(ns, svc_name) {
                        if e.addresses.contains(&ip) {
                            let label = endpoint_label(e.hostname.as_deref(), &ip);
                            out.push(self.fqdn(&format!("{label}.{svc_name}.{ns}.svc")));
                        }
                    }
                }
                _ => {}
            }
        }
        if out.is_empty() {
            return None;
        }
        out.sort();
        out.dedup();
        Some(
            out.into_iter()
                .map(|n| Record::from_rdata(owner.clone(), self.ttl, RData::PTR(PTR(n))))
                .collect(),
        )
    }
}

/// An endpoint's DNS label: its hostname, else its address with dashes.
fn endpoint_label(hostname: Option<&str>, ip: &IpAddr) -> String {
    hostname.map_or_else(|| name::ip_label(ip), str::to_string)
}

#[cfg(test)]
#[path = "answer_tests.rs"]
mod tests;
