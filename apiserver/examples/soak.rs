//! The soak driver run by hack/soak.sh, which starts etcd and the apiserver and passes them in
//! the environment: SOAK_URL, SOAK_TOKEN, SOAK_CA, SOAK_PID, SOAK_ETCD. For SOAK_SECONDS it
//! keeps a steady mixed load on a bounded working set (creates, merge-patch updates and
//! deletes of ConfigMaps and Pods, expiring Events, lists) with SOAK_WATCHERS watches that
//! resume from their last resourceVersion. Every 10 s it prints a row of the apiserver's RSS
//! and etcd's size; at the end it says whether both levelled off and exits 1 if one did not,
//! or if any request got a 5xx or no answer.
//!
//! Knobs: SOAK_SECONDS (300), SOAK_OBJECTS (2000), SOAK_WATCHERS (50), SOAK_CONCURRENCY (16),
//! SOAK_RATE (operations a second, 300), SOAK_GROWTH_RATIO (0.5), SOAK_RSS_SLACK_MB (8),
//! SOAK_DB_SLACK_MB (8).

use futures::StreamExt;
use rand::Rng;
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NS: &str = "soak";

struct Env {
    url: String,
    token: String,
    etcd: String,
    pid: u32,
    http: reqwest::Client,
    /// A client without a total timeout, for watches that stream for a minute.
    stream_http: reqwest::Client,
    stats: Stats,
    deadline: Instant,
}

#[derive(Default)]
struct Stats {
    ops: AtomicU64,
    server_errors: AtomicU64,
    /// Requests that got no answer at all (transport errors, client timeouts).
    failures: AtomicU64,
    /// 4xx answers the driver did not expect (each worker owns its slots, so none should come).
    unexpected: AtomicU64,
    watch_events: AtomicU64,
    watch_reconnects: AtomicU64,
    watch_relists: AtomicU64,
    /// A few example failures, to print at the end.
    examples: Mutex<Vec<String>>,
}

impl Stats {
    fn note(&self, what: String) {
        if let Ok(mut v) = self.examples.lock() {
            if v.len() < 10 {
                v.push(what);
            }
        }
    }
}

fn var<T: std::str::FromStr>(k: &str, default: T) -> T {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl Env {
    /// Sends one request and classifies its answer; true when the status is one of `want`.
    async fn call(&self, what: &str, req: reqwest::RequestBuilder, want: &[u16]) -> bool {
        self.stats.ops.fetch_add(1, Ordering::Relaxed);
        match req.bearer_auth(&self.token).send().await {
            Ok(r) => {
                let code = r.status().as_u16();
                // Drain the body so the connection goes back to the pool.
                let body = r.bytes().await.unwrap_or_default();
                if want.contains(&code) {
                    return true;
                }
                if code >= 500 {
                    self.stats.server_errors.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.stats.unexpected.fetch_add(1, Ordering::Relaxed);
                }
                self.stats.note(format!("{what}: {code} {}", String::from_utf8_lossy(&body[..body.len().min(200)])));
                false
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                self.stats.note(format!("{what}: {e}"));
                false
            }
        }
    }

    fn path(&self, resource: &str) -> String {
        format!("{}/api/v1/namespaces/{NS}/{resource}", self.url)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    ConfigMap,
    Pod,
}

impl Kind {
    fn resource(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmaps",
            Kind::Pod => "pods",
        }
    }

    fn object(self, name: &str, generation: u64) -> serde_json::Value {
        match self {
            Kind::ConfigMap => serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {"app": "soak"}},
                "data": {"generation": generation.to_string(), "payload": "p".repeat(512)}
            }),
            Kind::Pod => serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": {"app": "soak", "generation": generation.to_string()}},
                "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"],
                                         "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
            }),
        }
    }

    fn patch(self, generation: u64) -> serde_json::Value {
        match self {
            Kind::ConfigMap => serde_json::json!({"data": {"generation": generation.to_string()}}),
            Kind::Pod => serde_json::json!({"metadata": {"labels": {"generation": generation.to_string()}}}),
        }
    }
}

