//! The event recorder: Scheduled and FailedScheduling events are written in
//! the background from a bounded queue by a few workers, as upstream's
//! event broadcaster does, so a burst of events never holds up binds. When
//! the queue is full the event is dropped and counted (upstream:
//! DropIfChannelFull with 1,000 queued): events are advisory, binds are not.

use std::sync::{Arc, OnceLock};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{mpsc, Mutex};

use crate::api::ClusterApi;
use crate::metrics::Metrics;

/// Events waiting to be written at most, as upstream's maxQueuedEvents.
pub const MAX_QUEUED_EVENTS: usize = 1000;
/// Events written concurrently: few, so binds keep the apiserver's attention.
pub const EVENT_WORKERS: usize = 4;

struct Record {
    pod: Arc<Pod>,
    component: String,
    type_: &'static str,
    reason: &'static str,
    message: String,
}

pub struct EventRecorder {
    api: Arc<dyn ClusterApi>,
    metrics: Arc<Metrics>,
    /// Started on first use, from inside the runtime.
    queue: OnceLock<mpsc::Sender<Record>>,
}

impl EventRecorder {
    pub fn new(api: Arc<dyn ClusterApi>, metrics: Arc<Metrics>) -> Self {
        EventRecorder {
            api,
            metrics,
            queue: OnceLock::new(),
        }
    }

    /// Queues an event about `pod`; never waits.
    pub fn record(&self, pod: Arc<Pod>, component: String, type_: &'static str, reason: &'static str, message: String) {
        let queue = self.queue.get_or_init(|| self.start());
        let record = Record {
            pod,
            component,
            type_,
            reason,
            message,
        };
        if queue.try_send(record).is_err() {
            self.metrics.event_dropped();
            tracing::debug!(reason, "event queue full; dropping the event");
        }
    }

    fn start(&self) -> mpsc::Sender<Record> {
        let (tx, rx) = mpsc::channel::<Record>(MAX_QUEUED_EVENTS);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..EVENT_WORKERS {
            let rx = rx.clone();
            let api = self.api.clone();
            tokio::spawn(async move {
                loop {
                    let Some(r) = rx.lock().await.recv().await else { return };
                    if let Err(e) = api.event(r.pod, r.component, r.type_, r.reason, r.message).await {
                        tracing::warn!(error = %e, reason = r.reason, "recording event");
                    }
                }
            });
        }
        tx
    }
}
