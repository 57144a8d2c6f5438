//! The plan against upstream's documented cases (disruption_test.go):
//! rounding of percentages, the scale of each kind of controller, pods
//! not ready or being deleted, and the disruptedPods timeout.

use super::*;
use crate::podutil::fixtures::{pod, with_phase};
use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

fn pdb(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some("budget".into()),
            namespace: Some("default".into()),
            generation: Some(3),
            ..Default::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            min_available: min,
            max_unavailable: max,
            selector: Some(LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    }
}

fn int(i: i32) -> Option<IntOrString> {
    Some(IntOrString::Int(i))
}

fn pct(s: &str) -> Option<IntOrString> {
    Some(IntOrString::String(s.into()))
}

/// A Ready (or not) web pod controlled by the object with `owner` uid.
fn web(name: &str, ready: bool, owner: Option<&str>) -> Arc<Pod> {
    let mut p = with_phase(pod(name, &[("app", "web")]), "Running", ready);
    p.metadata.owner_references = owner.map(|uid| {
        vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: uid.into(),
            uid: uid.into(),
            controller: Some(true),
            ..Default::default()
        }]
    });
    Arc::new(p)
}

fn scales(entries: &[(&str, i32)]) -> HashMap<String, Scale> {
    entries
        .iter()
        .map(|(uid, n)| (uid.to_string(), Scale::Found { uid: uid.to_string(), replicas: *n }))
        .collect()
}

/// (disruptionsAllowed, currentHealthy, desiredHealthy, expectedPods), as upstream's VerifyPdbStatus.
fn counts(p: &Plan) -> (i32, i32, i32, i32) {
    let s = p.status.as_ref().expect("a status to write");
    (s.disruptions_allowed, s.current_healthy, s.desired_healthy, s.expected_pods)
}

fn condition(p: &Plan) -> Condition {
    let s = p.status.as_ref().expect("a status to write");
    s.conditions.iter().flatten().find(|c| c.type_ == DISRUPTION_ALLOWED).cloned().expect("condition")
}

#[test]
fn no_pods_allow_nothing_and_say_so() {
    let p = plan(&pdb(int(0), None), &[], &HashMap::new(), Timestamp::now());
    assert_eq!(counts(&p), (0, 0, 0, 0));
    let s = p.status.as_ref().unwrap();
    assert_eq!(s.observed_generation, Some(3));
    let c = condition(&p);
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", INSUFFICIENT_PODS));
    assert_eq!(c.observed_generation, Some(3));
    assert!(p.events.iter().any(|e| e.reason == "NoPods" && e.message == "No matching pods found"));
}

#[test]
fn integer_min_available_counts_the_pods_themselves() {
    // Upstream's TestNoSelector/TestUnavailable shape: no controller needed.
    let pods = vec![web("a", true, None), web("b", true, None), web("c", true, None)];
    let p = plan(&pdb(int(2), None), &pods, &HashMap::new(), Timestamp::now());
    assert_eq!(counts(&p), (1, 3, 2, 3));
    let c = condition(&p);
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", SUFFICIENT_PODS));
    assert!(!p.events.iter().any(|e| e.reason == "UnmanagedPods"), "an integer minAvailable needs no controllers");
}

#[test]
fn not_ready_and_terminating_pods_are_not_healthy() {
    let mut deleting = (*web("d", true, None)).clone();
    deleting.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    let pods = vec![web("a", true, None), web("b", false, None), Arc::new(deleting)];
    let p = plan(&pdb(int(1), None), &pods, &HashMap::new(), Timestamp::now());
    assert_eq!(counts(&p), (0, 1, 1, 3));
}

#[test]
fn percent_min_available_rounds_up_over_the_controller_scale() {
    // TestReplicationController: 34% of 3 rounds up to 2.
    let pods: Vec<Arc<Pod>> = (0..3).map(|i| web(&format!("p{i}"), true, Some("rc"))).collect();
    let s = scales(&[("rc", 3)]);
    assert_eq!(counts(&plan(&pdb(pct("34%"), None), &pods[..2], &s, Timestamp::now())), (0, 2, 2, 3));
    assert_eq!(counts(&plan(&pdb(pct("34%"), None), &pods, &s, Timestamp::now())), (1, 3, 2, 3));
    // A rogue Ready pod without a controller is healthy but unmanaged.
    let mut with_rogue = pods.clone();
    with_rogue.push(web("rogue", true, None));
    let p = plan(&pdb(pct("34%"), None), &with_rogue, &s, Timestamp::now());
    assert_eq!(counts(&p), (2, 4, 2, 3));
    assert!(p.events.iter().any(|e| e.reason == "UnmanagedPods" && e.message.contains("app=web")));
}

