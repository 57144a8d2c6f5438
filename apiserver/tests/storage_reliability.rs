//! The storage reliability defects, each against a real etcd: a watch cache that could not
//! rebuild a resource over 4 MiB, Events that never expired, an etcd never compacted (and the
//! 410s that follow compaction), and watch-lists (`sendInitialEvents=true`).

mod support;

use apiserver::storage::etcd::EtcdStorage;
use apiserver::storage::{ListOptions, Storage, StorageError};
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{configmap, Harness};

async fn etcd_storage(h: &Harness) -> EtcdStorage {
    EtcdStorage::connect(std::slice::from_ref(&h.etcd.endpoint)).await.unwrap()
}

/// Writes `values` straight into etcd, `parallel` at a time (bounded load).
async fn put_all(s: &EtcdStorage, values: Vec<(String, Vec<u8>)>, parallel: usize) {
    futures::stream::iter(values)
        .map(|(k, v)| async move { s.create(&k, Bytes::from(v)).await.unwrap() })
        .buffer_unordered(parallel)
        .collect::<Vec<_>>()
        .await;
}

fn event(ns: &str, name: &str, pad: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {"kind": "Pod", "namespace": ns, "name": "p"},
        "reason": "Tested", "message": "x".repeat(pad), "type": "Normal",
    })
}

/// After a restart the cache is rebuilt and lists and watches work: the total is well over
/// the 4 MiB a single etcd response could hold before.
async fn restart_and_expect_served(h: &mut Harness, path: &str, want: usize) {
    let start = Instant::now();
    h.api.restart().await.unwrap();
    let list = testkit::wait_for(Duration::from_secs(120), || async {
        let r = h.get(path).await;
        (r.status == StatusCode::OK).then(|| r.json())
    })
    .await
    .expect("the list is served after the restart");
    assert_eq!(list["items"].as_array().unwrap().len(), want);
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    // The watch cache is ready: a watch from the list's revision is served from it.
    let w = h.get(&format!("{path}?watch=true&resourceVersion={rv}&timeoutSeconds=1")).await;
    assert_eq!(w.status, StatusCode::OK, "{}", w.text());
    assert!(w.events().iter().all(|e| e["type"] != "ERROR"), "{}", w.text());
    let page = h.get(&format!("{path}?limit=3")).await.json();
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert!(page["metadata"]["continue"].is_string());
    eprintln!("{path}: {want} objects served {:?} after the restart began", start.elapsed());
}

/// Defect 1: 10,000 Events (about 6 MB) in etcd, then a restart.
#[tokio::test]
async fn watch_cache_rebuilds_after_restart_with_10000_events() {
    let mut h = Harness::start().await;
    let s = etcd_storage(&h).await;
    let values = (0..10_000)
        .map(|i| {
            let name = format!("ev-{i:05}");
            (format!("/registry/events/default/{name}"), serde_json::to_vec(&event("default", &name, 400)).unwrap())
        })
        .collect::<Vec<_>>();
    let bytes: usize = values.iter().map(|(_, v)| v.len()).sum();
    assert!(bytes > 4 << 20, "{bytes}");
    put_all(&s, values, 32).await;
    restart_and_expect_served(&mut h, "/api/v1/namespaces/default/events", 10_000).await;
}

/// Defect 1: 10,000 pods (the bench's pod shape, about 16 MB) in etcd, then a restart.
#[tokio::test]
async fn watch_cache_rebuilds_after_restart_with_10000_pods() {
    let mut h = Harness::start().await;
    let s = etcd_storage(&h).await;
    let values = (0..10_000)
        .map(|i| {
            let name = format!("pod-{i:05}");
            let pod = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default", "uid": format!("00000000-0000-0000-0000-{i:012}"),
                             "labels": {"app": "many"}, "annotations": {"note": "z".repeat(1200)}},
                "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]},
                "status": {"phase": "Pending"},
            });
            (format!("/registry/pods/default/{name}"), serde_json::to_vec(&pod).unwrap())
        })
        .collect::<Vec<_>>();
    let bytes: usize = values.iter().map(|(_, v)| v.len()).sum();
    assert!(bytes > 12 << 20, "{bytes}");
    put_all(&s, values, 32).await;
    restart_and_expect_served(&mut h, "/api/v1/namespaces/default/pods", 10_000).await;
}

