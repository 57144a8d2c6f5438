//! Impersonation (upstream apiserver/pkg/endpoints/filters/impersonation.go): the
//! `Impersonate-User`, `-Group`, `-Uid` and `-Extra-<key>` headers make the request act as
//! another user, when the requester may `impersonate` each of them.

use super::attributes::Attributes;
use super::Authorization;
use crate::auth::UserInfo;
use crate::status::ApiError;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";
const SA_PREFIX: &str = "system:serviceaccount:";

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect()
}

/// The percent-decoded extra key of an `Impersonate-Extra-` header name.
fn extra_key(header: &str) -> String {
    let raw = &header[EXTRA_PREFIX.len()..];
    let mut out = Vec::new();
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
            let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_lowercase()
}

/// The user the request impersonates, None without impersonation headers, or the refusal.
pub fn impersonate(authz: &Authorization, requester: &UserInfo, headers: &HeaderMap) -> Result<Option<UserInfo>, Response> {
    let name = headers.get(USER).and_then(|v| v.to_str().ok()).map(String::from);
    let groups: Vec<String> = values(headers, GROUP).into_iter().map(String::from).collect();
    let uid = headers.get(UID).and_then(|v| v.to_str().ok()).map(String::from);
    let mut extra = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (h, v) in headers.iter() {
        if h.as_str().starts_with(EXTRA_PREFIX) {
            if let Ok(v) = v.to_str() {
                extra.entry(extra_key(h.as_str())).or_default().push(v.to_string());
            }
        }
    }
    let Some(name) = name else {
        if !groups.is_empty() || uid.is_some() || !extra.is_empty() {
            return Err(ApiError::BadRequest("requested impersonation of groups, uid or extra without impersonating a user".into()).into_response());
        }
        return Ok(None);
    };
    // Each impersonated part must be allowed on its own, as upstream checks them.
    let mut checks: Vec<Attributes> = Vec::new();
    let check = |verb_target: (&str, &str, &str, &str, &str)| {
        let (group, resource, sub, ns, n) = verb_target;
        Attributes::resource(requester.clone(), "impersonate", group, resource, sub, ns, n)
    };
    let sa = name.strip_prefix(SA_PREFIX).and_then(|rest| rest.split_once(':'));
    match sa {
        Some((ns, sa_name)) => checks.push(check(("", "serviceaccounts", "", ns, sa_name))),
        None => checks.push(check(("", "users", "", "", &name))),
    }
    for g in &groups {
        checks.push(check(("", "groups", "", "", g)));
    }
    if let Some(u) = &uid {
        checks.push(check(("authentication.k8s.io", "uids", "", "", u)));
    }
    for (k, vs) in &extra {
        for v in vs {
            checks.push(check(("authentication.k8s.io", "userextras", k, "", v)));
        }
    }
    for a in &checks {
        if !authz.authorize(a).allowed() {
            return Err(super::forbidden(&a.api_group, &a.resource, &a.name, &super::forbidden_message(a)));
        }
    }
    let mut user = UserInfo { name: name.clone(), uid: uid.unwrap_or_default(), groups, extra };
    if let Some((ns, _)) = sa {
        for g in ["system:serviceaccounts".to_string(), format!("system:serviceaccounts:{ns}")] {
            if !user.groups.contains(&g) {
                user.groups.push(g);
            }
        }
    }
    let implied = if name == crate::auth::authn::ANONYMOUS { crate::auth::authn::UNAUTHENTICATED } else { crate::auth::authn::AUTHENTICATED };
    if !user.groups.iter().any(|g| g == implied) {
        user.groups.push(implied.into());
    }
    Ok(Some(user))
}

/// The impersonation headers go no further than this layer.
pub fn strip_headers(headers: &mut HeaderMap) {
    let names: Vec<_> = headers.keys().filter(|h| h.as_str().starts_with("impersonate-")).cloned().collect();
    for n in names {
        headers.remove(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_keys_are_decoded_and_lowercased() {
        assert_eq!(extra_key("impersonate-extra-scopes"), "scopes");
        assert_eq!(extra_key("impersonate-extra-example.com%2fteam"), "example.com/team");
    }
}
