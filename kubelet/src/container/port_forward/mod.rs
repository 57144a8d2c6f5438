//! pods/portforward on the kubelet: SPDY/3.1 with the `portforward.k8s.io` stream
//! protocol, the one client-go speaks (tunnelled through the apiserver's WebSocket since
//! Kubernetes 1.30), forwarding to localhost in the pod's network namespace.

pub mod dial;
pub mod session;
pub mod websocket;

pub use dial::{DialError, PodLocalhost, PortDialer};
pub use session::{serve, Target};

/// The stream protocol negotiated in `X-Stream-Protocol-Version`.
pub const PROTOCOL_V1: &str = "portforward.k8s.io";
pub use crate::container::spdy::SPDY_UPGRADE;
