//! syncVolume: what the PV controller does with one volume, as a pure plan.
//! An unclaimed volume is Available, a claimed one Bound; once its claim is
//! gone the volume is Released and its reclaim policy decides the rest.

use std::sync::Arc;

use apimachinery::volume::{ANN_BOUND_BY_CONTROLLER, ANN_DYNAMICALLY_PROVISIONED};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::ResourceExt;

use super::binder::Note;

#[derive(Debug, Clone, PartialEq)]
pub enum VolumeAction {
    /// Write this phase (when it differs), with an optional event.
    Phase(&'static str, Option<Note>),
    /// The controller bound the volume to a claim that took another
    /// volume: drop the claimRef so the volume is Available again.
    Unbind,
    /// Nothing to do: the claim's sync finishes the bind, or the volume's
    /// provisioner deletes it.
    Nothing,
}

pub fn phase(pv: &PersistentVolume) -> &str {
    pv.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

fn reclaim_policy(pv: &PersistentVolume) -> &str {
    pv.spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain")
}

/// The volume's plan; `claim` is the claim its claimRef names, if it exists.
pub fn plan_volume(pv: &PersistentVolume, claim: Option<&Arc<PersistentVolumeClaim>>) -> VolumeAction {
    let Some(claim_ref) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return VolumeAction::Phase("Available", None);
    };
    let Some(ref_uid) = claim_ref.uid.as_deref().filter(|u| !u.is_empty()) else {
        // Pre-bound by the user to a claim that is not bound yet.
        return VolumeAction::Phase("Available", None);
    };
    // A claim of the same name with another uid is a new claim: ours is gone.
    let claim = claim.filter(|c| c.metadata.uid.as_deref() == Some(ref_uid));
    let Some(claim) = claim else {
        return released(pv);
    };
    let volume_name = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref()).unwrap_or("");
    if volume_name.is_empty() {
        // The claim's sync has not finished the bind yet.
        return VolumeAction::Nothing;
    }
    if volume_name == pv.name_any() {
        return VolumeAction::Phase("Bound", None);
    }
    let by_controller = pv.annotations().contains_key(ANN_BOUND_BY_CONTROLLER);
    if by_controller {
        VolumeAction::Unbind
    } else {
        VolumeAction::Nothing
    }
}

/// The claim is gone: Released, then the reclaim policy.
fn released(pv: &PersistentVolume) -> VolumeAction {
    if phase(pv) == "Failed" {
        return VolumeAction::Nothing;
    }
    match reclaim_policy(pv) {
        "Delete" if pv.annotations().contains_key(ANN_DYNAMICALLY_PROVISIONED) => {
            // An external provisioner created it and deletes it; it sees Released.
            VolumeAction::Phase("Released", None)
        }
        "Delete" => VolumeAction::Phase(
            "Failed",
            Some(Note::warning(
                "VolumeFailedDelete",
                format!("error getting deleter volume plugin for volume \"{}\": no deletable volume plugin matched", pv.name_any()),
            )),
        ),
        "Recycle" => VolumeAction::Phase(
            "Failed",
            Some(Note::warning("VolumeFailedRecycle", "No recycler plugin found for the volume!")),
        ),
        _ => VolumeAction::Phase("Released", None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pv(v: serde_json::Value) -> PersistentVolume {
        serde_json::from_value(v).unwrap()
    }

    fn claim(uid: &str, volume: Option<&str>) -> Arc<PersistentVolumeClaim> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "data", "namespace": "ns", "uid": uid},
                "spec": {"volumeName": volume}}))
            .unwrap(),
        )
    }

    fn claimed(policy: &str, annotations: serde_json::Value) -> PersistentVolume {
        pv(json!({"metadata": {"name": "pv1", "annotations": annotations}, "spec": {
            "persistentVolumeReclaimPolicy": policy,
            "claimRef": {"namespace": "ns", "name": "data", "uid": "c1"}}, "status": {"phase": "Bound"}}))
    }

    #[test]
    fn available_bound_and_released() {
        assert_eq!(plan_volume(&pv(json!({"metadata": {"name": "pv1"}, "spec": {}})), None), VolumeAction::Phase("Available", None));
        let v = claimed("Retain", json!({}));
        assert_eq!(plan_volume(&v, Some(&claim("c1", Some("pv1")))), VolumeAction::Phase("Bound", None));
        assert_eq!(plan_volume(&v, Some(&claim("c1", None))), VolumeAction::Nothing);
        // Retain: the claim is gone, the data stays.
        assert_eq!(plan_volume(&v, None), VolumeAction::Phase("Released", None));
        // A new claim of the same name is not the one the volume served.
        assert_eq!(plan_volume(&v, Some(&claim("c2", Some("pv1")))), VolumeAction::Phase("Released", None));
    }

    #[test]
    fn delete_is_the_provisioners_job_or_fails() {
        let provisioned = claimed("Delete", json!({ANN_DYNAMICALLY_PROVISIONED: "ferrokube.io/local-path"}));
        assert_eq!(plan_volume(&provisioned, None), VolumeAction::Phase("Released", None));
        let VolumeAction::Phase("Failed", Some(n)) = plan_volume(&claimed("Delete", json!({})), None) else { panic!() };
        assert_eq!(n.reason, "VolumeFailedDelete");
        let VolumeAction::Phase("Failed", Some(n)) = plan_volume(&claimed("Recycle", json!({})), None) else { panic!() };
        assert_eq!(n.reason, "VolumeFailedRecycle");
    }

    #[test]
    fn a_volume_the_controller_chose_for_a_claim_that_took_another_is_freed() {
        let v = claimed("Retain", json!({ANN_BOUND_BY_CONTROLLER: "yes"}));
        assert_eq!(plan_volume(&v, Some(&claim("c1", Some("pv2")))), VolumeAction::Unbind);
        let user = claimed("Retain", json!({}));
        assert_eq!(plan_volume(&user, Some(&claim("c1", Some("pv2")))), VolumeAction::Nothing);
    }
}
