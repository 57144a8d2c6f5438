//! syncClaim: what the PV controller does with one claim, as a pure plan.
//! An unbound claim gets the best matching volume, waits for its first
//! consumer, or is handed to its class's provisioner; a bound claim is kept
//! bound or, when its volume is gone or taken, marked Lost.

use std::collections::BTreeMap;
use std::sync::Arc;

use apimachinery::volume::{self, ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER, ANN_SELECTED_NODE};
use k8s_openapi::api::core::v1::{Node, ObjectReference, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;

use crate::events::EventType;

/// An Event the controller writes about the object it synced.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub type_: EventType,
    pub reason: &'static str,
    pub message: String,
}

impl Note {
    pub fn normal(reason: &'static str, message: impl Into<String>) -> Note {
        Note { type_: EventType::Normal, reason, message: message.into() }
    }
    pub fn warning(reason: &'static str, message: impl Into<String>) -> Note {
        Note { type_: EventType::Warning, reason, message: message.into() }
    }
}

/// What one claim sync does.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimAction {
    /// The claim stays Pending (the phase is written if it differs).
    Pending(Option<Note>),
    /// Bind the claim and this volume both ways; every step writes only
    /// what differs, so finishing a half-done bind is the same action.
    Bind(String),
    /// Hand the claim to an external provisioner: the storage-provisioner
    /// annotations (GA and beta) name it.
    Provision { provisioner: String, note: Note },
    /// The claim's volume is gone or bound elsewhere.
    Lost(Note),
}

pub const WAIT_FOR_FIRST_CONSUMER: &str = "waiting for first consumer to be created before binding";
pub const NO_VOLUMES_NO_CLASS: &str = "no persistent volumes available for this claim and no storage class is set";

pub fn is_delay_binding(class: Option<&StorageClass>) -> bool {
    class.is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"))
}

fn annotation<'a>(claim: &'a PersistentVolumeClaim, key: &str) -> Option<&'a str> {
    claim.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

pub fn provisioner_of(claim: &PersistentVolumeClaim) -> Option<&str> {
    annotation(claim, volume::ANN_STORAGE_PROVISIONER).or_else(|| annotation(claim, volume::ANN_BETA_STORAGE_PROVISIONER))
}

/// The external provisioner's message while its volume is awaited.
pub fn external_provisioning_message(provisioner: &str) -> String {
    format!(
        "Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered."
    )
}

/// The claim's plan. `class` is the claim's StorageClass if it exists;
/// `selected_node` the node named by the scheduler's selected-node annotation.
pub fn plan_claim(
    claim: &PersistentVolumeClaim,
    volumes: &[Arc<PersistentVolume>],
    class: Option<&StorageClass>,
    selected_node: Option<&Node>,
) -> ClaimAction {
    let volume_name = claim.spec.as_ref().and_then(|s| s.volume_name.clone()).unwrap_or_default();
    let find = |name: &str| volumes.iter().find(|v| v.name_any() == name);
    if annotation(claim, ANN_BIND_COMPLETED).is_none() {
        if volume_name.is_empty() {
            return plan_unbound(claim, volumes, class, selected_node);
        }
        // The user named the volume.
        return match find(&volume_name) {
            None => ClaimAction::Pending(None),
            Some(v) if v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).is_none() => {
                match volume::volume_mismatch(v, claim) {
                    Some(why) => ClaimAction::Pending(Some(Note::warning(
                        "VolumeMismatch",
                        format!("Cannot bind to requested volume \"{volume_name}\": {why}"),
                    ))),
                    None => ClaimAction::Bind(volume_name),
                }
            }
            Some(v) if volume::is_volume_bound_to_claim(v, claim) => ClaimAction::Bind(volume_name),
            Some(_) => ClaimAction::Pending(Some(Note::warning(
                "FailedBinding",
                format!("volume \"{volume_name}\" already bound to a different claim."),
            ))),
        };
    }
    if volume_name.is_empty() {
        return ClaimAction::Lost(Note::warning(
            "ClaimLost",
            "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
        ));
    }
    match find(&volume_name) {
        None => ClaimAction::Lost(Note::warning(
            "ClaimLost",
            "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
        )),
        Some(v) if v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).is_none() || volume::is_volume_bound_to_claim(v, claim) => {
            ClaimAction::Bind(volume_name)
        }
        Some(_) => ClaimAction::Lost(Note::warning(
            "ClaimMisbound",
            "Two claims are bound to the same volume, this one is bound incorrectly",
        )),
    }
}

