//! What applications use on a real cluster: typed writes under load, CronJobs, quotas,
//! drain with a disruption budget, port-forward and StatefulSet rollbacks.

use super::*;

/// Issue 10's defect, end to end: while a client keeps sending objects of the wrong type
/// (a number as a node selector, ConfigMap data or env value, replicas past int32), each
/// gets a 400 and nothing is stored, so the controller-manager's and scheduler's informers
/// keep decoding and a Deployment scales up and down as usual.
#[tokio::test]
async fn deployment_scales_while_a_client_keeps_sending_malformed_objects() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "malformed").await;
    ns.apply_yaml(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: steady\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: steady\n  template:\n    metadata:\n      labels:\n        app: steady\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: busybox\n        command: [\"sleep\", \"3600\"]\n",
    )
    .await;
    let pods = ns.pods();
    wait_pods(&pods, "app=steady", POD_START, "1 Running", |ps| ps.iter().filter(|p| is_active_running(p)).count() == 1).await;

    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (client, stop, name) = (ns.client.clone(), stop.clone(), ns.name.clone());
        tokio::spawn(async move {
            let bodies = [
                ("pods", r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bad-pod"},"spec":{"nodeSelector":{"x":12345},"containers":[{"name":"c","image":"busybox"}]}}"#),
                ("pods", r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bad-env"},"spec":{"containers":[{"name":"c","image":"busybox","env":[{"name":"A","value":1}]}]}}"#),
                ("configmaps", r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bad-cm"},"data":{"a":12345}}"#),
            ];
            let mut codes: Vec<u16> = Vec::new();
            while !stop.load(Ordering::SeqCst) && codes.len() < 5_000 {
                for (resource, body) in bodies {
                    let req = http::Request::post(format!("/api/v1/namespaces/{name}/{resource}"))
                        .header("Content-Type", "application/json")
                        .body(body.as_bytes().to_vec())
                        .expect("request");
                    let code = match client.request_text(req).await {
                        Ok(_) => 201,
                        Err(kube::Error::Api(s)) => s.code,
                        Err(e) => panic!("malformed write: {e}"),
                    };
                    codes.push(code);
                }
                let req = http::Request::post(format!("/apis/apps/v1/namespaces/{name}/deployments"))
                    .header("Content-Type", "application/json")
                    .body(br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"bad-deploy"},"spec":{"replicas":2147483648,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}"#.to_vec())
                    .expect("request");
                codes.push(match client.request_text(req).await {
                    Ok(_) => 201,
                    Err(kube::Error::Api(s)) => s.code,
                    Err(e) => panic!("malformed write: {e}"),
                });
            }
            codes
        })
    };

    ns.kubectl_ok(&["scale", "deployment/steady", "--replicas=3"]).await;
    wait_pods(&pods, "app=steady", Duration::from_secs(120), "3 Running", |ps| ps.iter().filter(|p| is_active_running(p)).count() == 3).await;
    ns.kubectl_ok(&["scale", "deployment/steady", "--replicas=1"]).await;
    wait_pods(&pods, "app=steady", Duration::from_secs(120), "1 left", |ps| ps.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).count() == 1).await;
    stop.store(true, Ordering::SeqCst);
    let codes = sender.await.expect("sender");
    assert!(!codes.is_empty());
    assert!(codes.iter().all(|c| *c == 400), "every malformed write is a 400: {:?}", codes.iter().filter(|c| **c != 400).collect::<Vec<_>>());
    // Nothing was stored, and typed lists of every kind the sender used still decode.
    assert!(pods.list(&ListParams::default()).await.unwrap().items.iter().all(|p| !p.metadata.name.as_deref().unwrap_or("").starts_with("bad-")));
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    assert!(cms.get_opt("bad-cm").await.unwrap().is_none());
    let deploys: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    assert_eq!(deploys.list(&ListParams::default()).await.unwrap().items.len(), 1);
    eprintln!("{} malformed writes refused while the Deployment scaled 1 -> 3 -> 1", codes.len());
}

/// The CronJob controller on a real cluster: a CronJob on `*/1 * * * *`
/// with successfulJobsHistoryLimit 1 runs a busybox Job every minute; after
/// the second run succeeds only one successful Job is kept, and the events
/// tell the story (SuccessfulCreate twice, SawCompletedJob, SuccessfulDelete).
#[tokio::test]
async fn cronjob_runs_every_minute_and_keeps_one_successful_job() {
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    use k8s_openapi::api::core::v1::Event;
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "cronjob").await;
    ns.apply_yaml(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: hello\nspec:\n  schedule: \"*/1 * * * *\"\n  successfulJobsHistoryLimit: 1\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          terminationGracePeriodSeconds: 1\n          containers:\n          - name: hello\n            image: busybox\n            command: [\"sh\", \"-c\", \"echo hello from the cronjob\"]\n",
    )
    .await;
    let jobs: Api<Job> = Api::namespaced(ns.client.clone(), &ns.name);
    let events: Api<Event> = Api::namespaced(ns.client.clone(), &ns.name);
    let reasons = || async {
        events
            .list(&ListParams::default())
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .filter(|e| e.involved_object.kind.as_deref() == Some("CronJob"))
                    .filter_map(|e| e.reason)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let succeeded = |j: &Job| j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) >= 1;
    // Two scheduled minutes, the Jobs' pods and the clean-up after them.
    let waited = wait_for_or(Duration::from_secs(200), "a second run and the first one deleted", || async {
        let r = reasons().await;
        let created = r.iter().filter(|r| *r == "SuccessfulCreate").count();
        let live: Vec<Job> = jobs.list(&ListParams::default()).await.ok()?.items.into_iter().filter(|j| j.metadata.deletion_timestamp.is_none()).collect();
        let done: Vec<Job> = live.into_iter().filter(succeeded).collect();
        (created >= 2 && r.iter().any(|r| r == "SuccessfulDelete") && done.len() == 1).then_some(done)
    })
    .await;
    let kept = match waited {
        Ok(k) => k,
        Err(e) => panic!("{e}; events {:?}", reasons().await),
    };
    let r = reasons().await;
    assert!(r.iter().any(|r| r == "SawCompletedJob"), "{r:?}");
    let job = &kept[0];
    assert!(job.metadata.name.as_deref().is_some_and(|n| n.starts_with("hello-")));
    assert!(job.metadata.annotations.as_ref().is_some_and(|a| a.contains_key("batch.kubernetes.io/cronjob-scheduled-timestamp")));
    let cjs: Api<CronJob> = Api::namespaced(ns.client.clone(), &ns.name);
    let status = cjs.get("hello").await.expect("cronjob").status.expect("status");
    assert!(status.last_schedule_time.is_some() && status.last_successful_time.is_some());
    let out = ns.kubectl_ok(&["get", "cronjob", "hello"]).await;
    assert_eq!(table::cell(&table::parse(&out)[0], "SCHEDULE"), "*/1 * * * *", "{out}");
    let logs = ns.kubectl_ok(&["logs", &format!("job/{}", job.metadata.name.as_deref().unwrap_or_default())]).await;
    assert_eq!(logs.trim(), "hello from the cronjob");
}

