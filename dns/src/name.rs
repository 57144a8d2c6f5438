//! Query names in the cluster zone, as the Kubernetes DNS specification
//! (kubernetes/dns docs/specification.md) lays them out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a name under the cluster domain asks for. Labels are lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneName {
    /// The zone itself (`cluster.local.`): SOA and NS.
    Apex,
    /// `dns-version.<zone>`: the schema version TXT record.
    DnsVersion,
    /// `svc.<zone>` or `pod.<zone>`: empty non-terminals.
    Root,
    /// `<ns>.svc.<zone>` or `<ns>.pod.<zone>`.
    Namespace(String),
    /// `<service>.<ns>.svc.<zone>`.
    Service { ns: String, service: String },
    /// `<hostname>.<service>.<ns>.svc.<zone>`: one endpoint of a headless Service.
    Endpoint {
        ns: String,
        service: String,
        hostname: String,
    },
    /// `_<port>._<proto>.<service>.<ns>.svc.<zone>`.
    Srv {
        ns: String,
        service: String,
        port: String,
        protocol: String,
    },
    /// `_<port>._<proto>.<ns>.svc.<zone>` and `_<proto>.<service>.<ns>.svc.<zone>`: empty non-terminals.
    SrvPrefix,
    /// `a-b-c-d.<ns>.pod.<zone>` (CoreDNS `pods insecure`: any address answers).
    Pod { ns: String, ip: IpAddr },
    /// Anything else under the zone: NXDOMAIN.
    Unknown,
}

/// Parses `name` (lowercase, absolute or not) against `zone` (lowercase, no
/// trailing dot). `None` when the name is outside the zone.
pub fn parse(name: &str, zone: &str) -> Option<ZoneName> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let rest = if name == zone {
        ""
    } else {
        name.strip_suffix(zone)?.strip_suffix('.')?
    };
    if rest.is_empty() {
        return Some(ZoneName::Apex);
    }
    let labels: Vec<&str> = rest.split('.').collect();
    Some(match labels.as_slice() {
        ["dns-version"] => ZoneName::DnsVersion,
        ["svc"] | ["pod"] => ZoneName::Root,
        [ns, "svc"] | [ns, "pod"] => ZoneName::Namespace(ns.to_string()),
        [service, ns, "svc"] => ZoneName::Service {
            ns: ns.to_string(),
            service: service.to_string(),
        },
        [port, proto, service, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
            ZoneName::Srv {
                ns: ns.to_string(),
                service: service.to_string(),
                port: port[1..].to_string(),
                protocol: proto[1..].to_string(),
            }
        }
        [first, _, _, "svc"] if first.starts_with('_') => ZoneName::SrvPrefix,
        [hostname, service, ns, "svc"] => ZoneName::Endpoint {
            ns: ns.to_string(),
            service: service.to_string(),
            hostname: hostname.to_string(),
        },
        [ip, ns, "pod"] => match dashed_ip(ip) {
            Some(ip) => ZoneName::Pod {
                ns: ns.to_string(),
                ip,
            },
            None => ZoneName::Unknown,
        },
        _ => ZoneName::Unknown,
    })
}

/// `10-88-0-5` -> 10.88.0.5, `fd00--5` -> fd00::5 (dashes for dots or colons).
pub fn dashed_ip(label: &str) -> Option<IpAddr> {
    if let Ok(v4) = label.replace('-', ".").parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    label.replace('-', ":").parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// The label CoreDNS gives an endpoint without a hostname: its address with dashes.
pub fn ip_label(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The address a full `in-addr.arpa` / `ip6.arpa` name stands for.
pub fn reverse(name: &str) -> Option<IpAddr> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut octets: Vec<u8> = Vec::with_capacity(4);
        for l in rest.split('.') {
            // Leading zeros are not an address's labels.
            if l.is_empty() || (l.len() > 1 && l.starts_with('0')) {
                return None;
            }
            octets.push(l.parse().ok()?);
        }
        let [d, c, b, a] = octets.as_slice() else {
            return None;
        };
        return Some(IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d)));
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<&str> = rest.split('.').collect();
    if nibbles.len() != 32 {
        return None;
    }
    let mut v: u128 = 0;
    for n in nibbles.iter().rev() {
        if n.len() != 1 {
            return None;
        }
        v = (v << 4) | u128::from_str_radix(n, 16).ok()?;
    }
    Some(IpAddr::V6(Ipv6Addr::from(v)))
}

