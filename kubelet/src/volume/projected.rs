//! projected volumes: configMap, secret and downwardAPI sources in one directory.

use k8s_openapi::api::core::v1::{Pod, ProjectedVolumeSource};

use super::atomic_writer::VolumeFile;
use super::config_map_secret;
use super::downward_api;
use super::sources::Fetched;
use crate::context::Kubelet;

pub(super) fn files(
    k: &Kubelet,
    pod: &Pod,
    pr: &ProjectedVolumeSource,
    f: &Fetched,
) -> Result<Vec<VolumeFile>, String> {
    let mode = pr.default_mode;
    let mut files = Vec::new();
    for src in pr.sources.iter().flatten() {
        if let Some(cm) = &src.config_map {
            files.extend(config_map_secret::config_map_projection(f, cm, mode)?);
        }
        if let Some(s) = &src.secret {
            files.extend(config_map_secret::secret_projection(f, s, mode)?);
        }
        if let Some(da) = &src.downward_api {
            let items = da.items.as_deref().unwrap_or_default();
            files.extend(downward_api::files(k, pod, items, mode));
        }
    }
    Ok(files)
}
