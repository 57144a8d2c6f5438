//! Node selector terms for the plugins that match nodes; the matching
//! itself lives in the shared apimachinery crate (the PV controller uses it
//! too), as label selectors and tolerations do.

pub use apimachinery::nodeaffinity::{node_term_matches, validate_node_terms};
