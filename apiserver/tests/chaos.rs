//! Failure under load against a real etcd: etcd frozen, then killed and restarted, while
//! writers and watchers keep going; and a hundred writers racing on one object with
//! preconditions. What a client was told must hold: an acknowledged write is never lost or
//! seen twice, an outage is a prompt 503/504, and a precondition failure is exactly a 409.
//! Also the apiserver itself killed with SIGKILL under write load.

mod support;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{configmap, Harness, TOKEN};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

/// How soon writes must succeed again once etcd is back.
const OUTAGE_ANSWER: Duration = Duration::from_secs(5);

/// How long an answer may take while etcd is away: the apiserver must not hang. Against a
/// frozen etcd its 4.5 s etcd request timeout ends a write, leaving slack within the 5 s.
const OUTAGE_ANSWER_BOUND: Duration = Duration::from_millis(5_000);

/// A client of the harness's apiserver that tasks can own (the harness itself is borrowed
/// mutably to stop and restart etcd).
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    fn of(h: &Harness) -> Client {
        Client { http: h.http.clone(), url: h.api.url.clone() }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(StatusCode, Value), reqwest::Error> {
        let r = req.bearer_auth(TOKEN).send().await?;
        let status = r.status();
        let body = r.bytes().await?;
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }
}

/// What one writer was told, each create under a name used once.
#[derive(Default)]
struct Writes {
    /// Names answered 201, with when the answer came.
    acknowledged: Vec<(String, Instant)>,
    /// Names answered 503 (nothing happened) and 504 (outcome unknown), with how long each took.
    unavailable: Vec<(String, Duration)>,
    timed_out: Vec<(String, Duration)>,
    /// Known defect: a connection to etcd broken by the kill reaches the storage layer as a
    /// gRPC status with code Unknown ("transport error"), which it maps to a 500 instead of a
    /// 503. Counted and printed, not failed, until the mapping is fixed; then drop this arm.
    /// Anything else: a finding.
    other: Vec<String>,
}

async fn writer(c: Client, id: usize, stop: Arc<AtomicBool>, log: Arc<Mutex<Writes>>) {
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let name = format!("w{id}-{i}");
        let started = Instant::now();
        let req = c.http.post(format!("{}{CMS}", c.url)).timeout(Duration::from_secs(20)).json(&configmap(&name, json!({"writer": id.to_string()})));
        let answer = c.send(req).await;
        let took = started.elapsed();
        let mut log = log.lock().unwrap();
        match answer {
            Ok((StatusCode::CREATED, _)) => log.acknowledged.push((name, Instant::now())),
            Ok((StatusCode::SERVICE_UNAVAILABLE, s)) if s["kind"] == "Status" => log.unavailable.push((name, took)),
            Ok((StatusCode::GATEWAY_TIMEOUT, s)) if s["kind"] == "Status" => log.timed_out.push((name, took)),
            Ok((code, body)) => log.other.push(format!("{name}: {code} after {took:?}: {body}")),
            Err(e) => log.other.push(format!("{name}: no answer after {took:?}: {e}")),
        }
    }
}

/// What one watcher saw: how often each name was ADDED, and its last resourceVersion.
#[derive(Default)]
struct Seen {
    added: BTreeMap<String, usize>,
    rv: String,
    resumes: usize,
    errors: Vec<String>,
}

