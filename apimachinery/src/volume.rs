//! Claims and volumes as component-helpers' storage/volume sees them: the
//! annotations the PV controller, the scheduler and provisioners exchange,
//! the class of a claim or volume, and which volume satisfies a claim
//! (FindMatchingVolume). The PV controller binds with it, the scheduler's
//! VolumeBinding plugin filters nodes with it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};

use crate::labels::label_selector_matches;
use crate::nodeaffinity::node_term_matches;
use crate::Quantity;

/// On a claim: the controller finished binding it (value "yes").
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// On a claim or volume: the controller, not the user, chose the other side.
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// On a claim: the node the scheduler picked for a WaitForFirstConsumer claim.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// On a claim: the provisioner asked to create its volume.
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// On a volume: the provisioner that created it (and must delete it).
pub const ANN_DYNAMICALLY_PROVISIONED: &str = "pv.kubernetes.io/provisioned-by";
/// The old way of naming a class, still honoured before spec.storageClassName.
pub const ANN_BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
pub const ANN_IS_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
/// A class whose volumes are created by hand only.
pub const NOT_SUPPORTED_PROVISIONER: &str = "kubernetes.io/no-provisioner";
/// ferrokube's node-local provisioner (k3s/kind ship rancher.io/local-path).
pub const LOCAL_PATH_PROVISIONER: &str = "ferrokube.io/local-path";
/// On a node: the directory under which the local-path provisioner's
/// volumes live on that node (`<kubelet root dir>/local-path`); the kubelet
/// sets it at registration.
pub const ANN_LOCAL_PATH_ROOT: &str = "ferrokube.io/local-path-root";

fn annotation<'a>(a: &'a Option<BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    a.as_ref()?.get(key).map(String::as_str)
}

/// GetPersistentVolumeClaimClass: the beta annotation, else spec.storageClassName, else "".
pub fn claim_class(claim: &PersistentVolumeClaim) -> String {
    if let Some(c) = annotation(&claim.metadata.annotations, ANN_BETA_STORAGE_CLASS) {
        return c.to_string();
    }
    claim.spec.as_ref().and_then(|s| s.storage_class_name.clone()).unwrap_or_default()
}

/// GetPersistentVolumeClass, the same for a volume.
pub fn volume_class(pv: &PersistentVolume) -> String {
    if let Some(c) = annotation(&pv.metadata.annotations, ANN_BETA_STORAGE_CLASS) {
        return c.to_string();
    }
    pv.spec.as_ref().and_then(|s| s.storage_class_name.clone()).unwrap_or_default()
}

/// The claim's `resources.requests.storage`, zero when absent or unparsable
/// (validation refuses both).
pub fn requested_storage(claim: &PersistentVolumeClaim) -> Quantity {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref()?.requests.as_ref()?.get("storage"))
        .and_then(|q| Quantity::from_api(q).ok())
        .unwrap_or_else(|| Quantity::from_i64(0))
}

pub fn volume_capacity(pv: &PersistentVolume) -> Quantity {
    pv.spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref()?.get("storage"))
        .and_then(|q| Quantity::from_api(q).ok())
        .unwrap_or_else(|| Quantity::from_i64(0))
}

fn volume_mode_of(mode: Option<&String>) -> &str {
    mode.map(String::as_str).unwrap_or("Filesystem")
}

/// Whether the volume's access modes include every mode the claim asks for.
pub fn access_modes_satisfied(claim: &PersistentVolumeClaim, pv: &PersistentVolume) -> bool {
    let have = pv.spec.as_ref().and_then(|s| s.access_modes.as_deref()).unwrap_or(&[]);
    let want = claim.spec.as_ref().and_then(|s| s.access_modes.as_deref()).unwrap_or(&[]);
    want.iter().all(|m| have.contains(m))
}

/// IsVolumeBoundToClaim: the volume's claimRef names this claim (and its
/// uid, once the controller wrote it).
pub fn is_volume_bound_to_claim(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    if r.name.as_deref() != claim.metadata.name.as_deref() || r.namespace.as_deref() != claim.metadata.namespace.as_deref() {
        return false;
    }
    r.uid.as_deref().is_none_or(str::is_empty) || r.uid == claim.metadata.uid
}

/// CheckNodeAffinity: a volume without nodeAffinity fits every node; with
/// one, a node must match one of its required terms.
pub fn volume_fits_node(pv: &PersistentVolume, node: &Node) -> bool {
    let Some(required) = pv.spec.as_ref().and_then(|s| s.node_affinity.as_ref()?.required.as_ref()) else {
        return true;
    };
    let name = node.metadata.name.as_deref().unwrap_or_default();
    required
        .node_selector_terms
        .iter()
        .any(|t| node_term_matches(t, node.metadata.labels.as_ref(), name).unwrap_or(false))
}

