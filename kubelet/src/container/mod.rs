//! One container of a pod: its OCI spec, environment, security context and
//! `/etc/hosts`, how it is started, its logs, exec and attach sessions (over WebSocket or
//! SPDY), port forwarding and termination message.

pub mod attach;
pub mod env;
pub mod etc_hosts;
pub mod exec;
pub mod logs;
pub mod port_forward;
pub mod security_context;
pub mod service_env;
pub mod spdy;
pub mod spec;
pub mod start;
pub mod streaming;
pub mod termination_message;