/// Defect 1: about 100 MB of ConfigMaps (100 of 1 MB each; etcd takes values up to 1.5 MiB).
#[tokio::test]
async fn watch_cache_rebuilds_after_restart_with_100mb_of_configmaps() {
    let mut h = Harness::start().await;
    let s = etcd_storage(&h).await;
    let big = "y".repeat(1_000_000);
    let values = (0..100)
        .map(|i| {
            let name = format!("big-{i:03}");
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"blob": big}});
            (format!("/registry/configmaps/default/{name}"), serde_json::to_vec(&cm).unwrap())
        })
        .collect::<Vec<_>>();
    let written = Instant::now();
    put_all(&s, values, 8).await;
    eprintln!("wrote 100 MB in {:?}", written.elapsed());
    // A single range over the resource would not fit the old 4 MiB message; paged it does.
    let all = s.list("/registry/configmaps/default/", ListOptions::default()).await.unwrap();
    assert!(all.items.len() >= 100);
    restart_and_expect_served(&mut h, "/api/v1/namespaces/default/configmaps", all.items.len()).await;
}

/// Defect 2: with `--event-ttl=10s`, Events of both APIs are deleted by etcd after about ten
/// seconds (not before), other kinds stay, and writes made close together share leases.
#[tokio::test]
async fn events_expire_after_event_ttl_and_share_few_leases() {
    let h = Harness::start_with(&["--event-ttl=10s"]).await;
    let n = 200;
    let first_write = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let h = &h;
            async move {
                let r = if i % 10 == 0 {
                    let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": format!("v1ev-{i}")},
                                    "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "test", "reportingInstance": "t",
                                    "action": "Tested", "reason": "Tested", "type": "Normal", "regarding": {"kind": "Pod", "name": "p", "namespace": "default"}});
                    h.post("/apis/events.k8s.io/v1/namespaces/default/events", &ev).await
                } else {
                    h.post("/api/v1/namespaces/default/events", &event("default", &format!("ev-{i}"), 10)).await
                };
                assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let last_write = Instant::now();
    h.post("/api/v1/namespaces/default/configmaps", &configmap("stays", json!({}))).await;
    let mut etcd = etcd_client::Client::connect([h.etcd.endpoint.as_str()], None).await.unwrap();
    let leases = etcd.leases().await.unwrap();
    let ids: Vec<i64> = leases.leases().iter().map(|l| l.id()).collect();
    eprintln!("{n} events written in {:?} on {} leases", last_write - first_write, ids.len());
    assert!(!ids.is_empty() && ids.len() <= 20, "{} leases for {n} events", ids.len());
    // Each lease is granted for the TTL plus the 5% it may be shared for.
    let ttl = etcd.lease_client().time_to_live(ids[0], None).await.unwrap();
    assert_eq!(ttl.granted_ttl(), 11);
    let count = |path: &'static str| {
        let h = &h;
        async move { h.get(path).await.json()["items"].as_array().map(|a| a.len()).unwrap_or(usize::MAX) }
    };
    assert_eq!(count("/api/v1/namespaces/default/events").await, n - n / 10);
    assert_eq!(count("/apis/events.k8s.io/v1/namespaces/default/events").await, n / 10);
    testkit::wait_for(Duration::from_secs(60), || async {
        let left = (count("/api/v1/namespaces/default/events").await, count("/apis/events.k8s.io/v1/namespaces/default/events").await);
        (left == (0, 0)).then_some(())
    })
    .await
    .expect("events expire");
    let gone_after = first_write.elapsed();
    eprintln!("events gone {gone_after:?} after the first write, {:?} after the last", last_write.elapsed());
    assert!(gone_after >= Duration::from_secs(10), "expired early: {gone_after:?}");
    assert_eq!(h.get("/api/v1/namespaces/default/configmaps/stays").await.status, StatusCode::OK);
}

