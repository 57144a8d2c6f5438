//! A namespace of its own for each test, so tests sharing a cluster stay
//! independent. When the test fails, the cluster's logs are printed.

use std::ffi::OsStr;
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ObjectMeta, PostParams};
use testkit::Cluster;

pub struct TestNs<'a> {
    pub name: String,
    pub cluster: &'a Cluster,
    pub client: kube::Client,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl<'a> TestNs<'a> {
    /// Create `<prefix>-<unique>` through the API.
    pub async fn new(cluster: &'a Cluster, prefix: &str) -> TestNs<'a> {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let name = format!("{prefix}-{}-{n}", std::process::id() % 100_000);
        let client = cluster.client().await;
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<Namespace> = Api::all(client.clone());
        if let Err(e) = api.create(&PostParams::default(), &ns).await {
            cluster.print_logs();
            panic!("creating namespace {name}: {e}");
        }
        TestNs {
            name,
            cluster,
            client,
        }
    }

    /// Work in an existing namespace (e.g. after the cluster was changed).
    pub async fn existing(cluster: &'a Cluster, name: &str) -> TestNs<'a> {
        TestNs {
            name: name.to_string(),
            cluster,
            client: cluster.client().await,
        }
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// `kubectl -n <ns> args...`.
    pub async fn kubectl<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        let mut all: Vec<&OsStr> = vec![OsStr::new("-n"), OsStr::new(&self.name)];
        all.extend(args.iter().map(|a| a.as_ref()));
        self.cluster.kubectl(&all).await
    }

    /// `kubectl -n <ns> args...`, panicking with its output if it fails.
    pub async fn kubectl_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        let out = self.kubectl(args).await;
        if !out.status.success() {
            let shown: Vec<String> = args
                .iter()
                .map(|a| a.as_ref().to_string_lossy().to_string())
                .collect();
            panic!(
                "kubectl -n {} {} failed ({}):\n{}{}",
                self.name,
                shown.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// `kubectl apply -f manifests/<file>` into this namespace.
    pub async fn apply_manifest(&self, file: &str) -> String {
        let path = crate::manifests::path(file);
        self.kubectl_ok(&[OsStr::new("apply"), OsStr::new("-f"), path.as_os_str()])
            .await
    }

    /// `kubectl apply -f -` of an inline YAML document.
    pub async fn apply_yaml(&self, yaml: &str) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("object.yaml");
        std::fs::write(&file, yaml).expect("writing yaml");
        self.kubectl_ok(&[OsStr::new("apply"), OsStr::new("-f"), file.as_os_str()])
            .await
    }
}

impl Drop for TestNs<'_> {
    fn drop(&mut self) {
        // A shared cluster is never dropped while a test fails, so its logs
        // are printed here.
        if std::thread::panicking() {
            eprintln!(
                "test in namespace {} failed; cluster logs follow",
                self.name
            );
            self.cluster.print_logs();
        }
    }
}
