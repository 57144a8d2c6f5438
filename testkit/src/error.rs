//! Harness errors. Tests usually `.expect()` them; the messages carry the
//! log tail so a failed start explains itself.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binary {name} not found at {path}: run `cargo build --workspace --bins` first")]
    MissingBinary { name: String, path: PathBuf },

    #[error("spawning {name} ({program}): {source}")]
    Spawn {
        name: String,
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{name} exited early with {status}; last lines of {log}:\n{tail}")]
    ExitedEarly {
        name: String,
        status: String,
        log: PathBuf,
        tail: String,
    },

    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout { what: String, waited: Duration },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("`{command}` failed ({status}):\n{output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },

    #[error(transparent)]
    Kubeconfig(#[from] apimachinery::kubeconfig::KubeconfigError),

    #[error("kube client: {0}")]
    Kube(#[from] kube::Error),

    #[error("client: {0}")]
    Client(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
