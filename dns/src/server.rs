//! Binds the listeners and runs hickory's server loop with our handler.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_server::Server;

use crate::answer::Zone;
use crate::forward::Forwarder;
use crate::handler::Handler;
use crate::metrics::Metrics;
use crate::state::{ClusterState, SharedState};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("binding {proto} {addr}: {source}")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
    #[error("DNS server: {0}")]
    Server(String),
}

/// A TCP client that sends nothing for this long is dropped.
const TCP_IDLE: Duration = Duration::from_secs(5);

/// Everything the server needs, before anything is bound.
pub struct Setup {
    pub zone: Zone,
    pub forwarder: Forwarder,
    pub listen: Vec<SocketAddr>,
    pub state: SharedState,
    pub metrics: Arc<Metrics>,
}

impl Setup {
    pub fn from_flags(f: &crate::Flags) -> Result<Setup, ServeError> {
        let forwarder = Forwarder::from_config(
            &f.upstream,
            &f.resolv_conf,
            &f.listen,
            f.forward_timeout().map_err(ServeError::Config)?,
        )
        .map_err(ServeError::Config)?;
        let server = f.listen.first().map_or(String::new(), |a| format!("dns://{a}"));
        Ok(Setup {
            zone: Zone::new(&f.cluster_domain, f.ttl),
            forwarder,
            listen: f.listen.clone(),
            state: Arc::new(RwLock::new(ClusterState::default())),
            metrics: Arc::new(Metrics::new(server)),
        })
    }

    /// Binds UDP and TCP on every listen address and serves until an error.
    pub async fn serve(self) -> Result<(), ServeError> {
        let handler = Handler {
            zone: self.zone,
            state: self.state,
            forwarder: self.forwarder,
            metrics: self.metrics,
        };
        let mut server = Server::new(handler);
        for addr in &self.listen {
            let udp = tokio::net::UdpSocket::bind(addr).await.map_err(|source| ServeError::Bind {
                proto: "udp",
                addr: *addr,
                source,
            })?;
            let tcp = tokio::net::TcpListener::bind(addr).await.map_err(|source| ServeError::Bind {
                proto: "tcp",
                addr: *addr,
                source,
            })?;
            server.register_socket(udp);
            server.register_listener(tcp, TCP_IDLE, 64);
        }
        tracing::info!(listen = ?self.listen, "serving DNS");
        server
            .block_until_done()
            .await
            .map_err(|e| ServeError::Server(e.to_string()))
    }
}