/// A namespace quota of 2 pods: the third pod is refused through kubectl
/// with upstream's 403, and `get resourcequota` / `describe quota` show the
/// 2/2 the resource quota controller wrote ("ResourceQuota, object count
/// quota, pod").
#[tokio::test]
async fn resource_quota_of_two_pods_refuses_the_third_and_shows_2_of_2() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "quota").await;
    ns.apply_yaml("apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: pod-quota\nspec:\n  hard:\n    pods: \"2\"\n").await;
    for name in ["p1", "p2"] {
        ns.kubectl_ok(&["run", name, "--image=busybox", "--restart=Never", "--", "sleep", "3600"]).await;
    }
    let out = ns.kubectl(&["run", "p3", "--image=busybox", "--restart=Never", "--", "sleep", "3600"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "Error from server (Forbidden): pods \"p3\" is forbidden: exceeded quota: pod-quota, requested: pods=1, used: pods=2, limited: pods=2"
    );
    let shown = wait_for_or(Duration::from_secs(60), "get resourcequota showing pods: 2/2", || async {
        let out = ns.kubectl(&["get", "resourcequota", "pod-quota"]).await;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let rows = table::parse(&text);
        (table::cell(rows.first()?, "REQUEST") == "pods: 2/2").then_some(text)
    })
    .await;
    assert!(shown.is_ok(), "{shown:?}");
    let described = ns.kubectl_ok(&["describe", "quota", "pod-quota"]).await;
    assert!(
        described.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pods", "2", "2"]),
        "{described}"
    );
}

/// Uncordons a node when dropped, so a failed drain test leaves the shared
/// cluster schedulable for the tests after it.
struct Uncordon<'a> {
    kubeconfig: &'a std::path::Path,
    node: String,
}

impl Drop for Uncordon<'_> {
    fn drop(&mut self) {
        let _ = testkit::kubectl(self.kubeconfig, &["uncordon", self.node.as_str()]);
    }
}

