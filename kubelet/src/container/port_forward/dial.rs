//! Connecting to a port of a pod: to localhost inside the pod's network namespace, as
//! containerd's CRI does for port-forward. The OS boundary is the [`PortDialer`] trait so
//! that sessions are tested against plain loopback listeners.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// containerd's wording, which kubectl users see after "error forwarding port".
    #[error("failed to connect to localhost:{port} inside namespace {netns:?}, IPv4: {v4} IPv6 {v6} ")]
    Connect { port: u16, netns: String, v4: std::io::Error, v6: std::io::Error },
    #[error("entering network namespace {path}: {source}")]
    Netns { path: String, #[source] source: std::io::Error },
    #[error("the connecting thread ended without an answer")]
    Thread,
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens TCP connections to ports of one pod.
#[async_trait::async_trait]
pub trait PortDialer: Send + Sync + 'static {
    async fn dial(&self, port: u16) -> Result<TcpStream, DialError>;
}

/// How long one connect may take; a port that drops SYNs must not hold the stream forever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The pod's localhost: inside `netns` (a pinned namespace file), or the node's own
/// for host-network pods (`netns: None`).
pub struct PodLocalhost {
    pub netns: Option<PathBuf>,
}

#[async_trait::async_trait]
impl PortDialer for PodLocalhost {
    async fn dial(&self, port: u16) -> Result<TcpStream, DialError> {
        let netns = self.netns.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Namespaces are per thread: a thread of its own enters the pod's and ends after
        // connecting, so no pooled thread is left in it. The socket keeps the namespace
        // it was made in.
        std::thread::spawn(move || {
            let _ = tx.send(connect_in(netns, port));
        });
        let std = rx.await.map_err(|_| DialError::Thread)??;
        std.set_nonblocking(true)?;
        Ok(TcpStream::from_std(std)?)
    }
}

fn connect_in(netns: Option<PathBuf>, port: u16) -> Result<std::net::TcpStream, DialError> {
    let label = match &netns {
        Some(path) => {
            let enter = || -> std::io::Result<()> {
                let f = std::fs::File::open(path)?;
                nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
            };
            enter().map_err(|source| DialError::Netns { path: path.display().to_string(), source })?;
            path.display().to_string()
        }
        None => "host".to_string(),
    };
    let v4 = match std::net::TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), CONNECT_TIMEOUT) {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    match std::net::TcpStream::connect_timeout(&SocketAddr::from((Ipv6Addr::LOCALHOST, port)), CONNECT_TIMEOUT) {
        Ok(s) => Ok(s),
        Err(v6) => Err(DialError::Connect { port, netns: label, v4, v6 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn host_network_dials_the_nodes_loopback() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let s = PodLocalhost { netns: None }.dial(port).await.unwrap();
        assert_eq!(s.peer_addr().unwrap().port(), port);
        drop(l);
        // Nothing listens there any more: both families are tried and named.
        let e = PodLocalhost { netns: None }.dial(port).await.unwrap_err().to_string();
        assert!(e.starts_with(&format!("failed to connect to localhost:{port} inside namespace \"host\", IPv4: ")), "{e}");
    }

    #[tokio::test]
    async fn a_missing_namespace_file_is_reported() {
        let e = PodLocalhost { netns: Some("/nonexistent/net".into()) }.dial(80).await.unwrap_err();
        assert!(matches!(e, DialError::Netns { .. }), "{e}");
    }
}
