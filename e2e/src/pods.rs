//! Waiting on pods and reading their status.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::{Api, ListParams};
use testkit::wait_for_or;

/// Wait until pod `name` satisfies `cond`; panics with the last seen status.
pub async fn wait_pod(
    pods: &Api<Pod>,
    name: &str,
    timeout: Duration,
    what: &str,
    cond: impl Fn(&Pod) -> bool,
) -> Pod {
    let last: Mutex<Option<Pod>> = Mutex::new(None);
    let res = wait_for_or(timeout, &format!("pod {name}: {what}"), || {
        let pods = pods.clone();
        let (last, cond) = (&last, &cond);
        async move {
            let p = pods.get_opt(name).await.ok().flatten()?;
            let ok = cond(&p);
            *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(p.clone());
            ok.then_some(p)
        }
    })
    .await;
    match res {
        Ok(p) => p,
        Err(e) => {
            let last = last.lock().unwrap_or_else(|e| e.into_inner());
            panic!("{e}; last status: {}", status_json(last.as_ref()))
        }
    }
}

/// Wait until the pods matching `selector` satisfy `cond` as a set.
pub async fn wait_pods(
    pods: &Api<Pod>,
    selector: &str,
    timeout: Duration,
    what: &str,
    cond: impl Fn(&[Pod]) -> bool,
) -> Vec<Pod> {
    let last: Mutex<Vec<Pod>> = Mutex::new(Vec::new());
    let res = wait_for_or(timeout, &format!("pods {selector}: {what}"), || {
        let pods = pods.clone();
        let lp = ListParams::default().labels(selector);
        let (last, cond) = (&last, &cond);
        async move {
            let list = pods.list(&lp).await.ok()?.items;
            let ok = cond(&list);
            *last.lock().unwrap_or_else(|e| e.into_inner()) = list.clone();
            ok.then_some(list)
        }
    })
    .await;
    match res {
        Ok(p) => p,
        Err(e) => {
            let last = last.lock().unwrap_or_else(|e| e.into_inner());
            let summary: Vec<String> = last.iter().map(summary).collect();
            panic!("{e}; last seen:\n{}", summary.join("\n"))
        }
    }
}

fn status_json(p: Option<&Pod>) -> String {
    p.and_then(|p| serde_json::to_string_pretty(&p.status).ok())
        .unwrap_or_else(|| "pod not found".into())
}

/// `name phase node deleting?` for failure messages.
pub fn summary(p: &Pod) -> String {
    format!(
        "{} phase={} node={} deleting={}",
        p.metadata.name.as_deref().unwrap_or("?"),
        phase(p),
        node_name(p),
        p.metadata.deletion_timestamp.is_some()
    )
}

pub fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub fn is_running(p: &Pod) -> bool {
    phase(p) == "Running"
}

/// Running and not being deleted: counts toward a ReplicaSet's replicas.
pub fn is_active_running(p: &Pod) -> bool {
    is_running(p) && p.metadata.deletion_timestamp.is_none()
}

pub fn node_name(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

pub fn pod_ip(p: &Pod) -> Option<String> {
    p.status
        .as_ref()?
        .pod_ip
        .clone()
        .filter(|ip| !ip.is_empty())
}

pub fn container_status<'a>(p: &'a Pod, container: &str) -> Option<&'a ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == container)
}

pub fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}
