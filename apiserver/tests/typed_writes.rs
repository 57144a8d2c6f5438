//! Every write is checked against its type before it is stored, against a real etcd: the
//! wrong-type cases that once broke every typed client, each as its own regression, then a
//! property test that mutates valid objects of every served kind and asserts that nothing the
//! server accepted fails to decode as its k8s-openapi type.

mod support;

use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, coordination::v1 as coordination, core::v1 as core};
use k8s_openapi::api::{discovery::v1 as discovery, events::v1 as events, policy::v1 as policy, scheduling::v1 as scheduling};
use k8s_openapi::api::{autoscaling::v2 as autoscaling, networking::v1 as networking, node::v1 as node, storage::v1 as storage};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use support::{pod, Harness, Reply};

const PODS: &str = "/api/v1/namespaces/default/pods";
const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

#[tokio::test]
async fn typed_writes() {
    let h = Harness::start().await;
    a_number_in_a_pod_node_selector_is_refused_and_nothing_is_stored(&h).await;
    a_number_in_config_map_data_is_refused(&h).await;
    a_number_in_an_annotation_is_refused(&h).await;
    a_number_as_an_env_value_is_refused(&h).await;
    deployment_replicas_beyond_int32_are_refused(&h).await;
    patches_whose_result_has_the_wrong_type_are_refused(&h).await;
    yaml_bodies_are_decoded_and_checked(&h).await;
    unknown_fields_are_dropped_and_strict_applies_to_patches(&h).await;
    responses_carry_required_zero_values_and_upstream_defaults(&h).await;
    deletes_answer_as_upstream(&h).await;
    scale_with_a_string_is_refused(&h).await;
    typed_clients_read_every_list(&h).await;
    every_accepted_mutation_decodes_as_its_type(&h).await;
}

fn assert_bad_request(r: &Reply, contains: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let st = r.json();
    assert_eq!(st["kind"], "Status", "{st}");
    assert_eq!(st["reason"], "BadRequest", "{st}");
    let msg = st["message"].as_str().unwrap_or("");
    assert!(msg.contains(contains), "{msg:?} should contain {contains:?}");
}

async fn post_raw(h: &Harness, path: &str, ct: &str, body: &str) -> Reply {
    h.request(Method::POST, path, Some(ct), None, Some(body.as_bytes().to_vec())).await
}

async fn a_number_in_a_pod_node_selector_is_refused_and_nothing_is_stored(h: &Harness) {
    let mut p = pod("numeric-selector");
    p["spec"]["nodeSelector"] = json!({"x": 12345});
    for path in [format!("{PODS}?dryRun=All"), PODS.to_string()] {
        let r = h.post(&path, &p).await;
        assert_bad_request(
            &r,
            "Pod in version \"v1\" cannot be handled as a Pod: json: cannot unmarshal number into Go struct field PodSpec.spec.nodeSelector of type string",
        );
    }
    assert_eq!(h.get(&format!("{PODS}/numeric-selector")).await.status, StatusCode::NOT_FOUND);
}

async fn a_number_in_config_map_data_is_refused(h: &Harness) {
    let r = post_raw(h, CMS, "application/json", r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"n"},"data":{"a":12345}}"#).await;
    assert_bad_request(&r, "cannot unmarshal number into Go struct field ConfigMap.data of type string");
}

async fn a_number_in_an_annotation_is_refused(h: &Harness) {
    let r = post_raw(h, CMS, "application/json", r#"{"metadata":{"name":"ann","annotations":{"a":1}}}"#).await;
    assert_bad_request(&r, "Go struct field ObjectMeta.metadata.annotations of type string");
}

async fn a_number_as_an_env_value_is_refused(h: &Harness) {
    let mut p = pod("numeric-env");
    p["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": 1}]);
    assert_bad_request(&h.post(PODS, &p).await, "Go struct field EnvVar.spec.containers.env.value of type string");
}

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
}

