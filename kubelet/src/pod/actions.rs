//! `compute_pod_actions`: the pure decision of what to do next for a pod,
//! from its desired spec and the containers the runtime has for it.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;

use crate::backoff::Backoff;
use crate::runtime::{ContainerState, ObservedContainer};

/// One container to (re)start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartContainer {
    pub name: String,
    pub init: bool,
    pub restart_count: i32,
}

/// The plan for one sync of a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodActions {
    pub create_sandbox: bool,
    pub start: Vec<StartContainer>,
    /// Containers that must wait out a crash back-off, by name.
    pub backoff: Vec<String>,
    /// Old exited attempts to remove (keeps the latest two per container).
    pub prune: Vec<String>,
    /// Running containers to stop, by container ID: sidecars once the pod's
    /// main containers are done for good, everything once
    /// activeDeadlineSeconds has passed.
    pub kill: Vec<String>,
}

impl PodActions {
    /// Starts an exited container again, or holds it while its crash back-off lasts.
    fn restart(
        &mut self,
        next: StartContainer,
        backoff: &Backoff,
        uid: &str,
        finished_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        if backoff.in_backoff(&backoff_key(uid, &next.name), finished_at, now) {
            self.backoff.push(next.name);
        } else {
            self.start.push(next);
        }
    }
}

/// A sidecar: an init container with restartPolicy Always, which keeps
/// running beside the main containers and is restarted whenever it exits.
pub fn is_sidecar(c: &k8s_openapi::api::core::v1::Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Every main container has exited and the restart policy brings none back.
fn main_containers_done(
    spec: &k8s_openapi::api::core::v1::PodSpec,
    observed: &[ObservedContainer],
    policy: &str,
) -> bool {
    !spec.containers.is_empty() && spec.containers.iter().all(|c| {
        matches!(
            attempts(observed, &c.name).first().map(|a| &a.state),
            Some(ContainerState::Exited { exit_code, .. }) if !should_restart(policy, *exit_code)
        )
    })
}

pub fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// The attempts of container `name`, newest first.
pub fn attempts<'a>(observed: &'a [ObservedContainer], name: &str) -> Vec<&'a ObservedContainer> {
    let mut v: Vec<&ObservedContainer> = observed.iter().filter(|c| c.name == name).collect();
    v.sort_by(|a, b| {
        b.restart_count
            .cmp(&a.restart_count)
            .then(b.created_at.cmp(&a.created_at))
    });
    v
}

fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

pub fn backoff_key(pod_uid: &str, container: &str) -> String {
    format!("{pod_uid}/{container}")
}

/// What the init containers still need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitProgress {
    Done,
    /// An init container is running or must be (re)started.
    InProgress,
    /// An init container failed and restartPolicy is Never.
    Failed,
}

