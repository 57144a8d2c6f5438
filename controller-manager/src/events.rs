//! Core/v1 Events, as upstream's event recorder writes them (kubectl
//! describe reads /api/v1 events by involvedObject).

pub use apimachinery::events::{object_reference, EventType};
use apimachinery::events::{new_event, Reporter};
use k8s_openapi::api::core::v1::{Event, ObjectReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};

/// Upstream's EventSourceObjectSpamFilter: a token bucket per involved
/// object (burst 25, one token back every 5 minutes), so a ReplicaSet
/// creating 1,000 pods does not also write 1,000 events.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    last: std::time::Instant,
}

pub const SPAM_BURST: f64 = 25.0;
pub const SPAM_REFILL: std::time::Duration = std::time::Duration::from_secs(300);

impl Bucket {
    pub fn new(now: std::time::Instant) -> Self {
        Bucket {
            tokens: SPAM_BURST,
            last: now,
        }
    }

    /// Take a token if there is one.
    pub fn allow(&mut self, now: std::time::Instant) -> bool {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() / SPAM_REFILL.as_secs_f64();
        self.tokens = (self.tokens + refill).min(SPAM_BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: &'static str,
    buckets: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Bucket>>>,
}

/// The Event a recorder would write; pure so it can be tested.
pub fn build_event(component: &str, involved: ObjectReference, ty: EventType, reason: &str, message: &str) -> Event {
    new_event(&Reporter::new(component), involved, ty, reason, message, Timestamp::now())
}

impl Recorder {
    pub fn new(client: Client, component: &'static str) -> Self {
        Recorder {
            client,
            component,
            buckets: Default::default(),
        }
    }

    /// Write an Event about `obj` without waiting; failures are only logged,
    /// as events are best effort upstream too.
    pub fn record<K>(&self, obj: &K, ty: EventType, reason: &str, message: &str)
    where
        K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    {
        self.record_ref(object_reference(obj), ty, reason, message)
    }

    pub fn record_ref(&self, involved: ObjectReference, ty: EventType, reason: &str, message: &str) {
        let key = format!(
            "{}/{}/{}",
            involved.kind.as_deref().unwrap_or(""),
            involved.namespace.as_deref().unwrap_or(""),
            involved.uid.as_deref().or(involved.name.as_deref()).unwrap_or("")
        );
        {
            let now = std::time::Instant::now();
            let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            if b.len() > 10_000 {
                b.retain(|_, v| now.saturating_duration_since(v.last) < SPAM_REFILL * 25);
            }
            if !b.entry(key).or_insert_with(|| Bucket::new(now)).allow(now) {
                return;
            }
        }
        let ev = build_event(self.component, involved, ty, reason, message);
        let api: Api<Event> = Api::namespaced(self.client.clone(), ev.metadata.namespace.as_deref().unwrap_or("default"));
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &ev).await {
                tracing::debug!(event = %ev.name_any(), error = %e, "event not written");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn event_names_the_object_and_its_namespace() {
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let ev = build_event(
            "replicaset-controller",
            object_reference(&rs),
            EventType::Normal,
            "SuccessfulCreate",
            "Created pod: web-abc",
        );
        assert_eq!(ev.metadata.namespace.as_deref(), Some("prod"));
        assert!(ev.metadata.name.unwrap().starts_with("web."));
        assert_eq!(ev.involved_object.kind.as_deref(), Some("ReplicaSet"));
        assert_eq!(ev.involved_object.api_version.as_deref(), Some("apps/v1"));
        assert_eq!(ev.type_.as_deref(), Some("Normal"));
        assert_eq!(ev.source.unwrap().component.as_deref(), Some("replicaset-controller"));
    }

    #[test]
    fn spam_filter_allows_a_burst_then_one_per_refill() {
        let t0 = std::time::Instant::now();
        let mut b = Bucket::new(t0);
        assert_eq!((0..100).filter(|_| b.allow(t0)).count(), 25);
        assert!(!b.allow(t0 + SPAM_REFILL / 2));
        assert!(b.allow(t0 + SPAM_REFILL + SPAM_REFILL / 2));
    }

    #[test]
    fn cluster_scoped_objects_get_events_in_default() {
        let node = k8s_openapi::api::core::v1::Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let ev = build_event("node-controller", object_reference(&node), EventType::Normal, "NodeNotReady", "x");
        assert_eq!(ev.metadata.namespace.as_deref(), Some("default"));
    }
}
