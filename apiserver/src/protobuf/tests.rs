//! The converter checked against k8s-pb's own prost encoding, plus a fuzz test.

use super::*;
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown as PbUnknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message as _;
use serde_json::json;
use std::collections::BTreeMap;

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = PbUnknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = MAGIC.to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

/// What `kubectl create deployment web --image=nginx` sends: gogo writes every non-pointer
/// field, so empty strings, zero ints and empty structs are on the wire.
fn kubectl_deployment() -> apps::Deployment {
    let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
    apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            name: s("web"),
            namespace: s(""),
            generate_name: s(""),
            labels: labels.clone(),
            creation_timestamp: Some(meta::Time {
                seconds: Some(0),
                nanos: Some(0),
            }),
            generation: Some(0),
            ..Default::default()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(1),
            selector: Some(meta::LabelSelector {
                match_labels: labels.clone(),
                match_expressions: vec![meta::LabelSelectorRequirement {
                    key: s("tier"),
                    operator: s("NotIn"),
                    values: vec!["db".into()],
                }],
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels,
                    creation_timestamp: Some(meta::Time::default()),
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    containers: vec![core::Container {
                        name: s("nginx"),
                        image: s("nginx"),
                        resources: Some(core::ResourceRequirements::default()),
                        termination_message_path: s(""),
                        env: vec![core::EnvVar {
                            name: s("EMPTY"),
                            value: s(""),
                            value_from: None,
                        }],
                        tty: Some(false),
                        ..Default::default()
                    }],
                    restart_policy: s(""),
                    host_network: Some(false),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s(""),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_surge: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: s("25%"),
                    }),
                    max_unavailable: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(1),
                        str_val: s(""),
                    }),
                }),
            }),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus::default()),
    }
}

#[test]
fn decodes_kubectl_create_deployment_like_upstream_json() {
    let body = envelope(
        "apps/v1",
        "Deployment",
        kubectl_deployment().encode_to_vec(),
    );
    let got = decode(&body).unwrap();
    let want = json!({
        "kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "nginx", "image": "nginx", "env": [{"name": "EMPTY"}], "resources": {}}]}},
            "strategy": {"rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}}
        },
        "status": {}
    });
    assert_eq!(got, want);
    // The JSON is a valid k8s-openapi Deployment.
    let typed: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(got).unwrap();
    assert_eq!(typed.spec.unwrap().replicas, Some(1));
}

#[test]
fn encoding_is_read_back_by_k8s_pb() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                     "creationTimestamp": "2024-05-01T10:20:30Z", "labels": {"app": "web"},
                     "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1",
                                        "fieldsV1": {"f:spec": {}}}]},
        "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                 "resources": {"limits": {"cpu": "500m"}},
                                 "readinessProbe": {"httpGet": {"port": "http", "path": "/"}, "periodSeconds": 10}}],
                 "volumes": [{"name": "cfg", "configMap": {"name": "settings", "defaultMode": 420}}]},
        "status": {"phase": "Running", "podIP": "10.88.0.5", "podIPs": [{"ip": "10.88.0.5"}]}
    });
    let bytes = encode(&pod).unwrap();
    assert_eq!(&bytes[..4], MAGIC);
    let unknown = PbUnknown::decode(&bytes[4..]).unwrap();
    assert_eq!(
        unknown.type_meta.as_ref().unwrap().kind.as_deref(),
        Some("Pod")
    );
    let typed = core::Pod::decode(unknown.raw.as_deref().unwrap()).unwrap();
    let meta = typed.metadata.as_ref().unwrap();
    assert_eq!(meta.name.as_deref(), Some("web"));
    assert_eq!(
        meta.creation_timestamp.as_ref().unwrap().seconds,
        Some(1714558830)
    );
    let spec = typed.spec.as_ref().unwrap();
    let c = &spec.containers[0];
    assert_eq!(c.ports[0].container_port, Some(80));
    assert_eq!(
        c.resources.as_ref().unwrap().limits["cpu"]
            .string
            .as_deref(),
        Some("500m")
    );
    let probe_port = c
        .readiness_probe
        .as_ref()
        .unwrap()
        .handler
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap()
        .port
        .as_ref()
        .unwrap();
    assert_eq!(probe_port.str_val.as_deref(), Some("http"));
    let volume = &spec.volumes[0];
    let cm = volume
        .volume_source
        .as_ref()
        .unwrap()
        .config_map
        .as_ref()
        .unwrap();
    assert_eq!(
        cm.local_object_reference.as_ref().unwrap().name.as_deref(),
        Some("settings")
    );
    assert_eq!(
        typed.status.as_ref().unwrap().pod_ip.as_deref(),
        Some("10.88.0.5")
    );
    // And back to the same JSON.
    assert_eq!(decode(&bytes).unwrap(), pod);
}

