//! The EndpointSlice controller: the same backends as Endpoints, as
//! discovery.k8s.io/v1 slices owned by the Service (one per port set).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};

use super::endpoints::{backends, selector, services_for_pod, target_ref, Backend};
use super::{Ctx, Result};
use crate::podutil;
use crate::runtime::{run_workers, Informers, Key, WorkQueue};

pub const NAME: &str = "endpointslice-controller";
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// The slices a Service should have: (ports, endpoints) per port set.
pub fn desired(backends: &[Backend]) -> Vec<(Vec<EndpointPort>, Vec<Endpoint>)> {
    let mut groups: Vec<(Vec<EndpointPort>, Vec<Endpoint>)> = Vec::new();
    for b in backends {
        let ports: Vec<EndpointPort> = b
            .ports
            .iter()
            .map(|(name, port, proto, app)| EndpointPort {
                // Always set, "" for an unnamed port, as upstream's controller writes it:
                // kubectl describe dereferences it.
                name: Some(name.clone().unwrap_or_default()),
                port: Some(*port),
                protocol: Some(proto.clone()),
                app_protocol: app.clone(),
            })
            .collect();
        let terminating = b.pod.metadata.deletion_timestamp.is_some();
        let ep = Endpoint {
            addresses: vec![b.ip.clone()],
            conditions: Some(EndpointConditions {
                ready: Some(b.ready && !terminating),
                serving: Some(podutil::is_ready(&b.pod)),
                terminating: Some(terminating),
            }),
            node_name: b.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(target_ref(&b.pod)),
            hostname: b.hostname.clone(),
            ..Default::default()
        };
        match groups.iter_mut().find(|g| g.0 == ports) {
            Some(g) => g.1.push(ep),
            None => groups.push((ports, vec![ep])),
        }
    }
    groups
}

fn slice_for(svc: &Service, ports: Vec<EndpointPort>, endpoints: Vec<Endpoint>, existing: Option<&EndpointSlice>) -> EndpointSlice {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.into(), svc.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    EndpointSlice {
        metadata: ObjectMeta {
            name: existing.and_then(|e| e.metadata.name.clone()),
            generate_name: Some(format!("{}-", svc.name_any())),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![podutil::controller_ref(svc)]),
            resource_version: existing.and_then(|e| e.metadata.resource_version.clone()),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints,
        ports: Some(ports),
    }
}

fn same(a: &EndpointSlice, b: &EndpointSlice) -> bool {
    a.endpoints == b.endpoints && a.ports == b.ports && a.metadata.labels == b.metadata.labels
}

struct State {
    ctx: Ctx,
    services: Store<Service>,
    pods: Store<Pod>,
    slices: Store<EndpointSlice>,
}

pub fn register(inf: &mut Informers, ctx: &Ctx) {
    let queue: WorkQueue<Key> = WorkQueue::default();
    let services = inf.store::<Service>();
    inf.get::<Service>().enqueue_self(&queue);
    {
        let q = queue.clone();
        let svcs = services.clone();
        inf.get::<Pod>().on_change(move |old, new| {
            for p in [old, new].into_iter().flatten() {
                for k in services_for_pod(&svcs, p) {
                    q.add(k);
                }
            }
        });
    }
    {
        let q = queue.clone();
        inf.get::<EndpointSlice>().on_change(move |old, new| {
            if let Some(s) = new.or(old) {
                if let Some(svc) = s.labels().get(SERVICE_NAME_LABEL) {
                    q.add(Key::namespaced(&s.namespace().unwrap_or_default(), svc));
                }
            }
        });
    }
    let state = Arc::new(State {
        ctx: ctx.clone(),
        services,
        pods: inf.store(),
        slices: inf.store(),
    });
    let metrics = ctx.metrics.clone();
    let workers = ctx.opts.concurrent_syncs;
    let synced = vec![inf.synced::<Service>(), inf.synced::<Pod>(), inf.synced::<EndpointSlice>()];
    run_workers(NAME, queue, workers, metrics, synced, move |key| {
        let state = state.clone();
        async move { sync(&state, &key).await }
    });
}

async fn sync(st: &State, key: &Key) -> Result<Option<Duration>> {
    let Some(svc) = st.services.get(&ObjectRef::new(&key.name).within(key.ns())) else {
        // Owned by the Service: the garbage collector removes them.
        return Ok(None);
    };
    if selector(&svc).is_none() {
        return Ok(None);
    }
    let api: Api<EndpointSlice> = Api::namespaced(st.ctx.client.clone(), key.ns());
    let mut existing: Vec<Arc<EndpointSlice>> = st
        .slices
        .state()
        .into_iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(key.ns()))
        .filter(|s| {
            s.labels().get(SERVICE_NAME_LABEL) == Some(&key.name)
                && s.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
        })
        .collect();
    existing.sort_by_key(|s| s.name_any());
    let pods: Vec<Arc<Pod>> = st
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(key.ns()))
        .collect();
    let mut want = desired(&backends(&svc, &pods));
    if want.is_empty() {
        // Upstream keeps one empty slice so consumers see "no endpoints".
        want.push((vec![], vec![]));
    }
    let n = want.len();
    for (i, (ports, eps)) in want.into_iter().enumerate() {
        let current = existing.get(i).map(|s| s.as_ref());
        let slice = slice_for(&svc, ports, eps, current);
        match current {
            Some(c) if same(c, &slice) => {}
            Some(c) => {
                api.replace(&c.name_any(), &PostParams::default(), &slice).await?;
            }
            None => {
                api.create(&PostParams::default(), &slice).await?;
            }
        }
    }
    for extra in existing.iter().skip(n) {
        match api.delete(&extra.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if super::is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::endpoints::tests::{backend_pod, svc};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    #[test]
    fn slices_carry_conditions_ports_and_service_labels() {
        let s = svc(IntOrString::String("web".into()));
        let want = desired(&backends(
            &s,
            &[backend_pod("a", "10.0.0.1", true), backend_pod("b", "10.0.0.2", false)],
        ));
        assert_eq!(want.len(), 1);
        let (ports, eps) = &want[0];
        assert_eq!(ports[0].port, Some(8080));
        assert!(ports[0].name.is_some());
        assert_eq!(eps[0].conditions.as_ref().unwrap().ready, Some(true));
        assert_eq!(eps[1].conditions.as_ref().unwrap().ready, Some(false));
        let slice = slice_for(&s, ports.clone(), eps.clone(), None);
        assert_eq!(slice.labels().get(SERVICE_NAME_LABEL).map(String::as_str), Some("web"));
        assert_eq!(slice.labels().get(MANAGED_BY_LABEL).map(String::as_str), Some(MANAGED_BY));
        assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(slice.address_type, "IPv4");
    }
}
