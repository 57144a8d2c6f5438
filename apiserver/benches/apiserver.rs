//! The apiserver benchmark driven by hack/bench-apiserver.sh, which starts etcd and the
//! apiserver and passes them in the environment: BENCH_ETCD, BENCH_URL, BENCH_TOKEN,
//! BENCH_CA, BENCH_PID, BENCH_ETCD_PID. Prints figures, CPU per operation, and ratios
//! against the targets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Env {
    etcd: String,
    url: String,
    token: String,
    pid: u32,
    etcd_pid: u32,
    http: reqwest::Client,
}

fn pod_json(name: &str, ns: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "bench", "tier": "backend", "pod-template-hash": "5d8f7b9c4"},
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x".repeat(400)}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"],
                                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                                 "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}
    }))
    .unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

struct Run {
    ops: usize,
    elapsed: Duration,
    lat: Vec<Duration>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
    fn show(&self, what: &str) -> String {
        format!(
            "{what:<28} {:>8.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
            self.rate(),
            percentile(&self.lat, 0.5).as_secs_f64() * 1e3,
            percentile(&self.lat, 0.99).as_secs_f64() * 1e3
        )
    }
}

/// Runs `total` operations over `clients` concurrent workers.
async fn drive<F, Fut>(clients: usize, total: usize, op: F) -> Run
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let op = op.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return lat;
                }
                let t = Instant::now();
                if !op(i).await {
                    eprintln!("operation {i} failed");
                }
                lat.push(t.elapsed());
            }
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap_or_default());
    }
    let elapsed = start.elapsed();
    lat.sort();
    Run { ops: total, elapsed, lat }
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// User plus system CPU seconds a process has used so far (0 when it cannot be read).
fn cpu_secs(pid: u32) -> f64 {
    let path = if pid == 0 { "/proc/self/stat".to_string() } else { format!("/proc/{pid}/stat") };
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the parenthesised command: state is the 1st, utime the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU used by the apiserver, etcd and this driver over one phase, per operation.
struct Cpu {
    api: f64,
    etcd: f64,
    driver: f64,
}

impl Cpu {
    fn now(env: &Env) -> Self {
        Cpu { api: cpu_secs(env.pid), etcd: cpu_secs(env.etcd_pid), driver: cpu_secs(0) }
    }
    /// Microseconds of CPU per operation since `self`: (apiserver, etcd, driver).
    fn per_op_us(&self, env: &Env, ops: usize) -> (f64, f64, f64) {
        let after = Cpu::now(env);
        let us = |a: f64, b: f64| (a - b) * 1e6 / ops.max(1) as f64;
        (us(after.api, self.api), us(after.etcd, self.etcd), us(after.driver, self.driver))
    }
    fn per_op(&self, env: &Env, ops: usize) -> String {
        let (api, etcd, driver) = self.per_op_us(env, ops);
        format!("cpu/op: apiserver {api:>5.0} us  etcd {etcd:>5.0} us  driver {driver:>5.0} us")
    }
}

impl Env {
    async fn create_ns(&self, name: &str) {
        let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        let _ = self.http.post(format!("{}/api/v1/namespaces", self.url)).bearer_auth(&self.token).json(&body).send().await;
    }

    async fn create_pods(self: &Arc<Self>, ns: &str, prefix: &str, clients: usize, total: usize) -> Run {
        let env = self.clone();
        let ns = ns.to_string();
        let prefix = prefix.to_string();
        drive(clients, total, move |i| {
            let env = env.clone();
            let ns = ns.clone();
            let body = pod_json(&format!("{prefix}-{i}"), &ns);
            async move {
                let r = env
                    .http
                    .post(format!("{}/api/v1/namespaces/{ns}/pods", env.url))
                    .bearer_auth(&env.token)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await;
                matches!(r, Ok(r) if r.status().as_u16() == 201)
            }
        })
        .await
    }
}

/// A value like the apiserver stores for pod `name`: the template (a stored pod, as the
/// apiserver returned it) renamed, so raw etcd writes exactly as many bytes.
fn stored_like(template: &serde_json::Value, name: &str) -> Vec<u8> {
    let mut v = template.clone();
    v["metadata"]["name"] = serde_json::json!(name);
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

async fn etcd_creates(endpoint: &str, prefix: &str, template: &serde_json::Value, clients: usize, total: usize) -> Run {
    let client = etcd_client::Client::connect([endpoint], None).await.expect("etcd");
    let prefix = prefix.to_string();
    let template = Arc::new(template.clone());
    drive(clients, total, move |i| {
        let mut kv = client.kv_client();
        let key = format!("{prefix}/{i}");
        let value = stored_like(&template, &format!("p{i}"));
        async move {
            use etcd_client::{Compare, CompareOp, Txn, TxnOp};
            let txn = Txn::new().when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)]).and_then([TxnOp::put(key, value, None)]);
            kv.txn(txn).await.is_ok_and(|r| r.succeeded())
        }
    })
    .await
}

