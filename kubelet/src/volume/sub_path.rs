//! subPath and subPathExpr of a volume mount.

use crate::container::env;

/// The subpath a mount uses: subPathExpr expanded from the container's env
/// (every variable must be set and non-empty), else subPath; it must stay
/// inside the volume. The messages are upstream's.
pub fn sub_path(
    vm: &k8s_openapi::api::core::v1::VolumeMount,
    env: &[(String, String)],
) -> Result<Option<String>, String> {
    let sp = match vm.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
        Some(expr) => {
            let missing = std::cell::RefCell::new(std::collections::BTreeSet::new());
            let v = env::expand_with(expr, |name| {
                let v = env
                    .iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .filter(|v| !v.is_empty());
                if v.is_none() {
                    missing.borrow_mut().insert(name.to_string());
                }
                Some(v.unwrap_or_default())
            });
            let missing = missing.into_inner();
            if !missing.is_empty() {
                let names: Vec<String> = missing.into_iter().collect();
                return Err(format!("missing value for {}", names.join(", ")));
            }
            v
        }
        None => vm.sub_path.clone().unwrap_or_default(),
    };
    if sp.is_empty() {
        return Ok(None);
    }
    if sp.starts_with('/') {
        return Err(format!("error SubPath `{sp}` must not be an absolute path"));
    }
    if sp.split('/').any(|p| p == "..") {
        return Err(format!(
            "unable to provision SubPath `{sp}`: must not contain '..'"
        ));
    }
    Ok(Some(sp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::VolumeMount;

    fn mount(sub_path: Option<&str>, expr: Option<&str>) -> VolumeMount {
        VolumeMount {
            name: "v".into(),
            mount_path: "/m".into(),
            sub_path: sub_path.map(Into::into),
            sub_path_expr: expr.map(Into::into),
            ..Default::default()
        }
    }

    /// [sig-node] Variable Expansion should allow substituting values in a
    /// volume subpath, and should fail with an absolute path or backsteps.
    #[test]
    fn sub_path_expr_expands_from_the_env_and_stays_inside() {
        let env = vec![
            ("POD_NAME".to_string(), "web-0".to_string()),
            ("ABS".to_string(), "/tmp".to_string()),
            ("UP".to_string(), "..".to_string()),
            ("EMPTY".to_string(), String::new()),
        ];
        assert_eq!(
            sub_path(&mount(None, Some("logs/$(POD_NAME)")), &env),
            Ok(Some("logs/web-0".into()))
        );
        assert_eq!(
            sub_path(&mount(Some("plain"), None), &env),
            Ok(Some("plain".into()))
        );
        assert_eq!(sub_path(&mount(None, None), &env), Ok(None));
        assert_eq!(
            sub_path(&mount(None, Some("$(ABS)")), &env),
            Err("error SubPath `/tmp` must not be an absolute path".into())
        );
        assert!(sub_path(&mount(None, Some("$(UP)")), &env)
            .unwrap_err()
            .contains("must not contain '..'"));
        assert_eq!(
            sub_path(&mount(None, Some("$(NOPE)/$(EMPTY)")), &env),
            Err("missing value for EMPTY, NOPE".into())
        );
        assert!(sub_path(&mount(Some("../x"), None), &env).is_err());
    }
}
