//! Each evaluator against upstream's documented cases (pods_test.go,
//! services_test.go, persistent_volume_claims_test.go).

use super::*;
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PodSpec, PodStatus, ResourceRequirements,
    ServicePort, ServiceSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

fn list(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, ApiQuantity>> {
    Some(pairs.iter().map(|(k, v)| (k.to_string(), ApiQuantity(v.to_string()))).collect())
}

fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
    Container {
        name: "c".into(),
        resources: Some(ResourceRequirements {
            requests: list(requests),
            limits: list(limits),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod_of(containers: Vec<Container>, init: Vec<Container>) -> Pod {
    Pod {
        metadata: ObjectMeta { name: Some("p".into()), ..Default::default() },
        spec: Some(PodSpec {
            containers,
            init_containers: (!init.is_empty()).then_some(init),
            ..Default::default()
        }),
        status: None,
    }
}

fn shown(u: &Usage) -> BTreeMap<String, String> {
    u.iter().map(|(k, q)| (k.clone(), q.to_string())).collect()
}

fn get(u: &Usage, k: &str) -> String {
    u.get(k).map(|q| q.to_string()).unwrap_or_else(|| "<none>".into())
}

#[test]
fn a_pod_charges_its_requests_and_limits() {
    let p = pod_of(
        vec![
            container(&[("cpu", "100m"), ("memory", "64Mi")], &[("cpu", "1"), ("memory", "128Mi")]),
            container(&[("cpu", "400m"), ("memory", "64Mi")], &[]),
        ],
        vec![],
    );
    let u = pod_usage(&p, Timestamp::now());
    let want: BTreeMap<String, String> = [
        ("count/pods", "1"),
        ("pods", "1"),
        ("cpu", "500m"),
        ("requests.cpu", "500m"),
        ("limits.cpu", "1"),
        ("memory", "128Mi"),
        ("requests.memory", "128Mi"),
        ("limits.memory", "128Mi"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(shown(&u), want);
}

#[test]
fn the_largest_init_container_wins_when_bigger_than_the_sum() {
    // pods_test.go "init container CPU": max(sum of containers, largest init).
    let p = pod_of(vec![container(&[("cpu", "1m")], &[])], vec![container(&[("cpu", "2m")], &[])]);
    assert_eq!(get(&pod_usage(&p, Timestamp::now()), "requests.cpu"), "2m");
    let p = pod_of(vec![container(&[("cpu", "3m")], &[])], vec![container(&[("cpu", "2m")], &[])]);
    assert_eq!(get(&pod_usage(&p, Timestamp::now()), "requests.cpu"), "3m");
}

#[test]
fn sidecars_add_up_and_run_beside_later_init_containers() {
    let mut sidecar = container(&[("cpu", "200m")], &[]);
    sidecar.restart_policy = Some("Always".into());
    let p = pod_of(
        vec![container(&[("cpu", "100m")], &[])],
        vec![sidecar, container(&[("cpu", "500m")], &[])],
    );
    // max(100m + 200m, 200m + 500m)
    assert_eq!(get(&pod_usage(&p, Timestamp::now()), "requests.cpu"), "700m");
}

#[test]
fn overhead_adds_to_requests_and_to_set_limits_only() {
    let mut p = pod_of(vec![container(&[("cpu", "1")], &[("cpu", "2")])], vec![]);
    p.spec.as_mut().unwrap().overhead = list(&[("cpu", "250m"), ("memory", "10Mi")]);
    let u = pod_usage(&p, Timestamp::now());
    assert_eq!(get(&u, "requests.cpu"), "1250m");
    assert_eq!(get(&u, "limits.cpu"), "2250m");
    assert_eq!(get(&u, "requests.memory"), "10Mi");
    assert_eq!(get(&u, "limits.memory"), "<none>");
}

#[test]
fn hugepages_and_extended_resources_are_charged_as_requests() {
    let p = pod_of(vec![container(&[("hugepages-2Mi", "4Mi"), ("example.com/gpu", "2")], &[])], vec![]);
    let u = pod_usage(&p, Timestamp::now());
    assert_eq!(get(&u, "hugepages-2Mi"), "4Mi");
    assert_eq!(get(&u, "requests.hugepages-2Mi"), "4Mi");
    assert_eq!(get(&u, "requests.example.com/gpu"), "2");
    assert_eq!(get(&u, "example.com/gpu"), "<none>");
    assert!(pod_tracks("requests.example.com/gpu"));
    assert!(!pod_tracks("requests.kubernetes.io/thing"));
}

#[test]
fn terminal_and_long_deleted_pods_charge_only_their_count() {
    let now = Timestamp::now();
    let mut done = pod_of(vec![container(&[("cpu", "1")], &[])], vec![]);
    done.status = Some(PodStatus { phase: Some("Succeeded".into()), ..Default::default() });
    assert_eq!(shown(&pod_usage(&done, now)).keys().collect::<Vec<_>>(), vec!["count/pods"]);
    let mut deleting = pod_of(vec![container(&[("cpu", "1")], &[])], vec![]);
    deleting.metadata.deletion_timestamp = Some(Time(now - SignedDuration::from_secs(60)));
    deleting.metadata.deletion_grace_period_seconds = Some(30);
    assert_eq!(get(&pod_usage(&deleting, now), "pods"), "<none>", "past its grace period");
    deleting.metadata.deletion_grace_period_seconds = Some(120);
    assert_eq!(get(&pod_usage(&deleting, now), "pods"), "1", "still within its grace period");
}

fn scope(name: &str, op: &str, values: &[&str]) -> ScopedResourceSelectorRequirement {
    ScopedResourceSelectorRequirement {
        scope_name: name.into(),
        operator: op.into(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
    }
}

#[test]
fn scopes_pick_pods_as_upstream() {
    let best_effort = pod_of(vec![container(&[], &[])], vec![]);
    let burstable = pod_of(vec![container(&[("cpu", "1")], &[])], vec![]);
    assert!(pod_matches_scope(&best_effort, &scope("BestEffort", "Exists", &[])));
    assert!(!pod_matches_scope(&burstable, &scope("BestEffort", "Exists", &[])));
    assert!(pod_matches_scope(&burstable, &scope("NotBestEffort", "Exists", &[])));
    let mut terminating = burstable.clone();
    terminating.spec.as_mut().unwrap().active_deadline_seconds = Some(60);
    assert!(pod_matches_scope(&terminating, &scope("Terminating", "Exists", &[])));
    assert!(!pod_matches_scope(&burstable, &scope("Terminating", "Exists", &[])));
    assert!(pod_matches_scope(&burstable, &scope("NotTerminating", "Exists", &[])));
    let mut high = burstable.clone();
    high.spec.as_mut().unwrap().priority_class_name = Some("high".into());
    assert!(pod_matches_scope(&high, &scope("PriorityClass", "In", &["high", "mid"])));
    assert!(!pod_matches_scope(&high, &scope("PriorityClass", "NotIn", &["high"])));
    assert!(pod_matches_scope(&burstable, &scope("PriorityClass", "NotIn", &["high"])));
    assert!(pod_matches_scope(&high, &scope("PriorityClass", "Exists", &[])));
    assert!(pod_matches_scope(&burstable, &scope("PriorityClass", "DoesNotExist", &[])));
    assert!(!pod_matches_scope(&burstable, &scope("CrossNamespacePodAffinity", "Exists", &[])));
}

fn service(type_: &str, ports: usize, allocate: Option<bool>, node_ports: &[i32]) -> Service {
    Service {
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            allocate_load_balancer_node_ports: allocate,
            ports: Some(
                (0..ports)
                    .map(|i| ServicePort {
                        port: 80 + i as i32,
                        node_port: node_ports.get(i).copied(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn services_charge_node_ports_and_load_balancers() {
    let u = service_usage(&service("ClusterIP", 2, None, &[]));
    assert_eq!((get(&u, "services"), get(&u, "services.nodeports")), ("1".into(), "<none>".into()));
    assert_eq!(get(&service_usage(&service("NodePort", 2, None, &[])), "services.nodeports"), "2");
    let lb = service_usage(&service("LoadBalancer", 2, None, &[]));
    assert_eq!((get(&lb, "services.nodeports"), get(&lb, "services.loadbalancers")), ("2".into(), "1".into()));
    let no_alloc = service_usage(&service("LoadBalancer", 2, Some(false), &[30001]));
    assert_eq!(get(&no_alloc, "services.nodeports"), "1");
}

#[test]
fn claims_charge_storage_also_under_their_class() {
    let mut pvc = PersistentVolumeClaim {
        spec: Some(PersistentVolumeClaimSpec {
            storage_class_name: Some("gold".into()),
            resources: Some(VolumeResourceRequirements {
                requests: list(&[("storage", "10Gi")]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let u = pvc_usage(&pvc);
    assert_eq!(get(&u, "requests.storage"), "10Gi");
    assert_eq!(get(&u, "gold.storageclass.storage.k8s.io/requests.storage"), "10Gi");
    assert_eq!(get(&u, "gold.storageclass.storage.k8s.io/persistentvolumeclaims"), "1");
    assert!(pvc_tracks("gold.storageclass.storage.k8s.io/requests.storage"));
    // An expansion that allocated more charges the allocation.
    pvc.status = Some(PersistentVolumeClaimStatus {
        allocated_resources: list(&[("storage", "20Gi")]),
        ..Default::default()
    });
    assert_eq!(get(&pvc_usage(&pvc), "requests.storage"), "20Gi");
}

#[test]
fn plain_counts_name_their_resource() {
    assert_eq!(object_count_resource("count/deployments.apps"), Some("deployments.apps"));
    assert_eq!(object_count_resource("configmaps"), Some("configmaps"));
    assert_eq!(object_count_resource("count/configmaps"), Some("configmaps"));
    assert_eq!(object_count_resource("count/pods"), None, "the pod evaluator's");
    assert_eq!(object_count_resource("services"), None);
    assert_eq!(object_count_resource("requests.cpu"), None);
    assert_eq!(object_count_resource("count/"), None);
}
