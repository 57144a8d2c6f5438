//! Probes (exec, httpGet, tcpSocket) and the per-container prober loop
//! state that turns results into ready/started/restart decisions.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, Probe};

use crate::context::Kubelet;

pub mod grpc;
pub mod http_get;

pub async fn tcp(host: &str, port: u16, timeout: Duration) -> Result<(), String> {
    tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port)))
        .await
        .map_err(|_| "timeout".to_string())?
        .map(|_| ())
        .map_err(|e| format!("dial tcp {host}:{port}: {e}"))
}

/// What upstream's prober sends unless httpHeaders say otherwise.
pub const PROBE_USER_AGENT: &str = "kube-probe/1.33";

/// Runs one probe against a container.
pub async fn probe_once(
    k: &Kubelet,
    pod: &Pod,
    container: &Container,
    container_id: &str,
    p: &Probe,
) -> Result<(), String> {
    let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default();
    if let Some(e) = &p.exec {
        let cmd = e.command.clone().unwrap_or_default();
        let code = tokio::time::timeout(
            timeout,
            crate::container::exec::run_to_completion(
                k,
                pod.metadata.uid.as_deref().unwrap_or_default(),
                container_id,
                cmd,
            ),
        )
        .await
        .map_err(|_| "command timed out".to_string())?
        .map_err(|e| e.to_string())?;
        if code == 0 {
            Ok(())
        } else {
            Err(format!("command failed with exit code {code}"))
        }
    } else if let Some(g) = &p.http_get {
        let get =
            crate::prober::http_get::HttpGet::from_action(container, g, &ip, PROBE_USER_AGENT)
                .map_err(|e| e.to_string())?;
        get.run(timeout)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    } else if let Some(g) = &p.grpc {
        let port = u16::try_from(g.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or("invalid port")?;
        crate::prober::grpc::check(&ip, port, g.service.as_deref().unwrap_or(""), timeout)
            .await
            .map_err(|e| e.to_string())
    } else if let Some(t) = &p.tcp_socket {
        let host = t.host.clone().unwrap_or(ip);
        let port =
            apimachinery::ports::container_port(container, &t.port).map_err(|e| e.to_string())?;
        tcp(&host, port, timeout).await
    } else {
        Ok(())
    }
}

/// Counts consecutive results against a probe's thresholds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeState {
    pub successes: i32,
    pub failures: i32,
    /// The last decided result; None until a threshold is crossed.
    pub result: Option<bool>,
}

impl ProbeState {
    /// Records a result and returns the decided outcome.
    pub fn record(&mut self, ok: bool, p: &Probe) -> Option<bool> {
        if ok {
            self.successes += 1;
            self.failures = 0;
            if self.successes >= p.success_threshold.unwrap_or(1).max(1) {
                self.result = Some(true);
            }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.failures >= p.failure_threshold.unwrap_or(3).max(1) {
                self.result = Some(false);
            }
        }
        self.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_decide_results() {
        let p = Probe {
            failure_threshold: Some(2),
            success_threshold: Some(2),
            ..Default::default()
        };
        let mut s = ProbeState::default();
        assert_eq!(s.record(true, &p), None);
        assert_eq!(s.record(true, &p), Some(true));
        assert_eq!(s.record(false, &p), Some(true));
        assert_eq!(s.record(false, &p), Some(false));
    }
}

/// The probes of one running container.
#[derive(Debug, Clone)]
struct ContainerProbes {
    id: String,
    since: tokio::time::Instant,
    started: bool,
    startup: ProbeState,
    liveness: ProbeState,
    readiness: ProbeState,
    last: [Option<tokio::time::Instant>; 3],
}

/// What the prober concluded this round.
#[derive(Debug, Default)]
pub struct ProbeOutcome {
    /// Containers whose liveness or startup probe failed: restart them.
    pub kill: Vec<(String, String, String)>,
}

/// Probe state per container of one pod; lives in the pod worker.
#[derive(Debug, Default)]
pub struct PodProber {
    containers: HashMap<String, ContainerProbes>,
}

fn due(
    last: Option<tokio::time::Instant>,
    since: tokio::time::Instant,
    p: &Probe,
    now: tokio::time::Instant,
) -> bool {
    if now < since + Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64) {
        return false;
    }
    match last {
        None => true,
        Some(l) => now >= l + Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64),
    }
}

impl PodProber {
    /// Ready per container name: true with no readiness probe once started.
    pub fn ready(&self, name: &str, has_readiness: bool) -> Option<bool> {
        let c = self.containers.get(name)?;
        Some(c.started && (!has_readiness || c.readiness.result == Some(true)))
    }

    pub fn started(&self, name: &str) -> Option<bool> {
        self.containers.get(name).map(|c| c.started)
    }

    /// Runs the probes that are due for the running containers of `pod`.
    pub async fn probe(
        &mut self,
        k: &Kubelet,
        pod: &Pod,
        running: &[(String, String)],
    ) -> ProbeOutcome {
        let spec = pod.spec.clone().unwrap_or_default();
        if let Some(uid) = pod.metadata.uid.as_deref() {
            // Every sync passes here, adopted pods included: status generation
            // finds their termination messages through this.
            crate::container::termination_message::register(uid, k.pod_dir(uid), k.log_dir(uid));
        }
        let now = tokio::time::Instant::now();
        self.containers
            .retain(|name, c| running.iter().any(|(n, id)| n == name && *id == c.id));
        let mut out = ProbeOutcome::default();
        for (name, id) in running {
            let Some(c) = spec.containers.iter().find(|c| &c.name == name) else {
                continue;
            };
            let entry = self
                .containers
                .entry(name.clone())
                .or_insert_with(|| ContainerProbes {
                    id: id.clone(),
                    since: now,
                    started: c.startup_probe.is_none(),
                    startup: Default::default(),
                    liveness: Default::default(),
                    readiness: Default::default(),
                    last: [None; 3],
                });
            let kinds: [(usize, Option<&Probe>); 3] = [
                (0, c.startup_probe.as_ref()),
                (1, c.liveness_probe.as_ref()),
                (2, c.readiness_probe.as_ref()),
            ];
            for (i, p) in kinds {
                let Some(p) = p else { continue };
                if (i == 0) == entry.started {
                    // Startup runs only until it succeeds; the others only after.
                    continue;
                }
                if !due(entry.last[i], entry.since, p, now) {
                    continue;
                }
                entry.last[i] = Some(now);
                let res = probe_once(k, pod, c, id, p).await;
                let ok = res.is_ok();
                let kind = ["Startup", "Liveness", "Readiness"][i];
                if let Err(e) = &res {
                    k.events.pod_event(
                        pod,
                        "Warning",
                        "Unhealthy",
                        format!("{kind} probe failed: {e}"),
                        Some(format!("spec.containers{{{name}}}")),
                    );
                }
                let state = match i {
                    0 => &mut entry.startup,
                    1 => &mut entry.liveness,
                    _ => &mut entry.readiness,
                };
                let decided = state.record(ok, p);
                match (i, decided) {
                    (0, Some(true)) => entry.started = true,
                    (0, Some(false)) | (1, Some(false)) => {
                        let msg = format!(
                            "Container {name} failed {} probe, will be restarted",
                            kind.to_lowercase()
                        );
                        out.kill.push((name.clone(), id.clone(), msg));
                    }
                    _ => {}
                }
            }
        }
        for (name, _, _) in &out.kill {
            self.containers.remove(name);
        }
        out
    }
}

use std::collections::HashMap;
