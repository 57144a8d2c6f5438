//! Records core/v1 Events about pods (Pulling, Started, BackOff, ...).

use chrono::Utc;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

#[derive(Clone)]
pub struct Recorder {
    client: Option<kube::Client>,
    node: String,
}

impl Recorder {
    pub fn new(client: Option<kube::Client>, node: &str) -> Self {
        Recorder {
            client,
            node: node.to_string(),
        }
    }

    /// Fire and forget: an event that fails to post must not hold the pod up.
    pub fn pod_event(
        &self,
        pod: &Pod,
        type_: &str,
        reason: &str,
        message: String,
        field: Option<String>,
    ) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let now = Utc::now();
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    name,
                    now.timestamp_nanos_opt().unwrap_or(0)
                )),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                api_version: Some("v1".into()),
                name: Some(name),
                namespace: Some(ns.clone()),
                uid: pod.metadata.uid.clone(),
                field_path: field,
                resource_version: pod.metadata.resource_version.clone(),
            },
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some(type_.into()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.clone()),
            }),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            first_timestamp: Some(crate::ktime::time(now)),
            last_timestamp: Some(crate::ktime::time(now)),
            event_time: None,
            count: Some(1),
            ..Default::default()
        };
        tokio::spawn(async move {
            let api: Api<Event> = Api::namespaced(client, &ns);
            if let Err(e) = api.create(&PostParams::default(), &ev).await {
                tracing::debug!(error = %e, "posting event");
            }
        });
    }
}
