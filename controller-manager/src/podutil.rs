//! Facts about pods, owners and label selectors that several loops share.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Resource;

/// A pod that still counts towards a controller's replicas: not terminal
/// and not being deleted (upstream's FilterActivePods).
pub fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && !apimachinery::phase::is_pod_terminal(pod)
}

pub fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// Ready for at least `min_ready_seconds` at `now` (upstream's IsPodAvailable).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    let Some(c) = ready_condition(pod).filter(|c| c.status == "True") else {
        return false;
    };
    if min_ready_seconds <= 0 {
        return true;
    }
    match &c.last_transition_time {
        Some(t) => t.0 + SignedDuration::from_secs(min_ready_seconds as i64) <= now,
        None => false,
    }
}

pub fn phase(pod: &Pod) -> &str {
    apimachinery::phase::pod_phase(pod).unwrap_or(apimachinery::phase::PENDING)
}

pub fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

/// The owner reference with controller=true, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_ref()?.iter().find(|o| o.controller == Some(true))
}

/// The cached pods in `ns` whose controller is the object with `owner_uid`.
pub fn owned_pods(cache: &kube::runtime::reflector::Store<Pod>, ns: &str, owner_uid: &str) -> Vec<std::sync::Arc<Pod>> {
    cache
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns) && is_controlled_by(&p.metadata, owner_uid))
        .collect()
}

/// Is `meta` controlled by the object with this uid?
pub fn is_controlled_by(meta: &ObjectMeta, owner_uid: &str) -> bool {
    controller_of(meta).is_some_and(|o| o.uid == owner_uid)
}

/// The controller reference a controller puts on what it creates.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).to_string(),
        kind: K::kind(&()).to_string(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Does a controller's selector pick these labels? A missing selector
/// picks nothing, an empty one everything, an invalid one nothing (upstream
/// controllers skip objects whose selector does not convert).
pub fn selector_matches(selector: Option<&LabelSelector>, labels: Option<&BTreeMap<String, String>>) -> bool {
    selector.is_some_and(|sel| apimachinery::labels::label_selector_matches(sel, &labels).unwrap_or(false))
}

/// Upstream's fnv32a over bytes, used for template hashes.
pub fn fnv32a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in data {
        h ^= *b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// Upstream's rand.SafeEncodeString alphabet: no vowels, no confusable
/// characters, so a hash never spells words.
pub fn safe_encode(n: u32) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    n.to_string()
        .bytes()
        .map(|b| ALPHABET[(b as usize) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
pub mod fixtures {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    pub fn pod(name: &str, labels: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                creation_timestamp: Some(Time(Timestamp::now())),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    pub fn with_phase(mut p: Pod, phase: &str, ready: bool) -> Pod {
        p.status = Some(PodStatus {
            phase: Some(phase.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                last_transition_time: Some(Time(Timestamp::now() - SignedDuration::from_secs(60))),
                ..Default::default()
            }]),
            ..Default::default()
        });
        p
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn selectors() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let by_label = LabelSelector {
            match_labels: Some(labels.clone()),
            ..Default::default()
        };
        assert!(selector_matches(Some(&by_label), Some(&labels)));
        assert!(!selector_matches(Some(&by_label), None));
        assert!(!selector_matches(None, Some(&labels)));
        assert!(selector_matches(Some(&LabelSelector::default()), None));
        let not_in = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app".into(),
                operator: "NotIn".into(),
                values: Some(vec!["web".into()]),
            }]),
            ..Default::default()
        };
        assert!(!selector_matches(Some(&not_in), Some(&labels)));
        assert!(selector_matches(Some(&not_in), None));
    }

    #[test]
    fn availability_honours_min_ready_seconds() {
        let p = with_phase(pod("a", &[]), "Running", true);
        let now = Timestamp::now();
        assert!(is_available(&p, 0, now));
        assert!(is_available(&p, 30, now));
        assert!(!is_available(&p, 120, now));
        assert!(!is_available(&with_phase(pod("b", &[]), "Running", false), 0, now));
    }

    #[test]
    fn active_excludes_terminal_and_deleting() {
        assert!(is_active(&pod("a", &[])));
        assert!(!is_active(&with_phase(pod("a", &[]), "Succeeded", false)));
        let mut p = pod("a", &[]);
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()));
        assert!(!is_active(&p));
    }

    #[test]
    fn safe_encoding_uses_the_upstream_alphabet() {
        let s = safe_encode(fnv32a(b"template"));
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_eq!(safe_encode(0), "4"); // byte b'0' (48) % 27 = 21
    }
}

/// A pod built from a controller's template, as upstream's
/// GetPodFromTemplate: the template's labels, annotations and spec, a
/// controller reference and a generated name.
pub fn pod_from_template(
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    namespace: &str,
    owner: OwnerReference,
    generate_name: &str,
) -> Pod {
    let tm = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}