/// A watcher as a reflector runs one: on every end of its stream (the server's timeout, a
/// broken connection, an error event) it resumes from the last resourceVersion it saw. The
/// short `timeout_s` makes it resume several times, during the outages too.
async fn watcher(c: Client, timeout_s: u64, from: String, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>) {
    seen.lock().unwrap().rv = from;
    while !stop.load(Ordering::SeqCst) {
        let rv = seen.lock().unwrap().rv.clone();
        let url = format!("{}{CMS}?watch=true&allowWatchBookmarks=true&timeoutSeconds={timeout_s}&resourceVersion={rv}", c.url);
        // While etcd is away a new watch may be refused; retry it as a client would.
        let opened = testkit::wait_for(Duration::from_secs(30), || {
            let req = c.http.get(&url).bearer_auth(TOKEN);
            async move { req.send().await.ok().filter(|r| r.status() == StatusCode::OK) }
        })
        .await;
        let Ok(resp) = opened else {
            seen.lock().unwrap().errors.push(format!("no watch from {rv} within 30 s"));
            return;
        };
        let mut stream = resp.bytes_stream();
        let mut buf = Vec::new();
        'stream: while let Some(Ok(chunk)) = stream.next().await {
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let Ok(ev) = serde_json::from_slice::<Value>(&line) else { continue };
                let mut s = seen.lock().unwrap();
                if ev["type"] == "ERROR" {
                    s.errors.push(ev["object"].to_string());
                    break 'stream;
                }
                if ev["type"] == "ADDED" {
                    *s.added.entry(ev["object"]["metadata"]["name"].as_str().unwrap_or_default().to_string()).or_default() += 1;
                }
                if let Some(v) = ev["object"]["metadata"]["resourceVersion"].as_str() {
                    s.rv = v.to_string();
                }
            }
        }
        seen.lock().unwrap().resumes += 1;
    }
}

fn outage_failures(log: &Mutex<Writes>) -> usize {
    let l = log.lock().unwrap();
    l.unavailable.len() + l.timed_out.len()
}