async fn paced_creates(env: &Arc<Env>, per_sec: u64, secs: u64) -> Vec<Duration> {
    env.create_ns("bench-paced").await;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_sec));
    let mut tasks = Vec::new();
    for i in 0..(per_sec * secs) {
        tick.tick().await;
        let env = env.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let _ = env
                .http
                .post(format!("{}/api/v1/namespaces/bench-paced/pods", env.url))
                .bearer_auth(&env.token)
                .header("Content-Type", "application/json")
                .body(pod_json(&format!("paced-{i}"), "bench-paced"))
                .send()
                .await;
            t.elapsed()
        }));
    }
    sorted_latencies(tasks).await
}

/// The latencies the paced tasks measured, sorted for percentiles.
async fn sorted_latencies(tasks: Vec<tokio::task::JoinHandle<Duration>>) -> Vec<Duration> {
    let mut lat = Vec::new();
    for t in tasks {
        lat.push(t.await.unwrap_or_default());
    }
    lat.sort();
    lat
}

/// The same pacing as `paced_creates`, straight to etcd: the floor under the apiserver's p99.
async fn paced_etcd_creates(endpoint: &str, template: &serde_json::Value, per_sec: u64, secs: u64) -> Vec<Duration> {
    let client = etcd_client::Client::connect([endpoint], None).await.expect("etcd");
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_sec));
    let mut tasks = Vec::new();
    for i in 0..(per_sec * secs) {
        tick.tick().await;
        let mut kv = client.kv_client();
        let key = format!("/bench-raw/paced/{i}");
        let value = stored_like(template, &format!("paced-{i}"));
        tasks.push(tokio::spawn(async move {
            use etcd_client::{Compare, CompareOp, Txn, TxnOp};
            let t = Instant::now();
            let txn = Txn::new().when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)]).and_then([TxnOp::put(key, value, None)]);
            let _ = kv.txn(txn).await;
            t.elapsed()
        }));
    }
    sorted_latencies(tasks).await
}

async fn watch_fanout(env: &Arc<Env>, watchers: usize, events: usize) -> (Vec<Duration>, usize) {
    env.create_ns("bench-fan").await;
    let base = format!("{}/api/v1/namespaces/bench-fan/configmaps", env.url);
    let list: serde_json::Value = env.http.get(&base).bearer_auth(&env.token).send().await.expect("list").json().await.expect("json");
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_string();
    let sent: Arc<parking_lot_free::Times> = Arc::new(parking_lot_free::Times::new(events));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(watchers);
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let env = env.clone();
        let url = format!("{base}?watch=true&resourceVersion={rv}&timeoutSeconds=120");
        let sent = sent.clone();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            use futures::StreamExt;
            let mut lat = Vec::new();
            let Ok(resp) = env.http.get(url).bearer_auth(&env.token).send().await else { return lat };
            let _ = ready.send(()).await;
            let mut stream = resp.bytes_stream();
            let mut buf = Vec::new();
            while let Some(Ok(chunk)) = stream.next().await {
                buf.extend_from_slice(&chunk);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let now = Instant::now();
                    // A substring scan, not a JSON parse: the driver must not be the bottleneck.
                    if let Some(i) = fan_index(&line) {
                        {
                            if let Some(t) = sent.get(i) {
                                lat.push(now.saturating_duration_since(t));
                            }
                            if i + 1 == events {
                                return lat;
                            }
                        }
                    }
                }
            }
            lat
        }));
    }
    drop(ready_tx);
    let mut ready = 0;
    while ready < watchers {
        if ready_rx.recv().await.is_none() {
            break;
        }
        ready += 1;
    }
    for i in 0..events {
        let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("fan-{i}")}, "data": {"i": i.to_string()}});
        sent.set(i, Instant::now());
        let _ = env.http.post(&base).bearer_auth(&env.token).json(&body).send().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(tokio::time::timeout(Duration::from_secs(60), t).await.ok().and_then(Result::ok).unwrap_or_default());
    }
    lat.sort();
    (lat, ready)
}