/// Decides the next step for the pod. `sandbox_ready` says whether its
/// namespaces and IP exist. `now` and `backoff` make restarts deterministic.
pub fn compute_pod_actions(
    pod: &Pod,
    observed: &[ObservedContainer],
    sandbox_ready: bool,
    backoff: &Backoff,
    now: DateTime<Utc>,
) -> PodActions {
    let mut plan = PodActions::default();
    let Some(spec) = pod.spec.as_ref() else {
        return plan;
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let policy = restart_policy(pod);
    let start = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(crate::ktime::chrono);
    if crate::pod::status::past_active_deadline(pod, start, now) {
        // Past activeDeadlineSeconds: nothing starts again, everything stops.
        plan.kill = observed
            .iter()
            .filter(|c| matches!(c.state, ContainerState::Running { .. }))
            .map(|c| c.id.clone())
            .collect();
        return plan;
    }
    if !sandbox_ready {
        // A lost sandbox on a run-once pod that already ran is not recreated.
        let ran = !observed.is_empty();
        if ran && policy == "Never" {
            return plan;
        }
        plan.create_sandbox = true;
    }

    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
    {
        for old in attempts(observed, &c.name).iter().skip(2) {
            if !matches!(old.state, ContainerState::Running { .. }) {
                plan.prune.push(old.id.clone());
            }
        }
    }

    // Init containers run one at a time, in order. A sidecar only has to be
    // running for the next one to go.
    let done = main_containers_done(spec, observed, policy);
    for ic in spec.init_containers.iter().flatten() {
        let tries = attempts(observed, &ic.name);
        if is_sidecar(ic) && !plan.create_sandbox {
            match tries.first().map(|c| (&c.state, c.restart_count, &c.id)) {
                Some((ContainerState::Running { .. }, _, id)) => {
                    if done {
                        plan.kill.push(id.clone());
                    }
                    continue;
                }
                // Restarted whatever the pod's policy, until the pod is done.
                Some((ContainerState::Exited { finished_at, .. }, rc, _)) => {
                    if !done {
                        let next = StartContainer {
                            name: ic.name.clone(),
                            init: true,
                            restart_count: rc + 1,
                        };
                        plan.restart(next, backoff, &uid, *finished_at, now);
                    }
                    continue;
                }
                _ => {}
            }
        }
        match tries.first().map(|c| (&c.state, c.restart_count)) {
            None => {
                plan.start.push(StartContainer {
                    name: ic.name.clone(),
                    init: true,
                    restart_count: 0,
                });
                return plan;
            }
            Some((ContainerState::Exited { exit_code: 0, .. }, _)) => continue,
            Some((ContainerState::Exited { finished_at, .. }, rc)) => {
                // Init containers restart on failure unless the pod is Never.
                if policy == "Never" {
                    return plan;
                }
                let next = StartContainer {
                    name: ic.name.clone(),
                    init: true,
                    restart_count: rc + 1,
                };
                plan.restart(next, backoff, &uid, *finished_at, now);
                return plan;
            }
            Some((_, _)) => {
                if plan.create_sandbox {
                    // The sandbox is gone under a live init container: start over.
                    let rc = tries[0].restart_count + 1;
                    plan.start.push(StartContainer {
                        name: ic.name.clone(),
                        init: true,
                        restart_count: rc,
                    });
                }
                return plan;
            }
        }
    }

    for c in &spec.containers {
        let tries = attempts(observed, &c.name);
        match tries.first() {
            None => plan.start.push(StartContainer {
                name: c.name.clone(),
                init: false,
                restart_count: 0,
            }),
            Some(last) => match &last.state {
                ContainerState::Running { .. } | ContainerState::Created
                    if !plan.create_sandbox => {}
                ContainerState::Exited {
                    exit_code,
                    finished_at,
                    ..
                } => {
                    if !should_restart(policy, *exit_code) {
                        continue;
                    }
                    let next = StartContainer {
                        name: c.name.clone(),
                        init: false,
                        restart_count: last.restart_count + 1,
                    };
                    plan.restart(next, backoff, &uid, *finished_at, now);
                }
                _ => {
                    if plan.create_sandbox || matches!(last.state, ContainerState::Unknown) {
                        plan.start.push(StartContainer {
                            name: c.name.clone(),
                            init: false,
                            restart_count: last.restart_count + 1,
                        });
                    }
                }
            },
        }
    }
    plan
}

/// Where init containers stand.
pub fn init_progress(pod: &Pod, observed: &[ObservedContainer]) -> InitProgress {
    let policy = restart_policy(pod);
    for ic in pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
    {
        let latest = attempts(observed, &ic.name).first().map(|c| &c.state);
        if is_sidecar(ic) {
            // A sidecar that has started once no longer holds initialization up.
            match latest {
                Some(ContainerState::Running { .. }) | Some(ContainerState::Exited { .. }) => {
                    continue
                }
                _ => return InitProgress::InProgress,
            }
        }
        match latest {
            Some(ContainerState::Exited { exit_code: 0, .. }) => continue,
            Some(ContainerState::Exited { .. }) if policy == "Never" => {
                return InitProgress::Failed
            }
            _ => return InitProgress::InProgress,
        }
    }
    InitProgress::Done
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(policy: &str, inits: &[&str], containers: &[&str]) -> Pod {
        let mk = |n: &&str| Container {
            name: n.to_string(),
            image: Some("busybox".into()),
            ..Default::default()
        };
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some(policy.into()),
                init_containers: (!inits.is_empty()).then(|| inits.iter().map(mk).collect()),
                containers: containers.iter().map(mk).collect(),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn obs(name: &str, rc: i32, state: ContainerState) -> ObservedContainer {
        ObservedContainer {
            id: format!("{name}-{rc}"),
            pod_uid: "u1".into(),
            pod_name: "p".into(),
            pod_namespace: "default".into(),
            name: name.into(),
            restart_count: rc,
            image: "busybox".into(),
            image_id: String::new(),
            state,
            created_at: Utc::now(),
            oom_killed: false,
        }
    }

    fn exited(code: i32) -> ContainerState {
        ContainerState::Exited {
            exit_code: code,
            started_at: None,
            finished_at: Utc::now(),
        }
    }

    fn running() -> ContainerState {
        ContainerState::Running {
            started_at: Utc::now(),
        }
    }

    #[test]
    fn new_pod_creates_sandbox_and_starts_all_containers() {
        let p = pod("Always", &[], &["a", "b"]);
        let plan = compute_pod_actions(&p, &[], false, &Backoff::default(), Utc::now());
        assert!(plan.create_sandbox);
        let names: Vec<_> = plan.start.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["a", "b"]);
    }

    #[test]
    fn running_pod_needs_nothing() {
        let p = pod("Always", &[], &["a"]);
        let plan = compute_pod_actions(
            &p,
            &[obs("a", 0, running())],
            true,
            &Backoff::default(),
            Utc::now(),
        );
        assert_eq!(plan, PodActions::default());
    }

    #[test]
    fn init_containers_run_one_at_a_time_in_order() {
        let p = pod("Always", &["i1", "i2"], &["a"]);
        let plan = compute_pod_actions(&p, &[], false, &Backoff::default(), Utc::now());
        assert_eq!(
            plan.start,
            vec![StartContainer {
                name: "i1".into(),
                init: true,
                restart_count: 0
            }]
        );
        let plan = compute_pod_actions(
            &p,
            &[obs("i1", 0, running())],
            true,
            &Backoff::default(),
            Utc::now(),
        );
        assert!(plan.start.is_empty());
        let plan = compute_pod_actions(
            &p,
            &[obs("i1", 0, exited(0))],
            true,
            &Backoff::default(),
            Utc::now(),
        );
        assert_eq!(plan.start[0].name, "i2");
        let plan = compute_pod_actions(
            &p,
            &[obs("i1", 0, exited(0)), obs("i2", 0, exited(0))],
            true,
            &Backoff::default(),
            Utc::now(),
        );
        assert_eq!(plan.start[0].name, "a");
    }

    fn sidecar_pod(policy: &str) -> Pod {
        let mut p = pod(policy, &["side", "i2"], &["a"]);
        p.spec.as_mut().unwrap().init_containers.as_mut().unwrap()[0].restart_policy =
            Some("Always".into());
        p
    }

    fn names(plan: &PodActions) -> Vec<&str> {
        plan.start.iter().map(|s| s.name.as_str()).collect()
    }

    /// A sidecar starts first, lets the next init container run once it is
    /// running, and keeps running beside the main containers.
    #[test]
    fn sidecar_runs_beside_init_and_main_containers() {
        let p = sidecar_pod("Never");
        let b = Backoff::default();
        let now = Utc::now();
        let plan = compute_pod_actions(&p, &[], true, &b, now);
        assert_eq!(names(&plan), ["side"]);
        assert!(plan.start[0].init);
        let o = [obs("side", 0, running())];
        assert_eq!(names(&compute_pod_actions(&p, &o, true, &b, now)), ["i2"]);
        assert_eq!(init_progress(&p, &o), InitProgress::InProgress);
        let o = [obs("side", 0, running()), obs("i2", 0, exited(0))];
        assert_eq!(names(&compute_pod_actions(&p, &o, true, &b, now)), ["a"]);
        assert_eq!(init_progress(&p, &o), InitProgress::Done);
        let o = [
            obs("side", 0, running()),
            obs("i2", 0, exited(0)),
            obs("a", 0, running()),
        ];
        assert_eq!(
            compute_pod_actions(&p, &o, true, &b, now),
            PodActions::default()
        );
    }

    /// A sidecar that exits is restarted, with back-off, even on a Never pod;
    /// once the main containers are done for good, it is stopped instead.
    #[test]
    fn sidecar_restarts_until_the_main_containers_are_done() {
        let p = sidecar_pod("Never");
        let mut b = Backoff::default();
        let now = Utc::now();
        let o = [
            obs("side", 0, exited(1)),
            obs("i2", 0, exited(0)),
            obs("a", 0, running()),
        ];
        let plan = compute_pod_actions(&p, &o, true, &b, now);
        assert_eq!(
            plan.start,
            vec![StartContainer {
                name: "side".into(),
                init: true,
                restart_count: 1
            }]
        );
        assert_eq!(init_progress(&p, &o), InitProgress::Done);
        b.next(&backoff_key("u1", "side"));
        let plan = compute_pod_actions(&p, &o, true, &b, now);
        assert!(plan.start.is_empty());
        assert_eq!(plan.backoff, vec!["side".to_string()]);
        let o = [
            obs("side", 1, running()),
            obs("i2", 0, exited(0)),
            obs("a", 0, exited(0)),
        ];
        let plan = compute_pod_actions(&p, &o, true, &b, now);
        assert!(plan.start.is_empty());
        assert_eq!(plan.kill, vec!["side-1".to_string()]);
        // With Always, the main container comes back and the sidecar stays.
        let p = sidecar_pod("Always");
        let plan = compute_pod_actions(&p, &o, true, &Backoff::default(), now);
        assert_eq!(names(&plan), ["a"]);
        assert!(plan.kill.is_empty());
    }

    #[test]
    fn past_active_deadline_stops_everything() {
        let mut p = pod("Always", &[], &["a", "b"]);
        p.spec.as_mut().unwrap().active_deadline_seconds = Some(30);
        let start = Utc::now() - chrono::Duration::seconds(60);
        p.status = Some(k8s_openapi::api::core::v1::PodStatus {
            start_time: Some(crate::ktime::time(start)),
            ..Default::default()
        });
        let o = [obs("a", 0, running()), obs("b", 0, exited(1))];
        let plan = compute_pod_actions(&p, &o, true, &Backoff::default(), Utc::now());
        assert!(plan.start.is_empty());
        assert_eq!(plan.kill, vec!["a-0".to_string()]);
    }

    #[test]
    fn failed_init_container_with_never_fails_the_pod() {
        let p = pod("Never", &["i1"], &["a"]);
        let o = [obs("i1", 0, exited(1))];
        let plan = compute_pod_actions(&p, &o, true, &Backoff::default(), Utc::now());
        assert!(plan.start.is_empty());
        assert_eq!(init_progress(&p, &o), InitProgress::Failed);
    }

    #[test]
    fn failed_init_container_is_retried_with_always() {
        let p = pod("Always", &["i1"], &["a"]);
        let plan = compute_pod_actions(
            &p,
            &[obs("i1", 0, exited(1))],
            true,
            &Backoff::default(),
            Utc::now(),
        );
        assert_eq!(
            plan.start,
            vec![StartContainer {
                name: "i1".into(),
                init: true,
                restart_count: 1
            }]
        );
    }

    #[test]
    fn restart_policies_decide_restarts() {
        for (policy, code, restart) in [
            ("Always", 0, true),
            ("Always", 1, true),
            ("OnFailure", 0, false),
            ("OnFailure", 2, true),
            ("Never", 0, false),
            ("Never", 1, false),
        ] {
            let p = pod(policy, &[], &["a"]);
            let plan = compute_pod_actions(
                &p,
                &[obs("a", 3, exited(code))],
                true,
                &Backoff::default(),
                Utc::now(),
            );
            assert_eq!(!plan.start.is_empty(), restart, "{policy} exit {code}");
            if restart {
                assert_eq!(plan.start[0].restart_count, 4);
            }
        }
    }

    #[test]
    fn crash_back_off_delays_restart() {
        let p = pod("Always", &[], &["a"]);
        let mut b = Backoff::default();
        b.next(&backoff_key("u1", "a"));
        let now = Utc::now();
        let o = [obs(
            "a",
            1,
            ContainerState::Exited {
                exit_code: 1,
                started_at: None,
                finished_at: now,
            },
        )];
        let plan = compute_pod_actions(&p, &o, true, &b, now + chrono::Duration::seconds(5));
        assert!(plan.start.is_empty());
        assert_eq!(plan.backoff, vec!["a".to_string()]);
        let plan = compute_pod_actions(&p, &o, true, &b, now + chrono::Duration::seconds(11));
        assert_eq!(plan.start.len(), 1);
    }

    #[test]
    fn old_attempts_are_pruned_keeping_two() {
        let p = pod("Always", &[], &["a"]);
        let o = [
            obs("a", 0, exited(1)),
            obs("a", 1, exited(1)),
            obs("a", 2, running()),
        ];
        let plan = compute_pod_actions(&p, &o, true, &Backoff::default(), Utc::now());
        assert_eq!(plan.prune, vec!["a-0".to_string()]);
    }

    #[test]
    fn lost_sandbox_restarts_running_containers() {
        let p = pod("Always", &[], &["a"]);
        let plan = compute_pod_actions(
            &p,
            &[obs("a", 0, running())],
            false,
            &Backoff::default(),
            Utc::now(),
        );
        assert!(plan.create_sandbox);
        assert_eq!(plan.start[0].restart_count, 1);
    }
}
