//! The effective security context of a container (the pod's fields under the
//! container's) and upstream's runAsNonRoot check against the image's user.

use k8s_openapi::api::core::v1::{Container, Pod, SecurityContext};

/// Why a container with runAsNonRoot may not start; the texts are upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NonRootError {
    #[error(
        "container's runAsUser breaks non-root policy (pod: \"{pod}\", container: {container})"
    )]
    RunAsUserRoot { pod: String, container: String },
    #[error("container has runAsNonRoot and image will run as root (pod: \"{pod}\", container: {container})")]
    ImageRunsAsRoot { pod: String, container: String },
    #[error("container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: \"{pod}\", container: {container})")]
    NonNumericUser {
        user: String,
        pod: String,
        container: String,
    },
}

/// The user an image's config names, as containerd's CRI reads `USER`:
/// the part before `:`, numeric or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageUser {
    Uid(i64),
    Name(String),
}

impl ImageUser {
    pub fn parse(user: &str) -> ImageUser {
        let u = user.split_once(':').map(|(u, _)| u).unwrap_or(user);
        if u.is_empty() {
            // No USER: the image runs as root.
            return ImageUser::Uid(0);
        }
        match u.parse() {
            Ok(uid) => ImageUser::Uid(uid),
            Err(_) => ImageUser::Name(u.to_string()),
        }
    }
}

/// upstream's DetermineEffectiveSecurityContext: the container's fields win,
/// the pod's fill the gaps.
pub fn effective(pod: &Pod, c: &Container) -> SecurityContext {
    let mut sc = c.security_context.clone().unwrap_or_default();
    if let Some(p) = pod.spec.as_ref().and_then(|s| s.security_context.as_ref()) {
        sc.run_as_user = sc.run_as_user.or(p.run_as_user);
        sc.run_as_group = sc.run_as_group.or(p.run_as_group);
        sc.run_as_non_root = sc.run_as_non_root.or(p.run_as_non_root);
        sc.se_linux_options = sc.se_linux_options.or_else(|| p.se_linux_options.clone());
        sc.seccomp_profile = sc.seccomp_profile.or_else(|| p.seccomp_profile.clone());
        sc.app_armor_profile = sc.app_armor_profile.or_else(|| p.app_armor_profile.clone());
    }
    sc
}

/// Extra groups of the container's process: fsGroup, then supplementalGroups,
/// as the runtime adds them for upstream.
pub fn supplemental_groups(pod: &Pod) -> Vec<i64> {
    let Some(p) = pod.spec.as_ref().and_then(|s| s.security_context.as_ref()) else {
        return Vec::new();
    };
    let mut out: Vec<i64> = p.fs_group.into_iter().collect();
    for g in p.supplemental_groups.iter().flatten() {
        if !out.contains(g) {
            out.push(*g);
        }
    }
    out
}