#[test]
fn round_trips_the_kinds_kubectl_creates() {
    let objects = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v", "empty": ""}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"pw": "aGVsbG8="}, "type": "Opaque"}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
               "spec": {"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}], "selector": {"app": "web"}, "type": "ClusterIP"}}),
        json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}}),
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "n1"},
               "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": "2024-05-01T10:20:30.123456Z"}}),
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
               "spec": {"backoffLimit": 6, "template": {"spec": {"containers": [{"name": "pi", "image": "busybox"}], "restartPolicy": "Never"}}}}),
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"}, "spec": {"replicas": 0}, "status": {"replicas": 3, "selector": "app=web"}}),
        json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "message": "nope", "reason": "NotFound", "details": {"name": "x", "kind": "pods"}, "code": 404}),
        json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "propagationPolicy": "Background"}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"}, "spec": {"replicas": 2, "serviceName": "db"}}),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"}, "spec": {"updateStrategy": {"type": "RollingUpdate"}}}),
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Started", "count": 1}),
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "5"}, "items": [{"metadata": {"name": "a"}}]}),
    ];
    for obj in objects {
        let bytes = encode(&obj).unwrap_or_else(|e| panic!("{obj}: {e}"));
        assert_eq!(decode(&bytes).unwrap(), obj);
    }
}

#[test]
fn bad_envelopes_are_errors() {
    assert!(matches!(decode(b"{}"), Err(ProtobufError::Malformed(_))));
    assert!(matches!(decode(b"k8s\0"), Err(ProtobufError::Malformed(_))));
    let body = envelope("example.com/v1", "Widget", vec![]);
    assert!(matches!(
        decode(&body),
        Err(ProtobufError::UnsupportedKind(_))
    ));
    let mut truncated = envelope("v1", "Pod", core::Pod::default().encode_to_vec());
    truncated.push(0x0a);
    assert!(matches!(
        decode(&truncated),
        Err(ProtobufError::Malformed(_))
    ));
    assert!(matches!(
        encode(&json!({"kind": "Nope", "apiVersion": "v1"})),
        Err(ProtobufError::UnsupportedKind(_))
    ));
    assert!(matches!(
        encode(&json!({"kind": "Pod", "apiVersion": "v1", "spec": 3})),
        Err(ProtobufError::Malformed(_))
    ));
}

/// xorshift: deterministic and dependency-free randomness for the fuzz loop.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn thousands_of_malformed_bodies_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let valid = envelope(
        "apps/v1",
        "Deployment",
        kubectl_deployment().encode_to_vec(),
    );
    for i in 0..20_000 {
        let body: Vec<u8> = match i % 4 {
            0 => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
            1 => {
                let mut b = MAGIC.to_vec();
                b.extend((0..rng.below(128)).map(|_| rng.next() as u8));
                b
            }
            2 => valid[..rng.below(valid.len())].to_vec(),
            _ => {
                let mut b = valid.clone();
                for _ in 0..1 + rng.below(4) {
                    let at = 4 + rng.below(b.len() - 4);
                    b[at] = rng.next() as u8;
                }
                b
            }
        };
        match decode(&body) {
            Ok(v) => assert!(v.is_object()),
            Err(ProtobufError::Malformed(_)) | Err(ProtobufError::UnsupportedKind(_)) => {}
        }
        if i % 4 == 0 && !body.starts_with(MAGIC) {
            assert!(matches!(decode(&body), Err(ProtobufError::Malformed(_))));
        }
    }
}
