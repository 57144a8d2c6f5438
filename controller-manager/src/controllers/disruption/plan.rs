//! The pure part of the disruption controller (upstream's trySync,
//! getExpectedPodCount, buildDisruptedPodMap, countHealthyPods,
//! updatePdbStatus and failSafe): from a budget, the pods of its namespace
//! and the scale of their controllers, the status the budget should have.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::events::EventType;
use crate::podutil;

/// Upstream's DeletionTimeout: an entry of status.disruptedPods whose pod
/// is not being deleted this long after its eviction is dropped (the
/// eviction's delete is taken to have failed).
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
pub const SUFFICIENT_PODS: &str = "SufficientPods";
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
pub const SYNC_FAILED: &str = "SyncFailed";

/// What the controller of one selected pod says about how many pods there
/// should be, looked up by the caller (caches, or the scale subresource).
#[derive(Debug, Clone, PartialEq)]
pub enum Scale {
    /// The controller exists with this uid (a Deployment's, for a ReplicaSet
    /// it owns) and wants `replicas` pods.
    Found { uid: String, replicas: i32 },
    /// No such controller (or a different object under its name).
    Missing,
    /// The controller cannot be asked (no scale subresource, unknown kind).
    Failed(String),
}

/// Why a budget's status could not be computed: the budget then allows no
/// disruption (upstream's failSafe).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("found no controllers for pod {0:?}")]
    NoController(String),
    #[error("{0}")]
    Scale(String),
    #[error("invalid value for IntOrString: invalid type: string is not a percentage")]
    NotAPercentage,
    #[error("invalid value {0:?}: {1}")]
    BadPercent(String, String),
}

/// An Event to record: about the budget, or about one of its pods.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanEvent {
    /// None for the budget itself, else the pod's name.
    pub pod: Option<String>,
    pub type_: EventType,
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// The status to write; None when the current one is already right.
    pub status: Option<PodDisruptionBudgetStatus>,
    pub events: Vec<PlanEvent>,
    /// Sync again then: the earliest disruptedPods entry times out.
    pub recheck: Option<Duration>,
    /// Set when the status is the fail-safe one.
    pub error: Option<PlanError>,
}

/// The pods of `pods` (one namespace) that the budget selects: policy/v1
/// selects every pod with an empty selector and none with a null one.
pub fn selected_pods(pdb: &PodDisruptionBudget, pods: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
    let ns = pdb.namespace();
    let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
    pods.iter()
        .filter(|p| p.namespace() == ns)
        .filter(|p| podutil::selector_matches(selector, p.metadata.labels.as_ref()))
        .cloned()
        .collect()
}

/// Upstream's GetScaledValueFromIntOrPercent with rounding up.
pub fn scaled_value_round_up(v: &IntOrString, total: i32) -> Result<i32, PlanError> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let digits = s.strip_suffix('%').ok_or(PlanError::NotAPercentage)?;
            let percent: i64 = digits.parse().map_err(|e: std::num::ParseIntError| PlanError::BadPercent(s.clone(), e.to_string()))?;
            let scaled = percent * total as i64;
            // Ceiling division that is right for negative values too.
            Ok(scaled.div_euclid(100) as i32 + i32::from(scaled.rem_euclid(100) != 0))
        }
    }
}

/// The sum of the selected pods' controllers' scales, and the pods that
/// have no controller (upstream's getExpectedScale).
fn expected_scale(pods: &[Arc<Pod>], scales: &HashMap<String, Scale>) -> Result<(i32, Vec<String>), PlanError> {
    let mut by_controller: BTreeMap<String, i32> = BTreeMap::new();
    let mut unmanaged = Vec::new();
    for pod in pods {
        let Some(cref) = podutil::controller_of(&pod.metadata) else {
            unmanaged.push(pod.name_any());
            continue;
        };
        match scales.get(&cref.uid) {
            Some(Scale::Found { uid, replicas }) => {
                by_controller.insert(uid.clone(), *replicas);
            }
            Some(Scale::Failed(msg)) => return Err(PlanError::Scale(msg.clone())),
            Some(Scale::Missing) | None => return Err(PlanError::NoController(pod.name_any())),
        }
    }
    Ok((by_controller.values().sum(), unmanaged))
}

