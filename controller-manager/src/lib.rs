//! ferrokube's controller-manager: the control loops that keep the desired
//! state true.
//!
//! Start at [`run`]: it parses nothing itself, takes [`options::Options`],
//! builds the shared informers ([`runtime::Informers`]), registers each
//! enabled loop from [`controllers`], and serves /healthz and /metrics
//! ([`server`]). Each loop is a pure `plan` function plus a thin reconciler.

pub mod controllers;
pub mod credentials;
pub mod discovery;
pub mod events;
pub mod metrics;
pub mod options;
pub mod podutil;
pub mod runtime;
pub mod server;

use kube::Client;

use controllers::Ctx;
use options::Options;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad --controllers: {0}")]
    Controllers(#[from] options::SelectionError),
    #[error(transparent)]
    Kubeconfig(#[from] apimachinery::kubeconfig::KubeconfigError),
    #[error("secure serving: {0}")]
    Serving(apimachinery::secure_serving::ServingError),
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialsError),
    #[error("leader election failed: {0}")]
    LeaderElection(String),
}

pub async fn client(opts: &Options) -> Result<Client, Error> {
    Ok(apimachinery::kubeconfig::client(opts.kubeconfig.as_deref()).await?)
}

/// Register and start every enabled controller; returns at once.
pub fn start_controllers(ctx: &Ctx, enabled: &[&str]) {
    let mut inf = runtime::Informers::new(ctx.client.clone());
    for name in enabled {
        let register: fn(&mut runtime::Informers, &Ctx) = match *name {
            "replicaset-controller" => controllers::replicaset::register,
            "deployment-controller" => controllers::deployment::register,
            "garbage-collector-controller" => controllers::garbagecollector::register,
            "namespace-controller" => controllers::namespace::register,
            "serviceaccount-controller" => controllers::serviceaccount::register,
            "node-lifecycle-controller" => controllers::nodelifecycle::register,
            "job-controller" => controllers::job::register,
            "daemonset-controller" => controllers::daemonset::register,
            "statefulset-controller" => controllers::statefulset::register,
            "endpoints-controller" => controllers::endpoints::register,
            "endpointslice-controller" => controllers::endpointslice::register,
            "pod-garbage-collector-controller" => controllers::podgc::register,
            "cronjob-controller" => controllers::cronjob::register,
            "replicationcontroller-controller" => controllers::replicationcontroller::register,
            "disruption-controller" => controllers::disruption::register,
            "resourcequota-controller" => controllers::resourcequota::register,
            "root-ca-certificate-publisher-controller" => controllers::rootcacertpublisher::register,
            "persistentvolume-binder-controller" => controllers::volume::persistentvolume::register,
            "local-path-provisioner-controller" => controllers::volume::local_path::register,
            "clusterrole-aggregation-controller" => controllers::clusterroleaggregation::register,
            _ => continue,
        };
        tracing::info!(controller = name, "starting");
        let own = ctx.credentials.get(name).map(|client| Ctx { client, ..ctx.clone() });
        register(&mut inf, own.as_ref().unwrap_or(ctx));
    }
    inf.start();
}

pub async fn run(opts: Options) -> Result<(), Error> {
    let enabled = options::enabled_controllers(&opts.controllers)?;
    let client = client(&opts).await?;
    let metrics = metrics::Metrics::default();
    // HTTPS on 10257 as kube-controller-manager: health open, /metrics for whom the
    // apiserver allows (TokenReview and SubjectAccessReview).
    if let Some(addr) = opts.serving.serve(server::app(metrics.clone()), client.clone(), 10257).await.map_err(Error::Serving)? {
        tracing::info!(addr = %addr, "serving /healthz and /metrics over HTTPS");
    }
    let credentials = if opts.use_service_account_credentials {
        let dir = std::env::temp_dir().join(format!("ferrokube-controller-tokens-{}", std::process::id()));
        credentials::ControllerClients::start(&client, opts.kubeconfig.as_deref(), &enabled, &dir).await?
    } else {
        Default::default()
    };
    let ctx = Ctx {
        client: client.clone(),
        metrics,
        opts: opts.clone(),
        credentials,
    };
    if opts.leader_elect {
        leader::run_as_leader(&ctx, &enabled).await
    } else {
        start_controllers(&ctx, &enabled);
        std::future::pending::<()>().await;
        Ok(())
    }
}

mod leader;