fn plan_unbound(
    claim: &PersistentVolumeClaim,
    volumes: &[Arc<PersistentVolume>],
    class: Option<&StorageClass>,
    selected_node: Option<&Node>,
) -> ClaimAction {
    let delay = is_delay_binding(class);
    let selected = annotation(claim, ANN_SELECTED_NODE).is_some();
    // Once the scheduler picked a node, a static volume on that node serves
    // as well as a new one (upstream's scheduler binds it itself).
    let node = if delay { selected_node } else { None };
    if let Some(v) = volume::find_matching_volume(claim, volumes.iter().map(|v| v.as_ref()), node, delay) {
        return ClaimAction::Bind(v.name_any());
    }
    if delay && !selected {
        return ClaimAction::Pending(Some(Note::normal("WaitForFirstConsumer", WAIT_FOR_FIRST_CONSUMER)));
    }
    let class_name = volume::claim_class(claim);
    if class_name.is_empty() {
        return ClaimAction::Pending(Some(Note::normal("FailedBinding", NO_VOLUMES_NO_CLASS)));
    }
    let Some(class) = class else {
        return ClaimAction::Pending(Some(Note::warning(
            "ProvisioningFailed",
            format!("storageclass.storage.k8s.io \"{class_name}\" not found"),
        )));
    };
    let provisioner = class.provisioner.clone();
    // In-tree names are not external; ferrokube has no in-tree provisioner.
    if provisioner.starts_with("kubernetes.io/") {
        return ClaimAction::Pending(Some(Note::warning(
            "ProvisioningFailed",
            format!("no volume plugin matched name: {provisioner}"),
        )));
    }
    if provisioner_of(claim) == Some(provisioner.as_str()) {
        return ClaimAction::Pending(None);
    }
    let note = Note::normal("ExternalProvisioning", external_provisioning_message(&provisioner));
    ClaimAction::Provision { provisioner, note }
}

/// bindVolumeToClaim: the volume with its claimRef naming the claim (uid
/// included); the controller marks a claimRef it chose itself.
pub fn bound_volume(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> PersistentVolume {
    let mut out = pv.clone();
    let spec = out.spec.get_or_insert_with(Default::default);
    let chosen_by_us = spec.claim_ref.is_none();
    spec.claim_ref = Some(ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: claim.metadata.namespace.clone(),
        name: claim.metadata.name.clone(),
        uid: claim.metadata.uid.clone(),
        resource_version: claim.metadata.resource_version.clone(),
        ..Default::default()
    });
    if chosen_by_us {
        out.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
    }
    out
}

/// Whether the volume's claimRef already points at this claim with its uid.
pub fn volume_points_at(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    pv.spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .is_some_and(|r| r.name == claim.metadata.name && r.namespace == claim.metadata.namespace && r.uid == claim.metadata.uid)
}

/// bindClaimToVolume: spec.volumeName and the bind-completed annotation
/// (bound-by-controller too when the controller chose the volume).
pub fn bound_claim(claim: &PersistentVolumeClaim, volume_name: &str) -> PersistentVolumeClaim {
    let mut out = claim.clone();
    let spec = out.spec.get_or_insert_with(Default::default);
    let chosen_by_us = spec.volume_name.as_deref().is_none_or(str::is_empty);
    spec.volume_name = Some(volume_name.to_string());
    let ann = out.metadata.annotations.get_or_insert_with(BTreeMap::new);
    ann.insert(ANN_BIND_COMPLETED.into(), "yes".into());
    if chosen_by_us {
        ann.insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
    }
    out
}

