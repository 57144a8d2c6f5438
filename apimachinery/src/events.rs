//! core/v1 Events as upstream's event recorder (client-go tools/record)
//! makes them: named `<object>.<unix-nanos hex>`, in the object's namespace
//! (`default` for cluster-scoped objects), count 1, first = last timestamp.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Who reports: the component, the host it runs on, and an instance name
/// (reportingInstance: the instance, else the host, else the component).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reporter {
    pub component: String,
    pub host: Option<String>,
    pub instance: Option<String>,
}

impl Reporter {
    pub fn new(component: impl Into<String>) -> Reporter {
        Reporter { component: component.into(), host: None, instance: None }
    }
}

/// The involvedObject for a typed object.
pub fn object_reference<K>(obj: &K) -> ObjectReference
where
    K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>,
{
    let meta = obj.metadata();
    ObjectReference {
        api_version: Some(K::API_VERSION.to_string()),
        kind: Some(K::KIND.to_string()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        field_path: None,
    }
}

/// A new Event about `involved`.
pub fn new_event(reporter: &Reporter, involved: ObjectReference, type_: EventType, reason: &str, message: &str, now: Timestamp) -> Event {
    let namespace = involved.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".into());
    let name = format!("{}.{:x}", involved.name.as_deref().unwrap_or(""), now.as_nanosecond());
    let instance = reporter.instance.clone().or_else(|| reporter.host.clone()).unwrap_or_else(|| reporter.component.clone());
    Event {
        metadata: ObjectMeta { name: Some(name), namespace: Some(namespace), ..Default::default() },
        involved_object: involved,
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        type_: Some(type_.as_str().to_string()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        source: Some(EventSource { component: Some(reporter.component.clone()), host: reporter.host.clone() }),
        reporting_component: Some(reporter.component.clone()),
        reporting_instance: Some(instance),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::Node;

    #[test]
    fn event_about_a_namespaced_object() {
        let rs = ReplicaSet {
            metadata: ObjectMeta { name: Some("web".into()), namespace: Some("prod".into()), uid: Some("u1".into()), ..Default::default() },
            ..Default::default()
        };
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let ev = new_event(&Reporter::new("replicaset-controller"), object_reference(&rs), EventType::Normal, "SuccessfulCreate", "Created pod: web-abc", now);
        assert_eq!(ev.metadata.namespace.as_deref(), Some("prod"));
        assert_eq!(ev.metadata.name.as_deref(), Some(format!("web.{:x}", now.as_nanosecond()).as_str()));
        assert_eq!(ev.involved_object.kind.as_deref(), Some("ReplicaSet"));
        assert_eq!(ev.involved_object.api_version.as_deref(), Some("apps/v1"));
        assert_eq!(ev.involved_object.uid.as_deref(), Some("u1"));
        assert_eq!(ev.type_.as_deref(), Some("Normal"));
        assert_eq!(ev.count, Some(1));
        assert_eq!(ev.first_timestamp, ev.last_timestamp);
        assert_eq!(ev.source.unwrap().component.as_deref(), Some("replicaset-controller"));
        assert_eq!(ev.reporting_instance.as_deref(), Some("replicaset-controller"));
    }

    #[test]
    fn cluster_scoped_objects_get_events_in_default_and_hosts_report() {
        let node = Node { metadata: ObjectMeta { name: Some("n1".into()), ..Default::default() }, ..Default::default() };
        let kubelet = Reporter { component: "kubelet".into(), host: Some("n1".into()), instance: None };
        let ev = new_event(&kubelet, object_reference(&node), EventType::Warning, "Rebooted", "x", Timestamp::now());
        assert_eq!(ev.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(ev.type_.as_deref(), Some("Warning"));
        assert_eq!(ev.source.unwrap().host.as_deref(), Some("n1"));
        assert_eq!(ev.reporting_instance.as_deref(), Some("n1"));
    }
}
