//! Upstream's defaulting (`SetDefaults_*` in k8s.io/kubernetes pkg/apis/*/v1 plus the admission
//! plugins that every cluster runs, such as DefaultTolerationSeconds and Priority).

use serde_json::{json, Map, Value};

type Obj = Map<String, Value>;

fn set(map: &mut Obj, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
    }
}

/// Upstream's defaulting rule for the kinds' strategies: a field absent or null gets `value`;
/// anything but an object is left alone.
pub fn set_if_absent(obj: &mut Value, key: &str, value: Value) {
    if let Some(map) = obj.as_object_mut() {
        set(map, key, value);
    }
}

/// The object at `key`, created empty when absent; None when something else is there.
fn child<'a>(map: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    set(map, key, json!({}));
    map.get_mut(key).and_then(Value::as_object_mut)
}

fn existing<'a>(map: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    map.get_mut(key).and_then(Value::as_object_mut)
}

fn each_object<'a>(map: &'a mut Obj, key: &str) -> impl Iterator<Item = &'a mut Obj> {
    map.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flat_map(|items| items.iter_mut().filter_map(Value::as_object_mut))
}

// One entry point per kind, called by the kind's strategy (`crate::kinds`). Each takes the
// whole object and leaves alone what is not an object where it expects one.

fn root(obj: &mut Value) -> Option<&mut Obj> {
    obj.as_object_mut()
}

pub fn pod(obj: &mut Value) {
    if let Some(spec) = root(obj).and_then(|r| existing(r, "spec")) {
        pod_spec(spec);
    }
}

pub fn pod_template(obj: &mut Value) {
    if let Some(r) = root(obj) {
        template(r);
    }
}

pub fn node(obj: &mut Value) {
    if let Some(status) = root(obj).and_then(|r| existing(r, "status")) {
        for key in ["capacity", "allocatable"] {
            if let Some(map) = existing(status, key) {
                super::quantity::canonicalize_map(map);
            }
        }
    }
}

pub fn replication_controller(obj: &mut Value) {
    if let Some(spec) = root(obj).and_then(|r| existing(r, "spec")) {
        set(spec, "replicas", json!(1));
        template(spec);
    }
}