pub fn claim_is_bound_to(claim: &PersistentVolumeClaim, volume_name: &str) -> bool {
    claim.spec.as_ref().and_then(|s| s.volume_name.as_deref()) == Some(volume_name)
        && annotation(claim, ANN_BIND_COMPLETED).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim(v: serde_json::Value) -> PersistentVolumeClaim {
        let mut base = json!({"metadata": {"name": "data", "namespace": "ns", "uid": "c1"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        merge(&mut base, v);
        serde_json::from_value(base).unwrap()
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn pv(name: &str, extra: serde_json::Value) -> Arc<PersistentVolume> {
        let mut base = json!({"metadata": {"name": name}, "spec": {"capacity": {"storage": "2Gi"},
            "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/x"}}});
        merge(&mut base, extra);
        Arc::new(serde_json::from_value(base).unwrap())
    }

    fn class(mode: &str, provisioner: &str) -> StorageClass {
        serde_json::from_value(json!({"metadata": {"name": "standard"}, "provisioner": provisioner, "volumeBindingMode": mode})).unwrap()
    }

    #[test]
    fn an_unbound_claim_takes_the_matching_volume() {
        let c = claim(json!({"spec": {"storageClassName": ""}}));
        assert_eq!(plan_claim(&c, &[pv("pv1", json!({}))], None, None), ClaimAction::Bind("pv1".into()));
        let bound = bound_claim(&c, "pv1");
        let ann = bound.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann.get(ANN_BIND_COMPLETED).map(String::as_str), Some("yes"));
        assert_eq!(ann.get(ANN_BOUND_BY_CONTROLLER).map(String::as_str), Some("yes"));
        let v = bound_volume(&pv("pv1", json!({})), &c);
        assert!(volume_points_at(&v, &c));
        assert!(v.metadata.annotations.unwrap().contains_key(ANN_BOUND_BY_CONTROLLER));
    }

    #[test]
    fn no_volume_and_no_class_waits_with_upstreams_event() {
        let c = claim(json!({"spec": {"storageClassName": ""}}));
        assert_eq!(plan_claim(&c, &[], None, None), ClaimAction::Pending(Some(Note::normal("FailedBinding", NO_VOLUMES_NO_CLASS))));
    }

    #[test]
    fn a_missing_class_is_a_provisioning_failure() {
        let c = claim(json!({"spec": {"storageClassName": "gold"}}));
        let ClaimAction::Pending(Some(n)) = plan_claim(&c, &[], None, None) else { panic!() };
        assert_eq!((n.reason, n.message.as_str()), ("ProvisioningFailed", "storageclass.storage.k8s.io \"gold\" not found"));
    }

    #[test]
    fn wait_for_first_consumer_then_provision_on_the_selected_node() {
        let sc = class("WaitForFirstConsumer", "ferrokube.io/local-path");
        let c = claim(json!({"spec": {"storageClassName": "standard"}}));
        // A free static volume of the class is left to the scheduler's choice of node.
        let free = pv("pv1", json!({"spec": {"storageClassName": "standard"}}));
        assert_eq!(
            plan_claim(&c, &[free.clone()], Some(&sc), None),
            ClaimAction::Pending(Some(Note::normal("WaitForFirstConsumer", WAIT_FOR_FIRST_CONSUMER)))
        );
        let picked = claim(json!({"metadata": {"annotations": {ANN_SELECTED_NODE: "node-1"}}, "spec": {"storageClassName": "standard"}}));
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "node-1"}})).unwrap();
        assert_eq!(plan_claim(&picked, &[free], Some(&sc), Some(&node)), ClaimAction::Bind("pv1".into()));
        match plan_claim(&picked, &[], Some(&sc), Some(&node)) {
            ClaimAction::Provision { provisioner, note } => {
                assert_eq!(provisioner, "ferrokube.io/local-path");
                assert_eq!(note.reason, "ExternalProvisioning");
            }
            other => panic!("{other:?}"),
        }
        // Already handed over: wait quietly for the provisioner.
        let handed = claim(json!({"metadata": {"annotations": {ANN_SELECTED_NODE: "node-1",
            apimachinery::volume::ANN_STORAGE_PROVISIONER: "ferrokube.io/local-path"}}, "spec": {"storageClassName": "standard"}}));
        assert_eq!(plan_claim(&handed, &[], Some(&sc), Some(&node)), ClaimAction::Pending(None));
    }

    #[test]
    fn a_claim_naming_its_volume() {
        let c = claim(json!({"spec": {"storageClassName": "", "volumeName": "pv1"}}));
        assert_eq!(plan_claim(&c, &[], None, None), ClaimAction::Pending(None));
        assert_eq!(plan_claim(&c, &[pv("pv1", json!({}))], None, None), ClaimAction::Bind("pv1".into()));
        let small = pv("pv1", json!({"spec": {"capacity": {"storage": "1Mi"}}}));
        let ClaimAction::Pending(Some(n)) = plan_claim(&c, &[small], None, None) else { panic!() };
        assert_eq!(n.message, "Cannot bind to requested volume \"pv1\": requested PV is too small");
        let taken = pv("pv1", json!({"spec": {"claimRef": {"namespace": "ns", "name": "other", "uid": "o"}}}));
        let ClaimAction::Pending(Some(n)) = plan_claim(&c, &[taken], None, None) else { panic!() };
        assert_eq!(n.reason, "FailedBinding");
        // The user's choice is not marked as the controller's.
        assert!(!bound_claim(&c, "pv1").metadata.annotations.unwrap().contains_key(ANN_BOUND_BY_CONTROLLER));
    }

    #[test]
    fn a_bound_claim_whose_volume_went_is_lost() {
        let c = claim(json!({"metadata": {"annotations": {ANN_BIND_COMPLETED: "yes"}}, "spec": {"volumeName": "pv1"}}));
        let ClaimAction::Lost(n) = plan_claim(&c, &[], None, None) else { panic!() };
        assert_eq!(n.reason, "ClaimLost");
        let other = pv("pv1", json!({"spec": {"claimRef": {"namespace": "ns", "name": "x", "uid": "x"}}}));
        let ClaimAction::Lost(n) = plan_claim(&c, &[other], None, None) else { panic!() };
        assert_eq!(n.reason, "ClaimMisbound");
        let mine = pv("pv1", json!({"spec": {"claimRef": {"namespace": "ns", "name": "data", "uid": "c1"}}}));
        assert_eq!(plan_claim(&c, &[mine], None, None), ClaimAction::Bind("pv1".into()));
    }
}
