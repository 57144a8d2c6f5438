//! Load generator for hack/bench-scheduler.sh: creates M Ready nodes, then
//! N pods at a given concurrency, and measures pods/s from the first
//! create to the last binding observed through a watch. With --etcd it
//! also measures the raw etcd create rate at the same concurrency, the
//! floor for any write path (each bind is one etcd write).
//!
//! Honest by construction: a failed create is retried and, if it still
//! fails, counted and reported; the watch's count of bindings is checked
//! against a list afterwards, and both are printed. If the watch stalls
//! while the list shows every pod bound, completion is taken from the list
//! (and said so), so a lost watch event cannot hang the run.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Container, Node, NodeCondition, NodeStatus, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
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
    /// Processes whose CPU time over the pod phase is reported: name=pid,...
    #[arg(long, value_delimiter = ',')]
    cpu_of: Vec<String>,
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    let f: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// (name, pid) for every process watched, the load generator itself included.
fn watched(args: &Args) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = args
        .cpu_of
        .iter()
        .filter_map(|s| s.split_once('=').map(|(n, p)| (n.to_string(), p.to_string())))
        .collect();
    v.push(("load generator".into(), "self".into()));
    v
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

async fn client(path: &std::path::Path) -> kube::Client {
    let mut cfg = apimachinery::kubeconfig::client_config(Some(path)).await.expect("kubeconfig");
    cfg.read_timeout = Some(Duration::from_secs(600));
    kube::Client::try_from(cfg).expect("client")
}

/// How many times a create is tried before it counts as failed.
const CREATE_ATTEMPTS: u32 = 8;

#[derive(Default)]
struct CreateStats {
    created: AtomicUsize,
    failed: AtomicUsize,
    retries: AtomicUsize,
}