/// Defect 3: with a 1 s compaction interval old revisions go from etcd (through the shared
/// `compact_rev_key`), and what asks for them gets upstream's 410s.
#[tokio::test]
async fn compaction_drops_old_revisions_and_answers_410_as_upstream() {
    let h = Harness::start_with(&["--etcd-compaction-interval=1s"]).await;
    let base = "/api/v1/namespaces/default/configmaps";
    let first = h.post(base, &configmap("c0", json!({}))).await.json();
    let rv1: i64 = first["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    for i in 1..4 {
        h.post(base, &configmap(&format!("c{i}"), json!({}))).await;
    }
    let page = h.get(&format!("{base}?limit=1")).await.json();
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    h.patch(&format!("{base}/c0"), "application/merge-patch+json", &json!({"data": {"k": "2"}})).await;
    let s = etcd_storage(&h).await;
    let started = Instant::now();
    // Compaction trails one interval: wait until the page's revision is gone from etcd.
    let page_rv: i64 = page["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    testkit::wait_for(Duration::from_secs(30), || async {
        let r = s.list("/registry/configmaps/", ListOptions { revision: page_rv, ..Default::default() }).await;
        matches!(r, Err(StorageError::Compacted { .. })).then_some(())
    })
    .await
    .expect("etcd compacted");
    eprintln!("revision {page_rv} compacted {:?} after the last write", started.elapsed());
    assert!(s.get(apiserver::compaction::COMPACT_REV_KEY).await.unwrap().is_some());

    // A watch from before the compaction: an ERROR event with upstream's message.
    let w = h.get(&format!("{base}?watch=true&resourceVersion={rv1}&timeoutSeconds=1")).await;
    assert_eq!(w.status, StatusCode::OK);
    let ev = w.events();
    assert_eq!(ev.len(), 1, "{}", w.text());
    assert_eq!((ev[0]["type"].as_str(), ev[0]["object"]["code"].as_i64()), (Some("ERROR"), Some(410)));
    assert_eq!(ev[0]["object"]["reason"], "Expired");
    let msg = ev[0]["object"]["message"].as_str().unwrap();
    let compacted: i64 = msg
        .strip_prefix(&format!("too old resource version: {rv1} ("))
        .and_then(|m| m.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{msg}"))
        .parse()
        .unwrap();
    assert!(compacted > rv1);

    // An exact list at a compacted revision.
    let r = h.get(&format!("{base}?resourceVersion={rv1}&resourceVersionMatch=Exact")).await;
    assert_eq!(r.status, StatusCode::GONE, "{}", r.text());
    assert_eq!(r.json()["message"], "The resourceVersion for the provided list is too old.");
    assert_eq!(r.json()["reason"], "Expired");

    // An expired continue token: 410 with a token that goes on at the latest revision.
    let r = h.get(&format!("{base}?limit=1&continue={token}")).await;
    assert_eq!(r.status, StatusCode::GONE, "{}", r.text());
    let status = r.json();
    assert_eq!(status["reason"], "Expired");
    assert!(status["message"].as_str().unwrap().starts_with("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response"));
    let fresh = status["metadata"]["continue"].as_str().expect("a continue token in the Status").to_string();
    let decoded: Value = serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(&fresh).unwrap()).unwrap();
    assert_eq!(decoded["rv"], -1);
    let rest = h.get(&format!("{base}?limit=10&continue={fresh}")).await;
    assert_eq!(rest.status, StatusCode::OK, "{}", rest.text());
    let names: Vec<String> = rest.json()["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["c1", "c2", "c3"]);
}

const WATCH_LIST: &str = "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true";

