//! A pod on this node: where desired pods come from ([`source`]), the worker
//! that drives each one ([`worker`]), the pure plan it follows ([`actions`]),
//! lifecycle hooks ([`lifecycle`]) and the status it reports ([`status`]).

pub mod actions;
pub mod lifecycle;
pub mod source;
pub mod status;
pub mod worker;