/// Creates one object, retrying transient failures. An AlreadyExists after
/// a retry means an earlier attempt landed (its reply was lost), so it
/// counts as created.
async fn create_with_retry<K, F, Fut>(what: &str, stats: &CreateStats, mut create: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<K, kube::Error>>,
{
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=CREATE_ATTEMPTS {
        match create().await {
            Ok(_) => {
                stats.created.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Err(kube::Error::Api(s)) if s.code == 409 && attempt > 1 => {
                stats.created.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Err(e) if attempt < CREATE_ATTEMPTS => {
                if stats.retries.fetch_add(1, Ordering::Relaxed) < 10 {
                    eprintln!("create {what} (attempt {attempt}): {e}; retrying");
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                eprintln!("create {what}: giving up after {attempt} attempts: {e}");
                stats.failed.fetch_add(1, Ordering::Relaxed);
                return false;
            }
        }
    }
    false
}

fn is_bound(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

/// (pods listed, of which bound)
async fn list_bound(pods: &Api<Pod>) -> Result<(usize, usize), kube::Error> {
    let items = pods.list(&ListParams::default()).await?.items;
    Ok((items.len(), items.iter().filter(|p| is_bound(p)).count()))
}

/// Seconds since `start`, as microseconds in an atomic (0: not yet).
fn stamp(at: &AtomicU64, start: Instant) {
    let us = start.elapsed().as_micros().max(1) as u64;
    let _ = at.compare_exchange(0, us, Ordering::SeqCst, Ordering::SeqCst);
}

fn secs(at: &AtomicU64) -> Option<f64> {
    match at.load(Ordering::SeqCst) {
        0 => None,
        us => Some(us as f64 / 1e6),
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let client = client(&args.kubeconfig).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let t = Instant::now();
    let node_stats = CreateStats::default();
    run_concurrently(args.nodes, args.concurrency, |i| {
        let nodes = nodes.clone();
        let node_stats = &node_stats;
        async move {
            let name = format!("bench-node-{i}");
            let n = bench_node(&name);
            let pp = PostParams::default();
            if create_with_retry(&name, node_stats, || nodes.create(&pp, &n)).await {
                let status = Patch::Merge(json!({ "status": n.status }));
                let mut ok = false;
                for _ in 0..CREATE_ATTEMPTS {
                    if nodes.patch_status(&name, &PatchParams::default(), &status).await.is_ok() {
                        ok = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if !ok {
                    eprintln!("node {name}: status never written; it will not be Ready");
                }
            }
        }
    })
    .await;
    eprintln!(
        "created {} of {} nodes in {:.1}s ({} retries, {} failed)",
        node_stats.created.load(Ordering::Relaxed),
        args.nodes,
        t.elapsed().as_secs_f64(),
        node_stats.retries.load(Ordering::Relaxed),
        node_stats.failed.load(Ordering::Relaxed)
    );
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
    // Bindings seen through the watch, and when the last one was seen.
    let watch_bound = Arc::new(AtomicUsize::new(0));
    let last_bind_us = Arc::new(AtomicU64::new(0));
    let start_cell = Arc::new(std::sync::OnceLock::<Instant>::new());
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let watch_task = {
        let watch_bound = watch_bound.clone();
        let last_bind_us = last_bind_us.clone();
        let start_cell = start_cell.clone();
        let pods = pods.clone();
        tokio::spawn(async move {
            let mut seen = HashSet::new();
            let mut ready_tx = Some(ready_tx);
            let stream = watcher::watcher(pods, watcher::Config::default()).default_backoff();
            let mut stream = std::pin::pin!(stream);
            loop {
                match stream.try_next().await {
                    Ok(Some(watcher::Event::InitDone)) => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Some(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => {
                        if is_bound(&p) && seen.insert(p.metadata.name.clone().unwrap_or_default()) {
                            watch_bound.fetch_add(1, Ordering::SeqCst);
                            if let Some(start) = start_cell.get() {
                                last_bind_us.store(start.elapsed().as_micros() as u64, Ordering::SeqCst);
                            }
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => eprintln!("watch: {e}"),
                }
            }
        })
    };
    let _ = ready_rx.await;

    let cpu_before: Vec<f64> = watched(&args).iter().map(|(_, pid)| cpu_secs(pid)).collect();
    let start = Instant::now();
    let _ = start_cell.set(start);
    let pod_stats = Arc::new(CreateStats::default());
    let creates_done = Arc::new(AtomicU64::new(0));
    let create_task = {
        let pods = pods.clone();
        let pod_stats = pod_stats.clone();
        let creates_done = creates_done.clone();
        let (n, concurrency) = (args.pods, args.concurrency);
        tokio::spawn(async move {
            run_concurrently(n, concurrency, |i| {
                let pods = pods.clone();
                let pod_stats = pod_stats.clone();
                async move {
                    let name = format!("bench-pod-{i}");
                    let pod = bench_pod(&name);
                    let pp = PostParams::default();
                    create_with_retry(&name, &pod_stats, || pods.create(&pp, &pod)).await;
                }
            })
            .await;
            stamp(&creates_done, start);
        })
    };

    // Done when the watch has seen every created pod bound. If the watch
    // stalls, a list decides instead (a lost watch event must not hang or
    // falsify the run); the list's time is when it was taken.
    let deadline = start + Duration::from_secs(args.timeout_secs);
    let mut finish: Option<(f64, &str)> = None;
    let mut last_progress = (0usize, Instant::now());
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let creating = !create_task.is_finished();
        let target = pod_stats.created.load(Ordering::SeqCst);
        let seen = watch_bound.load(Ordering::SeqCst);
        if !creating && seen >= target {
            finish = Some((last_bind_us.load(Ordering::SeqCst) as f64 / 1e6, "watch"));
            break;
        }
        if seen != last_progress.0 {
            last_progress = (seen, Instant::now());
        } else if !creating && last_progress.1.elapsed() > Duration::from_secs(3) {
            if let Ok((_, bound)) = list_bound(&pods).await {
                if bound >= target {
                    finish = Some((start.elapsed().as_secs_f64(), "list (watch stalled)"));
                    break;
                }
            }
            last_progress.1 = Instant::now();
        }
    }
    let cpu_after: Vec<f64> = watched(&args).iter().map(|(_, pid)| cpu_secs(pid)).collect();
    watch_task.abort();
    let created = pod_stats.created.load(Ordering::SeqCst);
    let failed = pod_stats.failed.load(Ordering::SeqCst);
    let create_secs = secs(&creates_done);
    println!(
        "creates: {created} of {} pods created, {} retries, {failed} failed; {}",
        args.pods,
        pod_stats.retries.load(Ordering::SeqCst),
        match create_secs {
            Some(s) => format!("done in {s:.2}s = {:.0} creates/s", created as f64 / s),
            None => "still creating at the deadline".to_string(),
        }
    );
    let seen = watch_bound.load(Ordering::SeqCst);
    let (listed, list_bound_n) = list_bound(&pods).await.unwrap_or((0, 0));
    println!(
        "confirm: watch saw {seen} bindings; list shows {listed} pods, {list_bound_n} bound, {} unbound",
        listed - list_bound_n
    );
    if list_bound_n > seen {
        println!("WARNING: the watch missed {} bindings the list shows", list_bound_n - seen);
    }
    match finish {
        Some((secs, how)) => {
            let rate = created as f64 / secs;
            println!(
                "e2e: {created} pods on {} nodes bound in {secs:.2}s = {rate:.0} pods/s (concurrency {}; completion seen by {how})",
                args.nodes, args.concurrency
            );
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
        None => {
            let secs = start.elapsed().as_secs_f64();
            println!(
                "TIMED OUT after {secs:.0}s: {list_bound_n} of {created} created pods bound (list), {seen} seen by the watch; {:.0} pods/s",
                list_bound_n as f64 / secs
            );
        }
    }
    // Every process shares the machine's cores: what each spent per pod over the pod
    // phase bounds the rate any of them could reach here.
    if created > 0 {
        let mut parts = Vec::new();
        let mut total_ms = 0.0;
        for (i, (name, _)) in watched(&args).iter().enumerate() {
            let ms = (cpu_after[i] - cpu_before[i]) * 1000.0 / created as f64;
            total_ms += ms;
            parts.push(format!("{name} {ms:.2}"));
        }
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
        println!(
            "CPU ms per pod over the pod phase: {}; total {total_ms:.2} ms, so {cores:.0} cores allow at most {:.0} pods/s",
            parts.join(", "),
            cores * 1000.0 / total_ms
        );
    }
    let failed_any = failed > 0 || finish.is_none();
    std::process::exit(if failed_any { 1 } else { 0 });
}
