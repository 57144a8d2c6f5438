//! ferrokube's kubelet: runs the pods bound to its node as containerd containers.
//!
//! Start at [`pod_worker`], which drives one pod through sync → terminating →
//! terminated using the pure plan from [`pod_actions`] and the
//! [`runtime::Runtime`] boundary.

pub mod image_ref;
pub mod runtime;
