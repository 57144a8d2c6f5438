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

    /// Fetch `url` from a run-to-completion busybox pod `name` (pinned to
    /// `node` if given) and return what it printed: the pod retries wget for
    /// up to ~30s, so a network still being wired does not fail it. (Debian's
    /// busybox 1.35 wget segfaults with -T, hence the timeout applet.)
    pub async fn fetch_from_pod(&self, name: &str, node: Option<&str>, url: &str) -> String {
        let node_line = node
            .map(|n| format!("  nodeName: {n}\n"))
            .unwrap_or_default();
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{node_line}  restartPolicy: Never\n  containers:\n  - name: fetch\n    image: busybox\n    command: [\"sh\", \"-c\", \"for i in 1 2 3 4 5 6 7 8 9 10; do timeout 3 wget -qO- {url} && exit 0; sleep 1; done; exit 1\"]\n"
        );
        self.apply_yaml(&yaml).await;
        let pod = crate::pods::wait_pod(
            &self.pods(),
            name,
            crate::POD_START,
            "Succeeded or Failed",
            |p| matches!(crate::pods::phase(p), "Succeeded" | "Failed"),
        )
        .await;
        let logs = self.kubectl_ok(&["logs", name]).await;
        assert_eq!(
            crate::pods::phase(&pod),
            "Succeeded",
            "{name} could not fetch {url}; it printed: {logs}"
        );
        logs
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