/// One worker: it alone owns its slots of the working set, so it knows which exist and every
/// answer but the expected one is a finding.
async fn worker(env: Arc<Env>, id: usize, slots: Vec<usize>, period: Duration) {
    let mut present = vec![false; slots.len()];
    let mut generation = 0u64;
    let mut events = 0u64;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < env.deadline {
        tick.tick().await;
        generation += 1;
        let roll: u32 = rand::rng().random_range(0..100);
        if roll < 15 {
            events += 1;
            let name = format!("ev-{id}-{events}");
            let ev = serde_json::json!({
                "apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
                "involvedObject": {"kind": "Pod", "namespace": NS, "name": "p"},
                "reason": "Soak", "message": "m".repeat(200), "type": "Normal",
            });
            env.call("create event", env.http.post(env.path("events")).json(&ev), &[201]).await;
            continue;
        }
        if roll < 17 {
            let kind = if roll == 15 { "configmaps" } else { "pods" };
            env.call("list", env.http.get(format!("{}?limit=500", env.path(kind))), &[200]).await;
            continue;
        }
        let at = rand::rng().random_range(0..slots.len());
        let slot = slots[at];
        let kind = if slot % 2 == 0 { Kind::ConfigMap } else { Kind::Pod };
        let name = format!("s-{slot}");
        let url = format!("{}/{name}", env.path(kind.resource()));
        if !present[at] {
            present[at] = env.call("create", env.http.post(env.path(kind.resource())).json(&kind.object(&name, generation)), &[201]).await;
        } else if roll < 80 {
            let req = env.http.patch(&url).header("Content-Type", "application/merge-patch+json").json(&kind.patch(generation));
            env.call("patch", req, &[200]).await;
        } else {
            // Grace 0: an unbound pod goes at once either way, and a slot is free right after.
            let req = env.http.delete(&url).json(&serde_json::json!({"gracePeriodSeconds": 0}));
            if env.call("delete", req, &[200]).await {
                present[at] = false;
            }
        }
    }
}

#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    object: FrameObject,
}

#[derive(Deserialize)]
struct FrameObject {
    #[serde(default)]
    metadata: FrameMeta,
    #[serde(default)]
    code: Option<u16>,
}

#[derive(Deserialize, Default)]
struct FrameMeta {
    #[serde(rename = "resourceVersion", default)]
    resource_version: Option<String>,
}

/// A list's resourceVersion, to (re)start a watch from.
async fn list_rv(env: &Env, resource: &str) -> Option<String> {
    let r = env.http.get(format!("{}?limit=1", env.path(resource))).bearer_auth(&env.token).send().await.ok()?;
    let v: serde_json::Value = r.json().await.ok()?;
    v["metadata"]["resourceVersion"].as_str().map(str::to_string)
}

