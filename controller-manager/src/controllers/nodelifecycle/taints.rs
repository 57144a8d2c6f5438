//! Taints and tolerations: which NoExecute taints a pod tolerates and for
//! how long (upstream's taint-eviction controller).

use apimachinery::taints::tolerates_taint;
use k8s_openapi::api::core::v1::{Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// When a pod on a node with these taints must be evicted: `Some(now)`
/// if a NoExecute taint is not tolerated at all, the earliest end of a
/// bounded toleration otherwise, `None` if it may stay forever.
pub fn eviction_time(pod: &Pod, taints: &[Taint], now: Timestamp) -> Option<Timestamp> {
    let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.clone()).unwrap_or_default();
    let mut due: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let matching: Vec<&Toleration> = tolerations.iter().filter(|t| tolerates_taint(t, taint)).collect();
        if matching.is_empty() {
            return Some(now);
        }
        // A pod tolerating a taint forever in any toleration stays; else the shortest bound wins.
        if matching.iter().any(|t| t.toleration_seconds.is_none()) {
            continue;
        }
        let secs = matching.iter().filter_map(|t| t.toleration_seconds).min().unwrap_or(0).max(0);
        let added = taint.time_added.as_ref().map(|t| t.0).unwrap_or(now);
        let at = added + SignedDuration::from_secs(secs);
        due = Some(due.map_or(at, |d| d.min(at)));
    }
    due
}

pub fn taint(key: &str, effect: &str, now: Timestamp) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        value: None,
        time_added: Some(Time(now)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn tol(key: &str, op: &str, effect: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some(op.into()),
            effect: Some(effect.into()),
            toleration_seconds: secs,
            value: None,
        }
    }

    fn pod_with(tols: Vec<Toleration>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                tolerations: Some(tols),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn untolerated_noexecute_evicts_now() {
        let now = Timestamp::now();
        let taints = vec![taint(UNREACHABLE, "NoExecute", now)];
        assert_eq!(eviction_time(&pod_with(vec![]), &taints, now), Some(now));
    }

    #[test]
    fn toleration_seconds_delay_eviction() {
        let now = Timestamp::now();
        let taints = vec![taint(UNREACHABLE, "NoExecute", now)];
        let p = pod_with(vec![tol(UNREACHABLE, "Exists", "NoExecute", Some(300))]);
        assert_eq!(eviction_time(&p, &taints, now), Some(now + SignedDuration::from_secs(300)));
        let forever = pod_with(vec![tol(UNREACHABLE, "Exists", "NoExecute", None)]);
        assert_eq!(eviction_time(&forever, &taints, now), None);
    }

    #[test]
    fn noschedule_taints_never_evict() {
        let now = Timestamp::now();
        assert_eq!(
            eviction_time(&pod_with(vec![]), &[taint(UNREACHABLE, "NoSchedule", now)], now),
            None
        );
    }
}
