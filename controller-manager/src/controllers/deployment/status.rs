//! Deployment status and its Available and Progressing conditions
//! (upstream's calculateStatus and syncRolloutStatus).

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::rollout;

fn sum(rss: &[&ReplicaSet], f: impl Fn(&ReplicaSet) -> i32) -> i32 {
    rss.iter().map(|r| f(r)).sum()
}

pub fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}
pub fn actual(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}
pub fn available(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
}
fn ready(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0)
}

pub fn condition<'a>(st: &'a DeploymentStatus, ty: &str) -> Option<&'a DeploymentCondition> {
    st.conditions.as_ref()?.iter().find(|c| c.type_ == ty)
}

/// Set a condition; lastTransitionTime moves only when the status changes.
pub fn set_condition(st: &mut DeploymentStatus, mut c: DeploymentCondition) {
    let conds = st.conditions.get_or_insert_with(Vec::new);
    if let Some(old) = conds.iter_mut().find(|o| o.type_ == c.type_) {
        if old.status == c.status && old.reason == c.reason {
            // Keep both timestamps: nothing changed.
            c.last_transition_time = old.last_transition_time.clone();
            c.last_update_time = old.last_update_time.clone();
        } else if old.status == c.status {
            c.last_transition_time = old.last_transition_time.clone();
        }
        *old = c;
    } else {
        conds.push(c);
    }
}

pub fn new_condition(ty: &str, status: &str, reason: &str, message: String, now: Timestamp) -> DeploymentCondition {
    DeploymentCondition {
        type_: ty.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The status counts and the Available condition.
pub fn calculate(d: &Deployment, all: &[&ReplicaSet], new: Option<&ReplicaSet>, now: Timestamp) -> DeploymentStatus {
    let old = d.status.clone().unwrap_or_default();
    let avail = sum(all, available);
    let total = sum(all, spec_replicas);
    let mut st = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(sum(all, actual)),
        updated_replicas: Some(new.map(actual).unwrap_or(0)),
        ready_replicas: Some(sum(all, ready)),
        available_replicas: Some(avail),
        unavailable_replicas: Some((total - avail).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: None,
    };
    let c = if avail >= rollout::replicas(d) - rollout::max_unavailable(d) {
        new_condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        new_condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set_condition(&mut st, c);
    st
}

/// Upstream's DeploymentComplete.
pub fn complete(d: &Deployment, st: &DeploymentStatus) -> bool {
    let want = rollout::replicas(d);
    st.updated_replicas == Some(want)
        && st.replicas == Some(want)
        && st.available_replicas == Some(want)
        && st.observed_generation >= d.metadata.generation
}

/// Upstream's DeploymentProgressing: more new pods or fewer old ones.
fn progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let old_old = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old = new.replicas.unwrap_or(0) - new.updated_replicas.unwrap_or(0);
    new.updated_replicas > old.updated_replicas
        || new_old < old_old
        || new.ready_replicas > old.ready_replicas
        || new.available_replicas > old.available_replicas
}

pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    // Upstream defaults progressDeadlineSeconds to 600; MaxInt32 means none.
    let v = d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).unwrap_or(600);
    (v != i32::MAX).then_some(v)
}