pub fn namespace(obj: &mut Value) {
    let Some(root) = root(obj) else { return };
    if let Some(spec) = child(root, "spec") {
        set(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = child(root, "status") {
        set(status, "phase", json!("Active"));
    }
    let name = root.get("metadata").and_then(|m| m.get("name")).cloned();
    if let (Some(name), Some(meta)) = (name, child(root, "metadata")) {
        if let Some(labels) = child(meta, "labels") {
            labels.insert("kubernetes.io/metadata.name".into(), name);
        }
    }
}

pub fn secret(obj: &mut Value) {
    if let Some(root) = root(obj) {
        set(root, "type", json!("Opaque"));
        secret_string_data(root);
    }
}

pub fn service(obj: &mut Value) {
    if let Some(spec) = root(obj).and_then(|r| child(r, "spec")) {
        service_spec(spec);
    }
}

pub fn endpoints(obj: &mut Value) {
    let Some(root) = root(obj) else { return };
    for subset in each_object(root, "subsets") {
        for port in each_object(subset, "ports") {
            set(port, "protocol", json!("TCP"));
        }
    }
}

pub fn endpoint_slice(obj: &mut Value) {
    let Some(root) = root(obj) else { return };
    for port in each_object(root, "ports") {
        set(port, "protocol", json!("TCP"));
    }
}

pub fn deployment(obj: &mut Value) {
    let Some(spec) = root(obj).and_then(|r| existing(r, "spec")) else { return };
    set(spec, "replicas", json!(1));
    set(spec, "revisionHistoryLimit", json!(10));
    set(spec, "progressDeadlineSeconds", json!(600));
    if let Some(strategy) = child(spec, "strategy") {
        set(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            if let Some(ru) = child(strategy, "rollingUpdate") {
                set(ru, "maxUnavailable", json!("25%"));
                set(ru, "maxSurge", json!("25%"));
            }
        }
    }
    template(spec);
}

pub fn replica_set(obj: &mut Value) {
    if let Some(spec) = root(obj).and_then(|r| existing(r, "spec")) {
        set(spec, "replicas", json!(1));
        template(spec);
    }
}

pub fn daemon_set(obj: &mut Value) {
    let Some(spec) = root(obj).and_then(|r| existing(r, "spec")) else { return };
    set(spec, "revisionHistoryLimit", json!(10));
    if let Some(strategy) = child(spec, "updateStrategy") {
        set(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            if let Some(ru) = child(strategy, "rollingUpdate") {
                set(ru, "maxUnavailable", json!(1));
                set(ru, "maxSurge", json!(0));
            }
        }
    }
    template(spec);
}

pub fn stateful_set(obj: &mut Value) {
    let Some(spec) = root(obj).and_then(|r| existing(r, "spec")) else { return };
    set(spec, "replicas", json!(1));
    set(spec, "podManagementPolicy", json!("OrderedReady"));
    set(spec, "revisionHistoryLimit", json!(10));
    set(spec, "persistentVolumeClaimRetentionPolicy", json!({"whenDeleted": "Retain", "whenScaled": "Retain"}));
    if let Some(strategy) = child(spec, "updateStrategy") {
        set(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            if let Some(ru) = child(strategy, "rollingUpdate") {
                set(ru, "partition", json!(0));
            }
        }
    }
    template(spec);
}

pub fn job(obj: &mut Value) {
    if let Some(spec) = root(obj).and_then(|r| existing(r, "spec")) {
        job_spec(spec);
    }
}

pub fn cron_job(obj: &mut Value) {
    let Some(spec) = root(obj).and_then(|r| existing(r, "spec")) else { return };
    set(spec, "concurrencyPolicy", json!("Allow"));
    set(spec, "suspend", json!(false));
    set(spec, "successfulJobsHistoryLimit", json!(3));
    set(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job) = existing(spec, "jobTemplate").and_then(|t| existing(t, "spec")) {
        job_spec(job);
    }
}

pub fn priority_class(obj: &mut Value) {
    if let Some(root) = root(obj) {
        set(root, "preemptionPolicy", json!("PreemptLowerPriority"));
    }
}

/// `stringData` is write-only: its entries overwrite `data`, base64-encoded (v1 conversion).
fn secret_string_data(root: &mut Obj) {
    use base64::Engine;
    let Some(Value::Object(string_data)) = root.remove("stringData") else {
        return;
    };
    let Some(data) = child(root, "data") else {
        return;
    };
    for (k, v) in string_data {
        if let Some(s) = v.as_str() {
            data.insert(
                k,
                json!(base64::engine::general_purpose::STANDARD.encode(s)),
            );
        }
    }
}

fn job_spec(spec: &mut Obj) {
    let neither = spec.get("completions").is_none_or(Value::is_null)
        && spec.get("parallelism").is_none_or(Value::is_null);
    if neither {
        spec.insert("completions".into(), json!(1));
    }
    set(spec, "parallelism", json!(1));
    set(spec, "backoffLimit", json!(6));
    set(spec, "completionMode", json!("NonIndexed"));
    set(spec, "suspend", json!(false));
    set(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    template(spec);
}

/// `spec.template.spec` of a workload gets the pod spec defaults.
fn template(spec: &mut Obj) {
    if let Some(pod) = existing(spec, "template").and_then(|t| existing(t, "spec")) {
        pod_spec(pod);
    }
}

pub fn pod_spec(spec: &mut Obj) {
    set(spec, "restartPolicy", json!("Always"));
    set(spec, "dnsPolicy", json!("ClusterFirst"));
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set(spec, "schedulerName", json!("default-scheduler"));
    set(spec, "securityContext", json!({}));
    set(spec, "enableServiceLinks", json!(true));
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for c in each_object(spec, list) {
            container(c);
        }
    }
    for volume in each_object(spec, "volumes") {
        // SetDefaults_Volume: a volume that names no source is an emptyDir.
        if volume.keys().all(|k| k == "name") {
            volume.insert("emptyDir".into(), json!({}));
        }
        for (source, mode_key) in [
            ("configMap", "defaultMode"),
            ("secret", "defaultMode"),
            ("projected", "defaultMode"),
            ("downwardAPI", "defaultMode"),
        ] {
            if let Some(src) = existing(volume, source) {
                set(src, mode_key, json!(420));
            }
        }
        if let Some(Value::Object(dir)) = volume.get_mut("emptyDir") {
            if let Some(limit) = dir
                .get("sizeLimit")
                .and_then(super::quantity::Quantity::from_json)
            {
                dir.insert("sizeLimit".into(), json!(limit.canonical()));
            }
        }
        if let Some(hp) = existing(volume, "hostPath") {
            set(hp, "type", json!(""));
        }
    }
}

fn container(c: &mut Obj) {
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    set(c, "imagePullPolicy", json!(image_pull_policy(&image)));
    set(c, "terminationMessagePath", json!("/dev/termination-log"));
    set(c, "terminationMessagePolicy", json!("File"));
    set(c, "resources", json!({}));
    if let Some(resources) = existing(c, "resources") {
        for key in ["limits", "requests"] {
            if let Some(map) = existing(resources, key) {
                super::quantity::canonicalize_map(map);
            }
        }
    }
    for port in each_object(c, "ports") {
        set(port, "protocol", json!("TCP"));
    }
    for env in each_object(c, "env") {
        if let Some(field_ref) = existing(env, "valueFrom").and_then(|v| existing(v, "fieldRef")) {
            set(field_ref, "apiVersion", json!("v1"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = existing(c, probe) {
            set(p, "timeoutSeconds", json!(1));
            set(p, "periodSeconds", json!(10));
            set(p, "successThreshold", json!(1));
            set(p, "failureThreshold", json!(3));
            if let Some(get) = existing(p, "httpGet") {
                set(get, "scheme", json!("HTTP"));
                set(get, "path", json!("/"));
            }
        }
    }
}

/// `Always` for `:latest` or an untagged image (a digest counts as a tag), else `IfNotPresent`.
pub fn image_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent",
        _ => "Always",
    }
}

fn service_spec(spec: &mut Obj) {
    set(spec, "type", json!("ClusterIP"));
    set(spec, "sessionAffinity", json!("None"));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if ty != "ExternalName" {
        set(spec, "internalTrafficPolicy", json!("Cluster"));
        // What the service IP allocator records for a single-stack IPv4 cluster.
        set(spec, "ipFamilyPolicy", json!("SingleStack"));
        set(spec, "ipFamilies", json!(["IPv4"]));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        set(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    for port in each_object(spec, "ports") {
        set(port, "protocol", json!("TCP"));
        // upstream treats a zero IntOrString (what protobuf clients send when unset) as unset.
        if matches!(port.get("targetPort"), Some(v) if *v == json!(0) || *v == json!("")) {
            port.remove("targetPort");
        }
        if let Some(p) = port.get("port").cloned() {
            set(port, "targetPort", p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_pod_gets_upstream_defaults() {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bb"},
                             "spec": {"containers": [{"name": "bb", "image": "busybox", "ports": [{"containerPort": 80}]}],
                                      "volumes": [{"name": "scratch"}]}});
        pod(&mut p);
        let pod_v = p;
        let spec = &pod_v["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["securityContext"], json!({}));
        assert_eq!(spec["enableServiceLinks"], true);
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["volumes"][0], json!({"name": "scratch", "emptyDir": {}}));
        // Priority, tolerations and the service account are admission's, not defaults'.
        for admitted in ["priority", "tolerations", "serviceAccountName"] {
            assert!(spec.get(admitted).is_none(), "{admitted}");
        }
        assert!(pod_v.get("status").is_none());
        let mut again = pod_v.clone();
        pod(&mut again);
        assert_eq!(pod_v, again, "defaulting is idempotent");
    }

    #[test]
    fn image_pull_policy_by_tag() {
        assert_eq!(image_pull_policy("busybox"), "Always");
        assert_eq!(image_pull_policy("busybox:latest"), "Always");
        assert_eq!(image_pull_policy("nginx:1.0"), "IfNotPresent");
        assert_eq!(image_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(image_pull_policy("nginx@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn deployment_service_job_namespace_defaults() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "n", "image": "nginx:1.0"}]}}}});
        deployment(&mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        let mut s = json!({"spec": {"ports": [{"port": 80}]}});
        service(&mut s);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        assert_eq!(
            s["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        let mut zero = json!({"spec": {"ports": [{"port": 81, "targetPort": 0}]}});
        service(&mut zero);
        assert_eq!(zero["spec"]["ports"][0]["targetPort"], 81);
        let mut j =
            json!({"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": []}}}});
        job(&mut j);
        assert_eq!(j["spec"]["completions"], 1);
        assert_eq!(j["spec"]["parallelism"], 1);
        assert_eq!(j["spec"]["backoffLimit"], 6);
        assert_eq!(j["spec"]["completionMode"], "NonIndexed");
        assert_eq!(j["spec"]["suspend"], false);
        assert!(j["spec"].get("manualSelector").is_none());
        let mut ns = json!({"metadata": {"name": "team"}});
        namespace(&mut ns);
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team"
        );
    }

    #[test]
    fn odd_shapes_do_not_panic() {
        for v in [
            json!(null),
            json!([1]),
            json!({"spec": 3}),
            json!({"spec": {"containers": "x"}}),
            json!({"metadata": 1}),
        ] {
            for default in [pod, namespace, service, deployment, job, secret, stateful_set, daemon_set] {
                default(&mut v.clone());
            }
        }
    }

    #[test]
    fn secret_string_data_moves_into_data() {
        let mut s = json!({"stringData": {"pw": "hello"}, "data": {"a": "Yg=="}});
        secret(&mut s);
        assert_eq!(
            s,
            json!({"data": {"a": "Yg==", "pw": "aGVsbG8="}, "type": "Opaque"})
        );
    }

    #[test]
    fn quantities_are_canonicalized() {
        let mut p = json!({"spec": {"containers": [{"name": "c", "image": "i",
            "resources": {"limits": {"cpu": "1000m", "memory": "1.5Gi"}, "requests": {"cpu": 0.5}}}]}});
        pod(&mut p);
        let r = &p["spec"]["containers"][0]["resources"];
        assert_eq!(r["limits"], json!({"cpu": "1", "memory": "1536Mi"}));
        assert_eq!(r["requests"], json!({"cpu": "500m"}));
    }
}
