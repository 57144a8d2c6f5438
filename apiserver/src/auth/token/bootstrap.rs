//! Bootstrap tokens (upstream plugin/pkg/auth/authenticator/token/bootstrap): `<id>.<secret>`
//! checked against the Secret `bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`
//! in kube-system. The user is `system:bootstrap:<id>` in `system:bootstrappers` plus the
//! Secret's `auth-extra-groups`.

use crate::auth::UserInfo;
use base64::Engine;
use serde_json::Value;

pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
pub const NAMESPACE: &str = "kube-system";
pub const BOOTSTRAPPERS: &str = "system:bootstrappers";

/// The id and secret of a token shaped `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// The Secret that holds token `id`.
pub fn secret_name(id: &str) -> String {
    format!("bootstrap-token-{id}")
}

fn data(secret: &Value, key: &str) -> Option<String> {
    let b64 = secret.pointer(&format!("/data/{key}"))?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}

/// Compares in time independent of where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The user `token` authenticates as against `secret` at `now` (RFC 3339 compared as a
/// timestamp), or None: wrong type, being deleted, other secret, not for authentication, or
/// expired.
pub fn authenticate(secret: &Value, id: &str, token_secret: &str, now: chrono::DateTime<chrono::Utc>) -> Option<UserInfo> {
    if secret.get("type").and_then(Value::as_str) != Some(SECRET_TYPE) || secret.pointer("/metadata/deletionTimestamp").is_some_and(|d| !d.is_null()) {
        return None;
    }
    if data(secret, "token-id").as_deref() != Some(id) || !constant_time_eq(data(secret, "token-secret")?.as_bytes(), token_secret.as_bytes()) {
        return None;
    }
    if data(secret, "usage-bootstrap-authentication").as_deref() != Some("true") {
        return None;
    }
    if let Some(exp) = data(secret, "expiration") {
        match chrono::DateTime::parse_from_rfc3339(&exp) {
            Ok(t) if t > now => {}
            _ => return None,
        }
    }
    let mut groups = vec![BOOTSTRAPPERS.to_string()];
    for g in data(secret, "auth-extra-groups").unwrap_or_default().split(',').map(str::trim).filter(|g| !g.is_empty()) {
        // Upstream accepts only groups under system:bootstrappers:.
        if !g.starts_with("system:bootstrappers:") {
            return None;
        }
        if !groups.iter().any(|x| x == g) {
            groups.push(g.to_string());
        }
    }
    Some(UserInfo { name: format!("system:bootstrap:{id}"), groups, ..Default::default() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn secret(extra: &[(&str, &str)]) -> Value {
        let mut data = json!({"token-id": b("abcdef"), "token-secret": b("0123456789abcdef"), "usage-bootstrap-authentication": b("true")});
        for (k, v) in extra {
            data[*k] = json!(b(v));
        }
        json!({"metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}, "type": SECRET_TYPE, "data": data})
    }

    #[test]
    fn token_format() {
        assert_eq!(parse("abcdef.0123456789abcdef"), Some(("abcdef", "0123456789abcdef")));
        for bad in ["abcdef0123456789abcdef", "ABCDEF.0123456789abcdef", "abcde.0123456789abcdef", "abcdef.0123456789abcde", "abcdef.0123456789abcdef.x", ""] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn valid_token_names_the_bootstrap_user_and_groups() {
        let now = chrono::Utc::now();
        let s = secret(&[("auth-extra-groups", "system:bootstrappers:kubeadm:default-node-token"), ("expiration", "2999-01-01T00:00:00Z")]);
        let u = authenticate(&s, "abcdef", "0123456789abcdef", now).unwrap();
        assert_eq!(u.name, "system:bootstrap:abcdef");
        assert_eq!(u.groups, vec!["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token"]);
    }

    #[test]
    fn wrong_secret_expired_unusable_or_bad_groups_are_refused() {
        let now = chrono::Utc::now();
        assert!(authenticate(&secret(&[]), "abcdef", "0123456789abcdee", now).is_none());
        assert!(authenticate(&secret(&[("expiration", "2000-01-01T00:00:00Z")]), "abcdef", "0123456789abcdef", now).is_none());
        assert!(authenticate(&secret(&[("usage-bootstrap-authentication", "false")]), "abcdef", "0123456789abcdef", now).is_none());
        assert!(authenticate(&secret(&[("auth-extra-groups", "system:masters")]), "abcdef", "0123456789abcdef", now).is_none());
        let mut opaque = secret(&[]);
        opaque["type"] = json!("Opaque");
        assert!(authenticate(&opaque, "abcdef", "0123456789abcdef", now).is_none());
        let mut deleting = secret(&[]);
        deleting["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert!(authenticate(&deleting, "abcdef", "0123456789abcdef", now).is_none());
    }
}
