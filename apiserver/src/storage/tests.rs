//! One conformance suite for storage backends (upstream pkg/storage/testing/store_tests.go):
//! every backend must pass it. Each case uses its own key prefix so the suite can share a backend.

use super::*;
use futures::StreamExt;
use std::time::Duration;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Runs every case against `s`; panics (in tests) on the first broken contract.
pub async fn run_all(s: DynStorage) {
    create_then_get(&*s).await;
    create_twice_is_already_exists(&*s).await;
    update_compares_revision(&*s).await;
    delete_with_preconditions(&*s).await;
    list_is_ordered_and_paginates(&*s).await;
    guaranteed_update_retries_on_conflict(&*s).await;
    guaranteed_update_from_a_stale_copy_never_loses_a_write(&*s).await;
    watch_sees_changes_from_a_revision(&*s).await;
    compacted_revision_is_reported(&*s).await;
    probe_counts_keys_and_finds_the_newest(&*s).await;
    unlimited_list_and_pages_see_one_revision(&*s).await;
    keys_written_with_a_ttl_expire(&*s).await;
    compacting_twice_is_not_an_error(&*s).await;
}

async fn unlimited_list_and_pages_see_one_revision(s: &dyn Storage) {
    // More keys than the etcd backend's first page, so an unlimited list pages internally.
    let n = 250;
    let keys: Vec<String> = (0..n).map(|i| format!("/t9/k{i:04}")).collect();
    for chunk in keys.chunks(25) {
        for r in futures::future::join_all(chunk.iter().map(|k| s.create(k, b(&"x".repeat(100))))).await {
            r.unwrap();
        }
    }
    let all = s.list("/t9/", ListOptions::default()).await.unwrap();
    assert_eq!((all.items.len(), all.more), (n, false));
    s.create("/t9/later", b("x")).await.unwrap();
    let mut seen = 0;
    let rev = paging::for_each_page(s, "/t9/", all.revision, |page| seen += page.len()).await.unwrap();
    assert_eq!((seen, rev), (n, all.revision));
    let mut pages = 0;
    paging::for_each_page(s, "/t9/", 0, |_| pages += 1).await.unwrap();
    assert!(pages >= 1);
}

async fn keys_written_with_a_ttl_expire(s: &dyn Storage) {
    let ttl = Duration::from_secs(2);
    let rev = s.create_with_ttl("/t10/a", b("1"), ttl).await.unwrap();
    let rev = s.update_with_ttl("/t10/a", b("2"), rev, ttl).await.unwrap();
    // Written right after: shares the lease, so both go (on etcd in one transaction).
    let rev = rev.max(s.create_with_ttl("/t10/b", b("3"), ttl).await.unwrap());
    s.create("/t10/kept", b("k")).await.unwrap();
    let mut w = s.watch("/t10/", rev + 1, Default::default()).await.unwrap();
    // The backend deletes the keys itself; a watcher sees them as any delete.
    let mut deleted = Vec::new();
    while deleted.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(20), w.next()).await.expect("expiry").unwrap().unwrap();
        if e.kind == EventKind::Delete {
            deleted.push((e.key, e.value, e.mod_revision));
        }
    }
    deleted.sort();
    assert_eq!(deleted[0].2, deleted[1].2, "one lease, one revocation, one revision");
    let deleted: Vec<_> = deleted.into_iter().map(|(k, v, _)| (k, v)).collect();
    assert_eq!(deleted, [("/t10/a".to_string(), b("2")), ("/t10/b".to_string(), b("3"))]);
    assert!(s.get("/t10/a").await.unwrap().is_none());
    assert!(s.get("/t10/kept").await.unwrap().is_some());
}

async fn compacting_twice_is_not_an_error(s: &dyn Storage) {
    let rev = s.create("/t11/a", b("1")).await.unwrap();
    s.compact(rev).await.unwrap();
    s.compact(rev).await.unwrap();
    assert!(s.compacted_revision() >= rev);
    // The compacted revision itself stays readable, as in etcd.
    assert!(s.list("/t11/", ListOptions { revision: rev, ..Default::default() }).await.is_ok());
}

