//! The ServiceAccount controller: a `default` ServiceAccount in every
//! active namespace, recreated if deleted.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Api;

use super::{Ctx, Result};
use crate::runtime::{run_workers, Informers, Key, WorkQueue};

pub const NAME: &str = "serviceaccount-controller";
pub const DEFAULT: &str = "default";

/// Does this namespace need a `default` ServiceAccount created?
pub fn needs_default(ns: &Namespace, has_default: bool) -> bool {
    let terminating =
        ns.metadata.deletion_timestamp.is_some() || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    !terminating && !has_default
}

struct State {
    ctx: Ctx,
    namespaces: Store<Namespace>,
    accounts: Store<ServiceAccount>,
}

pub fn register(inf: &mut Informers, ctx: &Ctx) {
    let queue: WorkQueue<Key> = WorkQueue::default();
    {
        let q = queue.clone();
        inf.get::<Namespace>().on_change(move |_, new| {
            if let Some(n) = new {
                q.add(Key::cluster(n.metadata.name.as_deref().unwrap_or_default()));
            }
        });
    }
    {
        let q = queue.clone();
        inf.get::<ServiceAccount>().on_change(move |old, new| {
            if let (Some(o), None) = (old, new) {
                if o.metadata.name.as_deref() == Some(DEFAULT) {
                    q.add(Key::cluster(o.metadata.namespace.as_deref().unwrap_or_default()));
                }
            }
        });
    }
    let state = Arc::new(State {
        ctx: ctx.clone(),
        namespaces: inf.store(),
        accounts: inf.store(),
    });
    let metrics = ctx.metrics.clone();
    let synced = vec![inf.synced::<Namespace>(), inf.synced::<ServiceAccount>()];
    run_workers(NAME, queue, 2, metrics, synced, move |key| {
        let state = state.clone();
        async move { sync(&state, &key).await }
    });
}

async fn sync(st: &State, key: &Key) -> Result<Option<Duration>> {
    let Some(ns) = st.namespaces.get(&ObjectRef::new(&key.name)) else {
        return Ok(None);
    };
    let has = st.accounts.get(&ObjectRef::new(DEFAULT).within(&key.name)).is_some();
    if !needs_default(&ns, has) {
        return Ok(None);
    }
    let api: Api<ServiceAccount> = Api::namespaced(st.ctx.client.clone(), &key.name);
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT.into()),
            namespace: Some(key.name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => Ok(None),
        Err(e) if super::is_already_exists(&e) => Ok(None),
        // The namespace is going away: upstream gives up quietly too.
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;

    #[test]
    fn active_namespaces_get_a_default_account() {
        let ns = Namespace::default();
        assert!(needs_default(&ns, false));
        assert!(!needs_default(&ns, true));
        let term = Namespace {
            status: Some(NamespaceStatus {
                phase: Some("Terminating".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(!needs_default(&term, false));
    }
}
