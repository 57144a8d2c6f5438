//! This node as the API sees it: the Node object, its capacity, heartbeats and Lease.

pub mod capacity;
pub mod status;
