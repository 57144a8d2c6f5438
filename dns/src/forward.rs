//! Names outside the cluster zone go to the host's resolvers (CoreDNS's
//! `forward . /etc/resolv.conf`), within one short deadline in all, so an
//! offline host answers SERVFAIL quickly instead of leaving pods hanging.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream resolver configured")]
    NoUpstream,
    #[error("no upstream answered within {0:?}")]
    Timeout(Duration),
    #[error("upstream {upstream}: {source}")]
    Io {
        upstream: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("upstream {upstream} sent an unreadable answer: {message}")]
    BadAnswer { upstream: SocketAddr, message: String },
    #[error("more than {0} queries are being forwarded already")]
    Busy(usize),
}

/// At most this many forwarded queries at once (CoreDNS's forward
/// `max_concurrent` is 1000); a burst of names nobody answers must not use
/// up the process's sockets.
pub const MAX_CONCURRENT: usize = 512;

/// The upstream resolvers, tried in order within one deadline.
#[derive(Debug, Clone)]
pub struct Forwarder {
    pub upstreams: Vec<SocketAddr>,
    pub timeout: Duration,
    pub in_flight: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Forwarder {
    pub fn new(upstreams: Vec<SocketAddr>, timeout: Duration) -> Forwarder {
        Forwarder {
            upstreams,
            timeout,
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT)),
        }
    }
}

impl Forwarder {
    /// Upstreams from flags (`IP` or `IP:PORT`), else the nameservers of
    /// `resolv_conf`; `skip` (our own listen addresses) are dropped, so a
    /// host that names us as its resolver makes no loop.
    pub fn from_config(
        flags: &[String],
        resolv_conf: &std::path::Path,
        skip: &[SocketAddr],
        timeout: Duration,
    ) -> Result<Forwarder, String> {
        let names = if flags.is_empty() {
            apimachinery::resolvconf::ResolvConf::read(resolv_conf)
                .map_err(|e| format!("reading {}: {e}", resolv_conf.display()))?
                .nameservers
        } else {
            flags.to_vec()
        };
        let mut upstreams = Vec::new();
        for n in names.iter().filter(|n| n.as_str() != "none") {
            let addr = n
                .parse::<SocketAddr>()
                .or_else(|_| n.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| format!("upstream {n:?} is not IP or IP:PORT"))?;
            if !skip.contains(&addr) {
                upstreams.push(addr);
            }
        }
        Ok(Forwarder::new(upstreams, timeout))
    }

    /// Sends the query's bytes to each upstream in turn until one answers;
    /// over TCP when `tcp` (the client asked over TCP, or UDP was truncated).
    pub async fn forward(&self, query: &[u8], tcp: bool) -> Result<Message, ForwardError> {
        if self.upstreams.is_empty() {
            return Err(ForwardError::NoUpstream);
        }
        let Ok(_permit) = self.in_flight.try_acquire() else {
            return Err(ForwardError::Busy(MAX_CONCURRENT));
        };
        let deadline = Instant::now() + self.timeout;
        let mut last = ForwardError::Timeout(self.timeout);
        for (i, up) in self.upstreams.iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            // An equal share of what is left, so a dead first upstream
            // leaves time for the next.
            let share = left / (self.upstreams.len() - i) as u32;
            let r = tokio::time::timeout(share, exchange(*up, query, tcp)).await;
            match r {
                Ok(Ok(bytes)) => {
                    let msg = Message::from_vec(&bytes).map_err(|e| ForwardError::BadAnswer {
                        upstream: *up,
                        message: e.to_string(),
                    })?;
                    if msg.metadata.truncation && !tcp {
                        if let Ok(Ok(bytes)) = tokio::time::timeout(
                            deadline.saturating_duration_since(Instant::now()),
                            exchange(*up, query, true),
                        )
                        .await
                        {
                            if let Ok(full) = Message::from_vec(&bytes) {
                                return Ok(full);
                            }
                        }
                    }
                    return Ok(msg);
                }
                Ok(Err(e)) => last = e,
                Err(_) => last = ForwardError::Timeout(self.timeout),
            }
        }
        Err(last)
    }
}

async fn exchange(up: SocketAddr, query: &[u8], tcp: bool) -> Result<Vec<u8>, ForwardError> {
    let io = |source| ForwardError::Io {
        upstream: up,
        source,
    };
    if tcp {
        let mut s = TcpStream::connect(up).await.map_err(io)?;
        let len = u16::try_from(query.len()).map_err(|_| io(std::io::ErrorKind::InvalidInput.into()))?;
        let mut buf = Vec::with_capacity(query.len() + 2);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(query);
        s.write_all(&buf).await.map_err(io)?;
        let n = s.read_u16().await.map_err(io)?;
        let mut out = vec![0; n as usize];
        s.read_exact(&mut out).await.map_err(io)?;
        return Ok(out);
    }
    let local: SocketAddr = if up.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    // A connected socket of its own: only this upstream's answer reaches it,
    // and a closed port fails at once (ICMP refused) instead of timing out.
    let sock = UdpSocket::bind(local).await.map_err(io)?;
    sock.connect(up).await.map_err(io)?;
    sock.send(query).await.map_err(io)?;
    let id = query.get(..2).map(|b| [b[0], b[1]]);
    let mut buf = vec![0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).await.map_err(io)?;
        // A stray datagram with another ID is not our answer.
        if n >= 2 && Some([buf[0], buf[1]]) == id {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}
