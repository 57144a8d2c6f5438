//! The ReplicationController controller (core/v1). As upstream's, it is
//! the ReplicaSet controller run over a conversion: the RC's map selector
//! becomes a label selector, its status is the ReplicaSet status written
//! back in the RC's shape (replicas, fullyLabeledReplicas, readyReplicas,
//! availableReplicas, observedGeneration, the ReplicaFailure condition).

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetSpec, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{ReplicationController, ReplicationControllerCondition, ReplicationControllerStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::replicaset::{register_for, Replicated};
use super::Ctx;
use crate::runtime::Informers;

pub const NAME: &str = "replicationcontroller-controller";

/// A selector that matches no pod (an `In` over no values is invalid, and
/// an invalid selector selects nothing).
fn nothing() -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "replicationcontroller.kubernetes.io/no-selector".into(),
            operator: "In".into(),
            values: Some(vec![]),
        }]),
        match_labels: None,
    }
}

/// The RC's selector as a ReplicaSet's. The apiserver defaults a missing
/// one from the template; one still missing or empty selects nothing rather
/// than every pod in the namespace.
pub fn selector(rc: &ReplicationController) -> LabelSelector {
    match rc.spec.as_ref().and_then(|s| s.selector.clone()) {
        Some(m) if !m.is_empty() => LabelSelector { match_labels: Some(m), match_expressions: None },
        _ => nothing(),
    }
}

fn condition_to_rs(c: ReplicationControllerCondition) -> ReplicaSetCondition {
    ReplicaSetCondition {
        type_: c.type_,
        status: c.status,
        reason: c.reason,
        message: c.message,
        last_transition_time: c.last_transition_time,
    }
}

fn condition_to_rc(c: ReplicaSetCondition) -> ReplicationControllerCondition {
    ReplicationControllerCondition {
        type_: c.type_,
        status: c.status,
        reason: c.reason,
        message: c.message,
        last_transition_time: c.last_transition_time,
    }
}

pub fn status_to_rc(s: &ReplicaSetStatus) -> ReplicationControllerStatus {
    ReplicationControllerStatus {
        replicas: s.replicas,
        fully_labeled_replicas: s.fully_labeled_replicas,
        ready_replicas: s.ready_replicas,
        available_replicas: s.available_replicas,
        observed_generation: s.observed_generation,
        conditions: s.conditions.clone().map(|c| c.into_iter().map(condition_to_rc).collect()),
    }
}

fn status_to_rs(s: &ReplicationControllerStatus) -> ReplicaSetStatus {
    ReplicaSetStatus {
        replicas: s.replicas,
        fully_labeled_replicas: s.fully_labeled_replicas,
        ready_replicas: s.ready_replicas,
        available_replicas: s.available_replicas,
        observed_generation: s.observed_generation,
        conditions: s.conditions.clone().map(|c| c.into_iter().map(condition_to_rs).collect()),
        terminating_replicas: None,
    }
}

impl Replicated for ReplicationController {
    const CONTROLLER: &'static str = NAME;

    fn to_replicaset(&self) -> ReplicaSet {
        let spec = self.spec.clone().unwrap_or_default();
        ReplicaSet {
            metadata: self.metadata.clone(),
            spec: Some(ReplicaSetSpec {
                replicas: spec.replicas,
                min_ready_seconds: spec.min_ready_seconds,
                selector: selector(self),
                template: spec.template,
            }),
            status: self.status.as_ref().map(status_to_rs),
        }
    }

    fn status_json(status: &ReplicaSetStatus) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(status_to_rc(status))
    }
}

pub fn register(inf: &mut Informers, ctx: &Ctx) {
    register_for::<ReplicationController>(inf, ctx)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::controllers::replicaset::plan;
    use crate::podutil::{self, fixtures::{pod, with_phase}};
    use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationControllerSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
    use k8s_openapi::jiff::Timestamp;
    use kube::ResourceExt;

    fn rc(replicas: i32, selector: Option<&[(&str, &str)]>) -> ReplicationController {
        let labels: std::collections::BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        ReplicationController {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("rc-uid".into()),
                generation: Some(4),
                ..Default::default()
            },
            spec: Some(ReplicationControllerSpec {
                replicas: Some(replicas),
                selector: selector.map(|s| s.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                    spec: None,
                }),
                min_ready_seconds: None,
            }),
            status: None,
        }
    }

    fn owned(mut p: Pod, rc: &ReplicationController) -> Arc<Pod> {
        p.metadata.owner_references = Some(vec![podutil::controller_ref(rc)]);
        Arc::new(p)
    }

    #[test]
    fn the_map_selector_picks_pods_as_a_replicaset_would() {
        let r = rc(3, Some(&[("app", "web")]));
        let pods = vec![
            Arc::new(pod("orphan", &[("app", "web"), ("tier", "x")])),
            Arc::new(pod("other", &[("app", "db")])),
            owned(with_phase(pod("mine", &[("app", "web")]), "Running", true), &r),
        ];
        let p = plan(&r.to_replicaset(), &pods, Timestamp::now());
        assert_eq!(p.adopt.iter().map(|p| p.name_any()).collect::<Vec<_>>(), vec!["orphan"]);
        assert_eq!(p.create, 1);
        assert_eq!(p.status.replicas, 2);
        assert_eq!(p.status.ready_replicas, Some(1));
        assert_eq!(p.status.observed_generation, Some(4));
    }

    #[test]
    fn a_missing_or_empty_selector_adopts_nothing() {
        for r in [rc(1, None), rc(1, Some(&[]))] {
            let p = plan(&r.to_replicaset(), &[Arc::new(pod("stray", &[("app", "web")]))], Timestamp::now());
            assert!(p.adopt.is_empty());
            assert_eq!(p.create, 1);
        }
    }

    #[test]
    fn pods_controlled_by_a_replicaset_of_the_same_name_are_not_ours() {
        let r = rc(1, Some(&[("app", "web")]));
        let mut p = pod("rs-pod", &[("app", "web")]);
        p.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web".into(),
            uid: "rs-uid".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        let plan = plan(&r.to_replicaset(), &[Arc::new(p)], Timestamp::now());
        assert!(plan.adopt.is_empty());
        assert_eq!(plan.status.replicas, 0);
    }

    #[test]
    fn status_round_trips_in_the_rc_shape() {
        let s = ReplicaSetStatus {
            replicas: 2,
            fully_labeled_replicas: Some(2),
            ready_replicas: Some(1),
            available_replicas: Some(1),
            observed_generation: Some(7),
            conditions: Some(vec![ReplicaSetCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some("FailedCreate".into()),
                message: Some("quota".into()),
                last_transition_time: None,
            }]),
            terminating_replicas: None,
        };
        assert_eq!(status_to_rs(&status_to_rc(&s)), s);
        let v = ReplicationController::status_json(&s).unwrap();
        assert_eq!(v["fullyLabeledReplicas"], 2);
        assert_eq!(v["conditions"][0]["type"], "ReplicaFailure");
        assert!(v.get("terminatingReplicas").is_none());
    }

    #[test]
    fn the_controller_reference_names_the_rc() {
        let r = rc(1, Some(&[("app", "web")]));
        let o = podutil::controller_ref(&r);
        assert_eq!((o.api_version.as_str(), o.kind.as_str()), ("v1", "ReplicationController"));
        assert_eq!(o.controller, Some(true));
        assert_eq!(o.block_owner_deletion, Some(true));
    }
}