/// `name_namespace(uid)`, how upstream names a pod in messages.
pub fn pod_desc(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// upstream's verifyRunAsNonRoot: with runAsNonRoot, the effective user must
/// be provably non-zero, from runAsUser or else the image's numeric USER.
pub fn verify_run_as_non_root(
    pod: &Pod,
    c: &Container,
    image_user: &str,
) -> Result<(), NonRootError> {
    let sc = effective(pod, c);
    if sc.run_as_non_root != Some(true) {
        return Ok(());
    }
    let (pod, container) = (pod_desc(pod), c.name.clone());
    match (sc.run_as_user, ImageUser::parse(image_user)) {
        (Some(0), _) => Err(NonRootError::RunAsUserRoot { pod, container }),
        (Some(_), _) => Ok(()),
        (None, ImageUser::Uid(0)) => Err(NonRootError::ImageRunsAsRoot { pod, container }),
        (None, ImageUser::Uid(_)) => Ok(()),
        (None, ImageUser::Name(user)) => Err(NonRootError::NonNumericUser {
            user,
            pod,
            container,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": json,
        }))
        .unwrap()
    }

    fn first(p: &Pod) -> Container {
        p.spec.as_ref().unwrap().containers[0].clone()
    }

    #[test]
    fn container_fields_win_over_the_pods() {
        let p = pod(serde_json::json!({
            "securityContext": {"runAsUser": 1000, "runAsGroup": 2000, "runAsNonRoot": true},
            "containers": [{"name": "c", "securityContext": {"runAsUser": 3000, "runAsNonRoot": false}}]
        }));
        let sc = effective(&p, &first(&p));
        assert_eq!(sc.run_as_user, Some(3000));
        assert_eq!(sc.run_as_group, Some(2000));
        assert_eq!(sc.run_as_non_root, Some(false));
    }

    #[test]
    fn image_users_parse_like_containerd() {
        assert_eq!(ImageUser::parse(""), ImageUser::Uid(0));
        assert_eq!(ImageUser::parse("1000"), ImageUser::Uid(1000));
        assert_eq!(ImageUser::parse("1000:50"), ImageUser::Uid(1000));
        assert_eq!(ImageUser::parse("nobody"), ImageUser::Name("nobody".into()));
        assert_eq!(ImageUser::parse("0:0"), ImageUser::Uid(0));
    }

    #[test]
    fn run_as_non_root_refuses_root_from_any_source() {
        let refuse = |spec: serde_json::Value, image_user: &str| {
            let p = pod(spec);
            verify_run_as_non_root(&p, &first(&p), image_user)
        };
        // The image's default user is root.
        let e = refuse(
            serde_json::json!({"containers": [{"name": "c", "securityContext": {"runAsNonRoot": true}}]}),
            "",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "container has runAsNonRoot and image will run as root (pod: \"p_ns(u1)\", container: c)"
        );
        // Pod-level runAsNonRoot applies to every container.
        assert!(matches!(
            refuse(
                serde_json::json!({"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "c"}]}),
                "0"
            ),
            Err(NonRootError::ImageRunsAsRoot { .. })
        ));
        assert!(matches!(
            refuse(
                serde_json::json!({"securityContext": {"runAsNonRoot": true, "runAsUser": 0}, "containers": [{"name": "c"}]}),
                "1000"
            ),
            Err(NonRootError::RunAsUserRoot { .. })
        ));
        assert!(matches!(
            refuse(
                serde_json::json!({"containers": [{"name": "c", "securityContext": {"runAsNonRoot": true}}]}),
                "nobody"
            ),
            Err(NonRootError::NonNumericUser { .. })
        ));
    }

    #[test]
    fn run_as_non_root_allows_a_non_zero_user() {
        let allow = |spec: serde_json::Value, image_user: &str| {
            let p = pod(spec);
            verify_run_as_non_root(&p, &first(&p), image_user)
        };
        assert_eq!(
            allow(
                serde_json::json!({"securityContext": {"runAsNonRoot": true, "runAsUser": 1234}, "containers": [{"name": "c"}]}),
                ""
            ),
            Ok(())
        );
        // runAsUser decides even when the image names a user.
        assert_eq!(
            allow(
                serde_json::json!({"containers": [{"name": "c", "securityContext": {"runAsNonRoot": true, "runAsUser": 5}}]}),
                "nobody"
            ),
            Ok(())
        );
        assert_eq!(
            allow(
                serde_json::json!({"containers": [{"name": "c", "securityContext": {"runAsNonRoot": true}}]}),
                "1000:1000"
            ),
            Ok(())
        );
        // Without runAsNonRoot, root is fine.
        assert_eq!(
            allow(serde_json::json!({"containers": [{"name": "c"}]}), ""),
            Ok(())
        );
    }

    #[test]
    fn fs_group_and_supplemental_groups_are_extra_gids() {
        let p = pod(serde_json::json!({
            "securityContext": {"fsGroup": 2000, "supplementalGroups": [3000, 2000]},
            "containers": [{"name": "c"}]
        }));
        assert_eq!(supplemental_groups(&p), vec![2000, 3000]);
    }
}
