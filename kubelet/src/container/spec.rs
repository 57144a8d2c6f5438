//! Builds a container's OCI runtime spec from the pod spec and the image
//! config. Pure: every input is resolved beforehand.

use k8s_openapi::api::core::v1::{Container, Pod, SecurityContext};
use serde_json::{json, Value};

use crate::network::PodNamespaces;
use crate::runtime::ImageConfig;
use apimachinery::Quantity;

/// A bind mount into the container, already resolved to a host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub host_path: String,
    pub container_path: String,
    pub read_only: bool,
}

/// Everything besides the pod and container that shapes the spec.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    pub image: &'a ImageConfig,
    /// Resolved env from the pod spec, in order.
    pub env: Vec<(String, String)>,
    pub mounts: Vec<BindMount>,
    pub namespaces: &'a PodNamespaces,
    pub cgroups_path: String,
}

/// containerd's default capability set for containers.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
];

/// The argv upstream runs: command replaces the entrypoint, args replace the
/// cmd, and `$(VAR)` in the pod's command and args expands from its env.
pub fn argv(c: &Container, image: &ImageConfig, env: &[(String, String)]) -> Vec<String> {
    let expand = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter()
            .flatten()
            .map(|a| crate::container::env::expand(a, env))
            .collect()
    };
    let command = expand(&c.command);
    let args = expand(&c.args);
    if !command.is_empty() {
        [command, args].concat()
    } else if !args.is_empty() {
        [image.entrypoint.clone(), args].concat()
    } else {
        [image.entrypoint.clone(), image.cmd.clone()].concat()
    }
}

