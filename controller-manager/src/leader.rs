//! --leader-elect: start the controllers only while holding the Lease.

use crate::controllers::Ctx;
use crate::Error;

pub async fn run_as_leader(ctx: &Ctx, enabled: &[&'static str]) -> Result<(), Error> {
    let _ = (ctx, enabled);
    Err(Error::LeaderElection("leader-election crate not available yet".into()))
}
