//! Load generator for hack/bench-scheduler.sh: creates M Ready nodes, then
//! N pods at a given concurrency, and measures pods/s from the first
//! create to the last binding observed through a watch. With --etcd it
//! also measures the raw etcd create rate at the same concurrency, the
//! floor for any write path (each bind is one etcd write).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Container, Node, NodeCondition, NodeStatus, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    kubeconfig: std::path::PathBuf,
    #[arg(long, default_value_t = 500)]
    nodes: usize,
    #[arg(long, default_value_t = 5000)]
    pods: usize,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measure the raw etcd create rate too (http://127.0.0.1:PORT).
    #[arg(long)]
    etcd: Option<String>,
    /// Namespace for the pods (created if absent).
    #[arg(long, default_value = "bench")]
    namespace: String,
    /// Stop after this long without reaching N bound pods.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

fn bench_node(name: &str) -> Node {
    let alloc: BTreeMap<String, Quantity> = [
        ("cpu".to_string(), Quantity("32".into())),
        ("memory".to_string(), Quantity("256Gi".into())),
        ("pods".to_string(), Quantity("110".into())),
    ]
    .into();
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("kubernetes.io/hostname".to_string(), name.to_string())].into()),
            ..Default::default()
        },
        spec: None,
        status: Some(NodeStatus {
            capacity: Some(alloc.clone()),
            allocatable: Some(alloc),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn bench_pod(name: &str) -> Pod {
    let requests: BTreeMap<String, Quantity> = [
        ("cpu".to_string(), Quantity("10m".into())),
        ("memory".to_string(), Quantity("16Mi".into())),
    ]
    .into();
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("app".to_string(), "bench".to_string())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some("busybox".into()),
                resources: Some(ResourceRequirements {
                    requests: Some(requests),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    }
}

async fn client(path: &std::path::Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(path).expect("kubeconfig");
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    cfg.read_timeout = Some(Duration::from_secs(600));
    kube::Client::try_from(cfg).expect("client")
}

async fn run_concurrently<F, Fut>(n: usize, concurrency: usize, f: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    futures::stream::iter(0..n).for_each_concurrent(concurrency, f).await;
}

async fn etcd_rate(endpoint: &str, n: usize, concurrency: usize) -> f64 {
    let client = etcd_client::Client::connect([endpoint], None)
        .await
        .expect("etcd connect");
    let value = serde_json::to_vec(&bench_pod("raw-etcd-value")).expect("json");
    let value = Arc::new(value);
    let start = Instant::now();
    run_concurrently(n, concurrency, |i| {
        let mut kv = client.kv_client();
        let value = value.clone();
        async move {
            let key = format!("/bench-raw/{i}");
            let txn = etcd_client::Txn::new()
                .when([etcd_client::Compare::create_revision(
                    key.clone(),
                    etcd_client::CompareOp::Equal,
                    0,
                )])
                .and_then([etcd_client::TxnOp::put(key, value.as_slice().to_vec(), None)]);
            kv.txn(txn).await.expect("etcd txn");
        }
    })
    .await;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let _ = client
        .kv_client()
        .delete("/bench-raw/", Some(etcd_client::DeleteOptions::new().with_prefix()))
        .await;
    rate
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let client = client(&args.kubeconfig).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let t = Instant::now();
    run_concurrently(args.nodes, args.concurrency, |i| {
        let nodes = nodes.clone();
        async move {
            let name = format!("bench-node-{i}");
            let n = bench_node(&name);
            if nodes.create(&PostParams::default(), &n).await.is_ok() {
                let _ = nodes
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({ "status": n.status })),
                    )
                    .await;
            }
        }
    })
    .await;
    eprintln!("created {} nodes in {:.1}s", args.nodes, t.elapsed().as_secs_f64());
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let _ = namespaces
        .create(
            &PostParams::default(),
            &k8s_openapi::api::core::v1::Namespace {
                metadata: ObjectMeta {
                    name: Some(args.namespace.clone()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await;
    // Let the scheduler's node informer catch up before the clock starts.
    if let Ok(wait) = std::env::var("BENCH_SETTLE_SECS") {
        tokio::time::sleep(Duration::from_secs(wait.parse().unwrap_or(0))).await;
    }

    let pods: Api<Pod> = Api::namespaced(client.clone(), &args.namespace);
    let bound = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Instant>();
    let target = args.pods;
    let watch_bound = bound.clone();
    let watch_pods = pods.clone();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut seen = HashSet::new();
        let mut done_tx = Some(done_tx);
        let mut ready_tx = Some(ready_tx);
        let stream = watcher::watcher(watch_pods, watcher::Config::default()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        while let Ok(Some(ev)) = stream.try_next().await {
            if let watcher::Event::InitDone = ev {
                if let Some(tx) = ready_tx.take() {
                    let _ = tx.send(());
                }
            }
            if let watcher::Event::Apply(p) | watcher::Event::InitApply(p) = ev {
                if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
                    && seen.insert(p.metadata.name.clone().unwrap_or_default())
                {
                    let n = watch_bound.fetch_add(1, Ordering::SeqCst) + 1;
                    if n == target {
                        if let Some(tx) = done_tx.take() {
                            let _ = tx.send(Instant::now());
                        }
                    }
                }
            }
        }
    });
    let _ = ready_rx.await;

    let start = Instant::now();
    let create_pods = pods.clone();
    tokio::spawn(run_concurrently(args.pods, args.concurrency, move |i| {
        let pods = create_pods.clone();
        async move {
            if let Err(e) = pods
                .create(&PostParams::default(), &bench_pod(&format!("bench-pod-{i}")))
                .await
            {
                eprintln!("create bench-pod-{i}: {e}");
            }
        }
    }));
    let (bound_n, secs) = match tokio::time::timeout(Duration::from_secs(args.timeout_secs), done_rx).await {
        Ok(Ok(t)) => (args.pods, t.duration_since(start).as_secs_f64()),
        _ => {
            let listed = pods.list(&Default::default()).await.map(|l| l.items).unwrap_or_default();
            let unbound = listed.iter().filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none()).count();
            let n = bound.load(Ordering::SeqCst);
            eprintln!("TIMED OUT: {n} of {} pods bound (watch); list shows {} pods, {unbound} unbound", args.pods, listed.len());
            (n, start.elapsed().as_secs_f64())
        }
    };
    let rate = bound_n as f64 / secs;
    println!("e2e: {bound_n} pods on {} nodes bound in {secs:.2}s = {rate:.0} pods/s (concurrency {})", args.nodes, args.concurrency);
    if let Some(etcd) = &args.etcd {
        let raw = etcd_rate(etcd, args.pods, args.concurrency).await;
        println!(
            "etcd: raw txn-create rate at concurrency {} = {:.0} writes/s; ratio e2e/etcd = {:.2}",
            args.concurrency,
            raw,
            rate / raw
        );
    }
}
