//! A new pod's containers are created while CNI wires the pod's network, but
//! none starts before the network is ready: upstream's sandbox guarantees the
//! same, and CNI and task creation each take tens of milliseconds (seconds
//! in a burst) that need not add up.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// None while CNI runs; then its outcome.
type Outcome = Option<Result<(), String>>;

/// Pods whose network is being set up, and which pod each created container belongs to.
#[derive(Default)]
pub struct NetworkGate {
    pods: Mutex<HashMap<String, watch::Receiver<Outcome>>>,
    owners: Mutex<HashMap<String, String>>,
}

/// Held by whoever runs CNI for a pod; dropping it unsent fails the waiting starts.
pub struct NetworkSetup(watch::Sender<Outcome>);

impl NetworkSetup {
    pub fn done(self, outcome: Result<(), String>) {
        let _ = self.0.send(Some(outcome));
    }
}

impl NetworkGate {
    /// Marks the pod's network as being set up until [`NetworkGate::close`].
    pub fn open(&self, pod_uid: &str) -> NetworkSetup {
        let (tx, rx) = watch::channel(None);
        if let Ok(mut pods) = self.pods.lock() {
            pods.insert(pod_uid.to_string(), rx);
        }
        NetworkSetup(tx)
    }

    pub fn close(&self, pod_uid: &str) {
        if let Ok(mut pods) = self.pods.lock() {
            pods.remove(pod_uid);
        }
    }

    /// Records which pod a container being created belongs to, while that
    /// pod's network is being set up (otherwise its start need not wait).
    pub fn owner(&self, container_id: &str, pod_uid: &str) {
        let pending = self
            .pods
            .lock()
            .map(|p| p.contains_key(pod_uid))
            .unwrap_or(false);
        if let (true, Ok(mut o)) = (pending, self.owners.lock()) {
            o.insert(container_id.to_string(), pod_uid.to_string());
        }
    }

    /// Waits until the container's pod network is ready; at once when no setup is under way.
    pub async fn wait(&self, container_id: &str) -> Result<(), String> {
        let pod = self
            .owners
            .lock()
            .ok()
            .and_then(|mut o| o.remove(container_id));
        let rx = pod.and_then(|uid| self.pods.lock().ok()?.get(&uid).cloned());
        let Some(mut rx) = rx else {
            return Ok(());
        };
        let outcome = match rx.wait_for(|o| o.is_some()).await {
            Ok(o) => o.clone().unwrap_or(Ok(())),
            Err(_) => Err("pod network setup was abandoned".into()),
        };
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn start_waits_for_its_pods_network_only() {
        let gate = Arc::new(NetworkGate::default());
        let setup = gate.open("pod-a");
        let _other = gate.open("pod-b");
        gate.owner("c1", "pod-a");
        gate.owner("c2", "pod-b");
        gate.close("pod-b");
        // Another pod's container is not held up.
        assert_eq!(gate.wait("c2").await, Ok(()));
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.wait("c1").await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        setup.done(Ok(()));
        assert_eq!(waiter.await.unwrap(), Ok(()));
        gate.close("pod-a");
    }

    #[tokio::test]
    async fn failed_or_abandoned_setup_fails_the_start() {
        let gate = NetworkGate::default();
        let setup = gate.open("p");
        gate.owner("c1", "p");
        setup.done(Err("no IP".into()));
        assert_eq!(gate.wait("c1").await, Err("no IP".into()));
        let setup = gate.open("q");
        gate.owner("c2", "q");
        drop(setup);
        assert!(gate.wait("c2").await.is_err());
    }

    #[tokio::test]
    async fn containers_of_pods_without_setup_start_at_once() {
        let gate = NetworkGate::default();
        assert_eq!(gate.wait("unknown").await, Ok(()));
        gate.owner("c", "p");
        assert_eq!(gate.wait("c").await, Ok(()));
    }
}
