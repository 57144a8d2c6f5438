//! The seam between what the API says and how the kernel is programmed.

use crate::state::ServiceState;

/// What one sync did, for the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Chains written (added or replaced) by this sync.
    pub chains_written: usize,
    pub chains_deleted: usize,
    /// Rules in the whole ruleset after the sync.
    pub rules_total: usize,
    /// Endpoints programmed.
    pub endpoints_total: usize,
    /// Whether this sync rewrote everything (the first after start).
    pub full: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("nft failed: {0}")]
    Nft(String),
    #[error("cannot run {cmd}: {source}")]
    Exec {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
}

/// A dataplane. `sync` makes it carry `state`, as one transaction.
pub trait ProxyBackend {
    fn sync(&mut self, state: &ServiceState) -> Result<SyncStats, SyncError>;
}
