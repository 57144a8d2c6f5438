//! Container environment from the pod spec: value, fieldRef,
//! resourceFieldRef, configMapKeyRef, secretKeyRef and envFrom.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use apimachinery::Quantity;

/// ConfigMap and Secret data the container refers to, already fetched.
pub trait Sources {
    fn config_map(&self, name: &str) -> Option<BTreeMap<String, String>>;
    fn secret(&self, name: &str) -> Option<BTreeMap<String, String>>;
    /// Service variables ([`crate::container::service_env`]): a source for `$(VAR)`
    /// after the declared ones, and added last where not declared.
    fn service_env(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    KeyNotFound {
        kind: &'static str,
        namespace: String,
        name: String,
        key: String,
    },
}

/// The value of a downward API field path, as upstream resolves it.
pub fn field_value(pod: &Pod, path: &str, node_name: &str, host_ip: &str) -> Option<String> {
    let m = &pod.metadata;
    let status = pod.status.clone().unwrap_or_default();
    Some(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| node_name.to_string()),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => status.host_ip.unwrap_or_else(|| host_ip.to_string()),
        "status.hostIPs" => status.host_ip.unwrap_or_else(|| host_ip.to_string()),
        "status.podIP" | "status.podIPs" => status.pod_ip.unwrap_or_default(),
        "metadata.labels" => fmt_map(m.labels.as_ref()),
        "metadata.annotations" => fmt_map(m.annotations.as_ref()),
        p => {
            if let Some(k) = p
                .strip_prefix("metadata.labels['")
                .and_then(|r| r.strip_suffix("']"))
            {
                m.labels
                    .as_ref()
                    .and_then(|l| l.get(k).cloned())
                    .unwrap_or_default()
            } else if let Some(k) = p
                .strip_prefix("metadata.annotations['")
                .and_then(|r| r.strip_suffix("']"))
            {
                m.annotations
                    .as_ref()
                    .and_then(|l| l.get(k).cloned())
                    .unwrap_or_default()
            } else {
                return None;
            }
        }
    })
}

