//! The demo images built by hack/lib/images.sh run for real: pushed to the
//! local registry, pulled by a private containerd and run with runc.

use std::time::Duration;

use testkit::{wait_for_or, Containerd, Registry};

fn pull(c: &Containerd, reference: &str) {
    c.ctr(&["images", "pull", "--plain-http", reference])
        .unwrap_or_else(|e| panic!("pull {reference}: {e}"));
}

#[tokio::test]
async fn busybox_image_runs_sh_applets_with_passwd() {
    let registry = Registry::start_with_images().await;
    let c = Containerd::start().await;
    let image = format!("{}/library/busybox:latest", registry.addr);
    pull(&c, &image);
    let out = c
        .ctr(&[
            "run",
            "--rm",
            &image,
            "bb-test",
            "sh",
            "-c",
            "id -un; ls -d /tmp; echo done",
        ])
        .unwrap();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["root", "/tmp", "done"],
        "{out}"
    );
}

#[tokio::test]
async fn nginx_image_serves_each_version_and_stops_on_sigterm() {
    let registry = Registry::start_with_images().await;
    let c = Containerd::start().await;
    for (tag, version) in [
        ("1.0", "version 1.0"),
        ("2.0", "version 2.0"),
        ("latest", "version 1.0"),
    ] {
        let image = format!("{}/library/nginx:{tag}", registry.addr);
        pull(&c, &image);
        let id = format!("web-{}", tag.replace('.', "-"));
        c.ctr(&["run", "-d", &image, &id]).unwrap();
        let body = wait_for_or(Duration::from_secs(20), "nginx answering", || {
            let r = c.ctr(&[
                "tasks",
                "exec",
                "--exec-id",
                "probe",
                &id,
                "wget",
                "-qO-",
                "http://127.0.0.1/",
            ]);
            async move { r.ok() }
        })
        .await
        .unwrap();
        assert!(
            body.contains("Welcome to nginx!") && body.contains(version),
            "{tag}: {body}"
        );
        let health = c
            .ctr(&[
                "tasks",
                "exec",
                "--exec-id",
                "health",
                &id,
                "wget",
                "-qO-",
                "http://127.0.0.1/healthz",
            ])
            .unwrap();
        assert_eq!(health, "ok\n");
        c.ctr(&["tasks", "kill", "--signal", "SIGTERM", &id])
            .unwrap();
        wait_for_or(Duration::from_secs(10), "nginx to exit on SIGTERM", || {
            let r = c.ctr(&["tasks", "list"]);
            let id = id.clone();
            async move {
                let list = r.ok()?;
                let running = list
                    .lines()
                    .any(|l| l.starts_with(&id) && l.contains("RUNNING"));
                (!running).then_some(())
            }
        })
        .await
        .unwrap();
        c.ctr(&["tasks", "delete", &id]).ok();
        c.ctr(&["containers", "delete", &id]).unwrap();
    }
}
