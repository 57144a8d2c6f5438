//! Pure generation of a pod's status from what the runtime reports.

use std::collections::HashMap;

use apimachinery::phase::is_pod_phase_terminal;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    Container, ContainerState as KState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::pod::actions::{attempts, init_progress, restart_policy, InitProgress};
use crate::runtime::{ContainerState, ObservedContainer};

/// Facts about a pod that the runtime alone doesn't know.
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    pub pod_ip: Option<String>,
    pub host_ip: String,
    pub start_time: Option<DateTime<Utc>>,
    /// Waiting reasons the worker hit (ErrImagePull, CrashLoopBackOff, ...), by container name.
    pub waiting: HashMap<String, (String, String)>,
    /// Readiness by container name, from the prober; absent means "no readiness probe".
    pub ready: HashMap<String, bool>,
    /// Started by container name, from the startup probe; absent means started once running.
    pub started: HashMap<String, bool>,
    /// Start errors by container ID, reported as StartError.
    pub start_errors: HashMap<String, String>,
    pub sandbox_ready: bool,
}

fn t(d: DateTime<Utc>) -> Time {
    crate::ktime::time(d)
}

/// An exited attempt as upstream reports it; `spec` is the pod's container,
/// whose terminationMessage fields say where its message comes from.
fn terminated(
    pod: &Pod,
    spec: &Container,
    c: &ObservedContainer,
    facts: &PodFacts,
) -> Option<ContainerStateTerminated> {
    match &c.state {
        ContainerState::Exited {
            exit_code,
            started_at,
            finished_at,
        } => {
            let start_error = facts.start_errors.get(&c.id);
            let reason = if start_error.is_some() {
                "StartError"
            } else if *exit_code == 0 {
                "Completed"
            } else if *exit_code == 137 && c.oom_killed {
                "OOMKilled"
            } else {
                "Error"
            };
            // The runtime's message first, then what the container left, as upstream joins them.
            let left =
                crate::container::termination_message::message(pod, spec, c, start_error.is_some());
            let message = match (start_error, left) {
                (Some(e), Some(m)) => Some(format!("{e}: {m}")),
                (e, m) => e.cloned().or(m),
            };
            Some(ContainerStateTerminated {
                exit_code: if start_error.is_some() {
                    128
                } else {
                    *exit_code
                },
                reason: Some(reason.into()),
                message,
                started_at: Some(t(started_at.unwrap_or(*finished_at))),
                finished_at: Some(t(*finished_at)),
                container_id: Some(format!("containerd://{}", c.id)),
                signal: None,
            })
        }
        _ => None,
    }
}

fn container_status(
    pod: &Pod,
    c: &Container,
    observed: &[ObservedContainer],
    facts: &PodFacts,
    init: bool,
    waiting_default: &str,
) -> ContainerStatus {
    let tries = attempts(observed, &c.name);
    let last = tries.first();
    let prev = tries.get(1);
    let image = c.image.clone().unwrap_or_default();
    let mut st = ContainerStatus {
        name: c.name.clone(),
        image: image.clone(),
        image_id: String::new(),
        restart_count: last.map(|l| l.restart_count).unwrap_or(0),
        ready: false,
        started: Some(false),
        ..Default::default()
    };
    let waiting = |reason: &str, message: &str| KState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message: (!message.is_empty()).then(|| message.to_string()),
        }),
        ..Default::default()
    };
    let override_waiting = facts.waiting.get(&c.name);
    match last {
        None => {
            let (r, m) = override_waiting
                .cloned()
                .unwrap_or((waiting_default.to_string(), String::new()));
            st.state = Some(waiting(&r, &m));
        }
        Some(l) => {
            st.container_id = Some(format!("containerd://{}", l.id));
            st.image_id = l.image_id.clone();
            match &l.state {
                ContainerState::Running { started_at } => {
                    st.state = Some(KState {
                        running: Some(ContainerStateRunning {
                            started_at: Some(t(*started_at)),
                        }),
                        ..Default::default()
                    });
                    st.started = Some(facts.started.get(&c.name).copied().unwrap_or(true));
                    // A running sidecar counts towards readiness; a finished init container does not.
                    let counts = !init || crate::pod::actions::is_sidecar(c);
                    st.ready = counts && facts.ready.get(&c.name).copied().unwrap_or(true);
                    if let Some(p) = prev {
                        st.last_state = terminated(pod, c, p, facts).map(|tt| KState {
                            terminated: Some(tt),
                            ..Default::default()
                        });
                    }
                }
                ContainerState::Exited { .. } => {
                    let term = terminated(pod, c, l, facts);
                    match override_waiting {
                        // Waiting for a restart: the last run becomes lastState.
                        Some((r, m)) => {
                            st.state = Some(waiting(r, m));
                            st.last_state = term.map(|tt| KState {
                                terminated: Some(tt),
                                ..Default::default()
                            });
                        }
                        None => {
                            st.state = term.map(|tt| KState {
                                terminated: Some(tt),
                                ..Default::default()
                            });
                            if let Some(p) = prev {
                                st.last_state = terminated(pod, c, p, facts).map(|tt| KState {
                                    terminated: Some(tt),
                                    ..Default::default()
                                });
                            }
                        }
                    }
                }
                ContainerState::Created | ContainerState::Unknown => {
                    let (r, m) = override_waiting
                        .cloned()
                        .unwrap_or(("ContainerCreating".into(), String::new()));
                    st.state = Some(waiting(&r, &m));
                }
            }
        }
    }
    st
}