/// The N of `"name":"fan-N"` in a watch frame.
fn fan_index(line: &[u8]) -> Option<usize> {
    let pat = b"\"name\":\"fan-";
    let at = line.windows(pat.len()).position(|w| w == pat)? + pat.len();
    let digits: Vec<u8> = line[at..].iter().take_while(|b| b.is_ascii_digit()).copied().collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// Send times shared between the writer and the watchers, without a lock crate.
mod parking_lot_free {
    use std::sync::Mutex;
    use std::time::Instant;
    pub struct Times(Mutex<Vec<Option<Instant>>>);
    impl Times {
        pub fn new(n: usize) -> Self {
            Times(Mutex::new(vec![None; n]))
        }
        pub fn set(&self, i: usize, t: Instant) {
            if let Ok(mut v) = self.0.lock() {
                v[i] = Some(t);
            }
        }
        pub fn get(&self, i: usize) -> Option<Instant> {
            self.0.lock().ok().and_then(|v| v.get(i).copied().flatten())
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("BENCH_URL").is_empty() {
        eprintln!("run through hack/bench-apiserver.sh (it starts etcd and the apiserver)");
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = std::fs::read(var("BENCH_CA")).expect("BENCH_CA");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca"))
        .pool_max_idle_per_host(2048)
        .timeout(Duration::from_secs(180))
        .build()
        .expect("client");
    let env = Arc::new(Env {
        etcd: var("BENCH_ETCD"),
        url: var("BENCH_URL"),
        token: var("BENCH_TOKEN"),
        pid: var("BENCH_PID").parse().unwrap_or(0),
        etcd_pid: var("BENCH_ETCD_PID").parse().unwrap_or(0),
        http,
    });
    let scale: usize = var("BENCH_SCALE").parse().unwrap_or(1);
    // BENCH_PHASES picks phases (list,creates,paced,watch); the list phase always runs first
    // because it fills the 10,000 pods and the raw etcd values copy a stored pod.
    let phases = var("BENCH_PHASES");
    let phase = |p: &str| phases.is_empty() || phases.split(',').any(|x| x == p);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_mb(env.pid);

    // First, so that the store holds exactly 10,000 pods when the RSS is read.
    println!("== 10,000 pods: fill, get and list ==");
    env.create_ns("bench-list").await;
    let cpu = Cpu::now(&env);
    let fill = env.create_pods("bench-list", "l", 64, 10_000).await;
    println!("{}   {}", fill.show("fill 10,000 pods (64 cl)"), cpu.per_op(&env, 10_000));
    let url = format!("{}/api/v1/namespaces/bench-list/pods", env.url);
    let mut lists = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let body = env.http.get(&url).bearer_auth(&env.token).send().await.expect("list").bytes().await.expect("body");
        lists.push(t.elapsed());
        assert!(body.len() > 1_000_000, "list body too small: {}", body.len());
    }
    lists.sort();
    let mut lists0 = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let _ = env.http.get(format!("{url}?resourceVersion=0")).bearer_auth(&env.token).send().await.expect("list").bytes().await;
        lists0.push(t.elapsed());
    }
    lists0.sort();
    println!("list 10,000 pods (consistent)  median {:.1} ms  max {:.1} ms (target <= 200 ms)", ms(lists[2]), ms(lists[4]));
    println!("list 10,000 pods (RV=0)        median {:.1} ms", ms(lists0[2]));
    let envc = env.clone();
    let gets = drive(16, 2000, move |i| {
        let env = envc.clone();
        async move {
            env.http
                .get(format!("{}/api/v1/namespaces/bench-list/pods/l-{}", env.url, i % 10_000))
                .bearer_auth(&env.token)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    println!("{}", gets.show("get pod (16 clients)"));
    let all: serde_json::Value =
        env.http.get(format!("{}/api/v1/pods", env.url)).bearer_auth(&env.token).send().await.expect("list").json().await.expect("json");
    let pods = all["items"].as_array().map_or(0, Vec::len);
    let loaded = rss_mb(env.pid);
    println!("RSS with {pods} pods in the store: {loaded:.1} MB (target <= 250 with 10,000)");
    let template: serde_json::Value =
        env.http.get(format!("{url}/l-0")).bearer_auth(&env.token).send().await.expect("get").json().await.expect("json");
    let stored_size = stored_like(&template, "p0").len();

    let mut ratios = Vec::new();
    if phase("creates") {
        println!("== creates: raw etcd txn ({stored_size}-byte values, as the apiserver stores a bench pod) vs apiserver POST pods ==");
        for clients in [1usize, 16, 64] {
            let n = if clients == 1 { 1000 * scale } else { 3000 * scale };
            let cpu = Cpu::now(&env);
            let raw = etcd_creates(&env.etcd, &format!("/bench-raw/c{clients}"), &template, clients, n).await;
            let raw_cpu = cpu.per_op(&env, n);
            let ns = format!("bench-c{clients}");
            env.create_ns(&ns).await;
            let cpu = Cpu::now(&env);
            let api = env.create_pods(&ns, "p", clients, n).await;
            let (api_us, etcd_us, driver_us) = cpu.per_op_us(&env, n);
            let api_cpu = cpu.per_op(&env, n);
            println!("{}   {raw_cpu}", raw.show(&format!("etcd   {clients:>2} clients")));
            println!("{}   {api_cpu}", api.show(&format!("api    {clients:>2} clients")));
            let ratio = api.rate() / raw.rate();
            println!("ratio  {clients:>2} clients            {ratio:.2}x of raw etcd");
            // All three share the cores: the CPU each create cost bounds the rate.
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
            let ceiling = cores * 1e6 / (api_us + etcd_us + driver_us).max(1.0);
            println!(
                "ceiling {clients:>2} clients            {cores:.0} cores / {:.0} us of CPU per create = {ceiling:.0} creates/s = {:.2}x of raw etcd",
                api_us + etcd_us + driver_us,
                ceiling / raw.rate()
            );
            ratios.push((clients, ratio));
        }
    }

    if phase("paced") {
        println!("== mutating latency at 100 creates/s for 5 s ==");
        let raw = paced_etcd_creates(&env.etcd, &template, 100, 5).await;
        let paced = paced_creates(&env, 100, 5).await;
        println!("raw etcd  p50 {:.2} ms  p99 {:.2} ms (the floor)", ms(percentile(&raw, 0.5)), ms(percentile(&raw, 0.99)));
        println!("apiserver p50 {:.2} ms  p99 {:.2} ms (target p99 <= 50 ms)", ms(percentile(&paced, 0.5)), ms(percentile(&paced, 0.99)));
    }

    if phase("watch") {
        println!("== watch fan-out ==");
        let watchers: usize = var("BENCH_WATCHERS").parse().unwrap_or(1000);
        let (lat, ready) = watch_fanout(&env, watchers, 20).await;
        println!(
            "{ready} watchers, {} deliveries: p50 {:.2} ms  p99 {:.2} ms (target p99 <= 100 ms)",
            lat.len(),
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99))
        );
    }

    println!("== memory ==");
    println!("RSS idle {idle:.1} MB (target <= 40)   with {pods} pods {loaded:.1} MB (target <= 250)   at the end {:.1} MB", rss_mb(env.pid));
    for (c, r) in ratios {
        println!("summary: creates at {c} clients = {r:.2}x raw etcd");
    }
}