/// Defect 4: a watch-list sends the state as ADDED, then the initial-events-end bookmark.
#[tokio::test]
async fn watch_list_sends_initial_events_then_an_annotated_bookmark() {
    let h = Harness::start().await;
    h.post("/api/v1/namespaces", &json!({"metadata": {"name": "wl"}})).await;
    let base = "/api/v1/namespaces/wl/configmaps";
    let mut newest = 0i64;
    for (name, app) in [("a", "x"), ("b", "y"), ("c", "x")] {
        let c = h.post(base, &configmap(name, json!({"app": app}))).await.json();
        newest = newest.max(c["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap());
    }
    for (query, want) in [("", vec!["a", "b", "c"]), ("&resourceVersion=0", vec!["a", "b", "c"]), ("&labelSelector=app%3Dx", vec!["a", "c"])] {
        let r = h.get(&format!("{base}?{WATCH_LIST}&timeoutSeconds=2{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let ev = r.events();
        let added: Vec<&str> = ev.iter().take_while(|e| e["type"] == "ADDED").map(|e| e["object"]["metadata"]["name"].as_str().unwrap()).collect();
        assert_eq!(added, want, "{query}: {}", r.text());
        let end = &ev[want.len()];
        assert_eq!(end["type"], "BOOKMARK", "{}", r.text());
        assert_eq!(end["object"]["kind"], "ConfigMap");
        assert_eq!(end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
        let rv: i64 = end["object"]["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
        assert!(rv >= newest, "{rv} < {newest}");
    }
    // Not older than a given revision: the bookmark is at least there.
    let r = h.get(&format!("{base}?{WATCH_LIST}&timeoutSeconds=1&resourceVersion={newest}")).await;
    assert_eq!(r.events().iter().filter(|e| e["type"] == "ADDED").count(), 3);
    // A revision the cache does not reach: upstream's 504, for a watch-list as for a watch.
    let far = newest + 1_000_000;
    for query in [format!("{WATCH_LIST}&resourceVersion={far}"), format!("watch=true&resourceVersion={far}")] {
        let r = h.get(&format!("{base}?{query}")).await;
        assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text());
        assert!(r.json()["message"].as_str().unwrap().starts_with(&format!("Too large resource version: {far}, current: ")), "{}", r.text());
    }
    // sendInitialEvents=false: no initial state.
    let r = h.get(&format!("{base}?watch=true&sendInitialEvents=false&resourceVersionMatch=NotOlderThan&timeoutSeconds=1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.events().iter().all(|e| e["type"] != "ADDED"), "{}", r.text());
    // The combinations upstream refuses, as 422 on ListOptions.
    for bad in [
        "watch=true&sendInitialEvents=true&allowWatchBookmarks=true",
        "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan",
        "watch=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
        "watch=true&sendInitialEvents=true&resourceVersionMatch=Exact&allowWatchBookmarks=true",
    ] {
        let r = h.get(&format!("{base}?{bad}")).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {}", r.text());
        assert_eq!(r.json()["details"]["kind"], "ListOptions.meta.k8s.io", "{bad}");
    }
}

/// Defect 4: kube-rs's watcher with streaming lists gets its initial state through a watch-list.
#[tokio::test]
async fn kube_watcher_with_streaming_lists_gets_the_initial_state() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher;
    let h = Harness::start().await;
    h.post("/api/v1/namespaces", &json!({"metadata": {"name": "kw"}})).await;
    for name in ["a", "b"] {
        h.post("/api/v1/namespaces/kw/configmaps", &configmap(name, json!({}))).await;
    }
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(h.api.client().await, "kw");
    let mut stream = watcher(api, watcher::Config::default().streaming_lists()).boxed();
    let mut initial = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.next()).await.expect("watcher event") {
            Some(Ok(watcher::Event::Init)) => {}
            Some(Ok(watcher::Event::InitApply(cm))) => initial.push(cm.metadata.name.unwrap()),
            Some(Ok(watcher::Event::InitDone)) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(initial, ["a", "b"]);
    h.post("/api/v1/namespaces/kw/configmaps", &configmap("c", json!({}))).await;
    match tokio::time::timeout(Duration::from_secs(30), stream.next()).await.expect("watcher event") {
        Some(Ok(watcher::Event::Apply(cm))) => assert_eq!(cm.metadata.name.as_deref(), Some("c")),
        other => panic!("unexpected {other:?}"),
    }
}

/// Defect 4: with bookmarks asked for, one comes shortly before the timeout even when the
/// revision has not moved (upstream sends it 2 s before the deadline).
#[tokio::test]
async fn watch_sends_a_bookmark_shortly_before_its_timeout() {
    let h = Harness::start().await;
    let base = "/apis/scheduling.k8s.io/v1/priorityclasses";
    let rv = h.get(base).await.json()["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let start = Instant::now();
    let resp = h
        .http
        .get(format!("{}{base}?watch=true&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=4", h.api.url))
        .bearer_auth(support::TOKEN)
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let mut bookmarks = Vec::new();
    let mut buf = Vec::new();
    while let Some(chunk) = body.next().await {
        buf.extend_from_slice(&chunk.unwrap());
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let e: Value = serde_json::from_slice(&line).unwrap();
            if e["type"] == "BOOKMARK" {
                bookmarks.push(start.elapsed());
            }
        }
    }
    let ended = start.elapsed();
    eprintln!("bookmarks at {bookmarks:?}, stream ended at {ended:?}");
    assert!(ended >= Duration::from_secs(4));
    // One comes about 2 s before the end (not at the start, not at the very end).
    let before_timeout = |b: &Duration| *b >= Duration::from_millis(1500) && ended - *b >= Duration::from_millis(1500);
    assert!(bookmarks.iter().any(before_timeout), "{bookmarks:?} / {ended:?}");
}

/// Defect 3: two apiservers on one etcd compact once per interval between them, not once
/// each: only the one whose compare on `compact_rev_key` succeeds writes it and compacts.
#[tokio::test]
async fn two_apiservers_share_one_compaction_per_interval() {
    let h = Harness::start_with(&["--etcd-compaction-interval=1s"]).await;
    let _second = testkit::ApiServer::start_with_args(&h.etcd, &["--etcd-compaction-interval=1s"]).await;
    let etcd = etcd_client::Client::connect([h.etcd.endpoint.as_str()], None).await.unwrap();
    let version = || {
        let mut kv = etcd.kv_client();
        async move {
            let r = kv.get(apiserver::compaction::COMPACT_REV_KEY, None).await.ok()?;
            r.kvs().first().map(|kv| kv.version())
        }
    };
    let v0 = testkit::wait_for(Duration::from_secs(30), version).await.unwrap();
    let start = Instant::now();
    testkit::wait_for(Duration::from_secs(30), || async { version().await.filter(|v| *v >= v0 + 4) }).await.unwrap();
    let took = start.elapsed();
    eprintln!("4 compaction rounds between two apiservers in {took:?}");
    // Both compacting each interval would write the key twice a second.
    assert!(took >= Duration::from_millis(3500), "{took:?}");
}

/// A watcher that stops reading while 3,000 ConfigMaps of 4 KB (12 MB, more than the socket
/// buffers and three times the cache's live ring) are written falls behind the ring; it goes
/// on from the cache's history and sees every one of them once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_behind_the_live_ring_resumes_from_the_history_and_misses_nothing() {
    let h = std::sync::Arc::new(Harness::start().await);
    const CMS: &str = "/api/v1/namespaces/default/configmaps";
    let rv = h.get(CMS).await.json()["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let resp = h
        .http
        .get(format!("{}{CMS}?watch=true&resourceVersion={rv}&timeoutSeconds=300", h.api.url))
        .bearer_auth(support::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let blob = "q".repeat(4096);
    futures::stream::iter(0..3000)
        .map(|i| {
            let (h, blob) = (h.clone(), blob.clone());
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("lag-{i:04}")}, "data": {"b": blob}});
            async move { assert_eq!(h.post(CMS, &cm).await.status, StatusCode::CREATED) }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(120), async {
        while seen.len() < 3000 {
            let Some(Ok(chunk)) = stream.next().await else { break };
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let ev: Value = serde_json::from_slice(&line).unwrap();
                assert_eq!(ev["type"], "ADDED", "{}", ev["object"]);
                *seen.entry(ev["object"]["metadata"]["name"].as_str().unwrap().to_string()).or_default() += 1;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the watch ended or stalled after {} of 3000 events", seen.len());
    assert_eq!(seen.len(), 3000);
    assert!(seen.values().all(|n| *n == 1), "an event came twice");
}
