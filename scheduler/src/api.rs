//! The scheduler's writes to the API, behind a trait so the scheduling
//! loop is tested without a cluster: bind, events, pod status, and the
//! deletion of preemption victims.

use std::sync::Arc;

use futures::future::BoxFuture;
use apimachinery::events::{new_event, object_reference, EventType, Reporter};
use k8s_openapi::api::core::v1::{Binding, Event, ObjectReference, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The pod is already bound, or was deleted: nothing to retry.
    #[error("{0}")]
    Gone(String),
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// A PreBind plugin failed; the pod is retried with back-off.
    #[error("{0}")]
    PreBind(String),
}

/// A FailedScheduling outcome to publish on the pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Unschedulable {
    pub message: String,
    pub nominated_node: Option<String>,
}

pub trait ClusterApi: Send + Sync + 'static {
    fn bind(&self, pod: Arc<Pod>, node: String) -> BoxFuture<'static, Result<(), ApiError>>;
    fn event(
        &self,
        pod: Arc<Pod>,
        component: String,
        type_: &'static str,
        reason: &'static str,
        message: String,
    ) -> BoxFuture<'static, Result<(), ApiError>>;
    fn set_unschedulable(&self, pod: Arc<Pod>, status: Unschedulable) -> BoxFuture<'static, Result<(), ApiError>>;
    /// Deletes a preemption victim gracefully, after marking it with the
    /// DisruptionTarget condition on behalf of `scheduler_name`.
    fn delete_pod(&self, pod: Arc<Pod>, scheduler_name: String) -> BoxFuture<'static, Result<(), ApiError>>;
}

/// The real API through a kube client.
#[derive(Clone)]
pub struct KubeApi {
    client: kube::Client,
    /// reportingInstance of the events (the scheduler's identity).
    instance: String,
}

impl KubeApi {
    pub fn new(client: kube::Client, instance: &str) -> Self {
        KubeApi {
            client,
            instance: instance.to_string(),
        }
    }

    fn pods(&self, pod: &Pod) -> Api<Pod> {
        Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        )
    }
}

fn classify(e: kube::Error) -> ApiError {
    match &e {
        kube::Error::Api(s) if s.code == 404 || s.code == 409 => ApiError::Gone(s.message.clone()),
        _ => ApiError::Kube(e),
    }
}

/// The PodScheduled=False condition upstream sets on an unschedulable pod.
pub fn unschedulable_condition(message: &str) -> PodCondition {
    PodCondition {
        type_: "PodScheduled".into(),
        status: "False".into(),
        reason: Some("Unschedulable".into()),
        message: Some(message.to_string()),
        last_transition_time: Some(Time(k8s_openapi::jiff::Timestamp::now())),
        ..Default::default()
    }
}

/// Whether the pod already shows this outcome, so no write is needed.
pub fn status_is_current(pod: &Pod, status: &Unschedulable) -> bool {
    let st = pod.status.as_ref();
    let cond = st
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
    let same_cond = cond.is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
            && c.message.as_deref() == Some(status.message.as_str())
    });
    let nominated = st.and_then(|s| s.nominated_node_name.clone()).filter(|s| !s.is_empty());
    same_cond && (status.nominated_node.is_none() || nominated == status.nominated_node)
}

impl ClusterApi for KubeApi {
    fn bind(&self, pod: Arc<Pod>, node: String) -> BoxFuture<'static, Result<(), ApiError>> {
        let api = self.pods(&pod);
        Box::pin(async move {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let binding = Binding {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: pod.metadata.namespace.clone(),
                    uid: pod.metadata.uid.clone(),
                    ..Default::default()
                },
                target: ObjectReference {
                    kind: Some("Node".into()),
                    name: Some(node),
                    ..Default::default()
                },
            };
            // The reply is a Status, not a Pod: decode loosely.
            let _: serde_json::Value = api
                .create_subresource("binding", &name, &PostParams::default(), &binding)
                .await
                .map_err(classify)?;
            Ok(())
        })
    }

    fn event(
        &self,
        pod: Arc<Pod>,
        component: String,
        type_: &'static str,
        reason: &'static str,
        message: String,
    ) -> BoxFuture<'static, Result<(), ApiError>> {
        let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let instance = self.instance.clone();
        Box::pin(async move {
            let now = k8s_openapi::jiff::Timestamp::now();
            let reporter = Reporter { component, host: None, instance: Some(instance) };
            let ty = if type_ == "Warning" { EventType::Warning } else { EventType::Normal };
            let mut event = new_event(&reporter, object_reference(&*pod), ty, reason, &message, now);
            // The scheduler reports as events.k8s.io does: with an action and a micro-time.
            event.event_time = Some(MicroTime(now));
            event.action = Some(if reason == "Scheduled" { "Binding" } else { "Scheduling" }.into());
            api.create(&PostParams::default(), &event)
                .await
                .map_err(ApiError::Kube)?;
            Ok(())
        })
    }

    fn set_unschedulable(&self, pod: Arc<Pod>, status: Unschedulable) -> BoxFuture<'static, Result<(), ApiError>> {
        let api = self.pods(&pod);
        Box::pin(async move {
            if status_is_current(&pod, &status) {
                return Ok(());
            }
            let name = pod.metadata.name.clone().unwrap_or_default();
            let cond = unschedulable_condition(&status.message);
            let mut st = json!({ "conditions": [cond] });
            if let Some(n) = &status.nominated_node {
                st["nominatedNodeName"] = json!(n);
            }
            let smp = json!({ "metadata": { "uid": pod.metadata.uid }, "status": st });
            let pp = PatchParams::default();
            match api.patch_status(&name, &pp, &Patch::Strategic(&smp)).await {
                Ok(_) => Ok(()),
                // A server without strategic merge: replace the list, keeping
                // the other conditions.
                Err(kube::Error::Api(s)) if s.code == 415 || s.code == 400 => {
                    let mut conds: Vec<PodCondition> = pod
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.clone())
                        .unwrap_or_default();
                    conds.retain(|c| c.type_ != "PodScheduled");
                    conds.push(unschedulable_condition(&status.message));
                    let mut st = json!({ "conditions": conds });
                    if let Some(n) = &status.nominated_node {
                        st["nominatedNodeName"] = json!(n);
                    }
                    api.patch_status(&name, &pp, &Patch::Merge(&json!({ "status": st })))
                        .await
                        .map_err(classify)?;
                    Ok(())
                }
                Err(e) => Err(classify(e)),
            }
        })
    }

    fn delete_pod(&self, pod: Arc<Pod>, scheduler_name: String) -> BoxFuture<'static, Result<(), ApiError>> {
        let api = self.pods(&pod);
        Box::pin(async move {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let condition = PodCondition {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
                reason: Some("PreemptionByScheduler".into()),
                message: Some(format!(
                    "{scheduler_name}: preempting to accommodate a higher priority pod"
                )),
                last_transition_time: Some(Time(k8s_openapi::jiff::Timestamp::now())),
                ..Default::default()
            };
            let smp = json!({ "metadata": { "uid": pod.metadata.uid }, "status": { "conditions": [condition] } });
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&smp))
                .await
            {
                tracing::debug!(pod = %name, error = %e, "marking preemption victim");
            }
            let dp = DeleteParams {
                preconditions: pod.metadata.uid.clone().map(|uid| kube::api::Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..Default::default()
            };
            api.delete(&name, &dp).await.map_err(classify)?;
            Ok(())
        })
    }
}
