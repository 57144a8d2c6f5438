//! The quota status against upstream's documented cases
//! (resource_quota_controller_test.go TestSyncResourceQuota*).

use super::*;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodStatus, ResourceQuotaSpec, ResourceRequirements, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn list(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, ApiQuantity>> {
    Some(pairs.iter().map(|(k, v)| (k.to_string(), ApiQuantity(v.to_string()))).collect())
}

fn quota(hard: &[(&str, &str)], scopes: &[&str]) -> ResourceQuota {
    ResourceQuota {
        metadata: ObjectMeta {
            name: Some("q".into()),
            namespace: Some("ns".into()),
            ..Default::default()
        },
        spec: Some(ResourceQuotaSpec {
            hard: list(hard),
            scopes: (!scopes.is_empty()).then(|| scopes.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }),
        status: None,
    }
}

fn pod(name: &str, phase: &str, cpu: Option<&str>, memory: Option<&str>) -> Arc<Pod> {
    let mut requests = BTreeMap::new();
    for (k, v) in [("cpu", cpu), ("memory", memory)] {
        if let Some(v) = v {
            requests.insert(k.to_string(), ApiQuantity(v.to_string()));
        }
    }
    Arc::new(Pod {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                resources: Some(ResourceRequirements {
                    limits: (!requests.is_empty()).then(|| requests.clone()),
                    requests: (!requests.is_empty()).then_some(requests),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus { phase: Some(phase.into()), ..Default::default() }),
    })
}

fn used(s: &ResourceQuotaStatus) -> BTreeMap<String, String> {
    s.used.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn compute_usage_of_live_pods_only() {
    // TestSyncResourceQuota "pods": the Succeeded pod counts for nothing.
    let pods = vec![
        pod("a", "Running", Some("100m"), Some("1Gi")),
        pod("b", "Running", Some("100m"), Some("1Gi")),
        pod("done", "Succeeded", Some("1"), Some("1Gi")),
    ];
    let q = quota(&[("cpu", "3"), ("memory", "100Gi"), ("pods", "5")], &[]);
    let s = plan(&q, &Observed { pods: &pods, ..Default::default() }, Timestamp::now()).expect("a first status");
    assert_eq!(s.hard.as_ref().map(|h| h.len()), Some(3));
    assert_eq!(used(&s), map(&[("cpu", "200m"), ("memory", "2Gi"), ("pods", "2")]));
}

#[test]
fn tracked_resources_nobody_uses_show_zero_and_hard_is_canonical() {
    let q = quota(&[("requests.cpu", "1000m"), ("count/pods", "4"), ("services.loadbalancers", "1")], &[]);
    let s = plan(&q, &Observed::default(), Timestamp::now()).unwrap();
    assert_eq!(s.hard.as_ref().unwrap()["requests.cpu"].0, "1", "status.hard in canonical form");
    assert_eq!(used(&s), map(&[("count/pods", "0"), ("requests.cpu", "0"), ("services.loadbalancers", "0")]));
}

#[test]
fn an_up_to_date_status_is_not_written_again() {
    let pods = vec![pod("a", "Running", Some("250m"), None)];
    let mut q = quota(&[("requests.cpu", "1")], &[]);
    let ns = Observed { pods: &pods, ..Default::default() };
    q.status = plan(&q, &ns, Timestamp::now());
    assert_eq!(plan(&q, &ns, Timestamp::now()), None);
    // The same values written differently are the same status.
    q.status.as_mut().unwrap().used = list(&[("requests.cpu", "0.25")]);
    assert_eq!(plan(&q, &ns, Timestamp::now()), None);
    // A changed hard limit is written, and a dropped one leaves used.
    q.spec.as_mut().unwrap().hard = list(&[("pods", "1")]);
    let s = plan(&q, &ns, Timestamp::now()).unwrap();
    assert_eq!(used(&s), map(&[("pods", "1")]));
}

#[test]
fn unknown_resources_keep_their_last_used_value() {
    // TestSyncResourceQuotaSpecChange: used of untracked resources stays.
    let mut q = quota(&[("example.com/foo", "10"), ("pods", "3")], &[]);
    q.status = Some(ResourceQuotaStatus {
        hard: list(&[("example.com/foo", "10"), ("pods", "3")]),
        used: list(&[("example.com/foo", "4"), ("pods", "9"), ("gone", "1")]),
    });
    let s = plan(&q, &Observed::default(), Timestamp::now()).unwrap();
    assert_eq!(used(&s), map(&[("example.com/foo", "4"), ("pods", "0")]));
}

#[test]
fn object_counts_and_services() {
    let services = vec![Arc::new(Service {
        spec: Some(ServiceSpec { type_: Some("NodePort".into()), ports: Some(vec![Default::default()]), ..Default::default() }),
        ..Default::default()
    })];
    let objects = BTreeMap::from([("configmaps".to_string(), 2), ("deployments.apps".to_string(), 1)]);
    let q = quota(
        &[("configmaps", "5"), ("count/deployments.apps", "5"), ("count/widgets.example.com", "1"), ("services", "2"), ("services.nodeports", "2")],
        &[],
    );
    let s = plan(&q, &Observed { services: &services, objects: &objects, ..Default::default() }, Timestamp::now()).unwrap();
    assert_eq!(
        used(&s),
        map(&[("configmaps", "2"), ("count/deployments.apps", "1"), ("services", "1"), ("services.nodeports", "1")]),
        "a resource the API does not serve counts nothing"
    );
}

#[test]
fn scoped_quotas_count_only_their_pods() {
    // Conformance "quota scope, BestEffort and NotBestEffort scope".
    let pods = vec![pod("be", "Running", None, None), pod("burst", "Running", Some("100m"), Some("64Mi"))];
    let ns = Observed { pods: &pods, ..Default::default() };
    let best = plan(&quota(&[("pods", "5")], &["BestEffort"]), &ns, Timestamp::now()).unwrap();
    assert_eq!(used(&best), map(&[("pods", "1")]));
    let not_best = plan(&quota(&[("pods", "5"), ("requests.memory", "1Gi"), ("configmaps", "3")], &["NotBestEffort"]), &ns, Timestamp::now()).unwrap();
    assert_eq!(used(&not_best), map(&[("pods", "1"), ("requests.memory", "64Mi")]), "configmaps untracked here: no objects map entry");
    let objects = BTreeMap::from([("configmaps".to_string(), 2)]);
    let scoped = plan(&quota(&[("configmaps", "3")], &["NotBestEffort"]), &Observed { objects: &objects, ..Default::default() }, Timestamp::now()).unwrap();
    assert_eq!(used(&scoped), map(&[("configmaps", "0")]), "a scope selects no ConfigMap");
}
