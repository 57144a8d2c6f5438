//! Lifecycle hooks: preStop before SIGTERM (postStart after start).

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};

use crate::context::Kubelet;
use crate::runtime::ObservedContainer;

/// Runs one handler (exec or httpGet) against a container, bounded by `deadline`.
pub async fn run_handler(
    k: &Kubelet,
    pod: &Pod,
    container: &Container,
    container_id: &str,
    h: &LifecycleHandler,
    deadline: tokio::time::Instant,
) -> Result<(), String> {
    let fut = async {
        if let Some(e) = &h.exec {
            let cmd = e.command.clone().unwrap_or_default();
            let uid = pod.metadata.uid.as_deref().unwrap_or_default();
            let code = crate::container::exec::run_to_completion(k, uid, container_id, cmd)
                .await
                .map_err(|e| e.to_string())?;
            if code != 0 {
                return Err(format!("command exited with {code}"));
            }
            Ok(())
        } else if let Some(g) = &h.http_get {
            // On first start the API's status has no podIP yet: the sandbox has it.
            let ip = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .or_else(|| {
                    let uid = pod.metadata.uid.as_deref()?;
                    let b = std::fs::read(k.sandbox_file(uid)).ok()?;
                    serde_json::from_slice::<crate::context::SandboxState>(&b)
                        .ok()
                        .map(|s| s.pod_ip)
                })
                .unwrap_or_else(|| "127.0.0.1".into());
            let get = crate::prober::http_get::HttpGet::from_action(
                container,
                g,
                &ip,
                "kube-lifecycle/1.33",
            )
            .map_err(|e| e.to_string())?;
            get.run(std::time::Duration::from_secs(10))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else if let Some(s) = &h.sleep {
            tokio::time::sleep(std::time::Duration::from_secs(s.seconds.max(0) as u64)).await;
            Ok(())
        } else {
            Ok(())
        }
    };
    tokio::time::timeout_at(deadline, fut)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// Runs the preStop hooks of the running containers concurrently.
pub async fn run_pre_stop(
    k: &Kubelet,
    pod: &Pod,
    running: &[&ObservedContainer],
    deadline: tokio::time::Instant,
) {
    let spec = pod.spec.clone().unwrap_or_default();
    let hooks = running.iter().filter_map(|oc| {
        let c = spec.containers.iter().find(|c| c.name == oc.name)?;
        let h = c.lifecycle.as_ref()?.pre_stop.clone()?;
        Some((oc.id.clone(), c.clone(), h))
    });
    let futs = hooks.map(|(id, c, h)| async move {
        let name = &c.name;
        if let Err(e) = run_handler(k, pod, &c, &id, &h, deadline).await {
            k.events.pod_event(
                pod,
                "Warning",
                "FailedPreStopHook",
                format!("PreStopHook failed: {e}"),
                Some(crate::container::start::field_path(pod, name)),
            );
        }
    });
    futures::future::join_all(futs).await;
}
