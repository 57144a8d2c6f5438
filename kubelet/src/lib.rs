//! ferrokube's kubelet: runs the pods bound to its node as containerd containers.
//!
//! Start at [`pod_worker`], which drives one pod through sync → terminating →
//! terminated using the pure plan from [`pod_actions`] and the
//! [`runtime::Runtime`] boundary.

pub mod backoff;
pub mod config;
pub mod container_spec;
pub mod container_start;
pub mod context;
pub mod env;
pub mod etc_hosts;
pub mod events;
pub mod exec;
pub mod grpc_probe;
pub mod http_get;
pub mod image_ref;
pub mod ktime;
pub mod lifecycle;
pub mod logs;
pub mod network;
pub mod node_status;
pub mod pod_actions;
pub mod pod_source;
pub mod pod_status;
pub mod pod_worker;
pub mod prober;
pub mod runtime;
pub mod security_context;
pub mod server;
pub mod service_env;
pub mod status_manager;
pub mod termination_message;
pub mod volumes;