#[test]
fn a_replicaset_without_deployment_counts_its_own_scale() {
    // TestReplicaSet: 20% of 10 is 2; one pod exists.
    let p = plan(&pdb(pct("20%"), None), &[web("pod", true, Some("rs"))], &scales(&[("rs", 10)]), Timestamp::now());
    assert_eq!(counts(&p), (0, 1, 2, 10));
}

#[test]
fn percent_max_unavailable_follows_the_scale() {
    // TestPercentageMaxUnavailableWithScaling: 30% of 7 rounds up to 3, of 3 to 1.
    let pods = [web("pod", true, Some("rs"))];
    assert_eq!(counts(&plan(&pdb(None, pct("30%")), &pods, &scales(&[("rs", 7)]), Timestamp::now())), (0, 1, 4, 7));
    assert_eq!(counts(&plan(&pdb(None, pct("30%")), &pods, &scales(&[("rs", 3)]), Timestamp::now())), (0, 1, 2, 3));
}

#[test]
fn integer_max_unavailable_never_asks_for_fewer_than_zero() {
    let pods: Vec<Arc<Pod>> = (0..4).map(|i| web(&format!("p{i}"), true, Some("d"))).collect();
    // TestScaleResource: 10 replicas, 4 pods, maxUnavailable 5: 5 - (10 - 4) < 0 allowed.
    assert_eq!(counts(&plan(&pdb(None, int(5)), &pods, &scales(&[("d", 10)]), Timestamp::now())), (0, 4, 5, 10));
    assert_eq!(counts(&plan(&pdb(None, int(9)), &pods, &scales(&[("d", 4)]), Timestamp::now())), (4, 4, 0, 4));
}

#[test]
fn pods_of_one_controller_count_its_scale_once() {
    // TestMultipleControllers: two pods, one RC of scale 1, 1% → 1 allowed.
    let pods = vec![web("a", true, Some("rc1")), web("b", true, Some("rc1"))];
    assert_eq!(counts(&plan(&pdb(pct("1%"), None), &pods, &scales(&[("rc1", 1)]), Timestamp::now())), (1, 2, 1, 1));
    // Two controllers add up (TestTwoControllers' 28% of 22 rounds up to 7).
    let mut two: Vec<Arc<Pod>> = (0..11).map(|i| web(&format!("r{i}"), true, Some("rc"))).collect();
    two.extend((0..11).map(|i| web(&format!("d{i}"), i >= 2, Some("dep"))));
    let p = plan(&pdb(pct("28%"), None), &two, &scales(&[("rc", 11), ("dep", 11)]), Timestamp::now());
    assert_eq!(counts(&p), (13, 20, 7, 22));
}

#[test]
fn a_pod_whose_controller_is_missing_fails_safe() {
    let mut prior = pdb(pct("50%"), None);
    prior.status = Some(PodDisruptionBudgetStatus {
        disruptions_allowed: 2,
        observed_generation: Some(2),
        ..Default::default()
    });
    let pods = [web("orphaned", true, Some("gone"))];
    let p = plan(&prior, &pods, &HashMap::from([("gone".to_string(), Scale::Missing)]), Timestamp::now());
    assert_eq!(p.error, Some(PlanError::NoController("orphaned".into())));
    let s = p.status.as_ref().unwrap();
    assert_eq!(s.disruptions_allowed, 0);
    assert_eq!(s.observed_generation, Some(2), "fail-safe keeps the old observedGeneration");
    let c = condition(&p);
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", SYNC_FAILED));
    assert_eq!(c.message, "found no controllers for pod \"orphaned\"");
    assert!(p.events.iter().any(|e| e.reason == "CalculateExpectedPodCountFailed"));
    // Once written, the same failure writes nothing more.
    prior.status = p.status.clone();
    assert_eq!(plan(&prior, &pods, &HashMap::from([("gone".to_string(), Scale::Missing)]), Timestamp::now()).status, None);
}

#[test]
fn a_controller_without_scale_fails_safe_with_its_message() {
    let pods = [web("p", true, Some("job"))];
    let msg = "jobs.batch does not implement the scale subresource";
    let p = plan(&pdb(None, int(1)), &pods, &HashMap::from([("job".to_string(), Scale::Failed(msg.into()))]), Timestamp::now());
    assert_eq!(condition(&p).message, msg);
}

#[test]
fn bad_percentages_fail_safe() {
    let pods = [web("p", true, Some("rs"))];
    let p = plan(&pdb(pct("half"), None), &pods, &scales(&[("rs", 1)]), Timestamp::now());
    assert_eq!(p.error, Some(PlanError::NotAPercentage));
}

