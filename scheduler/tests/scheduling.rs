//! The scheduler against a real apiserver and etcd, with Node objects and
//! no kubelets.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Affinity, PodAffinityTerm, PodAntiAffinity, Toleration, TopologySpreadConstraint};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, PostParams};
use support::*;

fn app_selector(app: &str) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_labels: Some([("app".to_string(), app.to_string())].into()),
        ..Default::default()
    })
}

/// The walking skeleton and the no-overcommit guarantee: 100 pods created
/// at once on 3 nodes of 1 cpu; exactly 10 fit per node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_resource_limits_100_pods_on_3_small_nodes_never_overcommit() {
    let mut env = Env::start().await;
    for n in ["n1", "n2", "n3"] {
        env.create_node(node(n, "1", "2Gi")).await;
    }
    env.start_scheduler(&[]);
    let creates = (0..100).map(|i| {
        let env = &env;
        async move { env.create_pod(&pod(&format!("p{i}"), "100m", "10Mi")).await }
    });
    futures::future::join_all(creates).await;

    testkit::wait_for_or(WAIT, "30 pods bound", || async {
        (env.placement().await.values().map(|v| v.len()).sum::<usize>() == 30).then_some(())
    })
    .await
    .unwrap_or_else(|e| {
        env.print_logs();
        panic!("{e}")
    });
    for (node, pods) in env.placement().await {
        let used: i64 = pods.iter().map(cpu_millis).sum();
        assert!(used <= 1000, "{node} overcommitted: {used}m");
        assert_eq!(pods.len(), 10, "{node}");
    }
    let bound: Vec<String> = env
        .placement()
        .await
        .values()
        .flatten()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let unbound = (0..100).map(|i| format!("p{i}")).find(|n| !bound.contains(n)).unwrap();
    let msg = env.wait_unschedulable(&unbound, "0/3").await;
    assert_eq!(msg, "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.");
    let failed = env.events_for(&unbound, "FailedScheduling").await;
    assert!(!failed.is_empty());
    assert_eq!(failed[0].type_.as_deref(), Some("Warning"));
    let scheduled = env.events_for(&bound[0], "Scheduled").await;
    assert_eq!(scheduled.len(), 1);
    let node_of = env
        .pods()
        .get(&bound[0])
        .await
        .unwrap()
        .spec
        .unwrap()
        .node_name
        .unwrap();
    assert_eq!(
        scheduled[0].message.as_deref(),
        Some(format!("Successfully assigned default/{} to {node_of}", bound[0]).as_str())
    );
    assert_eq!(
        scheduled[0].source.as_ref().and_then(|s| s.component.as_deref()),
        Some("default-scheduler")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taints_and_tolerations() {
    let mut env = Env::start().await;
    env.create_node(tainted(node("gpu", "4", "4Gi"), "dedicated", "NoSchedule"))
        .await;
    env.create_node(tainted(
        node("sick", "4", "4Gi"),
        "node.kubernetes.io/not-ready",
        "NoSchedule",
    ))
    .await;
    env.start_scheduler(&[]);

    env.create_pod(&pod("plain", "100m", "10Mi")).await;
    let msg = env.wait_unschedulable("plain", "0/2").await;
    assert_eq!(
        msg,
        "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: }, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. \
         preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );

    let mut tolerant = pod("tolerant", "100m", "10Mi");
    tolerant.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
        key: Some("dedicated".into()),
        operator: Some("Exists".into()),
        effect: Some("NoSchedule".into()),
        ..Default::default()
    }]);
    env.create_pod(&tolerant).await;
    assert_eq!(env.wait_bound("tolerant").await, "gpu");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn affinity_and_anti_affinity() {
    let mut env = Env::start().await;
    for (n, zone) in [("a1", "za"), ("a2", "za"), ("b1", "zb")] {
        env.create_node(labeled(node(n, "4", "4Gi"), &[("topology.kubernetes.io/zone", zone)]))
            .await;
    }
    env.start_scheduler(&[]);

    // distinctInstance: one web pod per host.
    let anti = |name: &str| {
        let mut p = with_labels(pod(name, "100m", "10Mi"), &[("app", "web")]);
        p.spec.as_mut().unwrap().affinity = Some(Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    label_selector: app_selector("web"),
                    topology_key: "kubernetes.io/hostname".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        p
    };
    let mut hosts = Vec::new();
    for i in 0..3 {
        let name = format!("web{i}");
        env.create_pod(&anti(&name)).await;
        hosts.push(env.wait_bound(&name).await);
    }
    hosts.sort();
    assert_eq!(hosts, vec!["a1", "a2", "b1"]);
    env.create_pod(&anti("web3")).await;
    env.wait_unschedulable(
        "web3",
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.",
    )
    .await;

    // Affinity: a cache pod must share a zone with the db pod.
    env.create_pod(&with_labels(
        {
            let mut p = pod("db", "100m", "10Mi");
            p.spec.as_mut().unwrap().node_selector =
                Some([("kubernetes.io/hostname".to_string(), "b1".to_string())].into());
            p
        },
        &[("app", "db")],
    ))
    .await;
    assert_eq!(env.wait_bound("db").await, "b1");
    let mut cache = pod("cache", "100m", "10Mi");
    cache.spec.as_mut().unwrap().affinity = Some(Affinity {
        pod_affinity: Some(k8s_openapi::api::core::v1::PodAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                label_selector: app_selector("db"),
                topology_key: "topology.kubernetes.io/zone".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    });
    env.create_pod(&cache).await;
    assert_eq!(env.wait_bound("cache").await, "b1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_spread_do_not_schedule() {
    let mut env = Env::start().await;
    for (n, zone) in [("a1", "za"), ("a2", "za"), ("a3", "za"), ("b1", "zb")] {
        env.create_node(labeled(node(n, "4", "4Gi"), &[("zone", zone)])).await;
    }
    env.start_scheduler(&[]);
    for i in 0..6 {
        let mut p = with_labels(pod(&format!("s{i}"), "100m", "10Mi"), &[("app", "spread")]);
        p.spec.as_mut().unwrap().topology_spread_constraints = Some(vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "zone".into(),
            when_unsatisfiable: "DoNotSchedule".into(),
            label_selector: app_selector("spread"),
            ..Default::default()
        }]);
        env.create_pod(&p).await;
        env.wait_bound(&format!("s{i}")).await;
    }
    let placement = env.placement().await;
    let in_zone = |z: &str| {
        placement
            .iter()
            .filter(|(n, _)| n.starts_with(z))
            .map(|(_, v)| v.len())
            .sum::<usize>()
    };
    assert_eq!(
        (in_zone("a"), in_zone("b")),
        (3, 3),
        "{:?}",
        placement.keys().collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binpack_against_spread_profiles() {
    let mut env = Env::start().await;
    for n in ["n1", "n2", "n3"] {
        env.create_node(node(n, "4", "8Gi")).await;
    }
    env.start_scheduler(&[]);
    let mut packed = Vec::new();
    for i in 0..3 {
        let name = format!("pack{i}");
        env.create_pod(&with_scheduler(
            with_labels(pod(&name, "500m", "256Mi"), &[("app", "pack")]),
            "binpack",
        ))
        .await;
        packed.push(env.wait_bound(&name).await);
    }
    packed.dedup();
    assert_eq!(packed.len(), 1, "binpack puts every pod on one node: {packed:?}");

    let mut spread = Vec::new();
    for i in 0..3 {
        let name = format!("spread{i}");
        env.create_pod(&with_scheduler(
            with_labels(pod(&name, "500m", "256Mi"), &[("app", "spread")]),
            "spread",
        ))
        .await;
        spread.push(env.wait_bound(&name).await);
    }
    spread.sort();
    spread.dedup();
    assert_eq!(spread.len(), 3, "spread uses every node: {spread:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_basic_preemption_with_disruption_target_and_nominated_node() {
    let mut env = Env::start().await;
    env.create_node(node("n1", "1", "2Gi")).await;
    let classes: Api<PriorityClass> = Api::all(env.client.clone());
    classes
        .create(
            &PostParams::default(),
            &PriorityClass {
                metadata: ObjectMeta {
                    name: Some("high".into()),
                    ..Default::default()
                },
                value: 1000,
                ..Default::default()
            },
        )
        .await
        .expect("priority class");
    env.start_scheduler(&[]);
    env.create_pod(&pod("low", "800m", "10Mi")).await;
    assert_eq!(env.wait_bound("low").await, "n1");

    let mut high = pod("high", "800m", "10Mi");
    high.spec.as_mut().unwrap().priority_class_name = Some("high".into());
    env.create_pod(&high).await;
    assert_eq!(env.wait_bound("high").await, "n1");
    let pods = env.pods();
    testkit::wait_for_or(Duration::from_secs(30), "victim deleted", || {
        let pods = pods.clone();
        async move { pods.get_opt("low").await.ok().flatten().is_none().then_some(()) }
    })
    .await
    .unwrap();
    let high = env.pods().get("high").await.unwrap();
    assert_eq!(high.status.and_then(|s| s.nominated_node_name).as_deref(), Some("n1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_stays_pending_with_a_reason() {
    let mut env = Env::start().await;
    env.create_node(node("n1", "1", "2Gi")).await;
    env.start_scheduler(&[]);

    let mut gpu = pod("gpu", "100m", "10Mi");
    gpu.spec.as_mut().unwrap().containers[0]
        .resources
        .as_mut()
        .unwrap()
        .requests
        .as_mut()
        .unwrap()
        .insert(
            "example.com/gpu".into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("1".into()),
        );
    env.create_pod(&gpu).await;
    env.wait_unschedulable("gpu", "0/1 nodes are available: 1 Insufficient example.com/gpu.")
        .await;

    // A pod the scheduler can place afterwards: the queue did not stall.
    env.create_pod(&pod("fine", "100m", "10Mi")).await;
    assert_eq!(env.wait_bound("fine").await, "n1");
    let events = env.events_for("gpu", "FailedScheduling").await;
    assert!(events.iter().any(|e| e
        .message
        .as_deref()
        .is_some_and(|m| m.contains("Insufficient example.com/gpu"))));
}

/// Conformance: "Scheduler, node selector matching" and "... not matching".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_node_selector_matching_and_not_matching() {
    let mut env = Env::start().await;
    env.create_node(labeled(node("n1", "1", "2Gi"), &[("kubernetes.io/e2e-selector", "42")]))
        .await;
    env.create_node(node("n2", "1", "2Gi")).await;
    env.start_scheduler(&[]);
    let selecting = |name: &str, value: &str| {
        let mut p = pod(name, "10m", "10Mi");
        p.spec.as_mut().unwrap().node_selector =
            Some([("kubernetes.io/e2e-selector".to_string(), value.to_string())].into());
        p
    };
    env.create_pod(&selecting("match", "42")).await;
    assert_eq!(env.wait_bound("match").await, "n1");
    env.create_pod(&selecting("nomatch", "43")).await;
    env.wait_unschedulable(
        "nomatch",
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
    )
    .await;
}

/// Conformance: "Scheduling, HostPort and Protocol match, HostIPs different
/// but one is default HostIP (0.0.0.0)" and "HostPort matching and HostIP
/// and Protocol not-matching".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduling_hostport_conflicts_with_default_host_ip_but_not_other_protocols() {
    use k8s_openapi::api::core::v1::ContainerPort;
    let mut env = Env::start().await;
    env.create_node(node("n1", "4", "4Gi")).await;
    env.start_scheduler(&[]);
    let with_port = |name: &str, ip: &str, proto: &str| {
        let mut p = pod(name, "10m", "10Mi");
        p.spec.as_mut().unwrap().containers[0].ports = Some(vec![ContainerPort {
            container_port: 8080,
            host_port: Some(54321),
            host_ip: Some(ip.into()),
            protocol: Some(proto.into()),
            ..Default::default()
        }]);
        p
    };
    env.create_pod(&with_port("any-ip", "0.0.0.0", "TCP")).await;
    env.wait_bound("any-ip").await;
    env.create_pod(&with_port("udp", "127.0.0.1", "UDP")).await;
    env.wait_bound("udp").await;
    env.create_pod(&with_port("loopback-tcp", "127.0.0.1", "TCP")).await;
    env.wait_unschedulable(
        "loopback-tcp",
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.",
    )
    .await;
}