/// `key="value"` lines, sorted, as the downward API volume renders maps.
pub fn fmt_map(m: Option<&BTreeMap<String, String>>) -> String {
    m.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

/// A resourceFieldRef value in the divisor's units (default 1), rounded up.
pub fn resource_value(
    c: &Container,
    resource: &str,
    divisor: Option<&str>,
    node_cpu_milli: i64,
    node_mem: i64,
) -> String {
    let res = c.resources.clone().unwrap_or_default();
    let (kind, field) = resource.split_once('.').unwrap_or(("", resource));
    let map = if kind == "requests" {
        res.requests
    } else {
        res.limits
    };
    let raw = map.as_ref().and_then(|m| m.get(field)).map(|q| q.0.clone());
    if field == "cpu" {
        let milli = raw
            .and_then(|q| Quantity::parse(q.trim()).ok().map(|q| q.milli_value()))
            .unwrap_or(if kind == "limits" { node_cpu_milli } else { 0 });
        let div = divisor
            .and_then(|q| Quantity::parse(q.trim()).ok().map(|q| q.milli_value()))
            .filter(|d| *d > 0)
            .unwrap_or(1000);
        ((milli + div - 1) / div).to_string()
    } else {
        let b = raw
            .and_then(|q| Quantity::parse(q.trim()).ok().map(|q| q.value()))
            .unwrap_or(if kind == "limits" { node_mem } else { 0 });
        let div = divisor
            .and_then(|q| Quantity::parse(q.trim()).ok().map(|q| q.value()))
            .filter(|d| *d > 0)
            .unwrap_or(1);
        ((b + div - 1) / div).to_string()
    }
}

/// Expands `$(VAR)` references against the variables defined so far, as
/// upstream's expansion package: `$$` is an escaped `$`, an unknown or
/// unterminated reference stays as written.
pub fn expand(s: &str, vars: &[(String, String)]) -> String {
    expand_with(s, |name| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
}

/// [`expand`] with a lookup; None keeps the reference as written.
pub fn expand_with(s: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(j) => {
                    let name = &body[..j];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => out.push_str(&format!("$({name})")),
                    }
                    rest = &body[j + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Resolves the container's env in order, envFrom first as upstream does.
pub fn resolve(
    pod: &Pod,
    c: &Container,
    src: &dyn Sources,
    node_name: &str,
    host_ip: &str,
    node_cpu_milli: i64,
    node_mem: i64,
) -> Result<Vec<(String, String)>, EnvError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut out: Vec<(String, String)> = Vec::new();
    let set = |out: &mut Vec<(String, String)>, k: String, v: String| match out
        .iter_mut()
        .find(|(ek, _)| *ek == k)
    {
        Some(slot) => slot.1 = v,
        None => out.push((k, v)),
    };
    for ef in c.env_from.iter().flatten() {
        let prefix = ef.prefix.clone().unwrap_or_default();
        if let Some(r) = &ef.config_map_ref {
            match src.config_map(&r.name) {
                Some(d) => d
                    .into_iter()
                    .for_each(|(k, v)| set(&mut out, format!("{prefix}{k}"), v)),
                None if r.optional == Some(true) => {}
                None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
            }
        }
        if let Some(r) = &ef.secret_ref {
            match src.secret(&r.name) {
                Some(d) => d
                    .into_iter()
                    .for_each(|(k, v)| set(&mut out, format!("{prefix}{k}"), v)),
                None if r.optional == Some(true) => {}
                None => return Err(EnvError::SecretNotFound(r.name.clone())),
            }
        }
    }
    let services = src.service_env();
    for e in c.env.iter().flatten() {
        let v = if let Some(v) = &e.value {
            expand_with(v, |name| {
                out.iter()
                    .rev()
                    .chain(services.iter())
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
        } else if let Some(vf) = &e.value_from {
            if let Some(f) = &vf.field_ref {
                field_value(pod, &f.field_path, node_name, host_ip).unwrap_or_default()
            } else if let Some(r) = &vf.resource_field_ref {
                let target = r
                    .container_name
                    .as_ref()
                    .and_then(|n| pod.spec.as_ref()?.containers.iter().find(|x| &x.name == n))
                    .unwrap_or(c);
                resource_value(
                    target,
                    &r.resource,
                    r.divisor.as_ref().map(|d| d.0.as_str()),
                    node_cpu_milli,
                    node_mem,
                )
            } else if let Some(r) = &vf.config_map_key_ref {
                match src.config_map(&r.name) {
                    Some(d) => match d.get(&r.key) {
                        Some(v) => v.clone(),
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(EnvError::KeyNotFound {
                                kind: "configmap",
                                namespace: ns,
                                name: r.name.clone(),
                                key: r.key.clone(),
                            })
                        }
                    },
                    None if r.optional == Some(true) => continue,
                    None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
                }
            } else if let Some(r) = &vf.secret_key_ref {
                match src.secret(&r.name) {
                    Some(d) => match d.get(&r.key) {
                        Some(v) => v.clone(),
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(EnvError::KeyNotFound {
                                kind: "secret",
                                namespace: ns,
                                name: r.name.clone(),
                                key: r.key.clone(),
                            })
                        }
                    },
                    None if r.optional == Some(true) => continue,
                    None => return Err(EnvError::SecretNotFound(r.name.clone())),
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(&mut out, e.name.clone(), v);
    }
    for (k, v) in services {
        if !out.iter().any(|(ek, _)| *ek == k) {
            out.push((k, v));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapKeySelector, EnvVar, EnvVarSource, ObjectFieldSelector,
    };

    struct Src;
    impl Sources for Src {
        fn config_map(&self, name: &str) -> Option<BTreeMap<String, String>> {
            (name == "cm").then(|| [("k".to_string(), "v".to_string())].into())
        }
        fn secret(&self, _: &str) -> Option<BTreeMap<String, String>> {
            None
        }
    }

    fn pod() -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("web".into());
        p.metadata.namespace = Some("default".into());
        p
    }

    #[test]
    fn values_field_refs_and_config_maps() {
        let c = Container {
            name: "c".into(),
            env: Some(vec![
                EnvVar {
                    name: "A".into(),
                    value: Some("1".into()),
                    ..Default::default()
                },
                EnvVar {
                    name: "B".into(),
                    value: Some("x$(A)y".into()),
                    ..Default::default()
                },
                EnvVar {
                    name: "N".into(),
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.name".into(),
                            api_version: None,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                EnvVar {
                    name: "K".into(),
                    value_from: Some(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "cm".into(),
                            key: "k".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let env = resolve(&pod(), &c, &Src, "n1", "127.0.0.1", 2000, 1 << 30).unwrap();
        assert_eq!(
            env,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "x1y".into()),
                ("N".into(), "web".into()),
                ("K".into(), "v".into())
            ]
        );
    }

    #[test]
    fn missing_config_map_is_an_error_unless_optional() {
        let mut sel = ConfigMapKeySelector {
            name: "nope".into(),
            key: "k".into(),
            optional: None,
        };
        let mk = |sel: &ConfigMapKeySelector| Container {
            name: "c".into(),
            env: Some(vec![EnvVar {
                name: "K".into(),
                value_from: Some(EnvVarSource {
                    config_map_key_ref: Some(sel.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(
            resolve(&pod(), &mk(&sel), &Src, "n", "ip", 0, 0),
            Err(EnvError::ConfigMapNotFound("nope".into()))
        );
        sel.optional = Some(true);
        assert_eq!(
            resolve(&pod(), &mk(&sel), &Src, "n", "ip", 0, 0),
            Ok(vec![])
        );
    }

    struct WithServices;
    impl Sources for WithServices {
        fn config_map(&self, _: &str) -> Option<BTreeMap<String, String>> {
            None
        }
        fn secret(&self, _: &str) -> Option<BTreeMap<String, String>> {
            None
        }
        fn service_env(&self) -> Vec<(String, String)> {
            vec![
                ("FOO_SERVICE_HOST".into(), "10.0.0.9".into()),
                ("BAR_SERVICE_HOST".into(), "10.0.0.8".into()),
            ]
        }
    }

    /// Service variables expand in values, come last, and yield to declared ones.
    #[test]
    fn service_variables_are_a_source_and_come_last() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "env": [
                {"name": "URL", "value": "http://$(FOO_SERVICE_HOST)/"},
                {"name": "BAR_SERVICE_HOST", "value": "mine"}
            ]
        }))
        .unwrap();
        let env = resolve(&pod(), &c, &WithServices, "n", "ip", 0, 0).unwrap();
        assert_eq!(
            env,
            vec![
                ("URL".to_string(), "http://10.0.0.9/".to_string()),
                ("BAR_SERVICE_HOST".to_string(), "mine".to_string()),
                ("FOO_SERVICE_HOST".to_string(), "10.0.0.9".to_string()),
            ]
        );
    }

    #[test]
    fn expand_leaves_unknown_references() {
        assert_eq!(expand("$(X) $(Y)", &[("X".into(), "1".into())]), "1 $(Y)");
    }

    /// upstream's expansion cases: escapes, unterminated references, bare `$`.
    #[test]
    fn expand_handles_escapes_like_upstream() {
        let vars = [
            ("VAR_A".to_string(), "A".to_string()),
            ("VAR_B".to_string(), "B".to_string()),
        ];
        for (input, want) in [
            ("$(VAR_A)-$(VAR_B)", "A-B"),
            ("$$(VAR_A)", "$(VAR_A)"),
            ("$$$(VAR_A)", "$A"),
            ("$$$$(VAR_A)", "$$(VAR_A)"),
            ("$(VAR_A", "$(VAR_A"),
            ("foo$", "foo$"),
            ("$VAR_A", "$VAR_A"),
            ("$()", "$()"),
            ("f$$oo", "f$oo"),
            ("$(VAR_A)$(UNKNOWN)", "A$(UNKNOWN)"),
            ("", ""),
        ] {
            assert_eq!(expand(input, &vars), want, "{input}");
        }
    }
}
