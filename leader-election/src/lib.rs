//! Lease-based leader election, as client-go's `tools/leaderelection`.
//!
//! Start here: build a [`LeaderElector`] from a `kube::Client` and a
//! [`LeaseConfig`], then either
//! - call [`LeaderElector::run`] with the work to do while leading: it waits
//!   until this process holds the Lease, runs the work, keeps renewing, and
//!   returns [`Error::LeadershipLost`] if a renewal misses `renew_deadline`
//!   (upstream components exit at that point; so should yours), or
//! - call [`LeaderElector::spawn`] and watch the returned
//!   `watch::Receiver<bool>` (`true` while leading).
//!
//! The Lease is `coordination.k8s.io/v1` in `namespace/name`. A holder that
//! stops renewing loses the Lease once `lease_duration` has passed since
//! another candidate last *observed* a change of the record (local clock,
//! as upstream, so clock skew between machines does not matter).
//!
//! ```no_run
//! # async fn f(client: kube::Client) -> Result<(), leader_election::Error> {
//! use leader_election::{LeaderElector, LeaseConfig};
//! let elector = LeaderElector::new(client, LeaseConfig::new("kube-system", "kube-scheduler", "host-1"));
//! elector.run(|| async { /* controllers */ }).await?;
//! # Ok(()) }
//! ```

mod decision;

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

pub use decision::{decide, Action, Observed};

/// Timing and identity of one candidate. Defaults follow kube-scheduler:
/// 15 s lease, 10 s renew deadline, 2 s retry period.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per process (upstream: hostname + "_" + uuid).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        LeaseConfig {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("leader election lost: {identity} failed to renew lease {namespace}/{name}")]
    LeadershipLost {
        namespace: String,
        name: String,
        identity: String,
    },
    #[error("invalid lease config: {0}")]
    InvalidConfig(&'static str),
}

pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Option<Observed>,
    tx: watch::Sender<bool>,
}

impl LeaderElector {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        let api = Api::namespaced(client, &config.namespace);
        let (tx, _) = watch::channel(false);
        LeaderElector {
            api,
            config,
            observed: None,
            tx,
        }
    }

    /// A receiver that is `true` while this candidate leads.
    pub fn is_leader(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }

    /// Runs the election in a task; the receiver follows leadership.
    /// The task ends (with `LeadershipLost`) the first time leadership is lost.
    pub fn spawn(self) -> (watch::Receiver<bool>, tokio::task::JoinHandle<Error>) {
        let rx = self.is_leader();
        let handle = tokio::spawn(async move {
            match self.run(std::future::pending::<std::convert::Infallible>).await {
                Ok(never) => match never {},
                Err(e) => e,
            }
        });
        (rx, handle)
    }

    /// Blocks until leader, then runs `work` while renewing. Returns the
    /// work's output if it finishes first, `LeadershipLost` otherwise.
    pub async fn run<F, Fut, T>(mut self, work: F) -> Result<T, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        self.validate()?;
        self.acquire().await;
        tracing::info!(lease = %self.config.name, identity = %self.config.identity, "acquired leadership");
        let _ = self.tx.send(true);
        let result = tokio::select! {
            out = work() => Ok(out),
            err = self.renew_loop() => Err(err),
        };
        let _ = self.tx.send(false);
        result
    }

    fn validate(&self) -> Result<(), Error> {
        let c = &self.config;
        if c.lease_duration <= c.renew_deadline {
            return Err(Error::InvalidConfig(
                "lease_duration must be greater than renew_deadline",
            ));
        }
        if c.renew_deadline <= c.retry_period {
            return Err(Error::InvalidConfig("renew_deadline must be greater than retry_period"));
        }
        if c.identity.is_empty() {
            return Err(Error::InvalidConfig("identity must not be empty"));
        }
        Ok(())
    }

    async fn acquire(&mut self) {
        loop {
            if self.try_acquire_or_renew().await {
                return;
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews every retry period; gives up when no renewal succeeded
    /// within `renew_deadline`.
    async fn renew_loop(&mut self) -> Error {
        let mut last_renew = Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            if self.try_acquire_or_renew().await {
                last_renew = Instant::now();
            } else if last_renew.elapsed() >= self.config.renew_deadline {
                tracing::error!(lease = %self.config.name, "failed to renew lease within the renew deadline");
                return Error::LeadershipLost {
                    namespace: self.config.namespace.clone(),
                    name: self.config.name.clone(),
                    identity: self.config.identity.clone(),
                };
            }
        }
    }

    /// One round of upstream's tryAcquireOrRenew; true if we hold the Lease.
    async fn try_acquire_or_renew(&mut self) -> bool {
        let current = match self.api.get_opt(&self.config.name).await {
            Ok(lease) => lease,
            Err(e) => {
                tracing::warn!(error = %e, "error retrieving lease");
                return false;
            }
        };
        let now = Instant::now();
        let wall = k8s_openapi::jiff::Timestamp::now();
        let (action, observed) = decide(&self.config, current.as_ref(), self.observed.take(), now, wall);
        self.observed = observed;
        let pp = PostParams::default();
        let result = match action {
            Action::Wait => return false,
            Action::Create(lease) => self.api.create(&pp, &lease).await,
            Action::Update(lease) => self.api.replace(&self.config.name, &pp, &lease).await,
        };
        match result {
            Ok(lease) => {
                self.observed = Some(Observed::of(&lease, Instant::now()));
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "lease write refused");
                false
            }
        }
    }
}