/// Waits for at least `n` writes answered 503 or 504 more than `before`.
async fn wait_for_outage_answers(log: &Arc<Mutex<Writes>>, before: usize, n: usize, what: &str) {
    testkit::wait_for_or(Duration::from_secs(30), what, || async { (outage_failures(log) >= before + n).then_some(()) })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Waits until a write started after `back` is acknowledged, within 5 s of `back`.
async fn wait_for_writes_back(log: &Arc<Mutex<Writes>>, back: Instant, what: &str) {
    let acked_after = || log.lock().unwrap().acknowledged.iter().any(|(_, at)| *at > back);
    testkit::wait_for_or(OUTAGE_ANSWER, what, || async { acked_after().then_some(()) })
        .await
        .unwrap_or_else(|e| panic!("{e} ({:?} after etcd's return)", back.elapsed()));
    eprintln!("{what}: {:?} after etcd's return", back.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_stopped_killed_and_restarted_under_load_with_watchers_open() {
    let mut h = Harness::start().await;
    let c = Client::of(&h);
    let list = h.get(CMS).await.json();
    let from = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();

    let stop_writers = Arc::new(AtomicBool::new(false));
    let stop_watchers = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Writes::default()));
    let writers: Vec<_> = (0..4).map(|id| tokio::spawn(writer(c.clone(), id, stop_writers.clone(), log.clone()))).collect();
    let seen: Vec<Arc<Mutex<Seen>>> = (0..3).map(|_| Arc::new(Mutex::new(Seen::default()))).collect();
    let watchers: Vec<_> = seen.iter().enumerate().map(|(i, s)| tokio::spawn(watcher(c.clone(), 2 + i as u64, from.clone(), stop_watchers.clone(), s.clone()))).collect();
    let acked = || log.lock().unwrap().acknowledged.len();
    testkit::wait_for_or(Duration::from_secs(30), "40 writes before the outage", || async { (acked() >= 40).then_some(()) }).await.unwrap();

    // Frozen: requests reach etcd's socket and get no answer, so only timeouts end them.
    h.etcd.pause();
    wait_for_outage_answers(&log, 0, 4, "4 writes answered while etcd is frozen").await;
    h.etcd.resume();
    wait_for_writes_back(&log, Instant::now(), "a write acknowledged after the freeze").await;

    // Killed: connections are refused until it is back on the same data.
    let before = outage_failures(&log);
    h.etcd.stop();
    wait_for_outage_answers(&log, before, 8, "8 writes answered while etcd is down").await;
    h.etcd.restart().await.expect("etcd restarts");
    wait_for_writes_back(&log, Instant::now(), "a write acknowledged after the restart").await;
    let acked_now = acked();
    testkit::wait_for_or(Duration::from_secs(30), "20 more writes after the restart", || async { (acked() >= acked_now + 20).then_some(()) })
        .await
        .unwrap();

    stop_writers.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let log = std::mem::take(&mut *log.lock().unwrap());
    assert!(log.other.is_empty(), "answers other than 201, 503 or 504 Status: {:#?}", log.other);
    let slow: Vec<_> = log.unavailable.iter().chain(&log.timed_out).filter(|(_, took)| *took > OUTAGE_ANSWER_BOUND).collect();
    assert!(slow.is_empty(), "outage answers slower than {OUTAGE_ANSWER_BOUND:?}: {slow:?}");
    let acknowledged: BTreeSet<String> = log.acknowledged.iter().map(|(n, _)| n.clone()).collect();

    // Every watcher, resuming from its last resourceVersion, sees each acknowledged create.
    let missing = |s: &Mutex<Seen>| {
        let s = s.lock().unwrap();
        acknowledged.iter().filter(|n| !s.added.contains_key(*n)).count()
    };
    let all_seen = testkit::wait_for_or(Duration::from_secs(30), "watchers see every acknowledged create", || async {
        seen.iter().all(|s| missing(s) == 0).then_some(())
    })
    .await;
    stop_watchers.store(true, Ordering::SeqCst);
    for (i, s) in seen.iter().enumerate() {
        let s = s.lock().unwrap();
        let twice: Vec<_> = s.added.iter().filter(|(_, n)| **n > 1).collect();
        let missed: Vec<_> = acknowledged.iter().filter(|n| !s.added.contains_key(*n)).collect();
        // A 503 says nothing happened; a create it answered must not appear.
        let refused_but_there: Vec<_> = log.unavailable.iter().filter(|(n, _)| s.added.contains_key(n)).collect();
        eprintln!(
            "watcher {i}: {} ADDED over {} resumes; missed {}, twice {}, errors {:?}",
            s.added.len(),
            s.resumes,
            missed.len(),
            twice.len(),
            s.errors
        );
        assert!(missed.is_empty(), "watcher {i} missed acknowledged creates: {missed:?}");
        assert!(twice.is_empty(), "watcher {i} saw creates twice: {twice:?}");
        assert!(refused_but_there.is_empty(), "watcher {i} saw creates answered 503: {refused_but_there:?}");
        assert!(s.errors.iter().all(|e| !e.contains("410")), "watcher {i} got 410 Gone resuming: {:?}", s.errors);
    }
    all_seen.unwrap();
    eprintln!(
        "{} acknowledged, {} answered 503, {} answered 504 (slowest {:?})",
        acknowledged.len(),
        log.unavailable.len(),
        log.timed_out.len(),
        log.unavailable.iter().chain(&log.timed_out).map(|(_, t)| *t).max()
    );
    for w in watchers {
        // A watcher ends at its stream's timeout at the latest (4 s), or its reopen deadline.
        tokio::time::timeout(Duration::from_secs(40), w).await.expect("watcher ends").unwrap();
    }
}

/// Conformance of optimistic concurrency: a PUT carrying the resourceVersion it read either
/// lands (200) or is a 409 Conflict, so no increment is lost and none lands twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_writers_with_preconditions_lose_no_update() {
    let h = Harness::start().await;
    let c = Client::of(&h);
    let r = h.post(CMS, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "counter"}, "data": {"n": "0"}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let url = format!("{}{CMS}/counter", c.url);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let c = c.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut conflicts = 0usize;
                // Bounded: with 100 racers each round lands one, so 100 rounds always suffice.
                for _ in 0..200 {
                    let (code, mut cm) = c.send(c.http.get(&url)).await.expect("get");
                    assert_eq!(code, StatusCode::OK, "{cm}");
                    let n: u64 = cm["data"]["n"].as_str().unwrap().parse().unwrap();
                    cm["data"]["n"] = json!((n + 1).to_string());
                    let (code, body) = c.send(c.http.put(&url).json(&cm)).await.expect("put");
                    match code {
                        StatusCode::OK => return (n + 1, conflicts),
                        StatusCode::CONFLICT => {
                            assert_eq!((body["kind"].as_str(), body["reason"].as_str(), body["code"].as_i64()), (Some("Status"), Some("Conflict"), Some(409)), "{body}");
                            conflicts += 1;
                        }
                        other => panic!("a precondition PUT got {other}: {body}"),
                    }
                }
                panic!("no increment landed in 200 attempts");
            })
        })
        .collect();
    let mut landed = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        let (value, c) = t.await.unwrap();
        landed.push(value);
        conflicts += c;
    }
    landed.sort();
    // Each 200 wrote a value no other did: together exactly 1..=100.
    assert_eq!(landed, (1..=100).collect::<Vec<u64>>());
    let finalv = h.get(&format!("{CMS}/counter")).await.json();
    assert_eq!(finalv["data"]["n"], "100", "the counter equals the number of 200s");
    eprintln!("100 increments landed; {conflicts} attempts were 409 Conflict");
}

