//! downwardAPI volumes: fields of the pod and resources of its containers as files.

use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, DownwardAPIVolumeSource, Pod, ResourceFieldSelector,
};

use super::atomic_writer::VolumeFile;
use crate::container::env;
use crate::context::Kubelet;
use crate::node::capacity::{host_cpu_milli, host_memory};

/// The files of a downwardAPI volume or projection, with `default_mode` where
/// an item sets none.
pub(super) fn files(
    k: &Kubelet,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
) -> Vec<VolumeFile> {
    items
        .iter()
        .filter_map(|i| {
            let val = item(k, pod, i)?;
            Some((i.path.clone(), val.into_bytes(), i.mode.or(default_mode)))
        })
        .collect()
}

pub(super) fn volume(k: &Kubelet, pod: &Pod, da: &DownwardAPIVolumeSource) -> Vec<VolumeFile> {
    files(
        k,
        pod,
        da.items.as_deref().unwrap_or_default(),
        da.default_mode,
    )
}

/// One downward API file: a field of the pod, or a resource of one of its
/// containers (limits default to the node's allocatable, as upstream).
fn item(k: &Kubelet, pod: &Pod, i: &DownwardAPIVolumeFile) -> Option<String> {
    if let Some(fr) = &i.field_ref {
        return Some(
            env::field_value(pod, &fr.field_path, &k.node_name, &k.node_ip).unwrap_or_default(),
        );
    }
    let r = i.resource_field_ref.as_ref()?;
    Some(resource(pod, r, host_cpu_milli(), host_memory()))
}

/// A resourceFieldRef in a volume names its container (the API requires it).
fn resource(pod: &Pod, r: &ResourceFieldSelector, node_cpu_milli: i64, node_mem: i64) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let c = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| Some(&c.name) == r.container_name.as_ref())
        .cloned()
        .unwrap_or_default();
    env::resource_value(
        &c,
        &r.resource,
        r.divisor.as_ref().map(|d| d.0.as_str()),
        node_cpu_milli,
        node_mem,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [sig-storage] Downward API volume should provide container's cpu limit,
    /// memory request, and node allocatable as the default cpu limit.
    #[test]
    fn downward_api_resources_name_their_container() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [
                {"name": "a", "resources": {"limits": {"cpu": "1250m"}, "requests": {"memory": "32Mi"}}},
                {"name": "b"}
            ]}
        }))
        .unwrap();
        let sel = |c: &str, res: &str, div: Option<&str>| {
            k8s_openapi::api::core::v1::ResourceFieldSelector {
                container_name: Some(c.into()),
                resource: res.into(),
                divisor: div
                    .map(|d| k8s_openapi::apimachinery::pkg::api::resource::Quantity(d.into())),
            }
        };
        let node_cpu = 2000;
        let node_mem = 4 << 30;
        assert_eq!(
            resource(&pod, &sel("a", "limits.cpu", None), node_cpu, node_mem),
            "2"
        );
        assert_eq!(
            resource(
                &pod,
                &sel("a", "limits.cpu", Some("1m")),
                node_cpu,
                node_mem
            ),
            "1250"
        );
        assert_eq!(
            resource(
                &pod,
                &sel("a", "requests.memory", Some("1Mi")),
                node_cpu,
                node_mem
            ),
            "32"
        );
        assert_eq!(
            resource(&pod, &sel("b", "limits.cpu", None), node_cpu, node_mem),
            "2"
        );
        assert_eq!(
            resource(&pod, &sel("b", "limits.memory", None), node_cpu, node_mem),
            (4u64 << 30).to_string()
        );
    }
}