/// `kubectl drain` goes through pods/eviction and the disruption
/// controller's budget (no conformance test drains; the budget's status is
/// "PodDisruptionBudget: Status updates"): both replicas of a Deployment sit
/// on one node under a PDB with minAvailable 1; draining that node evicts
/// one, is refused the other until its replacement is Ready on the other
/// node, then evicts it too. The Deployment ends with 2 Ready pods there.
#[tokio::test]
async fn kubectl_drain_respects_a_pod_disruption_budget_with_min_available_1() {
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "drain").await;
    let ready = |p: &k8s_openapi::api::core::v1::Pod| {
        is_active_running(p)
            && p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    // Both replicas on node-0: node-1 is cordoned while they are placed.
    let (drained, other) = ("node-0", "node-1");
    let _uncordon_other = Uncordon { kubeconfig: cluster.kubeconfig(), node: other.into() };
    ns.kubectl_ok(&["cordon", other]).await;
    ns.apply_yaml(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: guarded\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: guarded\n  template:\n    metadata:\n      labels:\n        app: guarded\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: busybox\n        command: [\"sleep\", \"3600\"]\n---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: guarded\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels:\n      app: guarded\n",
    )
    .await;
    let pods = ns.pods();
    let before = wait_pods(&pods, "app=guarded", POD_START, "2 Ready on node-0", |ps| {
        ps.iter().filter(|p| ready(p) && node_name(p) == drained).count() == 2
    })
    .await;
    ns.kubectl_ok(&["uncordon", other]).await;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(ns.client.clone(), &ns.name);
    let allowed = |want: i32| {
        let pdbs = pdbs.clone();
        async move {
            let b = pdbs.get("guarded").await.ok()?;
            let s = b.status?;
            (s.observed_generation == b.metadata.generation && s.disruptions_allowed == want && s.current_healthy == 2)
                .then_some(())
        }
    };
    wait_for_or(Duration::from_secs(60), "the budget allows 1 disruption", || allowed(1))
        .await
        .unwrap();

    let _uncordon = Uncordon { kubeconfig: cluster.kubeconfig(), node: drained.into() };
    // Only this test's pods: the shared node also runs other tests' bare pods.
    let drain = ns
        .kubectl(&[
            "drain",
            drained,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--pod-selector=app=guarded",
            "--timeout=240s",
        ])
        .await;
    let (out, err) = (String::from_utf8_lossy(&drain.stdout), String::from_utf8_lossy(&drain.stderr));
    assert!(drain.status.success(), "drain failed:\n{out}\n{err}");
    for p in &before {
        let name = p.metadata.name.as_deref().unwrap_or_default();
        assert!(out.contains(&format!("pod/{name} evicted")), "{name} was evicted, not deleted:\n{out}");
    }
    // With both replicas on the node, one eviction had to wait for the budget.
    assert!(err.contains("Cannot evict pod as it would violate the pod's disruption budget"), "{err}");
    let after = wait_pods(&pods, "app=guarded", Duration::from_secs(120), "2 Ready on node-1, none left on node-0", |ps| {
        ps.iter().filter(|p| ready(p) && node_name(p) == other).count() == 2
            && !ps.iter().any(|p| node_name(p) == drained)
    })
    .await;
    assert!(after.iter().all(|p| !before.iter().any(|b| b.metadata.uid == p.metadata.uid)));
    // The second eviction waited for the budget; the budget is whole again.
    wait_for_or(Duration::from_secs(60), "the budget allows 1 disruption again", || allowed(1))
        .await
        .unwrap();
    let nodes: Api<Node> = Api::all(ns.client.clone());
    assert_eq!(
        nodes.get(drained).await.unwrap().spec.and_then(|s| s.unschedulable),
        Some(true),
        "drain cordons the node"
    );
    ns.kubectl_ok(&["uncordon", drained]).await;
    assert_ne!(nodes.get(drained).await.unwrap().spec.and_then(|s| s.unschedulable), Some(true));
}


/// `kubectl port-forward pod/web <local>:80`: kubectl 1.33 tunnels SPDY/3.1 through a
/// WebSocket (`SPDY/3.1+portforward.k8s.io`, KEP-4006) to the apiserver, which dials the
/// kubelet with a SPDY upgrade; nginx's page comes back on the local port. With
/// KUBECTL_PORT_FORWARD_WEBSOCKETS=false kubectl upgrades to SPDY/3.1 directly, as
/// clients before 1.30 do, and gets the same page.
#[tokio::test]
async fn kubectl_port_forward_pod_serves_nginx_on_a_local_port() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "portfwd").await;
    ns.apply_yaml(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: nginx\n    image: nginx\n    ports:\n    - containerPort: 80\n",
    )
    .await;
    wait_pod(&ns.pods(), "web", POD_START, "Running", is_running).await;
    let stderr = port_forward_and_fetch(&ns, true).await;
    // client-go's tunneling dialer logs the WebSocket upgrade and the protocol inside it at -v=4.
    assert!(stderr.contains("Before WebSocket Upgrade Connection"), "{stderr}");
    assert!(stderr.contains("negotiated protocol: portforward.k8s.io"), "{stderr}");
    let spdy = port_forward_and_fetch(&ns, false).await;
    assert!(!spdy.contains("Before WebSocket Upgrade Connection"), "{spdy}");
}

