//! The registry: plugin name to constructor, and the default plugin set
//! (order of filters and weights of scores as upstream's defaults).

use std::sync::Arc;

use crate::framework::Plugin;

use super::*;

/// Builds a plugin from its pluginConfig args (None when absent).
pub type Factory = fn(Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String>;

fn args<T: serde::de::DeserializeOwned + Default>(v: Option<&serde_json::Value>) -> Result<T, String> {
    match v {
        None => Ok(T::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| e.to_string()),
    }
}

pub fn factory(name: &str) -> Option<Factory> {
    let f: Factory = match name {
        node_unschedulable::NAME => |_| Ok(Arc::new(node_unschedulable::NodeUnschedulable)),
        node_name::NAME => |_| Ok(Arc::new(node_name::NodeName)),
        taint_toleration::NAME => |_| Ok(Arc::new(taint_toleration::TaintToleration)),
        node_affinity::NAME => |_| Ok(Arc::new(node_affinity::NodeAffinity)),
        node_ports::NAME => |_| Ok(Arc::new(node_ports::NodePorts)),
        node_resources_fit::NAME => |a| Ok(Arc::new(node_resources_fit::NodeResourcesFit::new(args(a)?)?)),
        pod_topology_spread::NAME => |a| Ok(Arc::new(pod_topology_spread::PodTopologySpread::new(args(a)?))),
        inter_pod_affinity::NAME => |_| Ok(Arc::new(inter_pod_affinity::InterPodAffinity)),
        balanced_allocation::NAME => |_| Ok(Arc::new(balanced_allocation::BalancedAllocation)),
        image_locality::NAME => |_| Ok(Arc::new(image_locality::ImageLocality)),
        default_preemption::NAME => |_| Ok(Arc::new(default_preemption::DefaultPreemption)),
        volume_binding::NAME => |_| Ok(Arc::new(volume_binding::VolumeBinding::shared())),
        _ => return None,
    };
    Some(f)
}

/// Plugins that filter (PreFilter, Filter, PostFilter), in upstream's order.
pub const DEFAULT_FILTERS: &[&str] = &[
    node_unschedulable::NAME,
    node_name::NAME,
    taint_toleration::NAME,
    node_affinity::NAME,
    node_ports::NAME,
    node_resources_fit::NAME,
    volume_binding::NAME,
    pod_topology_spread::NAME,
    inter_pod_affinity::NAME,
    default_preemption::NAME,
];

/// Score plugins with upstream's default weights.
pub const DEFAULT_SCORES: &[(&str, i64)] = &[
    (taint_toleration::NAME, 3),
    (node_affinity::NAME, 2),
    (node_resources_fit::NAME, 1),
    (pod_topology_spread::NAME, 2),
    (inter_pod_affinity::NAME, 2),
    (balanced_allocation::NAME, 1),
    (image_locality::NAME, 1),
];
