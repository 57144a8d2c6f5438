//! An in-memory [`PodNetwork`] for pod-worker tests: namespaces are entries
//! in a set, and each setup hands out the next IP.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Mutex;

use super::{NetworkError, PodNamespaces, PodNetwork, PortMapping};

#[derive(Default)]
pub struct FakeNetwork {
    live: Mutex<HashSet<PathBuf>>,
    /// Calls made, in order, for assertions: `setup <uid>`, `teardown <uid>`.
    pub calls: Mutex<Vec<String>>,
    changed: tokio::sync::Notify,
}

impl FakeNetwork {
    /// How many times `call` (e.g. `teardown u1`) was made.
    pub fn count(&self, call: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == call)
            .count()
    }

    /// Waits until `done` holds for the calls made so far.
    pub async fn wait_for(&self, done: impl Fn(&[String]) -> bool) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so no call slips in between.
            changed.as_mut().enable();
            if done(&self.calls.lock().unwrap()) {
                return;
            }
            changed.await;
        }
    }

    fn record(&self, s: String) -> usize {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(s);
            calls.len()
        };
        self.changed.notify_waiters();
        n
    }
}

#[async_trait::async_trait]
impl PodNetwork for FakeNetwork {
    async fn create_namespaces(&self, ns: &PodNamespaces, _: &str) -> Result<(), NetworkError> {
        // The pod dir holds the sandbox record, as with real namespaces.
        std::fs::create_dir_all(&ns.dir).map_err(super::NamespaceError::from)?;
        self.live.lock().unwrap().insert(ns.dir.clone());
        Ok(())
    }
    fn namespaces_exist(&self, ns: &PodNamespaces) -> bool {
        self.live.lock().unwrap().contains(&ns.dir)
    }
    fn remove_namespaces(&self, ns: &PodNamespaces) {
        self.live.lock().unwrap().remove(&ns.dir);
    }
    async fn setup(
        &self,
        uid: &str,
        _: &PodNamespaces,
        _: &[PortMapping],
    ) -> Result<String, NetworkError> {
        let n = self.record(format!("setup {uid}"));
        Ok(format!("10.88.0.{}", n % 250 + 2))
    }
    async fn teardown(
        &self,
        uid: &str,
        _: &PodNamespaces,
        _: &[PortMapping],
    ) -> Result<(), NetworkError> {
        self.record(format!("teardown {uid}"));
        Ok(())
    }
}
