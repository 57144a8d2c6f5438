//! Pod phases: a pod in Succeeded or Failed never runs again.

use k8s_openapi::api::core::v1::Pod;

pub const PENDING: &str = "Pending";
pub const RUNNING: &str = "Running";
pub const SUCCEEDED: &str = "Succeeded";
pub const FAILED: &str = "Failed";
pub const UNKNOWN: &str = "Unknown";

/// Upstream's IsPodPhaseTerminal.
pub fn is_pod_phase_terminal(phase: &str) -> bool {
    phase == SUCCEEDED || phase == FAILED
}

/// Upstream's IsPodTerminal: the pod's phase is Succeeded or Failed.
pub fn is_pod_terminal(pod: &Pod) -> bool {
    pod_phase(pod).is_some_and(is_pod_phase_terminal)
}

/// The pod's status.phase, if set.
pub fn pod_phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;

    fn pod(phase: Option<&str>) -> Pod {
        Pod { status: Some(PodStatus { phase: phase.map(Into::into), ..Default::default() }), ..Default::default() }
    }

    #[test]
    fn only_succeeded_and_failed_are_terminal() {
        assert!(is_pod_terminal(&pod(Some(SUCCEEDED))));
        assert!(is_pod_terminal(&pod(Some(FAILED))));
        for p in [PENDING, RUNNING, UNKNOWN, ""] {
            assert!(!is_pod_terminal(&pod(Some(p))), "{p}");
        }
        assert!(!is_pod_terminal(&pod(None)));
        assert!(!is_pod_terminal(&Pod::default()));
    }
}
