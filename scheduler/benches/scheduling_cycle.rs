//! The scheduling cycle alone (no API): snapshot update, PreFilter,
//! Filter, Score, selection and assume, at 500 and 5,000 nodes. The
//! reported throughput (elements/s) is pods per second. The cluster is
//! kept about half full (the oldest pods leave), so every iteration
//! measures the same steady state.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use scheduler::algorithm::Algorithm;
use scheduler::cache::Cache;
use scheduler::framework::{CycleState, PodInfo, Snapshot};
use scheduler::profile::load_profiles;
use scheduler::testing::{node, pod, with_node_labels};

fn cycle(c: &mut Criterion) {
    let profiles = load_profiles(None).expect("built-in profiles");
    let mut group = c.benchmark_group("scheduling_cycle");
    group.throughput(Throughput::Elements(1));
    for nodes in [500usize, 5000] {
        for profile in ["default-scheduler", "binpack"] {
            let fw = profiles[profile].clone();
            let mut cache = Cache::default();
            for i in 0..nodes {
                let zone = format!("zone-{}", i % 3);
                cache.add_or_update_node(Arc::new(with_node_labels(
                    node(&format!("node-{i}"), "32", "256Gi", "110"),
                    &[("topology.kubernetes.io/zone", &zone)],
                )));
            }
            let mut snapshot = Snapshot::default();
            let mut alg = Algorithm::with_seed(1);
            let mut n = 0u64;
            // Steady state: pods leave as new ones come, so the cluster
            // stays about half full however many iterations Criterion runs.
            let mut placed = std::collections::VecDeque::new();
            let steady = nodes * 50;
            group.bench_with_input(BenchmarkId::new(profile, nodes), &nodes, |b, _| {
                b.iter(|| {
                    n += 1;
                    let info = Arc::new(PodInfo::new(Arc::new(pod(&format!("p{n}"), "10m", "16Mi"))));
                    cache.update_snapshot(&mut snapshot);
                    let mut state = CycleState::default();
                    let r = alg.schedule(&fw, &mut state, &info, &snapshot).expect("fits");
                    cache.assume_pod(Arc::new(info.assumed_on(&r.node)), &r.node);
                    placed.push_back(info.key.clone());
                    if placed.len() > steady {
                        if let Some(gone) = placed.pop_front() {
                            cache.forget_pod(&gone);
                        }
                    }
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, cycle);
criterion_main!(benches);
