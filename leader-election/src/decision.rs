//! The pure part of tryAcquireOrRenew: given the Lease as read, decide what
//! to write. The write itself carries the read resourceVersion, so two
//! candidates racing for an expired Lease cannot both win.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

use crate::LeaseConfig;

/// What to do after reading the Lease.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// No Lease exists: create it holding it ourselves.
    Create(Lease),
    /// We hold it (renew) or it expired (take over): write this object.
    Update(Lease),
    /// Someone else holds a live Lease.
    Wait,
}

/// The Lease record as last seen, and when (by the local clock) it last
/// changed. Expiry is measured from that local instant, not from the
/// holder's renewTime, so clock skew between machines does not matter.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    transitions: Option<i32>,
    at: Instant,
}

impl Observed {
    pub fn of(lease: &Lease, at: Instant) -> Self {
        let spec = lease.spec.as_ref();
        Observed {
            holder: spec.and_then(|s| s.holder_identity.clone()),
            renew_time: spec.and_then(|s| s.renew_time.clone()),
            transitions: spec.and_then(|s| s.lease_transitions),
            at,
        }
    }

    fn same_record(&self, other: &Observed) -> bool {
        self.holder == other.holder && self.renew_time == other.renew_time && self.transitions == other.transitions
    }
}

pub fn decide(
    config: &LeaseConfig,
    current: Option<&Lease>,
    previous: Option<Observed>,
    now: Instant,
    wall: Timestamp,
) -> (Action, Option<Observed>) {
    let duration_secs = i32::try_from(config.lease_duration.as_secs()).unwrap_or(i32::MAX);
    let Some(lease) = current else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(MicroTime(wall)),
                renew_time: Some(MicroTime(wall)),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return (Action::Create(lease), None);
    };

    let fresh = Observed::of(lease, now);
    let observed = match previous {
        Some(prev) if prev.same_record(&fresh) => prev,
        _ => fresh,
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let record_duration = spec
        .lease_duration_seconds
        .filter(|s| *s > 0)
        .map(|s| std::time::Duration::from_secs(s as u64))
        .unwrap_or(config.lease_duration);

    let held_by_other = !holder.is_empty() && holder != config.identity;
    if held_by_other && observed.at + record_duration > now {
        return (Action::Wait, Some(observed));
    }

    let mut next = lease.clone();
    let mut new_spec = spec.clone();
    new_spec.renew_time = Some(MicroTime(wall));
    new_spec.lease_duration_seconds = Some(duration_secs);
    if holder != config.identity {
        new_spec.holder_identity = Some(config.identity.clone());
        new_spec.acquire_time = Some(MicroTime(wall));
        new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    next.spec = Some(new_spec);
    (Action::Update(next), Some(observed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(identity: &str) -> LeaseConfig {
        LeaseConfig::new("kube-system", "kube-scheduler", identity)
    }

    fn lease(holder: &str, renew_secs: i64) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("kube-scheduler".into()),
                namespace: Some("kube-system".into()),
                resource_version: Some("7".into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(Timestamp::from_second(renew_secs).unwrap())),
                lease_transitions: Some(2),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn creates_missing_lease_holding_it() {
        let (action, _) = decide(&config("a"), None, None, Instant::now(), Timestamp::now());
        let Action::Create(l) = action else {
            panic!("expected create")
        };
        let spec = l.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(0));
        assert_eq!(spec.lease_duration_seconds, Some(15));
    }

    #[test]
    fn waits_while_another_holder_is_live() {
        let now = Instant::now();
        let (action, obs) = decide(&config("b"), Some(&lease("a", 100)), None, now, Timestamp::now());
        assert_eq!(action, Action::Wait);
        // Unchanged record, 10 s later: still live.
        let (action, obs) = decide(
            &config("b"),
            Some(&lease("a", 100)),
            obs,
            now + Duration::from_secs(10),
            Timestamp::now(),
        );
        assert_eq!(action, Action::Wait);
        // Unchanged record 16 s after first seen: expired, take over.
        let (action, _) = decide(
            &config("b"),
            Some(&lease("a", 100)),
            obs,
            now + Duration::from_secs(16),
            Timestamp::now(),
        );
        let Action::Update(l) = action else {
            panic!("expected takeover")
        };
        let spec = l.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("b"));
        assert_eq!(spec.lease_transitions, Some(3));
        assert_eq!(
            l.metadata.resource_version.as_deref(),
            Some("7"),
            "write is conditional on the read"
        );
    }

    #[test]
    fn a_renewed_record_restarts_the_expiry_clock() {
        let now = Instant::now();
        let (_, obs) = decide(&config("b"), Some(&lease("a", 100)), None, now, Timestamp::now());
        let later = now + Duration::from_secs(14);
        let (action, obs) = decide(&config("b"), Some(&lease("a", 112)), obs, later, Timestamp::now());
        assert_eq!(action, Action::Wait);
        let (action, _) = decide(
            &config("b"),
            Some(&lease("a", 112)),
            obs,
            later + Duration::from_secs(10),
            Timestamp::now(),
        );
        assert_eq!(action, Action::Wait, "renewal observed 10 s ago is still live");
    }

    #[test]
    fn holder_renews_without_a_transition() {
        let (action, _) = decide(
            &config("a"),
            Some(&lease("a", 100)),
            None,
            Instant::now(),
            Timestamp::now(),
        );
        let Action::Update(l) = action else {
            panic!("expected renew")
        };
        let spec = l.spec.unwrap();
        assert_eq!(spec.lease_transitions, Some(2));
        assert_ne!(spec.renew_time, Some(MicroTime(Timestamp::from_second(100).unwrap())));
    }

    #[test]
    fn released_lease_is_taken_at_once() {
        let (action, _) = decide(
            &config("b"),
            Some(&lease("", 100)),
            None,
            Instant::now(),
            Timestamp::now(),
        );
        assert!(matches!(action, Action::Update(_)));
    }
}