/// The node a volume's nodeAffinity pins it to by `kubernetes.io/hostname`,
/// if it names exactly one (how local volumes name their node).
pub fn pinned_node(pv: &PersistentVolume) -> Option<String> {
    let terms = &pv.spec.as_ref()?.node_affinity.as_ref()?.required.as_ref()?.node_selector_terms;
    let [term] = terms.as_slice() else { return None };
    term.match_expressions.iter().flatten().find_map(|e| {
        let values = e.values.as_deref().unwrap_or(&[]);
        (e.key == "kubernetes.io/hostname" && e.operator == "In" && values.len() == 1).then(|| values[0].clone())
    })
}

/// FindMatchingVolume, as the PV controller (node None) and the scheduler
/// (node Some) call it: a volume pre-bound to this claim wins; otherwise
/// the unclaimed volume of the claim's class, modes, selector and node with
/// the fewest access modes and then the smallest capacity at least the
/// request. With `delay_binding` and no node the controller only takes a
/// pre-bound volume: the scheduler picks the rest.
pub fn find_matching_volume<'a>(
    claim: &PersistentVolumeClaim,
    volumes: impl IntoIterator<Item = &'a PersistentVolume>,
    node: Option<&Node>,
    delay_binding: bool,
) -> Option<&'a PersistentVolume> {
    let spec = claim.spec.clone().unwrap_or_default();
    let requested = requested_storage(claim);
    let class = claim_class(claim);
    let mode = volume_mode_of(spec.volume_mode.as_ref());
    let mut best: Option<(&PersistentVolume, usize, Quantity)> = None;
    for pv in volumes {
        let Some(pspec) = pv.spec.as_ref() else { continue };
        let capacity = volume_capacity(pv);
        if capacity < requested || volume_mode_of(pspec.volume_mode.as_ref()) != mode {
            continue;
        }
        if pv.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let fits = node.is_none_or(|n| volume_fits_node(pv, n));
        if is_volume_bound_to_claim(pv, claim) {
            return fits.then_some(pv);
        }
        if node.is_none() && delay_binding {
            continue;
        }
        if pspec.claim_ref.is_some() || volume_class(pv) != class || !fits || !access_modes_satisfied(claim, pv) {
            continue;
        }
        if let Some(sel) = &spec.selector {
            let labels = pv.metadata.labels.clone().unwrap_or_default();
            if !label_selector_matches(sel, &labels).unwrap_or(false) {
                continue;
            }
        }
        let modes = pspec.access_modes.as_ref().map_or(0, Vec::len);
        if best.as_ref().is_none_or(|(_, m, c)| (modes, &capacity) < (*m, c)) {
            best = Some((pv, modes, capacity));
        }
    }
    best.map(|(pv, _, _)| pv)
}