/// (expectedPods, desiredHealthy, unmanaged pods), as upstream's
/// getExpectedPodCount: an integer minAvailable counts the pods themselves,
/// a percentage or maxUnavailable the controllers' scale.
fn expected_and_desired(pdb: &PodDisruptionBudget, pods: &[Arc<Pod>], scales: &HashMap<String, Scale>) -> Result<(i32, i32, Vec<String>), PlanError> {
    let spec = pdb.spec.as_ref();
    if let Some(mu) = spec.and_then(|s| s.max_unavailable.as_ref()) {
        let (expected, unmanaged) = expected_scale(pods, scales)?;
        let max_unavailable = scaled_value_round_up(mu, expected)?;
        return Ok((expected, (expected - max_unavailable).max(0), unmanaged));
    }
    match spec.and_then(|s| s.min_available.as_ref()) {
        Some(IntOrString::Int(i)) => Ok((pods.len() as i32, *i, Vec::new())),
        Some(pct @ IntOrString::String(_)) => {
            let (expected, unmanaged) = expected_scale(pods, scales)?;
            Ok((expected, scaled_value_round_up(pct, expected)?, unmanaged))
        }
        None => Ok((0, 0, Vec::new())),
    }
}

/// The disruptedPods entries to keep, the events about those dropped for
/// timing out, and when the next one times out (buildDisruptedPodMap).
fn disrupted_pods(pdb: &PodDisruptionBudget, pods: &[Arc<Pod>], now: Timestamp) -> (BTreeMap<String, Time>, Vec<PlanEvent>, Option<Timestamp>) {
    let mut kept = BTreeMap::new();
    let mut events = Vec::new();
    let mut recheck: Option<Timestamp> = None;
    let Some(old) = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref()) else {
        return (kept, events, recheck);
    };
    let timeout = SignedDuration::try_from(DELETION_TIMEOUT).unwrap_or(SignedDuration::ZERO);
    // Pods gone or already being deleted drop out: their eviction is done.
    for pod in pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        let name = pod.name_any();
        let Some(at) = old.get(&name) else { continue };
        let deadline = at.0 + timeout;
        if deadline < now {
            events.push(PlanEvent {
                pod: Some(name),
                type_: EventType::Warning,
                reason: "NotDeleted",
                message: format!(
                    "Pod was expected by PDB {}/{} to be deleted but it wasn't",
                    pdb.namespace().unwrap_or_default(),
                    pdb.name_any()
                ),
            });
        } else {
            recheck = Some(recheck.map_or(deadline, |r| r.min(deadline)));
            kept.insert(name, at.clone());
        }
    }
    (kept, events, recheck)
}

/// Ready pods not being deleted and not just evicted (countHealthyPods).
fn current_healthy(pods: &[Arc<Pod>], disrupted: &BTreeMap<String, Time>) -> i32 {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !disrupted.contains_key(&p.name_any()))
        .filter(|p| podutil::is_ready(p))
        .count() as i32
}

/// apimeta.SetStatusCondition: the transition time moves only when the
/// status does.
fn set_condition(conds: &mut Vec<Condition>, mut new: Condition) {
    match conds.iter_mut().find(|c| c.type_ == new.type_) {
        Some(c) => {
            if c.status != new.status {
                c.status = std::mem::take(&mut new.status);
                c.last_transition_time = new.last_transition_time;
            }
            c.reason = new.reason;
            c.message = new.message;
            c.observed_generation = new.observed_generation;
        }
        None => conds.push(new),
    }
}

fn allowed_condition(allowed: i32, generation: Option<i64>, now: Timestamp) -> Condition {
    let (status, reason) = if allowed > 0 { ("True", SUFFICIENT_PODS) } else { ("False", INSUFFICIENT_PODS) };
    Condition {
        type_: DISRUPTION_ALLOWED.into(),
        status: status.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: generation,
        last_transition_time: Time(now),
    }
}