async fn deployment_replicas_beyond_int32_are_refused(h: &Harness) {
    let mut d = deployment("huge");
    d["spec"]["replicas"] = json!(2147483648i64);
    for path in [format!("{DEPLOYS}?dryRun=All"), DEPLOYS.to_string()] {
        assert_bad_request(
            &h.post(&path, &d).await,
            "cannot unmarshal number 2147483648 into Go struct field DeploymentSpec.spec.replicas of type int32",
        );
    }
    assert_eq!(h.get(&format!("{DEPLOYS}/huge")).await.status, StatusCode::NOT_FOUND);
}

async fn patches_whose_result_has_the_wrong_type_are_refused(h: &Harness) {
    assert_eq!(h.post(DEPLOYS, &deployment("patched")).await.status, StatusCode::CREATED);
    let path = format!("{DEPLOYS}/patched");
    for (ct, body) in [
        ("application/merge-patch+json", json!({"spec": {"replicas": "x"}})),
        ("application/strategic-merge-patch+json", json!({"spec": {"replicas": "x"}})),
        ("application/json-patch+json", json!([{"op": "replace", "path": "/spec/replicas", "value": "x"}])),
    ] {
        let r = h.patch(&path, ct, &body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{ct}: {}", r.text());
        let st = r.json();
        assert_eq!(st["reason"], "Invalid");
        assert_eq!(st["details"]["causes"][0]["field"], "patch", "{st}");
        assert!(st["message"].as_str().unwrap().contains("cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"), "{st}");
    }
    let apply = h.patch(&format!("{path}?fieldManager=t"), "application/apply-patch+yaml", &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "patched"}, "spec": {"replicas": "x"}})).await;
    assert_bad_request(&apply, "of type int32");
    let put = {
        let mut d = h.get(&path).await.json();
        d["spec"]["replicas"] = json!(true);
        h.put(&path, &d).await
    };
    assert_bad_request(&put, "cannot unmarshal bool into Go struct field DeploymentSpec.spec.replicas of type int32");
    assert_eq!(h.get(&path).await.json()["spec"]["replicas"], 1, "nothing was stored");
}

async fn yaml_bodies_are_decoded_and_checked(h: &Harness) {
    let good = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: from-yaml\nspec:\n  containers:\n  - name: c\n    image: busybox\n";
    let r = post_raw(h, PODS, "application/yaml", good).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yaml-bad\ndata:\n  a: 1\n";
    assert_bad_request(&post_raw(h, CMS, "application/yaml", bad).await, "ConfigMap.data of type string");
}

