//! A `kube::Client` from an optional kubeconfig path: the file when one is
//! given, else in-cluster or `$KUBECONFIG` inference, as every component's
//! `--kubeconfig` flag means.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("cannot read kubeconfig {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("cannot infer a client config: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("cannot build the client: {0}")]
    Client(#[from] kube::Error),
}

/// The client config for `path`, or inferred when `path` is None.
pub async fn client_config(path: Option<&Path>) -> Result<kube::Config, KubeconfigError> {
    let Some(path) = path else {
        return Ok(kube::Config::infer().await?);
    };
    let read = |source| KubeconfigError::Read { path: path.to_path_buf(), source };
    let kc = kube::config::Kubeconfig::read_from(path).map_err(read)?;
    kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(read)
}

/// A client for `path`, or inferred when `path` is None.
pub async fn client(path: Option<&Path>) -> Result<kube::Client, KubeconfigError> {
    Ok(kube::Client::try_from(client_config(path).await?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_file_names_its_path() {
        let err = client_config(Some(Path::new("/nonexistent/kubeconfig"))).await.unwrap_err();
        assert!(matches!(err, KubeconfigError::Read { .. }));
        assert!(err.to_string().contains("/nonexistent/kubeconfig"), "{err}");
    }
}