/// pdbhelper.ConditionsAreUpToDate.
fn conditions_up_to_date(pdb: &PodDisruptionBudget) -> bool {
    let Some(st) = pdb.status.as_ref() else { return false };
    let Some(c) = st.conditions.iter().flatten().find(|c| c.type_ == DISRUPTION_ALLOWED) else {
        return false;
    };
    if st.observed_generation != pdb.metadata.generation {
        return false;
    }
    if st.disruptions_allowed > 0 {
        c.status == "True" && c.reason == SUFFICIENT_PODS
    } else {
        c.status == "False" && c.reason == INSUFFICIENT_PODS
    }
}

/// The fail-safe status: no disruption allowed, the reason in the
/// condition; observedGeneration stays, so evictions keep being refused.
fn fail_safe(pdb: &PodDisruptionBudget, err: &PlanError, now: Timestamp) -> PodDisruptionBudgetStatus {
    let mut st = pdb.status.clone().unwrap_or_default();
    st.disruptions_allowed = 0;
    let observed = st.observed_generation;
    set_condition(
        st.conditions.get_or_insert_with(Vec::new),
        Condition {
            type_: DISRUPTION_ALLOWED.into(),
            status: "False".into(),
            reason: SYNC_FAILED.into(),
            message: err.to_string(),
            observed_generation: observed,
            last_transition_time: Time(now),
        },
    );
    st
}

fn budget_event(type_: EventType, reason: &'static str, message: String) -> PlanEvent {
    PlanEvent { pod: None, type_, reason, message }
}

/// Decide a budget's status from the pods of its namespace and the scales
/// of the selected pods' controllers (keyed by controller-reference uid).
pub fn plan(pdb: &PodDisruptionBudget, pods: &[Arc<Pod>], scales: &HashMap<String, Scale>, now: Timestamp) -> Plan {
    let pods = selected_pods(pdb, pods);
    let mut out = Plan::default();
    if pods.is_empty() {
        out.events.push(budget_event(EventType::Normal, "NoPods", "No matching pods found".into()));
    }
    let (expected, desired, unmanaged) = match expected_and_desired(pdb, &pods, scales) {
        Ok(v) => v,
        Err(e) => {
            out.events.push(budget_event(
                EventType::Warning,
                "CalculateExpectedPodCountFailed",
                format!("Failed to calculate the number of expected pods: {e}"),
            ));
            let st = fail_safe(pdb, &e, now);
            out.status = (pdb.status.as_ref() != Some(&st)).then_some(st);
            out.error = Some(e);
            return out;
        }
    };
    if !unmanaged.is_empty() {
        let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()).map(selector_string).unwrap_or_default();
        out.events.push(budget_event(
            EventType::Warning,
            "UnmanagedPods",
            format!(
                "Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value."
            ),
        ));
    }
    let (disrupted, events, recheck) = disrupted_pods(pdb, &pods, now);
    out.events.extend(events);
    out.recheck = recheck.and_then(|t| Duration::try_from(t.duration_since(now)).ok());
    let healthy = current_healthy(&pods, &disrupted);
    // No disruption while no pod is expected: the first pods of a new budget
    // are safe before this controller has seen them.
    let allowed = if expected <= 0 { 0 } else { (healthy - desired).max(0) };

    let old = pdb.status.clone().unwrap_or_default();
    let same = old.current_healthy == healthy
        && old.desired_healthy == desired
        && old.expected_pods == expected
        && old.disruptions_allowed == allowed
        && old.disrupted_pods.clone().unwrap_or_default() == disrupted
        && old.observed_generation == pdb.metadata.generation
        && conditions_up_to_date(pdb);
    if same {
        return out;
    }
    let mut conditions = old.conditions.unwrap_or_default();
    set_condition(&mut conditions, allowed_condition(allowed, pdb.metadata.generation, now));
    out.status = Some(PodDisruptionBudgetStatus {
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: expected,
        disruptions_allowed: allowed,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        observed_generation: pdb.metadata.generation,
        conditions: Some(conditions),
    });
    out
}

/// A label selector as upstream's `%v` of a LabelSelector prints enough of
/// it to recognise: `app=web,tier in (a,b)`.
fn selector_string(sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector) -> String {
    let mut parts: Vec<String> = sel.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(format!("{} {} ({values})", e.key, e.operator));
    }
    parts.join(",")
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
