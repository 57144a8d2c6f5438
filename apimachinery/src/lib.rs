//! Kubernetes semantics that more than one ferrokube component needs, each
//! written once and tested against upstream's documented behaviour.
//!
//! Start with the module named after the concept:
//! - [`quantity`]: `resource.Quantity` parsing, exact comparison and canonical form;
//! - [`labels`]: label selectors, parsed from strings or from `metav1.LabelSelector`;
//! - [`fields`]: field selectors (`=`, `==`, `!=`);
//! - [`taints`]: which tolerations tolerate which taints;
//! - [`nodeaffinity`]: node selector terms against a node's labels and name;
//! - [`volume`]: claims and volumes: which volume satisfies a claim, the binding annotations;
//! - [`qos`]: a pod's QoS class;
//! - [`quota`]: what pods, services, claims and other objects charge to a ResourceQuota;
//! - [`ports`]: named container ports for probes and Service targetPorts;
//! - [`phase`]: terminal pod phases;
//! - [`duration`]: Go `time.ParseDuration` for flags;
//! - [`cron`]: CronJob schedules (robfig/cron's syntax) and `spec.timeZone`;
//! - [`events`]: core/v1 Events as upstream's recorder writes them;
//! - [`resolvconf`]: the host's `/etc/resolv.conf`, for pods' DNS and the cluster DNS forwarder;
//! - [`kubeconfig`] (feature `client`): a `kube::Client` from a kubeconfig file;
//! - [`secure_serving`] (feature `serving`): HTTPS with delegated authentication and
//!   authorization for a component's own port.

pub mod cron;
pub mod duration;
pub mod events;
pub mod fields;
#[cfg(feature = "client")]
pub mod kubeconfig;
pub mod labels;
pub mod nodeaffinity;
pub mod phase;
pub mod ports;
pub mod qos;
pub mod quota;
pub mod quantity;
pub mod rbac;
pub mod resolvconf;
#[cfg(feature = "serving")]
pub mod secure_serving;
pub mod taints;
pub mod volume;

pub use quantity::Quantity;