#[test]
fn scaled_values_round_up_as_upstream() {
    let v = |s: &str, total| scaled_value_round_up(&IntOrString::String(s.into()), total);
    assert_eq!(v("34%", 3), Ok(2));
    assert_eq!(v("33%", 3), Ok(1));
    assert_eq!(v("0%", 10), Ok(0));
    assert_eq!(v("100%", 7), Ok(7));
    assert_eq!(v("50%", 0), Ok(0));
    assert_eq!(v("5", 10), Err(PlanError::NotAPercentage));
    assert!(matches!(v("x%", 10), Err(PlanError::BadPercent(..))));
    assert_eq!(scaled_value_round_up(&IntOrString::Int(4), 10), Ok(4));
}

#[test]
fn evicted_pods_are_not_healthy_until_the_deletion_timeout() {
    let now = Timestamp::now();
    let mut b = pdb(int(1), None);
    let ago = |s: i64| Time(now - SignedDuration::from_secs(s));
    b.status = Some(PodDisruptionBudgetStatus {
        disrupted_pods: Some(BTreeMap::from([
            ("recent".to_string(), ago(10)),
            ("stale".to_string(), ago(180)),
            ("gone".to_string(), ago(5)),
        ])),
        ..Default::default()
    });
    let pods = vec![web("recent", true, None), web("stale", true, None), web("other", true, None)];
    let p = plan(&b, &pods, &HashMap::new(), now);
    // "recent" is spent, "stale" timed out (counted again), "gone" dropped.
    assert_eq!(counts(&p), (1, 2, 1, 3));
    let kept = p.status.as_ref().unwrap().disrupted_pods.clone().unwrap();
    assert_eq!(kept.keys().collect::<Vec<_>>(), vec!["recent"]);
    assert_eq!(p.recheck, Some(Duration::from_secs(110)));
    let ev = p.events.iter().find(|e| e.reason == "NotDeleted").expect("NotDeleted event");
    assert_eq!(ev.pod.as_deref(), Some("stale"));
    assert_eq!(ev.type_, EventType::Warning);
    // A pod being deleted leaves the map at once.
    let mut deleting = (*web("recent", true, None)).clone();
    deleting.metadata.deletion_timestamp = Some(Time(now));
    let p = plan(&b, &[Arc::new(deleting), web("other", true, None)], &HashMap::new(), now);
    assert_eq!(p.status.as_ref().unwrap().disrupted_pods, None);
    assert_eq!(p.recheck, None);
}

#[test]
fn selectors_follow_policy_v1() {
    let pods = vec![web("a", true, None), Arc::new(with_phase(pod("b", &[("app", "db")]), "Running", true))];
    let mut all = pdb(int(0), None);
    all.spec.as_mut().unwrap().selector = Some(LabelSelector::default());
    assert_eq!(selected_pods(&all, &pods).len(), 2, "an empty selector selects every pod");
    let mut none = pdb(int(0), None);
    none.spec.as_mut().unwrap().selector = None;
    assert!(selected_pods(&none, &pods).is_empty(), "a null selector selects none");
    let mut elsewhere = (*web("c", true, None)).clone();
    elsewhere.metadata.namespace = Some("other".into());
    assert_eq!(selected_pods(&all, &[Arc::new(elsewhere)]).len(), 0, "only the budget's namespace");
}

#[test]
fn an_up_to_date_status_is_not_written_again_and_transitions_move_the_time() {
    let t0 = Timestamp::now() - SignedDuration::from_secs(300);
    let pods = vec![web("a", true, None), web("b", true, None)];
    let mut b = pdb(int(1), None);
    let first = plan(&b, &pods, &HashMap::new(), t0);
    b.status = first.status.clone();
    assert_eq!(plan(&b, &pods, &HashMap::new(), Timestamp::now()).status, None);
    // One pod stops being ready: allowed 0, condition flips with a new time.
    let later = Timestamp::now();
    let p = plan(&b, &[web("a", true, None), web("b", false, None)], &HashMap::new(), later);
    let c = condition(&p);
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", INSUFFICIENT_PODS));
    assert_eq!(c.last_transition_time, Time(later));
    // A new generation alone is written too, with the same condition time.
    b.metadata.generation = Some(4);
    let p = plan(&b, &pods, &HashMap::new(), later);
    assert_eq!(p.status.as_ref().unwrap().observed_generation, Some(4));
    assert_eq!(condition(&p).last_transition_time, Time(t0));
}
