//! ferrokube-dns: the cluster DNS server, serving the names of the
//! Kubernetes DNS specification for the cluster domain as CoreDNS's
//! kubernetes plugin does, and forwarding every other name to the host's
//! resolvers.
//!
//! Start with [`answer::Zone::lookup`], the pure function from the cluster
//! state and a question to an answer; [`name`] parses the zone's names,
//! [`state`] holds the cut-down Services and EndpointSlices that
//! [`watch`] (or [`static_zone`]) feeds, [`handler`] puts it behind
//! hickory's server loop, [`forward`] asks upstream, [`metrics`] counts.

pub mod answer;
pub mod config;
pub mod forward;
pub mod handler;
pub mod metrics;
pub mod name;
pub mod server;
pub mod state;
pub mod static_zone;
pub mod watch;

pub use answer::{Answer, Lookup, Zone};
pub use config::Flags;
pub use state::{ClusterState, SharedState};
