//! One strategy object per kind (upstream's per-resource `strategy.go` and printers): its
//! defaults, what create resets, validation, delete semantics and `kubectl get` columns. A row
//! of the resource table (`crate::resources`) names its strategy; nothing else chooses by kind.

mod authentication;
mod autoscaling;
mod config;
mod jobs;
mod misc;
mod coordination;
mod cronjobs;
mod endpoints;
mod events;
mod namespaces;
mod networking;
mod nodes;
mod pods;
mod quotas;
pub mod rbac;
mod replicationcontrollers;
mod scheduling;
mod serviceaccounts;
mod services;
mod storage;
mod volumes;
mod volume_attachments;
mod workloads;

pub use authentication::Reviews;
pub use autoscaling::{v1 as autoscaling_v1, HorizontalPodAutoscalers};
pub use volume_attachments::VolumeAttachments;
pub use config::{ConfigMaps, Secrets};
pub use coordination::Leases;
pub use cronjobs::CronJobs;
pub use jobs::Jobs;
pub use misc::{PodTemplates, RuntimeClasses};
pub use endpoints::{EndpointSlices, Endpoints};
pub use events::{Events, EventsV1};
pub use namespaces::Namespaces;
pub use networking::{IngressClasses, Ingresses, NetworkPolicies};
pub use nodes::Nodes;
pub use pods::Pods;
pub use quotas::{LimitRanges, ResourceQuotas};
pub use rbac::{ClusterRoleBindings, ClusterRoles, RoleBindings, Roles};
pub use replicationcontrollers::ReplicationControllers;
pub use scheduling::PriorityClasses;
pub use serviceaccounts::ServiceAccounts;
pub use services::{ServiceAllocations, Services};
pub use storage::{CsiDrivers, CsiNodes, StorageClasses};
pub use volumes::{PersistentVolumeClaims, PersistentVolumes};
pub use workloads::{PodDisruptionBudgets, DAEMON_SETS, DEPLOYMENTS, REPLICA_SETS, STATEFUL_SETS};

/// A kind with no rules of its own: defaults, printing and deletion as every kind has them.
pub struct Plain;

impl crate::registry::strategy::Strategy for Plain {}