/// Whether `name` is under a reverse zone at all.
pub fn is_reverse(name: &str) -> bool {
    let n = name.strip_suffix('.').unwrap_or(name);
    n.ends_with("in-addr.arpa") || n.ends_with("ip6.arpa")
}

/// The reverse name of an address (for tests and PTR owners).
pub fn reverse_name(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::new();
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s + "ip6.arpa."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Z: &str = "cluster.local";

    #[test]
    fn service_and_endpoint_names() {
        assert_eq!(parse("cluster.local.", Z), Some(ZoneName::Apex));
        assert_eq!(parse("dns-version.cluster.local.", Z), Some(ZoneName::DnsVersion));
        assert_eq!(
            parse("web.shop.svc.cluster.local.", Z),
            Some(ZoneName::Service {
                ns: "shop".into(),
                service: "web".into()
            })
        );
        assert_eq!(
            parse("web-0.web.shop.svc.cluster.local", Z),
            Some(ZoneName::Endpoint {
                ns: "shop".into(),
                service: "web".into(),
                hostname: "web-0".into()
            })
        );
        assert_eq!(
            parse("_http._tcp.web.shop.svc.cluster.local.", Z),
            Some(ZoneName::Srv {
                ns: "shop".into(),
                service: "web".into(),
                port: "http".into(),
                protocol: "tcp".into()
            })
        );
        assert_eq!(parse("_tcp.web.shop.svc.cluster.local.", Z), Some(ZoneName::SrvPrefix));
        assert_eq!(parse("shop.svc.cluster.local.", Z), Some(ZoneName::Namespace("shop".into())));
        assert_eq!(parse("svc.cluster.local.", Z), Some(ZoneName::Root));
        assert_eq!(parse("a.b.c.d.e.svc.cluster.local.", Z), Some(ZoneName::Unknown));
        assert_eq!(parse("nope.cluster.local.", Z), Some(ZoneName::Unknown));
    }

    #[test]
    fn names_outside_the_zone_are_not_ours() {
        assert_eq!(parse("example.com.", Z), None);
        assert_eq!(parse("notcluster.local.", Z), None);
        assert_eq!(parse("local.", Z), None);
    }

    #[test]
    fn pod_names_carry_their_address() {
        assert_eq!(
            parse("10-88-0-5.shop.pod.cluster.local.", Z),
            Some(ZoneName::Pod {
                ns: "shop".into(),
                ip: "10.88.0.5".parse().unwrap()
            })
        );
        assert_eq!(
            parse("fd00--5.shop.pod.cluster.local.", Z),
            Some(ZoneName::Pod {
                ns: "shop".into(),
                ip: "fd00::5".parse().unwrap()
            })
        );
        assert_eq!(parse("10-88-0.shop.pod.cluster.local.", Z), Some(ZoneName::Unknown));
        assert_eq!(parse("10-88-0-300.shop.pod.cluster.local.", Z), Some(ZoneName::Unknown));
        assert_eq!(ip_label(&"10.88.0.5".parse().unwrap()), "10-88-0-5");
    }

    #[test]
    fn reverse_names_round_trip() {
        for ip in ["10.96.0.10", "fd00::1:2"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(reverse(&reverse_name(&ip)), Some(ip));
        }
        assert_eq!(reverse("10.0.96.10.in-addr.arpa."), Some("10.96.0.10".parse().unwrap()));
        assert_eq!(reverse("0.96.10.in-addr.arpa."), None, "a partial name is a zone cut");
        assert_eq!(reverse("010.0.96.10.in-addr.arpa."), None);
        assert!(is_reverse("96.10.in-addr.arpa."));
    }
}