/// One watcher as a client's reflector runs it: list, watch from the list's revision, resume
/// from the last revision seen when the stream ends, relist on 410 Gone.
async fn watcher(env: Arc<Env>, resource: &'static str) {
    let mut rv: Option<String> = None;
    while Instant::now() < env.deadline {
        let from = match rv.take() {
            Some(rv) => rv,
            None => match list_rv(&env, resource).await {
                Some(rv) => rv,
                None => {
                    env.stats.failures.fetch_add(1, Ordering::Relaxed);
                    env.stats.note(format!("list {resource} for a watch: no answer"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        // Short, staggered timeouts so watches end and resume often during the soak.
        let timeout = rand::rng().random_range(20..40);
        let url = format!("{}?watch=true&allowWatchBookmarks=true&resourceVersion={from}&timeoutSeconds={timeout}", env.path(resource));
        let resp = match env.stream_http.get(url).bearer_auth(&env.token).send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                let code = r.status().as_u16();
                if code == 410 {
                    env.stats.watch_relists.fetch_add(1, Ordering::Relaxed);
                } else if code >= 500 {
                    env.stats.server_errors.fetch_add(1, Ordering::Relaxed);
                    env.stats.note(format!("watch {resource}: {code}"));
                    rv = Some(from);
                } else {
                    env.stats.unexpected.fetch_add(1, Ordering::Relaxed);
                    env.stats.note(format!("watch {resource}: {code}"));
                }
                // A refused watch is not retried in a tight loop.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(e) => {
                env.stats.failures.fetch_add(1, Ordering::Relaxed);
                env.stats.note(format!("watch {resource}: {e}"));
                rv = Some(from);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut last = Some(from);
        let mut stream = resp.bytes_stream();
        let mut buf = Vec::new();
        'stream: while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let Ok(frame) = serde_json::from_slice::<Frame>(&line) else { continue };
                match frame.kind.as_str() {
                    "ERROR" => {
                        if frame.object.code == Some(410) {
                            env.stats.watch_relists.fetch_add(1, Ordering::Relaxed);
                            last = None;
                        } else {
                            env.stats.server_errors.fetch_add(1, Ordering::Relaxed);
                            env.stats.note(format!("watch {resource}: ERROR {:?}", frame.object.code));
                        }
                        break 'stream;
                    }
                    "BOOKMARK" => {}
                    _ => {
                        env.stats.watch_events.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if let Some(v) = frame.object.metadata.resource_version {
                    last = Some(v);
                }
            }
        }
        env.stats.watch_reconnects.fetch_add(1, Ordering::Relaxed);
        rv = last;
    }
}

/// One point of the apiserver's and etcd's size.
#[derive(Clone, Copy, Default)]
struct Sample {
    at: f64,
    rss_mb: f64,
    db_mb: f64,
    db_in_use_mb: f64,
    revision: i64,
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A gauge's value from a Prometheus text page.
fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn sample(env: &Env, start: Instant) -> Sample {
    let http = &env.http;
    let page = match http.get(format!("{}/metrics", env.etcd)).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    // Any range answers with the store's current revision in its header (the v3 JSON gateway).
    let revision = match http.post(format!("{}/v3/kv/range", env.etcd)).body(r#"{"key":"AA=="}"#).send().await {
        Ok(r) => r.json::<serde_json::Value>().await.ok().and_then(|v| v["header"]["revision"].as_str()?.parse().ok()).unwrap_or(0),
        Err(_) => 0,
    };
    let mb = |name| metric(&page, name).unwrap_or(0.0) / (1024.0 * 1024.0);
    Sample {
        at: start.elapsed().as_secs_f64(),
        rss_mb: rss_mb(env.pid),
        db_mb: mb("etcd_mvcc_db_total_size_in_bytes"),
        db_in_use_mb: mb("etcd_mvcc_db_total_size_in_use_in_bytes"),
        revision,
    }
}

/// Whether a series levelled off: the growth of its last third (its peak over the middle
/// third's) is at most `ratio` of the first third's (its peak over the start), or within
/// `slack`. Peaks, not end points, because compaction makes etcd's in-use size a sawtooth.
struct Verdict {
    first: f64,
    last: f64,
    ok: bool,
}

fn levelled(series: &[(f64, f64)], ratio: f64, slack: f64) -> Verdict {
    if series.len() < 3 {
        return Verdict { first: 0.0, last: 0.0, ok: true };
    }
    let end = series.last().map_or(0.0, |s| s.0);
    let third = |lo: f64, hi: f64| series.iter().filter(|s| s.0 >= lo && s.0 <= hi).map(|s| s.1).fold(f64::MIN, f64::max);
    let (t1, t2) = (end / 3.0, 2.0 * end / 3.0);
    let first = third(0.0, t1) - series[0].1;
    let last = third(t2, end) - third(t1, t2);
    Verdict { first, last, ok: last <= (ratio * first).max(slack) }
}

#[tokio::main]
async fn main() {
    let env_var = |k: &str| std::env::var(k).unwrap_or_default();
    if env_var("SOAK_URL").is_empty() {
        eprintln!("run through hack/soak.sh (it starts etcd and the apiserver)");
        std::process::exit(2);
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = std::fs::read(env_var("SOAK_CA")).expect("SOAK_CA");
    let client = |timeout: Option<Duration>| {
        let mut b = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca"))
            .pool_max_idle_per_host(256)
            .connect_timeout(Duration::from_secs(5));
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        b.build().expect("client")
    };
    let seconds: u64 = var("SOAK_SECONDS", 300);
    let objects: usize = var("SOAK_OBJECTS", 2000);
    let watchers: usize = var("SOAK_WATCHERS", 50);
    let concurrency: usize = var::<usize>("SOAK_CONCURRENCY", 16).clamp(1, objects.max(1));
    let rate: f64 = var("SOAK_RATE", 300.0);
    let ratio: f64 = var("SOAK_GROWTH_RATIO", 0.5);
    let rss_slack: f64 = var("SOAK_RSS_SLACK_MB", 8.0);
    let db_slack: f64 = var("SOAK_DB_SLACK_MB", 8.0);
    let start = Instant::now();
    let env = Arc::new(Env {
        url: env_var("SOAK_URL"),
        token: env_var("SOAK_TOKEN"),
        etcd: env_var("SOAK_ETCD"),
        pid: env_var("SOAK_PID").parse().unwrap_or(0),
        // 60 s is the apiserver's own request timeout: an answer later than that is a hang.
        http: client(Some(Duration::from_secs(65))),
        stream_http: client(None),
        stats: Stats::default(),
        deadline: start + Duration::from_secs(seconds),
    });
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}});
    env.call("create namespace", env.http.post(format!("{}/api/v1/namespaces", env.url)).json(&ns), &[201, 409]).await;
    println!(
        "soak: {seconds} s, {objects} objects, {watchers} watchers, {concurrency} writers at {rate:.0} ops/s, apiserver pid {}",
        env.pid
    );

    let mut tasks = Vec::new();
    let period = Duration::from_secs_f64(concurrency as f64 / rate.max(1.0));
    for id in 0..concurrency {
        let slots: Vec<usize> = (id..objects).step_by(concurrency).collect();
        tasks.push(tokio::spawn(worker(env.clone(), id, slots, period)));
    }
    for i in 0..watchers {
        let resource = if i % 2 == 0 { "configmaps" } else { "pods" };
        tasks.push(tokio::spawn(watcher(env.clone(), resource)));
    }

    println!("{:>7} {:>7} {:>9} {:>9} {:>11} {:>9} {:>12} {:>6} {:>5}", "elapsed", "ops/s", "rss MB", "db MB", "db inuse MB", "revision", "watch events", "410s", "5xx");
    let mut samples = vec![sample(&env, start).await];
    let mut last_row = (Instant::now(), 0u64);
    let mut second = tokio::time::interval(Duration::from_secs(1));
    second.tick().await;
    while Instant::now() < env.deadline {
        second.tick().await;
        let s = sample(&env, start).await;
        samples.push(s);
        if last_row.0.elapsed() >= Duration::from_secs(10) || Instant::now() >= env.deadline {
            let ops = env.stats.ops.load(Ordering::Relaxed);
            let rate = (ops - last_row.1) as f64 / last_row.0.elapsed().as_secs_f64();
            last_row = (Instant::now(), ops);
            println!(
                "{:>6.0}s {:>7.0} {:>9.1} {:>9.1} {:>11.1} {:>9} {:>12} {:>6} {:>5}",
                s.at,
                rate,
                s.rss_mb,
                s.db_mb,
                s.db_in_use_mb,
                s.revision,
                env.stats.watch_events.load(Ordering::Relaxed),
                env.stats.watch_relists.load(Ordering::Relaxed),
                env.stats.server_errors.load(Ordering::Relaxed)
            );
        }
    }
    // Writers stop at the deadline; a watch ends at its own timeout (at most 40 s), so do not
    // wait for those.
    for t in tasks.drain(..concurrency) {
        let _ = t.await;
    }
    for t in tasks {
        t.abort();
    }

    let st = &env.stats;
    let rss = levelled(&samples.iter().map(|s| (s.at, s.rss_mb)).collect::<Vec<_>>(), ratio, rss_slack);
    let db = levelled(&samples.iter().map(|s| (s.at, s.db_in_use_mb)).collect::<Vec<_>>(), ratio, db_slack);
    let total = levelled(&samples.iter().map(|s| (s.at, s.db_mb)).collect::<Vec<_>>(), ratio, db_slack);
    let ops = st.ops.load(Ordering::Relaxed);
    println!("== soak summary ==");
    println!("operations {ops} ({:.0}/s)  watch events {}  watch resumes {}  relists after 410 {}",
        ops as f64 / start.elapsed().as_secs_f64(),
        st.watch_events.load(Ordering::Relaxed),
        st.watch_reconnects.load(Ordering::Relaxed),
        st.watch_relists.load(Ordering::Relaxed));
    let say = |what: &str, v: &Verdict, slack: f64| {
        println!(
            "{what:<16} first third +{:.1} MB, last third +{:.1} MB (limit {:.1} MB): {}",
            v.first,
            v.last,
            (ratio * v.first).max(slack),
            if v.ok { "levelled off" } else { "KEEPS GROWING" }
        )
    };
    say("apiserver RSS", &rss, rss_slack);
    say("etcd db in use", &db, db_slack);
    say("etcd db total", &total, db_slack);
    let server_errors = st.server_errors.load(Ordering::Relaxed);
    let failures = st.failures.load(Ordering::Relaxed);
    let unexpected = st.unexpected.load(Ordering::Relaxed);
    println!("5xx {server_errors}  no answer {failures}  unexpected 4xx {unexpected}");
    for e in st.examples.lock().map(|v| v.clone()).unwrap_or_default() {
        println!("  e.g. {e}");
    }
    // The total file size only grows until freed pages are reused; it is reported, not judged.
    let ok = rss.ok && db.ok && server_errors == 0 && failures == 0;
    println!("soak: {}", if ok { "PASS" } else { "FAIL" });
    std::process::exit(if ok { 0 } else { 1 });
}
