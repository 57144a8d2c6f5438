//! The Endpoints controller: for each Service with a selector, the ready
//! and not-ready addresses of its pods, with ports resolved by name.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use apimachinery::labels::set_matches;
use apimachinery::phase::is_pod_terminal;
use apimachinery::ports::find_port;
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};

use super::{Ctx, Result};
use crate::podutil;
use crate::runtime::{run_workers, Informers, Key, WorkQueue};

pub const NAME: &str = "endpoints-controller";

/// One pod behind a Service, with the Service's ports resolved for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    pub pod: Arc<Pod>,
    pub ip: String,
    pub ready: bool,
    /// The pod's hostname when its subdomain is this Service (upstream's
    /// endpoint hostname, for `<hostname>.<service>.<ns>.svc` DNS records).
    pub hostname: Option<String>,
    /// (name, port, protocol, appProtocol) per Service port.
    pub ports: Vec<(Option<String>, i32, String, Option<String>)>,
}

/// The selector a controller follows, or None when the Service has none
/// (its endpoints are then managed by hand).
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec.as_ref()?.selector.as_ref().filter(|s| !s.is_empty())
}

/// The pods behind a Service.
pub fn backends(svc: &Service, pods: &[Arc<Pod>]) -> Vec<Backend> {
    let Some(sel) = selector(svc) else { return vec![] };
    let spec = svc.spec.as_ref();
    let publish_not_ready = spec.and_then(|s| s.publish_not_ready_addresses).unwrap_or(false);
    let svc_ports = spec.and_then(|s| s.ports.clone()).unwrap_or_default();
    let mut out: Vec<Backend> = pods
        .iter()
        .filter(|p| p.metadata.namespace == svc.metadata.namespace)
        .filter(|p| set_matches(sel, &p.metadata.labels.as_ref()))
        .filter(|p| p.metadata.deletion_timestamp.is_none() && !is_pod_terminal(p))
        .filter_map(|p| {
            let ip = p.status.as_ref()?.pod_ip.clone().filter(|ip| !ip.is_empty())?;
            let ports = svc_ports
                .iter()
                .filter_map(|sp| {
                    let port = find_port(p, sp).ok()?;
                    Some((
                        sp.name.clone(),
                        port,
                        sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        sp.app_protocol.clone(),
                    ))
                })
                .collect();
            let pod_spec = p.spec.as_ref();
            let hostname = pod_spec
                .and_then(|s| s.hostname.clone())
                .filter(|h| !h.is_empty())
                .filter(|_| pod_spec.and_then(|s| s.subdomain.as_ref()) == svc.metadata.name.as_ref());
            Some(Backend {
                pod: p.clone(),
                ip,
                hostname,
                ready: publish_not_ready || podutil::is_ready(p),
                ports,
            })
        })
        .collect();
    out.sort_by(|a, b| a.ip.cmp(&b.ip).then_with(|| a.pod.name_any().cmp(&b.pod.name_any())));
    out
}

pub fn target_ref(p: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        name: p.metadata.name.clone(),
        namespace: p.metadata.namespace.clone(),
        uid: p.metadata.uid.clone(),
        ..Default::default()
    }
}

/// Subsets grouped by resolved port set, as upstream's RepackSubsets.
pub fn subsets(backends: &[Backend]) -> Vec<EndpointSubset> {
    let mut groups: Vec<(Vec<EndpointPort>, Vec<EndpointAddress>, Vec<EndpointAddress>)> = Vec::new();
    for b in backends {
        if b.ports.is_empty() {
            continue;
        }
        let ports: Vec<EndpointPort> = b
            .ports
            .iter()
            .map(|(name, port, proto, app)| EndpointPort {
                name: name.clone(),
                port: *port,
                protocol: Some(proto.clone()),
                app_protocol: app.clone(),
            })
            .collect();
        let addr = EndpointAddress {
            ip: b.ip.clone(),
            node_name: b.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(target_ref(&b.pod)),
            hostname: b.hostname.clone(),
        };
        let idx = match groups.iter().position(|g| g.0 == ports) {
            Some(i) => i,
            None => {
                groups.push((ports, vec![], vec![]));
                groups.len() - 1
            }
        };
        if b.ready {
            groups[idx].1.push(addr);
        } else {
            groups[idx].2.push(addr);
        }
    }
    groups
        .into_iter()
        .map(|(ports, ready, not_ready)| EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: Some(ports),
        })
        .collect()
}

/// Queue the Services in a pod's namespace that select it.
pub fn services_for_pod(services: &Store<Service>, pod: &Pod) -> Vec<Key> {
    services
        .state()
        .iter()
        .filter(|s| s.metadata.namespace == pod.metadata.namespace)
        .filter(|s| selector(s).is_some_and(|sel| set_matches(sel, &pod.metadata.labels.as_ref())))
        .map(|s| Key::of(&s.metadata))
        .collect()
}

struct State {
    ctx: Ctx,
    services: Store<Service>,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
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
    inf.get::<Endpoints>().enqueue_self(&queue);
    let state = Arc::new(State {
        ctx: ctx.clone(),
        services,
        pods: inf.store(),
        endpoints: inf.store(),
    });
    let metrics = ctx.metrics.clone();
    let workers = ctx.opts.concurrent_syncs;
    let synced = vec![inf.synced::<Service>(), inf.synced::<Pod>(), inf.synced::<Endpoints>()];
    run_workers(NAME, queue, workers, metrics, synced, move |key| {
        let state = state.clone();
        async move { sync(&state, &key).await }
    });
}