async fn unknown_fields_are_dropped_and_strict_applies_to_patches(h: &Harness) {
    let mut p = pod("unknown-fields");
    p["spec"]["bogus"] = json!(1);
    let r = h.post(PODS, &p).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.headers.get("warning").and_then(|w| w.to_str().ok()).is_some_and(|w| w.contains("unknown field") && w.contains("spec.bogus")), "{:?}", r.headers);
    assert!(r.json()["spec"].get("bogus").is_none(), "unknown fields are not stored");
    let path = format!("{PODS}/unknown-fields");
    assert!(h.get(&path).await.json()["spec"].get("bogus").is_none());
    let r = h.patch(&format!("{path}?fieldValidation=Strict"), "application/merge-patch+json", &json!({"metadata": {"labels": {"a": "b"}}, "spec": {"nope": 1}})).await;
    assert_bad_request(&r, "strict decoding error: unknown field \"spec.nope\"");
    let r = h.request(Method::POST, &format!("{CMS}?fieldValidation=Strict"), Some("application/json"), None, Some(br#"{"metadata":{"name":"dup"},"data":{"a":"1"},"data":{"b":"2"}}"#.to_vec())).await;
    assert_bad_request(&r, "duplicate field \"data\"");
}

async fn responses_carry_required_zero_values_and_upstream_defaults(h: &Harness) {
    let mut rs = deployment("zeroes");
    rs["kind"] = json!("ReplicaSet");
    let r = h.post("/apis/apps/v1/namespaces/default/replicasets", &rs).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["status"], json!({"replicas": 0}));
    let mut ds = deployment("zeroes");
    ds["kind"] = json!("DaemonSet");
    ds["spec"].as_object_mut().unwrap().remove("replicas");
    let r = h.post("/apis/apps/v1/namespaces/default/daemonsets", &ds).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        r.json()["status"],
        json!({"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0})
    );
    let mut p = pod("scratch-volume");
    p["spec"]["volumes"] = json!([{"name": "scratch"}]);
    let r = h.post(PODS, &p).await;
    assert_eq!(r.json()["spec"]["volumes"][0], json!({"name": "scratch", "emptyDir": {}}));
}

async fn deletes_answer_as_upstream(h: &Harness) {
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gone"}, "spec": {"ports": [{"port": 80}]}});
    assert_eq!(h.post("/api/v1/namespaces/default/services", &svc).await.status, StatusCode::CREATED);
    let r = h.delete("/api/v1/namespaces/default/services/gone", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["kind"], "Service", "a Service delete returns the Service (ReturnDeletedObject)");
    serde_json::from_value::<core::Service>(r.json()).expect("a typed client reads it");
    let cm = json!({"metadata": {"name": "gone"}, "data": {"a": "b"}});
    assert_eq!(h.post(CMS, &cm).await.status, StatusCode::CREATED);
    let r = h.delete(&format!("{CMS}/gone"), None).await;
    assert_eq!(r.json()["kind"], "Status", "a ConfigMap delete returns a Status");
}

async fn scale_with_a_string_is_refused(h: &Harness) {
    let path = format!("{DEPLOYS}/patched/scale");
    let mut scale = h.get(&path).await.json();
    scale["spec"]["replicas"] = json!("x");
    assert_bad_request(&h.put(&path, &scale).await, "cannot unmarshal string into Go struct field ScaleSpec.spec.replicas of type int32");
    let r = h.patch(&path, "application/merge-patch+json", &json!({"spec": {"replicas": "x"}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
}

/// One list of every served kind, in the typed form a client-go or kube-rs informer reads.
async fn typed_clients_read_every_list(h: &Harness) {
    for (path, decode) in served() {
        let r = h.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        for item in r.json()["items"].as_array().cloned().unwrap_or_default() {
            if let Err(e) = decode(item.clone()) {
                panic!("{path}: a stored object does not decode: {e}\n{item}");
            }
        }
    }
}

type Decode = fn(Value) -> Result<(), String>;

fn typed<T: DeserializeOwned>(v: Value) -> Result<(), String> {
    serde_json::from_value::<T>(v).map(|_| ()).map_err(|e| e.to_string())
}

/// Every served kind: its collection, its typed decoder, and a valid object to start from.
fn served() -> Vec<(&'static str, Decode)> {
    kinds().into_iter().map(|(p, d, _)| (p, d)).collect()
}

fn kinds() -> Vec<(&'static str, Decode, Value)> {
    let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "busybox", "env": [{"name": "A", "value": "1"}], "resources": {"limits": {"cpu": "1"}}}]}});
    let selector = json!({"matchLabels": {"app": "x"}});
    vec![
        ("/api/v1/namespaces", typed::<core::Namespace> as Decode, json!({"metadata": {"name": "n", "labels": {"a": "b"}}})),
        ("/api/v1/namespaces/default/pods", typed::<core::Pod>, json!({"metadata": {"name": "n"}, "spec": template["spec"].clone()})),
        ("/api/v1/nodes", typed::<core::Node>, json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}, "status": {"capacity": {"cpu": "2"}}})),
        ("/api/v1/namespaces/default/events", typed::<core::Event>, json!({"metadata": {"name": "n"}, "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "R", "message": "m", "count": 1, "type": "Normal"})),
        ("/api/v1/namespaces/default/configmaps", typed::<core::ConfigMap>, json!({"metadata": {"name": "n"}, "data": {"a": "b"}})),
        ("/api/v1/namespaces/default/secrets", typed::<core::Secret>, json!({"metadata": {"name": "n"}, "data": {"a": "Yg=="}, "stringData": {"b": "c"}})),
        ("/api/v1/namespaces/default/services", typed::<core::Service>, json!({"metadata": {"name": "n"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80, "targetPort": "http"}]}})),
        ("/api/v1/namespaces/default/endpoints", typed::<core::Endpoints>, json!({"metadata": {"name": "n"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]})),
        ("/api/v1/namespaces/default/serviceaccounts", typed::<core::ServiceAccount>, json!({"metadata": {"name": "n"}, "automountServiceAccountToken": false})),
        ("/apis/apps/v1/namespaces/default/deployments", typed::<apps::Deployment>, json!({"metadata": {"name": "n"}, "spec": {"replicas": 2, "selector": selector, "template": template}})),
        ("/apis/apps/v1/namespaces/default/replicasets", typed::<apps::ReplicaSet>, json!({"metadata": {"name": "n"}, "spec": {"replicas": 2, "selector": selector, "template": template}})),
        ("/apis/apps/v1/namespaces/default/daemonsets", typed::<apps::DaemonSet>, json!({"metadata": {"name": "n"}, "spec": {"selector": selector, "template": template}})),
        ("/apis/apps/v1/namespaces/default/statefulsets", typed::<apps::StatefulSet>, json!({"metadata": {"name": "n"}, "spec": {"serviceName": "s", "selector": selector, "template": template}})),
        ("/apis/apps/v1/namespaces/default/controllerrevisions", typed::<apps::ControllerRevision>, json!({"metadata": {"name": "n"}, "revision": 1, "data": {"x": 1}})),
        ("/apis/batch/v1/namespaces/default/jobs", typed::<batch::Job>, json!({"metadata": {"name": "n"}, "spec": {"backoffLimit": 1, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}})),
        ("/apis/coordination.k8s.io/v1/namespaces/default/leases", typed::<coordination::Lease>, json!({"metadata": {"name": "n"}, "spec": {"holderIdentity": "h", "leaseDurationSeconds": 40, "renewTime": "2026-01-01T00:00:00.000000Z"}})),
        ("/apis/events.k8s.io/v1/namespaces/default/events", typed::<events::Event>, json!({"metadata": {"name": "n"}, "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "c", "reportingInstance": "i", "action": "A", "reason": "R", "type": "Normal", "regarding": {"kind": "Pod", "name": "p"}})),
        ("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", typed::<discovery::EndpointSlice>, json!({"metadata": {"name": "n"}, "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]})),
        ("/apis/policy/v1/namespaces/default/poddisruptionbudgets", typed::<policy::PodDisruptionBudget>, json!({"metadata": {"name": "n"}, "spec": {"minAvailable": 1, "selector": selector}})),
        ("/apis/scheduling.k8s.io/v1/priorityclasses", typed::<scheduling::PriorityClass>, json!({"metadata": {"name": "n"}, "value": 10, "description": "d"})),
        ("/api/v1/namespaces/default/replicationcontrollers", typed::<core::ReplicationController>, json!({"metadata": {"name": "n"}, "spec": {"replicas": 1, "selector": {"app": "x"}, "template": template}})),
        ("/apis/batch/v1/namespaces/default/cronjobs", typed::<batch::CronJob>, json!({"metadata": {"name": "n"}, "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}})),
        ("/api/v1/persistentvolumes", typed::<core::PersistentVolume>, json!({"metadata": {"name": "n"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/x"}}})),
        ("/api/v1/namespaces/default/persistentvolumeclaims", typed::<core::PersistentVolumeClaim>, json!({"metadata": {"name": "n"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})),
        ("/api/v1/namespaces/default/resourcequotas", typed::<core::ResourceQuota>, json!({"metadata": {"name": "n"}, "spec": {"hard": {"pods": "100", "requests.cpu": "100"}}})),
        ("/api/v1/namespaces/default/limitranges", typed::<core::LimitRange>, json!({"metadata": {"name": "n"}, "spec": {"limits": [{"type": "Container", "max": {"cpu": "100"}}]}})),
        ("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers", typed::<autoscaling::HorizontalPodAutoscaler>, json!({"metadata": {"name": "n"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}, "maxReplicas": 3}})),
        ("/api/v1/namespaces/default/podtemplates", typed::<core::PodTemplate>, json!({"metadata": {"name": "n"}, "template": template})),
        ("/apis/networking.k8s.io/v1/namespaces/default/ingresses", typed::<networking::Ingress>, json!({"metadata": {"name": "n"}, "spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}}})),
        ("/apis/networking.k8s.io/v1/ingressclasses", typed::<networking::IngressClass>, json!({"metadata": {"name": "n"}, "spec": {"controller": "example.com/c"}})),
        ("/apis/networking.k8s.io/v1/namespaces/default/networkpolicies", typed::<networking::NetworkPolicy>, json!({"metadata": {"name": "n"}, "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}})),
        ("/apis/node.k8s.io/v1/runtimeclasses", typed::<node::RuntimeClass>, json!({"metadata": {"name": "n"}, "handler": "runc"})),
        ("/apis/storage.k8s.io/v1/storageclasses", typed::<storage::StorageClass>, json!({"metadata": {"name": "n"}, "provisioner": "p"})),
        ("/apis/storage.k8s.io/v1/csidrivers", typed::<storage::CSIDriver>, json!({"metadata": {"name": "n"}, "spec": {}})),
        ("/apis/storage.k8s.io/v1/csinodes", typed::<storage::CSINode>, json!({"metadata": {"name": "n"}, "spec": {"drivers": [{"name": "d", "nodeID": "n"}]}})),
    ]
}

/// A small deterministic generator: the failing seed is in the test's output.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What replaces a value: wrong types, numbers at and past the edges, nulls, unicode, depth.
fn hostile(rng: &mut Rng) -> Value {
    let mut nested = json!("leaf");
    for _ in 0..80 {
        nested = json!({"a": [nested]});
    }
    let options = [
        json!(12345), json!(2147483648i64), json!(-1), json!(1.5), json!(1e300), json!(u64::MAX), json!(i64::MIN),
        json!("string"), json!("ünïcødé ✓ 𝔘 \u{200b}"), json!(""), json!("1e3"), json!("2026-13-45T99:99:99Z"),
        json!(true), Value::Null, json!([]), json!([null, 1, "x"]), json!({}), json!({"k": 1}), nested,
        json!("x".repeat(5000)),
    ];
    options[rng.below(options.len())].clone()
}

/// Replaces one randomly chosen node of `v` (or adds an unknown field) with a hostile value.
fn mutate(v: &mut Value, rng: &mut Rng, depth: usize) {
    let stop = depth > 0 && rng.below(3) == 0;
    match v {
        Value::Object(m) if !m.is_empty() && !stop => {
            if rng.below(8) == 0 {
                m.insert(format!("unknown{}", rng.below(100)), hostile(rng));
                return;
            }
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = &keys[rng.below(keys.len())];
            mutate(m.get_mut(k).expect("key exists"), rng, depth + 1);
        }
        Value::Array(a) if !a.is_empty() && !stop => {
            let i = rng.below(a.len());
            mutate(&mut a[i], rng, depth + 1);
        }
        _ => *v = hostile(rng),
    }
}

async fn every_accepted_mutation_decodes_as_its_type(h: &Harness) {
    const PER_KIND: usize = 40;
    let mut rng = Rng(0x5eed_f00d_cafe_babe);
    let (mut accepted, mut refused) = (0, 0);
    for (path, decode, seed) in kinds() {
        for i in 0..PER_KIND {
            let mut obj = seed.clone();
            obj["metadata"]["name"] = json!(format!("m{i}"));
            let before = rng.0;
            mutate(&mut obj, &mut rng, 0);
            let r = h.post(path, &obj).await;
            assert!(r.status.as_u16() < 500, "seed {before:#x}: {path} answered {} to {obj}: {}", r.status, r.text());
            if r.status == StatusCode::CREATED {
                accepted += 1;
                if let Err(e) = decode(r.json()) {
                    panic!("seed {before:#x}: {path} accepted what a typed client cannot read ({e}): {}", r.text());
                }
            } else {
                refused += 1;
                assert_eq!(r.json()["kind"], "Status", "{path}: {}", r.text());
            }
        }
    }
    eprintln!("mutations: {accepted} accepted, {refused} refused, over {} kinds", kinds().len());
    assert!(accepted > 0 && refused > 0, "the mutations should both pass and fail");
    typed_clients_read_every_list(h).await;
    // And the server still works (in a namespace of its own: the mutated quotas and limit
    // ranges of `default` may rightly refuse a plain pod).
    assert_eq!(h.post("/api/v1/namespaces", &json!({"metadata": {"name": "after"}})).await.status, StatusCode::CREATED);
    let r = h.post("/api/v1/namespaces/after/pods", &pod("after-the-storm")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}
