//! Records core/v1 Events about pods (Pulling, Started, BackOff, ...).

use apimachinery::events::{new_event, object_reference, EventType, Reporter};
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::Timestamp;
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
        let mut involved = object_reference(pod);
        involved.field_path = field;
        let reporter = Reporter {
            component: "kubelet".into(),
            host: Some(self.node.clone()),
            instance: None,
        };
        let ty = if type_ == "Warning" {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let ev = new_event(&reporter, involved, ty, reason, &message, Timestamp::now());
        let ns = ev.metadata.namespace.clone().unwrap_or_default();
        tokio::spawn(async move {
            let api: Api<Event> = Api::namespaced(client, &ns);
            if let Err(e) = api.create(&PostParams::default(), &ev).await {
                tracing::debug!(error = %e, "posting event");
            }
        });
    }
}
