//! ferrokube-scheduler: binds pending pods to nodes the way kube-scheduler
//! does.
//!
//! Where to start:
//! - [`framework`]: extension-point traits, CycleState, Status, NodeInfo;
//! - [`plugins`]: the in-tree filter and score plugins and their registry;
//! - [`profile`]: profiles from a KubeSchedulerConfiguration (`--config`);
//! - [`algorithm`]: one scheduling attempt (pure, no I/O);
//! - [`queue`]: active, backoff and unschedulable pools;
//! - [`cache`]: nodes plus bound and assumed pods, and snapshots of them;
//! - [`scheduler`]: the loop that ties these to the API (bind, events,
//!   status) through the [`api`] traits, events through [`events`];
//! - [`server`]: /healthz and /metrics.

pub mod algorithm;
pub mod api;
pub mod cache;
pub mod events;
pub mod framework;
pub mod informer;
pub mod memory;
pub mod metrics;
pub mod plugins;
pub mod profile;
pub mod queue;
pub mod resources;
pub mod scheduler;
pub mod server;
pub mod testing;