/// Image env first, pod env overriding by name.
pub fn merged_env(image: &ImageConfig, env: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<(String, String)> = image
        .env
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .collect();
    for (k, v) in env {
        match out.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = v.clone(),
            None => out.push((k.clone(), v.clone())),
        }
    }
    if !out.iter().any(|(k, _)| k == "PATH") {
        out.insert(
            0,
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
        );
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// uid and gid: the effective securityContext (container over pod) over the image's USER.
pub fn user(pod: &Pod, c: &Container, image: &ImageConfig) -> (i64, i64) {
    let sc = crate::container::security_context::effective(pod, c);
    let (mut uid, mut gid) = (0i64, 0i64);
    if let Some((u, g)) = image.user.split_once(':') {
        uid = u.parse().unwrap_or(0);
        gid = g.parse().unwrap_or(0);
    } else if let Ok(u) = image.user.parse() {
        uid = u;
    }
    if let Some(u) = sc.run_as_user {
        uid = u;
    }
    if let Some(g) = sc.run_as_group {
        gid = g;
    }
    (uid, gid)
}

fn caps(sc: Option<&SecurityContext>) -> Vec<String> {
    if sc.and_then(|s| s.privileged) == Some(true) {
        return ALL_CAPS.iter().map(|s| s.to_string()).collect();
    }
    let norm = |c: &String| {
        let u = c.to_ascii_uppercase();
        if u.starts_with("CAP_") {
            u
        } else {
            format!("CAP_{u}")
        }
    };
    let add: Vec<String> = sc
        .and_then(|s| s.capabilities.as_ref())
        .and_then(|c| c.add.clone())
        .unwrap_or_default()
        .iter()
        .map(norm)
        .collect();
    let drop: Vec<String> = sc
        .and_then(|s| s.capabilities.as_ref())
        .and_then(|c| c.drop.clone())
        .unwrap_or_default()
        .iter()
        .map(norm)
        .collect();
    let mut set: Vec<String> = if add.iter().any(|c| c == "CAP_ALL") {
        ALL_CAPS.iter().map(|s| s.to_string()).collect()
    } else {
        let mut s: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
        s.extend(add.into_iter().filter(|c| ALL_CAPS.contains(&c.as_str())));
        s
    };
    if drop.iter().any(|c| c == "CAP_ALL") {
        set.clear();
    }
    set.retain(|c| !drop.contains(c));
    set.sort();
    set.dedup();
    set
}

/// CPU shares from the request (min 2) and quota from the limit, as upstream maps them.
pub fn cpu_resources(c: &Container) -> Value {
    let res = c.resources.as_ref();
    let get = |m: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
               k: &str| { m.and_then(|m| m.get(k)).map(|q| q.0.clone()) };
    let limits = res.and_then(|r| r.limits.as_ref());
    let requests = res.and_then(|r| r.requests.as_ref());
    let req_cpu = get(requests, "cpu")
        .or_else(|| get(limits, "cpu"))
        .and_then(|q| Quantity::parse(q.trim()).ok().map(|q| q.milli_value()));
    let shares = req_cpu.map(|m| (m * 1024 / 1000).max(2)).unwrap_or(2);
    let mut cpu = json!({"shares": shares});
    if let Some(lim) =
        get(limits, "cpu").and_then(|q| Quantity::parse(q.trim()).ok().map(|q| q.milli_value()))
    {
        cpu["quota"] = json!((lim * 100_000 / 1000).max(1000));
        cpu["period"] = json!(100_000);
    }
    let mut out = json!({"cpu": cpu});
    if let Some(mem) =
        get(limits, "memory").and_then(|q| Quantity::parse(q.trim()).ok().map(|q| q.value()))
    {
        out["memory"] = json!({"limit": mem});
    }
    out
}

/// The OCI runtime spec for one container of a pod.
pub fn build(pod: &Pod, c: &Container, input: &SpecInput<'_>) -> Value {
    let mut spec =
        serde_json::to_value(oci_spec::runtime::Spec::default()).unwrap_or_else(|_| json!({}));
    let sc = c.security_context.as_ref();
    let privileged = sc.and_then(|s| s.privileged) == Some(true);
    let (uid, gid) = user(pod, c, input.image);
    let mut process_user = json!({"uid": uid, "gid": gid});
    let extra = crate::container::security_context::supplemental_groups(pod);
    if !extra.is_empty() {
        process_user["additionalGids"] = json!(extra);
    }
    let cwd = c
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| Some(input.image.working_dir.clone()).filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    let caps = caps(sc);
    let no_new_privs = sc.and_then(|s| s.allow_privilege_escalation) == Some(false) && !privileged;
    spec["hostname"] = json!(pod.metadata.name.clone().unwrap_or_default());
    spec["process"] = json!({
        "terminal": c.tty.unwrap_or(false),
        "user": process_user,
        "args": argv(c, input.image, &input.env),
        "env": merged_env(input.image, &input.env),
        "cwd": cwd,
        "capabilities": {
            "bounding": caps, "effective": caps, "permitted": caps,
        },
        "noNewPrivileges": no_new_privs,
        "oomScoreAdj": 1000,
    });
    // Inherit the shim's rlimits: raising them needs privileges a nested host may lack.
    if let Some(p) = spec["process"].as_object_mut() {
        p.remove("rlimits");
    }
    spec["root"] = json!({
        "path": "rootfs",
        "readonly": sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false),
    });
    let mounts = spec["mounts"]
        .as_array_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut mounts: Vec<Value> = mounts
        .into_iter()
        // /dev/shm is replaced by the pod's; sysfs stays read-only unless privileged.
        .filter(|m| m["destination"] != json!("/dev/shm"))
        .map(|mut m| {
            if privileged && m["destination"] == json!("/sys") {
                m["options"] = json!(["nosuid", "noexec", "nodev", "rw"]);
            }
            m
        })
        .collect();
    mounts.push(
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
        "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
    );
    for m in &input.mounts {
        let mut opts = vec!["rbind", "rprivate"];
        opts.push(if m.read_only { "ro" } else { "rw" });
        mounts.push(json!({"destination": m.container_path, "type": "bind", "source": m.host_path, "options": opts}));
    }
    spec["mounts"] = json!(mounts);
    let ns = input.namespaces;
    spec["linux"]["namespaces"] = json!([
        {"type": "pid"},
        {"type": "mount"},
        {"type": "network", "path": ns.net()},
        {"type": "uts", "path": ns.uts()},
        {"type": "ipc", "path": ns.ipc()},
    ]);
    spec["linux"]["cgroupsPath"] = json!(input.cgroups_path);
    // The pod's sysctls apply inside its namespaces, set by the runtime per container.
    let sysctls: serde_json::Map<String, Value> = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|sc| sc.sysctls.as_ref())
        .into_iter()
        .flatten()
        .map(|s| (s.name.clone(), json!(s.value)))
        .collect();
    if !sysctls.is_empty() {
        spec["linux"]["sysctl"] = Value::Object(sysctls);
    }
    let mut resources = cpu_resources(c);
    if privileged {
        resources["devices"] = json!([{"allow": true, "access": "rwm"}]);
        spec["linux"]["maskedPaths"] = json!([]);
        spec["linux"]["readonlyPaths"] = json!([]);
    } else {
        resources["devices"] = json!([{"allow": false, "access": "rwm"}]);
    }
    spec["linux"]["resources"] = resources;
    spec["annotations"] = json!({});
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Capabilities, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn img() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/ep".into()],
            cmd: vec!["c1".into()],
            env: vec!["PATH=/bin".into(), "A=img".into()],
            working_dir: "/w".into(),
            user: String::new(),
        }
    }

    fn container() -> Container {
        Container {
            name: "c".into(),
            image: Some("busybox".into()),
            ..Default::default()
        }
    }

    fn pod() -> Pod {
        Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: None,
        }
    }

    #[test]
    fn command_and_args_merge_like_upstream() {
        let i = img();
        let mut c = container();
        assert_eq!(argv(&c, &i, &[]), vec!["/ep", "c1"]);
        c.args = Some(vec!["a".into()]);
        assert_eq!(argv(&c, &i, &[]), vec!["/ep", "a"]);
        c.command = Some(vec!["sh".into()]);
        assert_eq!(argv(&c, &i, &[]), vec!["sh", "a"]);
        c.args = None;
        assert_eq!(argv(&c, &i, &[]), vec!["sh"]);
    }

    /// [sig-node] Variable Expansion should allow substituting values in a
    /// container's command / args: from the pod's env only, `$$` escapes.
    #[test]
    fn command_and_args_expand_the_pod_env() {
        let i = img();
        let mut c = container();
        c.command = Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo $(TEST_VAR)".into(),
        ]);
        c.args = Some(vec![
            "$(TEST_VAR)".into(),
            "$$(TEST_VAR)".into(),
            "$(A)".into(),
        ]);
        let env = [("TEST_VAR".to_string(), "test-value".to_string())];
        assert_eq!(
            argv(&c, &i, &env),
            vec![
                "/bin/sh",
                "-c",
                "echo test-value",
                "test-value",
                "$(TEST_VAR)",
                // The image's env is not a source.
                "$(A)"
            ]
        );
    }

    #[test]
    fn pod_env_overrides_image_env() {
        let env = merged_env(
            &img(),
            &[("A".into(), "pod".into()), ("B".into(), "2".into())],
        );
        assert_eq!(env, vec!["PATH=/bin", "A=pod", "B=2"]);
    }

    #[test]
    fn resources_map_to_shares_quota_and_memory() {
        let mut c = container();
        c.resources = Some(ResourceRequirements {
            requests: Some([("cpu".to_string(), Quantity("250m".into()))].into()),
            limits: Some(
                [
                    ("cpu".to_string(), Quantity("500m".into())),
                    ("memory".to_string(), Quantity("64Mi".into())),
                ]
                .into(),
            ),
            ..Default::default()
        });
        let r = cpu_resources(&c);
        assert_eq!(r["cpu"]["shares"], json!(256));
        assert_eq!(r["cpu"]["quota"], json!(50_000));
        assert_eq!(r["cpu"]["period"], json!(100_000));
        assert_eq!(r["memory"]["limit"], json!(64 * 1024 * 1024));
    }

    #[test]
    fn spec_joins_pod_namespaces_and_sets_hostname() {
        let ns = PodNamespaces::new("/r/pods/u");
        let i = img();
        let input = SpecInput {
            image: &i,
            env: vec![],
            mounts: vec![],
            namespaces: &ns,
            cgroups_path: "/kubepods/podu/c".into(),
        };
        let s = build(&pod(), &container(), &input);
        assert_eq!(s["hostname"], json!("web"));
        assert_eq!(s["process"]["cwd"], json!("/w"));
        let nss = s["linux"]["namespaces"].as_array().unwrap();
        assert!(nss.contains(&json!({"type": "network", "path": "/r/pods/u/net"})));
        assert!(nss.contains(&json!({"type": "uts", "path": "/r/pods/u/uts"})));
        assert_eq!(s["root"]["path"], json!("rootfs"));
    }

    #[test]
    fn security_context_user_caps_and_readonly_root() {
        let ns = PodNamespaces::new("/r");
        let i = img();
        let mut c = container();
        c.security_context = Some(SecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(3000),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_ADMIN".into()]),
                drop: Some(vec!["KILL".into()]),
            }),
            ..Default::default()
        });
        let input = SpecInput {
            image: &i,
            env: vec![],
            mounts: vec![],
            namespaces: &ns,
            cgroups_path: String::new(),
        };
        let s = build(&pod(), &c, &input);
        assert_eq!(s["process"]["user"], json!({"uid": 1000, "gid": 3000}));
        assert_eq!(s["root"]["readonly"], json!(true));
        assert_eq!(s["process"]["noNewPrivileges"], json!(true));
        let caps = s["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert!(caps.contains(&json!("CAP_NET_ADMIN")));
        assert!(!caps.contains(&json!("CAP_KILL")));
    }

    /// [sig-node] Security Context should support pod.Spec.SecurityContext.RunAsUser
    /// And pod.Spec.SecurityContext.RunAsGroup: the pod's fields reach every
    /// container, the container's own win, fsGroup and supplementalGroups are extra gids.
    #[test]
    fn pod_security_context_merges_under_the_containers() {
        let ns = PodNamespaces::new("/r");
        let i = img();
        let mut p = pod();
        p.spec.as_mut().unwrap().security_context =
            Some(k8s_openapi::api::core::v1::PodSecurityContext {
                run_as_user: Some(1001),
                run_as_group: Some(2002),
                fs_group: Some(3003),
                supplemental_groups: Some(vec![4004]),
                ..Default::default()
            });
        let input = SpecInput {
            image: &i,
            env: vec![],
            mounts: vec![],
            namespaces: &ns,
            cgroups_path: String::new(),
        };
        let s = build(&p, &container(), &input);
        assert_eq!(
            s["process"]["user"],
            json!({"uid": 1001, "gid": 2002, "additionalGids": [3003, 4004]})
        );
        let mut c = container();
        c.security_context = Some(SecurityContext {
            run_as_user: Some(7),
            ..Default::default()
        });
        let s = build(&p, &c, &input);
        assert_eq!(s["process"]["user"]["uid"], json!(7));
        assert_eq!(s["process"]["user"]["gid"], json!(2002));
    }

    /// [sig-node] Sysctls should support sysctls: the pod's go into the spec.
    #[test]
    fn pod_sysctls_reach_the_spec() {
        let ns = PodNamespaces::new("/r");
        let i = img();
        let mut p = pod();
        p.spec.as_mut().unwrap().security_context =
            Some(k8s_openapi::api::core::v1::PodSecurityContext {
                sysctls: Some(vec![k8s_openapi::api::core::v1::Sysctl {
                    name: "kernel.shm_rmid_forced".into(),
                    value: "1".into(),
                }]),
                ..Default::default()
            });
        let input = SpecInput {
            image: &i,
            env: vec![],
            mounts: vec![],
            namespaces: &ns,
            cgroups_path: String::new(),
        };
        let s = build(&p, &container(), &input);
        assert_eq!(s["linux"]["sysctl"], json!({"kernel.shm_rmid_forced": "1"}));
        assert!(build(&pod(), &container(), &input)["linux"]
            .get("sysctl")
            .is_none_or(|v| v.as_object().is_none_or(|m| m.is_empty())));
    }

    #[test]
    fn bind_mounts_honour_read_only() {
        let ns = PodNamespaces::new("/r");
        let i = img();
        let input = SpecInput {
            image: &i,
            env: vec![],
            namespaces: &ns,
            cgroups_path: String::new(),
            mounts: vec![BindMount {
                host_path: "/h".into(),
                container_path: "/data".into(),
                read_only: true,
            }],
        };
        let s = build(&pod(), &container(), &input);
        let m = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == json!("/data"))
            .unwrap()
            .clone();
        assert!(m["options"].as_array().unwrap().contains(&json!("ro")));
    }
}