/// Set Progressing from the rollout's progress. Returns when to check
/// again for a deadline.
pub fn sync_progressing(
    d: &Deployment,
    st: &mut DeploymentStatus,
    new_rs_name: Option<&str>,
    now: Timestamp,
) -> Option<std::time::Duration> {
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    let old = d.status.clone().unwrap_or_default();
    let rs = new_rs_name.unwrap_or_default();
    if paused {
        set_condition(
            st,
            new_condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused".into(), now),
        );
        return None;
    }
    let was_paused = condition(&old, "Progressing").is_some_and(|c| c.reason.as_deref() == Some("DeploymentPaused"));
    if was_paused {
        set_condition(
            st,
            new_condition("Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed".into(), now),
        );
    }
    let deadline = progress_deadline(d)?;
    if complete(d, st) {
        set_condition(
            st,
            new_condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{rs}\" has successfully progressed."),
                now,
            ),
        );
        return None;
    }
    if progressing(&old, st) || was_paused {
        let mut c = new_condition(
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{rs}\" is progressing."),
            now,
        );
        if let Some(prev) = condition(st, "Progressing").filter(|p| p.status == "True") {
            c.last_transition_time = prev.last_transition_time.clone();
        }
        // Progress refreshes lastUpdateTime, which the deadline counts from.
        let conds = st.conditions.get_or_insert_with(Vec::new);
        conds.retain(|o| o.type_ != "Progressing");
        conds.push(c);
        return Some(std::time::Duration::from_secs(deadline as u64 + 1));
    }
    let last = condition(st, "Progressing").and_then(|c| c.last_update_time.as_ref()).map(|t| t.0);
    let already_failed = condition(st, "Progressing").is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
    match last {
        Some(t) if !already_failed => {
            let due = t + SignedDuration::from_secs(deadline as i64);
            if due <= now {
                set_condition(
                    st,
                    new_condition(
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        format!("ReplicaSet \"{rs}\" has timed out progressing."),
                        now,
                    ),
                );
                None
            } else {
                std::time::Duration::try_from(due.duration_since(now))
                    .ok()
                    .map(|d| d + std::time::Duration::from_millis(200))
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, ReplicaSetSpec, ReplicaSetStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn dep(replicas: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn rs(spec: i32, actual: i32, avail: i32) -> ReplicaSet {
        ReplicaSet {
            spec: Some(ReplicaSetSpec {
                replicas: Some(spec),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas: actual,
                available_replicas: Some(avail),
                ready_replicas: Some(avail),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn complete_rollout_is_available_and_progressed() {
        let d = dep(3);
        let new = rs(3, 3, 3);
        let now = Timestamp::now();
        let mut st = calculate(&d, &[&new], Some(&new), now);
        assert_eq!(st.updated_replicas, Some(3));
        assert_eq!(condition(&st, "Available").unwrap().status, "True");
        sync_progressing(&d, &mut st, Some("web-abc"), now);
        let p = condition(&st, "Progressing").unwrap();
        assert_eq!(p.reason.as_deref(), Some("NewReplicaSetAvailable"));
        assert_eq!(p.message.as_deref(), Some("ReplicaSet \"web-abc\" has successfully progressed."));
    }

    #[test]
    fn stalled_rollout_exceeds_its_deadline() {
        let mut d = dep(3);
        d.spec.as_mut().unwrap().progress_deadline_seconds = Some(10);
        let then = Timestamp::now() - SignedDuration::from_secs(60);
        let mut old = DeploymentStatus::default();
        set_condition(
            &mut old,
            new_condition("Progressing", "True", "ReplicaSetUpdated", "x".into(), then),
        );
        d.status = Some(old);
        let new = rs(3, 3, 0);
        let now = Timestamp::now();
        let mut st = calculate(&d, &[&new], Some(&new), now);
        assert_eq!(condition(&st, "Available").unwrap().status, "False");
        // First sync sees progress (updated replicas went up) ...
        let mut d2 = d.clone();
        d2.status = Some(st.clone());
        sync_progressing(&d, &mut st, Some("web-abc"), now);
        // ... a later one with no change and an old lastUpdateTime times out.
        let mut st2 = calculate(&d2, &[&new], Some(&new), now);
        if let Some(c) = st2.conditions.as_mut().unwrap().iter_mut().find(|c| c.type_ == "Progressing") {
            c.last_update_time = Some(Time(then));
        }
        d2.status = Some(st2.clone());
        sync_progressing(&d2, &mut st2, Some("web-abc"), now);
        assert_eq!(
            condition(&st2, "Progressing").unwrap().reason.as_deref(),
            Some("ProgressDeadlineExceeded")
        );
        assert_eq!(condition(&st2, "Progressing").unwrap().status, "False");
    }

    #[test]
    fn paused_deployment_reports_paused() {
        let mut d = dep(1);
        d.spec.as_mut().unwrap().paused = Some(true);
        let mut st = calculate(&d, &[], None, Timestamp::now());
        sync_progressing(&d, &mut st, None, Timestamp::now());
        assert_eq!(condition(&st, "Progressing").unwrap().reason.as_deref(), Some("DeploymentPaused"));
    }
}
