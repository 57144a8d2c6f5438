//! ferrokube-proxy: programs each node's kernel from Services and EndpointSlices, as
//! kube-proxy's nftables mode does. Start at [`state`] (what the API says, reduced to what
//! the dataplane needs), then [`backend::ProxyBackend`] (one sync of that state) and its
//! nftables implementation in [`nftables`].

pub mod backend;
pub mod bench;
pub mod conntrack;
pub mod metrics;
pub mod nftables;
pub mod state;
pub mod watch;

pub use backend::ProxyBackend;
pub use state::ServiceState;
