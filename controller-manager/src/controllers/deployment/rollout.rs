//! The rollout arithmetic of upstream's deployment controller
//! (rolling.go, recreate.go, deployment_util.go), as pure functions over a
//! view of the ReplicaSets.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// What the rollout needs to know about one ReplicaSet.
#[derive(Debug, Clone, PartialEq)]
pub struct RsView {
    pub name: String,
    /// spec.replicas (the target), as this plan has updated it.
    pub spec: i32,
    /// status.replicas (active pods).
    pub actual: i32,
    pub available: i32,
    pub created: Option<k8s_openapi::jiff::Timestamp>,
}

/// Resolve an IntOrString against `total`: percentages round up for
/// surge and down for unavailability, as upstream.
pub fn resolve(v: Option<&IntOrString>, default_percent: i32, total: i32, round_up: bool) -> i32 {
    let percent = match v {
        Some(IntOrString::Int(i)) => return (*i).max(0),
        Some(IntOrString::String(s)) => s.trim_end_matches('%').parse::<i32>().unwrap_or(default_percent),
        None => default_percent,
    };
    let scaled = total as i64 * percent.max(0) as i64;
    (if round_up { (scaled + 99) / 100 } else { scaled / 100 }) as i32
}

/// (maxSurge, maxUnavailable) for a RollingUpdate deployment; never both
/// zero (upstream's ResolveFenceposts).
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    let replicas = replicas(d);
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let surge = resolve(ru.and_then(|r| r.max_surge.as_ref()), 25, replicas, true);
    let mut unavailable = resolve(ru.and_then(|r| r.max_unavailable.as_ref()), 25, replicas, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0)
}

pub fn is_recreate(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.type_.as_deref()) == Some("Recreate")
}

/// maxUnavailable as upstream's MaxUnavailable (0 for Recreate).
pub fn max_unavailable(d: &Deployment) -> i32 {
    if is_recreate(d) {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

/// New target replicas for the new ReplicaSet under RollingUpdate
/// (upstream's NewRSNewReplicas).
pub fn new_rs_target(d: &Deployment, new: &RsView, olds: &[RsView]) -> i32 {
    let want = replicas(d);
    if new.spec >= want {
        return want;
    }
    let (surge, _) = fenceposts(d);
    let current: i32 = new.spec + olds.iter().map(|r| r.spec).sum::<i32>();
    let max_total = want + surge;
    if current >= max_total {
        return new.spec;
    }
    new.spec + (max_total - current).min(want - new.spec)
}

/// Scale-downs of old ReplicaSets under RollingUpdate (upstream's
/// reconcileOldReplicaSets): first their unhealthy replicas, then healthy
/// ones while availability stays above replicas - maxUnavailable.
/// Returns the updated views; `olds` must be sorted oldest first.
pub fn scale_down_olds(d: &Deployment, new: &RsView, olds: &[RsView]) -> Vec<RsView> {
    let mut olds = olds.to_vec();
    if olds.iter().map(|r| r.spec).sum::<i32>() == 0 {
        return olds;
    }
    let want = replicas(d);
    let min_available = want - max_unavailable(d);
    let all: i32 = new.spec + olds.iter().map(|r| r.spec).sum::<i32>();
    let new_unavailable = (new.spec - new.available).max(0);
    let mut budget = all - min_available - new_unavailable;
    if budget <= 0 {
        return olds;
    }
    for r in olds.iter_mut() {
        if budget <= 0 {
            break;
        }
        let unhealthy = (r.spec - r.available).max(0);
        let n = unhealthy.min(budget);
        r.spec -= n;
        budget -= n;
    }
    let available: i32 = new.available + olds.iter().map(|r| r.available.min(r.spec)).sum::<i32>();
    let mut total = available - min_available;
    for r in olds.iter_mut() {
        if total <= 0 {
            break;
        }
        let n = r.spec.min(total);
        r.spec -= n;
        total -= n;
    }
    olds
}

/// Recreate: old ReplicaSets go to zero, and the new one scales up only
/// once no old pod is left.
pub fn recreate(d: &Deployment, new: &RsView, olds: &[RsView]) -> (i32, Vec<RsView>) {
    let olds_zeroed: Vec<RsView> = olds.iter().map(|r| RsView { spec: 0, ..r.clone() }).collect();
    let old_pods: i32 = olds.iter().map(|r| r.actual.max(r.spec)).sum();
    let new_target = if old_pods == 0 { replicas(d) } else { new.spec };
    (new_target, olds_zeroed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};

    fn dep(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn view(name: &str, spec: i32, available: i32) -> RsView {
        RsView {
            name: name.into(),
            spec,
            actual: spec,
            available,
            created: None,
        }
    }

    #[test]
    fn percentages_round_like_upstream() {
        let d = dep(10, IntOrString::String("25%".into()), IntOrString::String("25%".into()));
        assert_eq!(fenceposts(&d), (3, 2));
        let d = dep(1, IntOrString::String("25%".into()), IntOrString::String("25%".into()));
        assert_eq!(fenceposts(&d), (1, 0));
        let d = dep(3, IntOrString::Int(0), IntOrString::Int(0));
        assert_eq!(fenceposts(&d), (0, 1));
    }

    #[test]
    fn new_rs_surges_by_max_surge() {
        let d = dep(3, IntOrString::Int(1), IntOrString::Int(0));
        assert_eq!(new_rs_target(&d, &view("new", 0, 0), &[view("old", 3, 3)]), 1);
        // Already at replicas + surge: wait for old pods to go.
        assert_eq!(new_rs_target(&d, &view("new", 1, 0), &[view("old", 3, 3)]), 1);
        // Nothing old left: straight to replicas.
        assert_eq!(new_rs_target(&d, &view("new", 0, 0), &[]), 3);
        // Scaled down deployment.
        assert_eq!(new_rs_target(&d, &view("new", 5, 5), &[]), 3);
    }

    #[test]
    fn old_rs_scales_down_only_within_max_unavailable() {
        let d = dep(3, IntOrString::Int(1), IntOrString::Int(0));
        // New pod not yet available: the old one must stay.
        let olds = scale_down_olds(&d, &view("new", 1, 0), &[view("old", 3, 3)]);
        assert_eq!(olds[0].spec, 3);
        // New pod available: one old pod may go.
        let olds = scale_down_olds(&d, &view("new", 1, 1), &[view("old", 3, 3)]);
        assert_eq!(olds[0].spec, 2);
    }

    #[test]
    fn unhealthy_old_replicas_go_first() {
        let d = dep(4, IntOrString::Int(0), IntOrString::Int(1));
        let olds = scale_down_olds(&d, &view("new", 0, 0), &[view("broken", 2, 0), view("old", 2, 2)]);
        // Budget = all(4) - minAvailable(3) - newUnavailable(0) = 1, spent on
        // the broken ReplicaSet; the healthy one keeps availability at 2 < 3.
        assert_eq!(olds[0].spec, 1, "unavailable replicas go first");
        assert_eq!(olds[1].spec, 2);
    }

    #[test]
    fn recreate_waits_for_old_pods() {
        let mut d = dep(2, IntOrString::Int(1), IntOrString::Int(0));
        d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
        let (new, olds) = recreate(&d, &view("new", 0, 0), &[view("old", 2, 2)]);
        assert_eq!((new, olds[0].spec), (0, 0));
        let gone = RsView {
            actual: 0,
            ..view("old", 0, 0)
        };
        assert_eq!(recreate(&d, &view("new", 0, 0), &[gone]).0, 2);
        assert_eq!(max_unavailable(&d), 0);
    }
}