async fn probe_counts_keys_and_finds_the_newest(s: &dyn Storage) {
    assert_eq!(s.probe("/probe/").await.unwrap().count, 0);
    s.create("/probe/a", b("1")).await.unwrap();
    let rb = s.create("/probe/b", b("1")).await.unwrap();
    let ra = s.update("/probe/a", b("2"), s.get("/probe/a").await.unwrap().unwrap().mod_revision).await.unwrap();
    s.create("/probeX", b("outside")).await.unwrap();
    let p = s.probe("/probe/").await.unwrap();
    assert_eq!((p.count, p.max_mod_revision), (2, ra));
    assert!(p.revision > ra);
    s.delete("/probe/a", None).await.unwrap();
    let p = s.probe("/probe/").await.unwrap();
    assert_eq!((p.count, p.max_mod_revision), (1, rb));
}

async fn create_then_get(s: &dyn Storage) {
    let rev = s.create("/t1/a", b("1")).await.unwrap();
    let kv = s.get("/t1/a").await.unwrap().unwrap();
    assert_eq!(kv.value, b("1"));
    assert_eq!(kv.mod_revision, rev);
    assert_eq!(kv.create_revision, rev);
    assert!(s.get("/t1/missing").await.unwrap().is_none());
    assert!(s.current_revision().await.unwrap() >= rev);
}

async fn create_twice_is_already_exists(s: &dyn Storage) {
    s.create("/t2/a", b("1")).await.unwrap();
    assert!(matches!(s.create("/t2/a", b("2")).await, Err(StorageError::AlreadyExists { .. })));
}

async fn update_compares_revision(s: &dyn Storage) {
    let rev = s.create("/t3/a", b("1")).await.unwrap();
    let rev2 = s.update("/t3/a", b("2"), rev).await.unwrap();
    assert!(rev2 > rev);
    match s.update("/t3/a", b("3"), rev).await {
        Err(StorageError::Conflict { current: Some(c), .. }) => {
            assert_eq!(c.value, b("2"));
            assert_eq!(c.mod_revision, rev2);
        }
        other => panic!("expected conflict, got {other:?}"),
    }
    let kv = s.get("/t3/a").await.unwrap().unwrap();
    assert_eq!(kv.create_revision, rev);
}

async fn delete_with_preconditions(s: &dyn Storage) {
    let rev = s.create("/t4/a", b("1")).await.unwrap();
    assert!(matches!(s.delete("/t4/a", Some(rev + 1000)).await, Err(StorageError::Conflict { .. })));
    let (old, drev) = s.delete("/t4/a", Some(rev)).await.unwrap();
    assert_eq!(old.value, b("1"));
    assert!(drev > rev);
    assert!(matches!(s.delete("/t4/a", None).await, Err(StorageError::NotFound { .. })));
}

async fn list_is_ordered_and_paginates(s: &dyn Storage) {
    for k in ["c", "a", "b"] {
        s.create(&format!("/t5/{k}"), b(k)).await.unwrap();
    }
    s.create("/t5x/z", b("z")).await.unwrap();
    let all = s.list("/t5/", ListOptions::default()).await.unwrap();
    let keys: Vec<_> = all.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/t5/a", "/t5/b", "/t5/c"]);
    assert!(!all.more);
    let page = s.list("/t5/", ListOptions { limit: 2, ..Default::default() }).await.unwrap();
    assert_eq!(page.items.len(), 2);
    assert!(page.more);
    // Continue at the page's revision: a write in between is not seen.
    s.create("/t5/d", b("d")).await.unwrap();
    let next = s
        .list("/t5/", ListOptions { revision: page.revision, start_key: Some("/t5/b\0".into()), limit: 2 })
        .await
        .unwrap();
    let keys: Vec<_> = next.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/t5/c"]);
}

async fn guaranteed_update_retries_on_conflict(s: &dyn Storage) {
    let rev = s.create("/t6/a", b("0")).await.unwrap();
    // Several concurrent increments: each conflict must be retried from a fresh read.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        tasks.push(guaranteed_update::<StorageError, _>(s, "/t6/a", |cur| {
            let cur = cur.expect("exists");
            let n: i64 = std::str::from_utf8(&cur.value).unwrap().parse().unwrap();
            Ok(UpdateDecision::Write(b(&(n + 1).to_string())))
        }));
    }
    for r in futures::future::join_all(tasks).await {
        r.unwrap();
    }
    let kv = s.get("/t6/a").await.unwrap().unwrap();
    assert_eq!(kv.value, b("8"));
    assert!(kv.mod_revision > rev);
    let out = guaranteed_update::<StorageError, _>(s, "/t6/new", |cur| {
        assert!(cur.is_none());
        Ok(UpdateDecision::Write(b("created")))
    })
    .await
    .unwrap();
    assert!(matches!(out, UpdateOutcome::Written(_)));
}

