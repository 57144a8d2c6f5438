//! persistentVolumeClaim: the claim's bound volume, mounted as its source
//! says (hostPath, or a `local` directory that must exist). A claim not
//! bound yet is a mount failure the pod worker retries: the pod waits in
//! ContainerCreating with a FailedMount event, as upstream's volume manager.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod};
use kube::api::Api;

use super::{host_path, VolumeError};
use crate::context::Kubelet;

/// The host directory for the claim's volume.
pub(super) async fn setup(
    k: &Kubelet,
    pod: &Pod,
    name: &str,
    src: &PersistentVolumeClaimVolumeSource,
) -> Result<PathBuf, VolumeError> {
    let err = |message: String| VolumeError::Mount {
        volume: name.to_string(),
        message,
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let claim_name = &src.claim_name;
    let Some(client) = k.client.clone() else {
        return Err(err("no API client to resolve the claim".into()));
    };
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let claim = claims
        .get_opt(claim_name)
        .await
        .map_err(|e| err(format!("error processing PVC {ns}/{claim_name}: {e}")))?
        .ok_or_else(|| err(format!("error processing PVC {ns}/{claim_name}: persistentvolumeclaim \"{claim_name}\" not found")))?;
    let volume_name = bound_volume(&claim).ok_or_else(|| err(format!("error processing PVC {ns}/{claim_name}: PVC is not bound")))?;
    let volumes: Api<PersistentVolume> = Api::all(client);
    let pv = volumes
        .get_opt(&volume_name)
        .await
        .map_err(|e| err(format!("error processing PVC {ns}/{claim_name}: {e}")))?
        .ok_or_else(|| err(format!("error processing PVC {ns}/{claim_name}: persistentvolume \"{volume_name}\" not found")))?;
    source_path(name, &pv)
}

/// The claim's volume once the PV controller finished binding it.
fn bound_volume(claim: &PersistentVolumeClaim) -> Option<String> {
    let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
    let name = claim.spec.as_ref()?.volume_name.clone().filter(|n| !n.is_empty())?;
    (phase == Some("Bound")).then_some(name)
}

/// Where a volume's data lives on this node.
fn source_path(name: &str, pv: &PersistentVolume) -> Result<PathBuf, VolumeError> {
    let spec = pv.spec.clone().unwrap_or_default();
    if let Some(hp) = &spec.host_path {
        return host_path::setup(name, hp);
    }
    if let Some(local) = &spec.local {
        let p = PathBuf::from(&local.path);
        if !p.is_dir() {
            return Err(VolumeError::Mount {
                volume: name.to_string(),
                message: format!("path \"{}\" does not exist", local.path),
            });
        }
        return Ok(p);
    }
    Err(VolumeError::Mount {
        volume: name.to_string(),
        message: format!(
            "persistentvolume \"{}\" has a volume source this kubelet cannot mount (only hostPath and local)",
            pv.metadata.name.as_deref().unwrap_or_default()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_bound_claim_names_its_volume() {
        let claim = |v: serde_json::Value| -> PersistentVolumeClaim { serde_json::from_value(v).unwrap() };
        assert_eq!(bound_volume(&claim(json!({"spec": {}, "status": {"phase": "Pending"}}))), None);
        assert_eq!(bound_volume(&claim(json!({"spec": {"volumeName": "pv1"}, "status": {"phase": "Pending"}}))), None);
        assert_eq!(
            bound_volume(&claim(json!({"spec": {"volumeName": "pv1"}, "status": {"phase": "Bound"}}))).as_deref(),
            Some("pv1")
        );
    }

    #[test]
    fn host_path_volumes_are_created_and_local_ones_must_exist() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("local-path/pvc-1");
        let pv: PersistentVolume = serde_json::from_value(json!({"metadata": {"name": "pvc-1"},
            "spec": {"hostPath": {"path": dir, "type": "DirectoryOrCreate"}}}))
        .unwrap();
        assert_eq!(source_path("www", &pv).unwrap(), dir);
        assert!(dir.is_dir());
        let missing: PersistentVolume = serde_json::from_value(json!({"metadata": {"name": "l"},
            "spec": {"local": {"path": root.path().join("nope")}}}))
        .unwrap();
        assert!(source_path("www", &missing).unwrap_err().to_string().contains("does not exist"));
        let nfs: PersistentVolume = serde_json::from_value(json!({"metadata": {"name": "n"},
            "spec": {"nfs": {"server": "x", "path": "/"}}}))
        .unwrap();
        assert!(source_path("www", &nfs).is_err());
    }
}
