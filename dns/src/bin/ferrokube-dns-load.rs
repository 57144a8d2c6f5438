//! A bounded DNS load driver for hack/bench-dns.sh: `--concurrency` workers
//! each send one UDP query at a time (names from `--names`, one per line)
//! until `--duration` or `--max-queries`, then print queries per second and
//! latency percentiles as one JSON line. Loopback servers only.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    server: SocketAddr,
    #[arg(long)]
    names: std::path::PathBuf,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[arg(long, default_value_t = 200_000)]
    max_queries: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = Args::parse();
    if !a.server.ip().is_loopback() {
        eprintln!("ferrokube-dns-load: only loopback servers");
        std::process::exit(2);
    }
    let names: Vec<Vec<u8>> = std::fs::read_to_string(&a.names)
        .expect("reading --names")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut m = Message::query();
            m.metadata.recursion_desired = true;
            m.add_query(Query::query(Name::from_str(l.trim()).expect("a name"), RecordType::A));
            m.to_vec().unwrap()
        })
        .collect();
    let names = Arc::new(names);
    let sent = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..a.concurrency {
        let (names, sent, server, max) = (names.clone(), sent.clone(), a.server, a.max_queries);
        tasks.push(tokio::spawn(async move {
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            sock.connect(server).await.unwrap();
            let mut lat = Vec::new();
            let mut lost = 0u64;
            let mut buf = vec![0u8; 1500];
            let mut i = w;
            while Instant::now() < deadline && sent.fetch_add(1, Ordering::Relaxed) < max {
                let mut q = names[i % names.len()].clone();
                i += 1;
                let id = (i as u16).to_be_bytes();
                q[0] = id[0];
                q[1] = id[1];
                let t = Instant::now();
                sock.send(&q).await.unwrap();
                loop {
                    match tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await {
                        Ok(Ok(n)) if n >= 2 && buf[..2] == id => {
                            lat.push(t.elapsed());
                            break;
                        }
                        Ok(_) => continue,
                        Err(_) => {
                            lost += 1;
                            break;
                        }
                    }
                }
            }
            (lat, lost)
        }));
    }
    let mut lat = Vec::new();
    let mut lost = 0;
    for t in tasks {
        let (l, n) = t.await.unwrap();
        lat.extend(l);
        lost += n;
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{{\"answered\":{},\"lost\":{},\"seconds\":{:.2},\"qps\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        lat.len(),
        lost,
        secs,
        lat.len() as f64 / secs,
        pct(0.50),
        pct(0.99)
    );
}