/// `kill -9` of the apiserver under write load, three times: every create it acknowledged
/// with a 201 is in etcd after it comes back, and none is there twice. Writes in flight when
/// it died may or may not have landed (the client got no answer, so it was told nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apiserver_killed_with_sigkill_under_write_load_loses_no_acknowledged_write() {
    let mut h = Harness::start().await;
    let c = Client::of(&h);
    let mut acknowledged: BTreeSet<String> = BTreeSet::new();
    for round in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::<String>::new()));
        let writers: Vec<_> = (0..8)
            .map(|id| {
                let (c, stop, acked) = (c.clone(), stop.clone(), acked.clone());
                tokio::spawn(async move {
                    let mut i = 0;
                    while !stop.load(Ordering::SeqCst) {
                        i += 1;
                        let name = format!("k{round}-w{id}-{i}");
                        let req = c.http.post(format!("{}{CMS}", c.url)).timeout(Duration::from_secs(10)).json(&configmap(&name, json!({"round": round.to_string()})));
                        match c.send(req).await {
                            Ok((StatusCode::CREATED, _)) => acked.lock().unwrap().push(name),
                            // Down or restarting: no answer, or not ready yet. Try again soon.
                            _ => tokio::time::sleep(Duration::from_millis(20)).await,
                        }
                    }
                })
            })
            .collect();
        let count = || acked.lock().unwrap().len();
        testkit::wait_for_or(Duration::from_secs(30), "200 acknowledged creates before the kill", || async { (count() >= 200).then_some(()) })
            .await
            .unwrap();
        h.api.process().kill();
        h.api.process().start_again().expect("apiserver starts again");
        h.api.wait_ready().await.expect("apiserver ready after kill -9");
        let at_restart = count();
        testkit::wait_for_or(Duration::from_secs(30), "100 more creates after the restart", || async { (count() >= at_restart + 100).then_some(()) })
            .await
            .unwrap();
        stop.store(true, Ordering::SeqCst);
        for w in writers {
            w.await.unwrap();
        }
        acknowledged.extend(acked.lock().unwrap().drain(..));
    }
    // What etcd holds, read through the apiserver's paged list.
    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    let mut cont = String::new();
    loop {
        let page = h.get(&format!("{CMS}?limit=500&continue={cont}")).await.json();
        for item in page["items"].as_array().expect("a list") {
            *stored.entry(item["metadata"]["name"].as_str().unwrap_or_default().to_string()).or_default() += 1;
        }
        match page["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => cont = c.to_string(),
            _ => break,
        }
    }
    let lost: Vec<_> = acknowledged.iter().filter(|n| !stored.contains_key(*n)).collect();
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!("{} acknowledged over 3 kills, {} stored, lost {}", acknowledged.len(), stored.len(), lost.len());
    assert!(lost.is_empty(), "acknowledged creates lost after kill -9: {lost:?}");
    assert!(twice.is_empty(), "objects listed twice: {twice:?}");
}