/// Upstream's getPhase for the regular containers plus init progress.
pub fn phase(pod: &Pod, statuses: &[ContainerStatus], init: &InitProgress) -> String {
    match init {
        InitProgress::Failed => return "Failed".into(),
        InitProgress::InProgress => return "Pending".into(),
        InitProgress::Done => {}
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in statuses {
        let state = s.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(tt) = state.terminated {
            stopped += 1;
            if tt.exit_code == 0 {
                succeeded += 1;
            }
        } else if s
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .is_some()
        {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    let policy = restart_policy(pod);
    if waiting > 0 {
        "Pending".into()
    } else if running > 0 {
        "Running".into()
    } else if stopped > 0 {
        if policy == "Always" {
            "Running".into()
        } else if stopped == succeeded {
            "Succeeded".into()
        } else if policy == "Never" {
            "Failed".into()
        } else {
            "Running".into()
        }
    } else {
        "Pending".into()
    }
}

fn cond(
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    prev: Option<&PodStatus>,
    now: DateTime<Utc>,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    // Keep the transition time while the status is unchanged.
    let last = prev
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone());
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        reason: if ok {
            None
        } else {
            reason.map(|r| r.to_string())
        },
        last_transition_time: Some(last.unwrap_or(t(now))),
        last_probe_time: None,
        message: None,
        observed_generation: None,
    }
}

/// The full status of a pod, keeping conditions' transition times from `prev`.
pub fn generate(
    pod: &Pod,
    observed: &[ObservedContainer],
    facts: &PodFacts,
    now: DateTime<Utc>,
) -> PodStatus {
    let prev = pod.status.as_ref();
    let spec = pod.spec.clone().unwrap_or_default();
    let init = init_progress(pod, observed);
    let init_statuses: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| container_status(pod, c, observed, facts, true, "PodInitializing"))
        .collect();
    let main_default = if init == InitProgress::Done {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(pod, c, observed, facts, false, main_default))
        .collect();
    let mut phase = phase(pod, &statuses, &init);
    let start_time = facts.start_time.or_else(|| {
        prev.and_then(|p| p.start_time.as_ref())
            .map(crate::ktime::chrono)
    });
    let mut reason = None;
    let mut message = None;
    if !is_pod_phase_terminal(&phase) && past_active_deadline(pod, start_time, now) {
        phase = "Failed".into();
        reason = Some(DEADLINE_EXCEEDED.to_string());
        message = Some("Pod was active on the node longer than the specified deadline".to_string());
    }
    // A pod never leaves a terminal phase.
    if let Some(p) = prev.and_then(|s| s.phase.as_deref()) {
        if is_pod_phase_terminal(p) {
            phase = p.to_string();
            reason = prev.and_then(|s| s.reason.clone());
            message = prev.and_then(|s| s.message.clone());
        }
    }
    let sidecars_ready = spec
        .init_containers
        .iter()
        .flatten()
        .zip(&init_statuses)
        .filter(|(c, _)| crate::pod::actions::is_sidecar(c))
        .all(|(_, s)| s.ready);
    let all_ready = !statuses.is_empty() && statuses.iter().all(|s| s.ready) && sidecars_ready;
    let terminal = is_pod_phase_terminal(&phase);
    let ready_reason = if terminal {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let conditions = vec![
        cond(
            "PodReadyToStartContainers",
            facts.sandbox_ready,
            None,
            prev,
            now,
        ),
        cond(
            "Initialized",
            init == InitProgress::Done,
            Some(if terminal {
                "PodCompleted"
            } else {
                "ContainersNotInitialized"
            }),
            prev,
            now,
        ),
        cond(
            "Ready",
            all_ready && !terminal,
            Some(ready_reason),
            prev,
            now,
        ),
        cond(
            "ContainersReady",
            all_ready && !terminal,
            Some(ready_reason),
            prev,
            now,
        ),
        prev.and_then(|p| p.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled").cloned())
            .unwrap_or_else(|| cond("PodScheduled", true, None, None, now)),
    ];
    PodStatus {
        phase: Some(phase),
        conditions: Some(conditions),
        host_ip: Some(facts.host_ip.clone()),
        host_ips: Some(vec![HostIP {
            ip: facts.host_ip.clone(),
        }]),
        pod_ip: facts.pod_ip.clone(),
        pod_ips: facts.pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        start_time: facts
            .start_time
            .map(t)
            .or_else(|| prev.and_then(|p| p.start_time.clone())),
        qos_class: Some(apimachinery::qos::pod_qos(pod).as_str().into()),
        container_statuses: Some(statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        reason,
        message,
        ..Default::default()
    }
}

/// The pod's status reason once activeDeadlineSeconds has passed.
pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";

/// upstream's pastActiveDeadline: the pod has been active on the node longer
/// than spec.activeDeadlineSeconds, counted from its startTime.
pub fn past_active_deadline(
    pod: &Pod,
    start_time: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    let Some(secs) = pod.spec.as_ref().and_then(|s| s.active_deadline_seconds) else {
        return false;
    };
    start_time.is_some_and(|st| now - st >= chrono::Duration::seconds(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn pod(policy: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.uid = Some("u".into());
        p.spec = Some(PodSpec {
            restart_policy: Some(policy.into()),
            containers: vec![Container {
                name: "a".into(),
                image: Some("busybox".into()),
                ..Default::default()
            }],
            ..Default::default()
        });
        p
    }

    fn obs(rc: i32, state: ContainerState) -> ObservedContainer {
        ObservedContainer {
            id: format!("id{rc}"),
            pod_uid: "u".into(),
            pod_name: "p".into(),
            pod_namespace: "default".into(),
            name: "a".into(),
            restart_count: rc,
            image: "busybox".into(),
            image_id: "busybox@sha256:x".into(),
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

    #[test]
    fn no_containers_yet_is_pending_container_creating() {
        let s = generate(&pod("Always"), &[], &PodFacts::default(), Utc::now());
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let w = s.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .waiting
            .unwrap();
        assert_eq!(w.reason.as_deref(), Some("ContainerCreating"));
    }

    #[test]
    fn running_container_is_ready_and_pod_running() {
        let o = [obs(
            0,
            ContainerState::Running {
                started_at: Utc::now(),
            },
        )];
        let s = generate(
            &pod("Always"),
            &o,
            &PodFacts {
                sandbox_ready: true,
                ..Default::default()
            },
            Utc::now(),
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let cs = &s.container_statuses.unwrap()[0];
        assert!(cs.ready);
        assert_eq!(cs.container_id.as_deref(), Some("containerd://id0"));
        let ready = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
    }

    #[test]
    fn crash_loop_shows_waiting_with_last_state() {
        let o = [obs(2, exited(1))];
        let mut facts = PodFacts::default();
        facts.waiting.insert(
            "a".into(),
            ("CrashLoopBackOff".into(), "back-off 20s".into()),
        );
        let s = generate(&pod("Always"), &o, &facts, Utc::now());
        let cs = &s.container_statuses.unwrap()[0];
        assert_eq!(cs.restart_count, 2);
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        assert_eq!(
            cs.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            1
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn completed_and_failed_phases_follow_restart_policy() {
        assert_eq!(
            generate(
                &pod("Never"),
                &[obs(0, exited(0))],
                &PodFacts::default(),
                Utc::now()
            )
            .phase
            .as_deref(),
            Some("Succeeded")
        );
        assert_eq!(
            generate(
                &pod("Never"),
                &[obs(0, exited(2))],
                &PodFacts::default(),
                Utc::now()
            )
            .phase
            .as_deref(),
            Some("Failed")
        );
        assert_eq!(
            generate(
                &pod("OnFailure"),
                &[obs(0, exited(0))],
                &PodFacts::default(),
                Utc::now()
            )
            .phase
            .as_deref(),
            Some("Succeeded")
        );
        let s = generate(
            &pod("Never"),
            &[obs(0, exited(0))],
            &PodFacts::default(),
            Utc::now(),
        );
        let t = s.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!(t.reason.as_deref(), Some("Completed"));
    }

    #[test]
    fn oom_killed_and_start_error_reasons() {
        let mut o = obs(0, exited(137));
        o.oom_killed = true;
        let s = generate(&pod("Never"), &[o], &PodFacts::default(), Utc::now());
        assert_eq!(
            s.container_statuses.unwrap()[0]
                .state
                .clone()
                .unwrap()
                .terminated
                .unwrap()
                .reason
                .as_deref(),
            Some("OOMKilled")
        );
        let mut facts = PodFacts::default();
        facts
            .start_errors
            .insert("id0".into(), "exec: not found".into());
        let s = generate(&pod("Never"), &[obs(0, exited(128))], &facts, Utc::now());
        let t = s.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!(
            (t.exit_code, t.reason.as_deref()),
            (128, Some("StartError"))
        );
    }

    /// A running sidecar is ready and counts for the pod's Ready; a stopped one holds it.
    #[test]
    fn sidecar_readiness_counts_for_the_pod() {
        let mut p = pod("Always");
        p.spec.as_mut().unwrap().init_containers = Some(vec![Container {
            name: "side".into(),
            image: Some("busybox".into()),
            restart_policy: Some("Always".into()),
            ..Default::default()
        }]);
        let run = || ContainerState::Running {
            started_at: Utc::now(),
        };
        let mut side = obs(0, run());
        side.name = "side".into();
        side.id = "side0".into();
        let ready = |s: &PodStatus| {
            s.conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == "Ready")
                .unwrap()
                .status
                .clone()
        };
        let s = generate(
            &p,
            &[side.clone(), obs(0, run())],
            &PodFacts::default(),
            Utc::now(),
        );
        assert!(s.init_container_statuses.as_ref().unwrap()[0].ready);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(ready(&s), "True");
        side.state = exited(1);
        let s = generate(&p, &[side, obs(0, run())], &PodFacts::default(), Utc::now());
        assert_eq!(ready(&s), "False");
    }

    /// [sig-node] Pods should allow activeDeadlineSeconds to be updated: past
    /// the deadline the pod is Failed with DeadlineExceeded.
    #[test]
    fn active_deadline_fails_the_pod() {
        let mut p = pod("Always");
        p.spec.as_mut().unwrap().active_deadline_seconds = Some(5);
        let o = [obs(
            0,
            ContainerState::Running {
                started_at: Utc::now(),
            },
        )];
        let start = Utc::now() - chrono::Duration::seconds(10);
        let facts = PodFacts {
            start_time: Some(start),
            ..Default::default()
        };
        let s = generate(&p, &o, &facts, start + chrono::Duration::seconds(4));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.reason, None);
        let s = generate(&p, &o, &facts, start + chrono::Duration::seconds(6));
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        assert_eq!(s.reason.as_deref(), Some("DeadlineExceeded"));
        // Raising the deadline before it passes keeps the pod going.
        p.spec.as_mut().unwrap().active_deadline_seconds = Some(60);
        let s = generate(&p, &o, &facts, start + chrono::Duration::seconds(6));
        assert_eq!(s.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn terminal_phase_is_sticky() {
        let mut p = pod("Always");
        p.status = Some(PodStatus {
            phase: Some("Failed".into()),
            ..Default::default()
        });
        let s = generate(
            &p,
            &[obs(
                0,
                ContainerState::Running {
                    started_at: Utc::now(),
                },
            )],
            &PodFacts::default(),
            Utc::now(),
        );
        assert_eq!(s.phase.as_deref(), Some("Failed"));
    }

    #[test]
    fn transition_time_is_kept_while_status_unchanged() {
        let o = [obs(
            0,
            ContainerState::Running {
                started_at: Utc::now(),
            },
        )];
        let t1 = Utc::now() - chrono::Duration::seconds(100);
        let mut p = pod("Always");
        p.status = Some(generate(&p, &o, &PodFacts::default(), t1));
        let s = generate(&p, &o, &PodFacts::default(), Utc::now());
        let ready = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.last_transition_time, Some(crate::ktime::time(t1)));
    }
}