/// checkVolumeSatisfyClaim for a claim that names its volume: why the
/// volume cannot serve it, in upstream's words, or None when it can.
pub fn volume_mismatch(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> Option<String> {
    if volume_capacity(pv) < requested_storage(claim) {
        return Some("requested PV is too small".into());
    }
    if volume_class(pv) != claim_class(claim) {
        return Some("storageClassName does not match".into());
    }
    let pmode = volume_mode_of(pv.spec.as_ref().and_then(|s| s.volume_mode.as_ref()));
    let cmode = volume_mode_of(claim.spec.as_ref().and_then(|s| s.volume_mode.as_ref()));
    if pmode != cmode {
        return Some(format!("incompatible volumeMode: claim {cmode}, volume {pmode}"));
    }
    if !access_modes_satisfied(claim, pv) {
        return Some("incompatible accessMode".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pv(v: serde_json::Value) -> PersistentVolume {
        serde_json::from_value(v).unwrap()
    }

    fn vol(name: &str, size: &str, modes: &[&str], class: &str) -> PersistentVolume {
        pv(json!({"metadata": {"name": name}, "spec": {
            "capacity": {"storage": size}, "accessModes": modes, "storageClassName": class,
            "hostPath": {"path": "/tmp"}}}))
    }

    fn claim(size: &str, modes: &[&str], class: Option<&str>) -> PersistentVolumeClaim {
        serde_json::from_value(json!({"metadata": {"name": "c", "namespace": "ns", "uid": "u1"}, "spec": {
            "accessModes": modes, "storageClassName": class, "resources": {"requests": {"storage": size}}}}))
        .unwrap()
    }

    fn names(v: Option<&PersistentVolume>) -> Option<&str> {
        v.and_then(|v| v.metadata.name.as_deref())
    }

    #[test]
    fn smallest_volume_of_the_class_that_is_big_enough() {
        let vols = [
            vol("small", "1Gi", &["ReadWriteOnce"], ""),
            vol("big", "10Gi", &["ReadWriteOnce"], ""),
            vol("mid", "5Gi", &["ReadWriteOnce"], ""),
            vol("other-class", "3Gi", &["ReadWriteOnce"], "fast"),
        ];
        let c = claim("2Gi", &["ReadWriteOnce"], Some(""));
        assert_eq!(names(find_matching_volume(&c, &vols, None, false)), Some("mid"));
        let fast = claim("2Gi", &["ReadWriteOnce"], Some("fast"));
        assert_eq!(names(find_matching_volume(&fast, &vols, None, false)), Some("other-class"));
        assert_eq!(names(find_matching_volume(&claim("20Gi", &["ReadWriteOnce"], Some("")), &vols, None, false)), None);
    }

    #[test]
    fn access_modes_selector_and_claimed_volumes_filter() {
        let mut labelled = vol("labelled", "1Gi", &["ReadWriteOnce", "ReadWriteMany"], "");
        labelled.metadata.labels = Some([("tier".to_string(), "db".to_string())].into());
        let vols = [vol("rwo", "1Gi", &["ReadWriteOnce"], ""), labelled];
        let rwx = claim("1Gi", &["ReadWriteMany"], Some(""));
        assert_eq!(names(find_matching_volume(&rwx, &vols, None, false)), Some("labelled"));
        // Fewest access modes first.
        let rwo = claim("1Gi", &["ReadWriteOnce"], Some(""));
        assert_eq!(names(find_matching_volume(&rwo, &vols, None, false)), Some("rwo"));
        let mut sel = rwo.clone();
        sel.spec.as_mut().unwrap().selector = Some(serde_json::from_value(json!({"matchLabels": {"tier": "db"}})).unwrap());
        assert_eq!(names(find_matching_volume(&sel, &vols, None, false)), Some("labelled"));
        // A volume claimed by someone else is not available.
        let mut taken = vol("taken", "1Gi", &["ReadWriteOnce"], "");
        taken.spec.as_mut().unwrap().claim_ref = Some(serde_json::from_value(json!({"namespace": "ns", "name": "other"})).unwrap());
        assert_eq!(names(find_matching_volume(&rwo, [&taken], None, false)), None);
    }

    #[test]
    fn a_pre_bound_volume_wins_even_with_delayed_binding() {
        let mut pre = vol("pre", "5Gi", &["ReadWriteOnce"], "");
        pre.spec.as_mut().unwrap().claim_ref = Some(serde_json::from_value(json!({"namespace": "ns", "name": "c"})).unwrap());
        let vols = [vol("free", "1Gi", &["ReadWriteOnce"], ""), pre];
        let c = claim("1Gi", &["ReadWriteOnce"], Some(""));
        assert_eq!(names(find_matching_volume(&c, &vols, None, false)), Some("pre"));
        assert_eq!(names(find_matching_volume(&c, &vols, None, true)), Some("pre"));
        assert_eq!(names(find_matching_volume(&c, &vols[..1], None, true)), None);
        // A claimRef with another uid is a different (deleted and recreated) claim.
        let mut stale = vols[1].clone();
        stale.spec.as_mut().unwrap().claim_ref.as_mut().unwrap().uid = Some("old".into());
        assert!(!is_volume_bound_to_claim(&stale, &c));
    }

    #[test]
    fn node_affinity_limits_volumes_to_their_node() {
        let local = pv(json!({"metadata": {"name": "local"}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "local": {"path": "/d"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-0"]}]}]}}}}));
        let node = |n: &str| -> Node {
            serde_json::from_value(json!({"metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}}})).unwrap()
        };
        assert!(volume_fits_node(&local, &node("node-0")));
        assert!(!volume_fits_node(&local, &node("node-1")));
        assert_eq!(pinned_node(&local).as_deref(), Some("node-0"));
        let c = claim("1Gi", &["ReadWriteOnce"], Some(""));
        assert_eq!(names(find_matching_volume(&c, [&local], Some(&node("node-1")), true)), None);
        assert_eq!(names(find_matching_volume(&c, [&local], Some(&node("node-0")), true)), Some("local"));
    }

    #[test]
    fn mismatches_in_upstream_words() {
        let v = vol("v", "1Gi", &["ReadWriteOnce"], "");
        assert_eq!(volume_mismatch(&v, &claim("2Gi", &["ReadWriteOnce"], Some(""))).as_deref(), Some("requested PV is too small"));
        assert_eq!(volume_mismatch(&v, &claim("1Gi", &["ReadWriteOnce"], Some("x"))).as_deref(), Some("storageClassName does not match"));
        assert_eq!(volume_mismatch(&v, &claim("1Gi", &["ReadWriteMany"], Some(""))).as_deref(), Some("incompatible accessMode"));
        assert_eq!(volume_mismatch(&v, &claim("1Gi", &["ReadWriteOnce"], None)), None);
    }
}