async fn sync(st: &State, key: &Key) -> Result<Option<Duration>> {
    let api: Api<Endpoints> = Api::namespaced(st.ctx.client.clone(), key.ns());
    let existing = st.endpoints.get(&ObjectRef::new(&key.name).within(key.ns()));
    let Some(svc) = st.services.get(&ObjectRef::new(&key.name).within(key.ns())) else {
        // The Service is gone: so are the endpoints we kept for it.
        if existing.is_some() {
            match api.delete(&key.name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if super::is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(None);
    };
    if selector(&svc).is_none() {
        return Ok(None);
    }
    let pods: Vec<Arc<Pod>> = st
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(key.ns()))
        .collect();
    let subsets = subsets(&backends(&svc, &pods));
    let desired = Endpoints {
        metadata: ObjectMeta {
            name: Some(key.name.clone()),
            namespace: Some(key.ns().to_string()),
            labels: svc.metadata.labels.clone(),
            resource_version: existing.as_ref().and_then(|e| e.metadata.resource_version.clone()),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    };
    match existing {
        Some(e) if e.subsets == desired.subsets && e.metadata.labels == desired.metadata.labels => Ok(None),
        Some(_) => match api.replace(&key.name, &PostParams::default(), &desired).await {
            Ok(_) => Ok(None),
            Err(e) if super::is_not_found(&e) => Ok(Some(Duration::from_millis(100))),
            Err(e) => Err(e.into()),
        },
        None => match api.create(&PostParams::default(), &desired).await {
            Ok(_) => Ok(None),
            Err(e) if super::is_already_exists(&e) => Ok(Some(Duration::from_millis(100))),
            Err(e) => Err(e.into()),
        },
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use crate::podutil::fixtures::{pod, with_phase};
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec, PodStatus, ServicePort, ServiceSpec};

    pub fn svc(target: IntOrString) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(target),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    pub fn backend_pod(name: &str, ip: &str, ready: bool) -> Arc<Pod> {
        let mut p = with_phase(pod(name, &[("app", "web")]), "Running", ready);
        p.spec = Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                ports: Some(vec![ContainerPort {
                    name: Some("web".into()),
                    container_port: 8080,
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        });
        let st = p.status.take().unwrap();
        p.status = Some(PodStatus {
            pod_ip: Some(ip.into()),
            ..st
        });
        Arc::new(p)
    }

    #[test]
    fn ready_and_not_ready_addresses_with_named_ports() {
        let pods = vec![
            backend_pod("a", "10.0.0.2", true),
            backend_pod("b", "10.0.0.1", false),
            Arc::new(pod("other", &[("app", "db")])),
        ];
        let s = subsets(&backends(&svc(IntOrString::String("web".into())), &pods));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].addresses.as_ref().unwrap()[0].ip, "10.0.0.2");
        assert_eq!(s[0].not_ready_addresses.as_ref().unwrap()[0].ip, "10.0.0.1");
        let port = &s[0].ports.as_ref().unwrap()[0];
        assert_eq!((port.port, port.name.as_deref()), (8080, Some("http")));
        assert_eq!(
            s[0].addresses.as_ref().unwrap()[0].target_ref.as_ref().unwrap().name.as_deref(),
            Some("a")
        );
    }

    #[test]
    fn pods_without_ip_or_with_unresolvable_ports_are_left_out() {
        let no_ip = Arc::new(with_phase(pod("c", &[("app", "web")]), "Pending", false));
        assert!(backends(&svc(IntOrString::Int(80)), &[no_ip]).is_empty());
        let s = subsets(&backends(
            &svc(IntOrString::String("nope".into())),
            &[backend_pod("a", "10.0.0.2", true)],
        ));
        assert!(s.is_empty());
    }

    /// The hostname that DNS serves as `<hostname>.<service>.<ns>.svc`: only
    /// for a pod whose subdomain is this Service, as upstream's controllers.
    #[test]
    fn hostname_only_for_pods_whose_subdomain_is_the_service() {
        let with = |sub: &str| {
            let mut p = (*backend_pod("web-0", "10.0.0.2", true)).clone();
            let spec = p.spec.as_mut().unwrap();
            spec.hostname = Some("web-0".into());
            spec.subdomain = Some(sub.into());
            Arc::new(p)
        };
        let s = svc(IntOrString::String("web".into()));
        let b = backends(&s, &[with("web")]);
        assert_eq!(b[0].hostname.as_deref(), Some("web-0"));
        assert_eq!(subsets(&b)[0].addresses.as_ref().unwrap()[0].hostname.as_deref(), Some("web-0"));
        assert_eq!(crate::controllers::endpointslice::desired(&b)[0].1[0].hostname.as_deref(), Some("web-0"));
        assert_eq!(backends(&s, &[with("other")])[0].hostname, None);
    }

    #[test]
    fn services_without_selector_are_not_managed() {
        let mut s = svc(IntOrString::Int(80));
        s.spec.as_mut().unwrap().selector = None;
        assert!(selector(&s).is_none());
    }
}
