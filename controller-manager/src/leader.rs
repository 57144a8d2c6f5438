//! --leader-elect: start the controllers only while holding the Lease
//! `kube-system/kube-controller-manager`, and exit when it is lost, as
//! upstream does (a restarted process starts from a clean cache).

use leader_election::{LeaderElector, LeaseConfig};

use crate::controllers::Ctx;
use crate::Error;

fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}_{:016x}", rand::random::<u64>())
}

pub async fn run_as_leader(ctx: &Ctx, enabled: &[&'static str]) -> Result<(), Error> {
    let config = LeaseConfig::new(
        &ctx.opts.leader_elect_resource_namespace,
        &ctx.opts.leader_elect_resource_name,
        &identity(),
    );
    let elector = LeaderElector::new(ctx.client.clone(), config);
    elector
        .run(|| async {
            crate::start_controllers(ctx, enabled);
            std::future::pending::<()>().await
        })
        .await
        .map_err(|e| Error::LeaderElection(e.to_string()))
}