/// Runs `kubectl port-forward pod/web <free port>:80 -v=4` in the background, fetches `/`
/// through it, stops it by its PID and returns its stderr.
async fn port_forward_and_fetch(ns: &TestNs<'_>, websockets: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let local = testkit::free_port();
    let cache = tempfile::tempdir().unwrap();
    let program = std::env::var_os("FERROKUBE_KUBECTL").unwrap_or_else(|| testkit::KUBECTL.into());
    let mut kubectl = tokio::process::Command::new(program)
        .arg("--kubeconfig")
        .arg(ns.cluster.kubeconfig())
        .arg("--cache-dir")
        .arg(cache.path())
        .args(["-n", &ns.name, "port-forward", "pod/web", &format!("{local}:80"), "-v=4"])
        .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting kubectl port-forward");
    let pid = kubectl.id().expect("kubectl's PID");
    let page = wait_for_or(Duration::from_secs(30), "nginx's page through kubectl port-forward", || async move {
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", local)).await.ok()?;
        c.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").await.ok()?;
        let mut page = Vec::new();
        c.read_to_end(&mut page).await.ok()?;
        Some(String::from_utf8_lossy(&page).into_owned()).filter(|p| p.contains("Welcome to nginx!"))
    })
    .await;
    // Stop the kubectl this test started, by its PID (through its child handle).
    kubectl.start_kill().unwrap_or_else(|e| panic!("stopping kubectl (pid {pid}): {e}"));
    let out = kubectl.wait_with_output().await.expect("kubectl's output");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr).into_owned());
    let page = page.unwrap_or_else(|e| panic!("{e} (websockets={websockets})\nkubectl port-forward printed:\n{stdout}{stderr}"));
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(stdout.contains(&format!("Forwarding from 127.0.0.1:{local} -> 80")), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("Handling connection for {local}")), "{stdout}{stderr}");
    assert!(!stderr.contains("an error occurred forwarding"), "{stderr}");
    stderr
}

/// "StatefulSet, Rolling Update" with kubectl's rollback: a new image is a new
/// ControllerRevision, `kubectl rollout history` lists both, `--revision=1` shows the
/// first template, and `kubectl rollout undo` (which PATCHes the set with revision 1's
/// data) brings the first image back on a running pod, renumbering revision 1 to 3.
#[tokio::test]
async fn conformance_statefulset_rolling_update_and_kubectl_rollout_undo_restores_the_first_image() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "stshistory").await;
    let pods = ns.pods();
    ns.apply_yaml(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  serviceName: web\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: busybox\n        command: [\"sleep\", \"3600\"]\n",
    )
    .await;
    let image_is = |image: &'static str| {
        move |p: &k8s_openapi::api::core::v1::Pod| {
            is_active_running(p) && p.spec.as_ref().and_then(|s| s.containers[0].image.as_deref()) == Some(image)
        }
    };
    let first = wait_pod(&pods, "web-0", POD_START, "Running busybox", image_is("busybox")).await;
    ns.kubectl_ok(&["set", "image", "statefulset/web", "c=busybox:latest"]).await;
    let second = wait_pod(&pods, "web-0", POD_START, "Running busybox:latest", image_is("busybox:latest")).await;
    let label = |p: &k8s_openapi::api::core::v1::Pod| p.metadata.labels.as_ref().unwrap()["controller-revision-hash"].clone();
    assert_ne!(label(&first), label(&second), "a new template is a new revision");

    let revisions = |out: &str| -> Vec<String> {
        out.lines()
            .skip_while(|l| !l.starts_with("REVISION"))
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    };
    let history = ns.kubectl_ok(&["rollout", "history", "statefulset/web"]).await;
    assert_eq!(revisions(&history), ["1", "2"], "{history}");
    let one = ns.kubectl_ok(&["rollout", "history", "statefulset/web", "--revision=1"]).await;
    assert!(one.contains("revision #1") && one.contains("busybox") && !one.contains("busybox:latest"), "{one}");

    let undo = ns.kubectl_ok(&["rollout", "undo", "statefulset/web"]).await;
    assert!(undo.contains("rolled back"), "{undo}");
    let back = wait_pod(&pods, "web-0", POD_START, "Running busybox again", image_is("busybox")).await;
    assert_eq!(label(&back), label(&first), "the first revision is reused, not copied");
    let history = ns.kubectl_ok(&["rollout", "history", "statefulset/web"]).await;
    assert_eq!(revisions(&history), ["2", "3"], "{history}");
    let sts = ns.kubectl_ok(&["get", "statefulset", "web", "-o", "jsonpath={.status.updateRevision} {.status.currentRevision}"]).await;
    assert_eq!(sts.split_whitespace().next(), Some(label(&first).as_str()), "{sts}");
}