async fn guaranteed_update_from_a_stale_copy_never_loses_a_write(s: &dyn Storage) {
    let r1 = s.create("/t6s/a", b("1")).await.unwrap();
    let stale = s.get("/t6s/a").await.unwrap().unwrap();
    s.update("/t6s/a", b("2"), r1).await.unwrap();
    // A write decided on the stale copy conflicts and is redone on the current value.
    let out = guaranteed_update_from::<StorageError, _>(s, "/t6s/a", Some(stale.clone()), |cur| {
        let n: i64 = std::str::from_utf8(&cur.unwrap().value).unwrap().parse().unwrap();
        Ok(UpdateDecision::Write(b(&(n * 10).to_string())))
    })
    .await
    .unwrap();
    assert!(matches!(out, UpdateOutcome::Written(ref kv) if kv.value == b("20")), "{out:?}");
    // A no-op or an error decided on a stale copy is confirmed against a fresh read.
    let mut seen = Vec::new();
    let out = guaranteed_update_from::<StorageError, _>(s, "/t6s/a", Some(stale.clone()), |cur| {
        let v = cur.unwrap().value.clone();
        seen.push(v.clone());
        Ok(if v == b("1") { UpdateDecision::Unchanged } else { UpdateDecision::Write(b("30")) })
    })
    .await
    .unwrap();
    assert_eq!(seen, vec![b("1"), b("20")]);
    assert!(matches!(out, UpdateOutcome::Written(ref kv) if kv.value == b("30")), "{out:?}");
    let out = guaranteed_update_from::<StorageError, _>(s, "/t6s/a", Some(stale), |cur| {
        if cur.unwrap().value == b("1") {
            Err(StorageError::Internal("refused on the stale copy".into()))
        } else {
            Ok(UpdateDecision::Unchanged)
        }
    })
    .await
    .unwrap();
    assert!(matches!(out, UpdateOutcome::Unchanged(ref kv) if kv.value == b("30")), "{out:?}");
    assert_eq!(s.get("/t6s/a").await.unwrap().unwrap().value, b("30"));
}

async fn watch_sees_changes_from_a_revision(s: &dyn Storage) {
    let rev = s.create("/t7/a", b("1")).await.unwrap();
    let mut w = s.watch("/t7/", rev + 1, Default::default()).await.unwrap();
    let rev2 = s.update("/t7/a", b("2"), rev).await.unwrap();
    s.delete("/t7/a", None).await.unwrap();
    let e1 = tokio::time::timeout(Duration::from_secs(10), w.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(e1.kind, EventKind::Put);
    assert_eq!(e1.value, b("2"));
    assert_eq!(e1.mod_revision, rev2);
    assert_eq!(e1.prev, Some(b("1")));
    let e2 = tokio::time::timeout(Duration::from_secs(10), w.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(e2.kind, EventKind::Delete);
    assert_eq!(e2.value, b("2"));
    // A watch from the past replays history.
    let mut w2 = s.watch("/t7/", rev, Default::default()).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), w2.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.mod_revision, rev);
}

async fn compacted_revision_is_reported(s: &dyn Storage) {
    let rev = s.create("/t8/a", b("1")).await.unwrap();
    let rev2 = s.update("/t8/a", b("2"), rev).await.unwrap();
    s.update("/t8/a", b("3"), rev2).await.unwrap();
    s.compact(rev2).await.unwrap();
    let r = s.list("/t8/", ListOptions { revision: rev, ..Default::default() }).await;
    assert!(matches!(r, Err(StorageError::Compacted { .. })), "{r:?}");
    match s.watch("/t8/", rev, Default::default()).await {
        Err(StorageError::Compacted { .. }) => {}
        Ok(mut w) => {
            let e = tokio::time::timeout(Duration::from_secs(10), w.next()).await.unwrap();
            assert!(matches!(e, Some(Err(StorageError::Compacted { .. }))), "{e:?}");
        }
        Err(e) => panic!("unexpected {e:?}"),
    }
}
