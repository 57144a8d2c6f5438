//! The pod worker's state machine, as upstream's pod_workers.go: a pod is
//! synced until it is deleted, then terminating until its containers have
//! stopped, then terminated. [`transition`] is the whole of it, and pure.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

/// Where a pod worker is in its pod's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodState {
    /// The pod should run: each round brings it closer to its spec.
    Syncing,
    /// The pod is being stopped: running containers are sent SIGTERM and,
    /// once `deadline` has passed, SIGKILL.
    Terminating { deadline: Instant },
    /// Every container has stopped and the pod's resources are released;
    /// the worker ends.
    Terminated,
}

/// What the worker learns, from its update channel or from its own work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// A desired pod that is not being deleted.
    Run,
    /// The pod is being deleted and gets `grace` to stop.
    Delete { grace: Duration },
    /// The pod is gone from the API (a force delete): nothing to wait for.
    Remove,
    /// Every container of the terminating pod has stopped and all is released.
    Stopped,
}

impl Update {
    /// The update a desired pod means; `None` is a pod gone from the API.
    pub fn of(pod: Option<&Pod>) -> Update {
        let Some(pod) = pod else {
            return Update::Remove;
        };
        if pod.metadata.deletion_timestamp.is_none() {
            return Update::Run;
        }
        // The deletion's own grace period wins over the spec's.
        let grace = match pod.metadata.deletion_grace_period_seconds {
            Some(secs) => Duration::from_secs(secs.max(0) as u64),
            None => grace_period(pod),
        };
        Update::Delete { grace }
    }
}

/// The pod's terminationGracePeriodSeconds (30 s by default).
pub fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30)
        .max(0);
    Duration::from_secs(secs as u64)
}

/// The next state. A deleted pod never runs again; while it terminates, a
/// shorter grace period (a force delete) brings the deadline forward and a
/// longer one leaves it, as upstream.
pub fn transition(state: PodState, update: Update, now: Instant) -> PodState {
    use PodState::*;
    use Update::*;
    match (state, update) {
        (Terminated, _) => Terminated,
        (Syncing, Run | Stopped) => Syncing,
        (Syncing, Delete { grace }) => Terminating {
            deadline: now + grace,
        },
        (Syncing, Remove) => Terminating { deadline: now },
        (Terminating { deadline }, Run) => Terminating { deadline },
        (Terminating { deadline }, Delete { grace }) => Terminating {
            deadline: deadline.min(now + grace),
        },
        (Terminating { deadline }, Remove) => Terminating {
            deadline: deadline.min(now),
        },
        (Terminating { .. }, Stopped) => Terminated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn a_running_pod_syncs_until_deleted() {
        let now = Instant::now();
        assert_eq!(
            transition(PodState::Syncing, Update::Run, now),
            PodState::Syncing
        );
        assert_eq!(
            transition(PodState::Syncing, Update::Delete { grace: s(30) }, now),
            PodState::Terminating {
                deadline: now + s(30)
            }
        );
        assert_eq!(
            transition(PodState::Syncing, Update::Remove, now),
            PodState::Terminating { deadline: now }
        );
    }

    #[test]
    fn a_shorter_grace_period_brings_the_deadline_forward_never_back() {
        let t0 = Instant::now();
        let terminating = PodState::Terminating {
            deadline: t0 + s(30),
        };
        let t1 = t0 + s(5);
        assert_eq!(
            transition(terminating, Update::Delete { grace: s(0) }, t1),
            PodState::Terminating { deadline: t1 }
        );
        assert_eq!(
            transition(terminating, Update::Delete { grace: s(10) }, t1),
            PodState::Terminating {
                deadline: t1 + s(10)
            }
        );
        assert_eq!(
            transition(terminating, Update::Delete { grace: s(60) }, t1),
            terminating
        );
        assert_eq!(
            transition(terminating, Update::Remove, t1),
            PodState::Terminating { deadline: t1 }
        );
    }

    #[test]
    fn a_terminating_pod_never_runs_again_and_ends_terminated() {
        let now = Instant::now();
        let terminating = PodState::Terminating { deadline: now };
        assert_eq!(transition(terminating, Update::Run, now), terminating);
        assert_eq!(
            transition(terminating, Update::Stopped, now),
            PodState::Terminated
        );
        for u in [Update::Run, Update::Remove, Update::Delete { grace: s(1) }] {
            assert_eq!(
                transition(PodState::Terminated, u, now),
                PodState::Terminated
            );
        }
    }

    #[test]
    fn the_deletion_grace_period_wins_over_the_spec() {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "terminationGracePeriodSeconds": 20}
        }))
        .unwrap();
        assert_eq!(Update::of(Some(&pod)), Update::Run);
        pod.metadata.deletion_timestamp = Some(crate::ktime::time(chrono::Utc::now()));
        assert_eq!(Update::of(Some(&pod)), Update::Delete { grace: s(20) });
        pod.metadata.deletion_grace_period_seconds = Some(0);
        assert_eq!(Update::of(Some(&pod)), Update::Delete { grace: s(0) });
        assert_eq!(Update::of(None), Update::Remove);
    }
}
