//! After the signature: the objects a ServiceAccount token names must still exist with the
//! uids it names (upstream serviceaccount.validator and legacyValidator). Lookups go to the
//! watch cache first and to storage on a miss, as upstream's informer getter falls back to a
//! live read; an object deleted more than 60 s ago (its deletionTimestamp) invalidates too.

use super::serviceaccount::{username, Claims, LegacyClaims, Ref, Verified};
use crate::auth::UserInfo;
use crate::registry::Registry;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// Upstream's error for a token whose objects are gone.
pub const INVALIDATED: &str = "service account token has been invalidated";

pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
pub const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";
pub const EXTRA_NODE_UID: &str = "authentication.kubernetes.io/node-uid";
pub const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default)]
    uid: String,
    #[serde(rename = "deletionTimestamp", default)]
    deletion_timestamp: Option<String>,
}

#[derive(Deserialize, Default)]
struct Head {
    #[serde(default)]
    metadata: Meta,
}

/// What a check needs of an object: its uid and whether it has been going for over 60 s.
struct Found {
    uid: String,
    gone: bool,
    value: Option<Value>,
}

fn deleted_long_ago(ts: Option<&str>, now: i64) -> bool {
    ts.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).is_some_and(|t| t.timestamp() < now - 60)
}

/// Reads objects for the checks; cheap on the watch cache.
pub struct Objects {
    pub registry: Arc<Registry>,
}

impl Objects {
    async fn find(&self, resource: &str, ns: Option<&str>, name: &str, now: i64, whole: bool) -> Option<Found> {
        let store = self.registry.store("", "v1", resource)?;
        let json = match store.cached(ns, name) {
            Some(o) => o.json.clone(),
            None => {
                let v = store.get(ns, name, false).await.ok()?;
                bytes::Bytes::from(serde_json::to_vec(&v).ok()?)
            }
        };
        let head: Head = serde_json::from_slice(&json).ok()?;
        let value = if whole { serde_json::from_slice(&json).ok() } else { None };
        Some(Found { uid: head.metadata.uid, gone: deleted_long_ago(head.metadata.deletion_timestamp.as_deref(), now), value })
    }

    /// The object exists, is not long deleted, and has `want`'s uid (when the claim has one).
    async fn check(&self, resource: &str, ns: Option<&str>, want: &Ref, now: i64) -> Result<(), String> {
        let found = self.find(resource, ns, &want.name, now, false).await.ok_or_else(|| INVALIDATED.to_string())?;
        if found.gone || (!want.uid.is_empty() && found.uid != want.uid) {
            return Err(INVALIDATED.into());
        }
        Ok(())
    }

    /// The user of a verified token, or why its objects refuse it.
    pub async fn user_of(&self, verified: &Verified, token: &str, now: i64) -> Result<UserInfo, String> {
        match verified {
            Verified::Bound(c) => self.bound(c, now).await,
            Verified::Legacy(c) => self.legacy(c, token, now).await,
        }
    }

    async fn bound(&self, c: &Claims, now: i64) -> Result<UserInfo, String> {
        let k = &c.kubernetes;
        let ns = Some(k.namespace.as_str());
        self.check("serviceaccounts", ns, &k.serviceaccount, now).await?;
        if let Some(s) = &k.secret {
            self.check("secrets", ns, s, now).await?;
        }
        if let Some(p) = &k.pod {
            self.check("pods", ns, p, now).await?;
        }
        // A token bound to a node (directly, not through a pod) needs the node.
        if let (Some(n), None) = (&k.node, &k.pod) {
            self.check("nodes", None, n, now).await?;
        }
        let mut user = service_account_user(&k.namespace, &k.serviceaccount.name, &k.serviceaccount.uid);
        let mut extra = |key: &str, v: &str| {
            user.extra.insert(key.to_string(), vec![v.to_string()]);
        };
        if let Some(p) = &k.pod {
            extra(EXTRA_POD_NAME, &p.name);
            extra(EXTRA_POD_UID, &p.uid);
        }
        if let Some(n) = &k.node {
            extra(EXTRA_NODE_NAME, &n.name);
            if !n.uid.is_empty() {
                extra(EXTRA_NODE_UID, &n.uid);
            }
        }
        if !c.jti.is_empty() {
            extra(EXTRA_CREDENTIAL_ID, &format!("JTI={}", c.jti));
        }
        Ok(user)
    }

    async fn legacy(&self, c: &LegacyClaims, token: &str, now: i64) -> Result<UserInfo, String> {
        let ns = Some(c.namespace.as_str());
        let secret = self.find("secrets", ns, &c.secret_name, now, true).await.ok_or_else(|| INVALIDATED.to_string())?;
        if secret.gone {
            return Err(INVALIDATED.into());
        }
        // The Secret must still hold this very token.
        use base64::Engine;
        let stored = secret.value.as_ref().and_then(|v| v.pointer("/data/token")).and_then(Value::as_str).and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
        if stored.as_deref() != Some(token.as_bytes()) {
            return Err(INVALIDATED.into());
        }
        self.check("serviceaccounts", ns, &Ref { name: c.service_account_name.clone(), uid: c.service_account_uid.clone() }, now).await?;
        Ok(service_account_user(&c.namespace, &c.service_account_name, &c.service_account_uid))
    }
}

/// `system:serviceaccount:<ns>:<name>` in `system:serviceaccounts` and
/// `system:serviceaccounts:<ns>`.
pub fn service_account_user(ns: &str, name: &str, uid: &str) -> UserInfo {
    UserInfo {
        name: username(ns, name),
        uid: uid.to_string(),
        groups: vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}")],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletion_grace_is_sixty_seconds() {
        let now = chrono::Utc::now().timestamp();
        let at = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339();
        assert!(!deleted_long_ago(None, now));
        assert!(!deleted_long_ago(Some(&at(now - 30)), now));
        assert!(deleted_long_ago(Some(&at(now - 61)), now));
    }
}
