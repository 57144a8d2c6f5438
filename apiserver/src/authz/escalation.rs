//! Escalation prevention (upstream pkg/registry/rbac/validation): a user may write a role
//! only with rules it holds itself, and bind a role only if it holds the role's rules,
//! unless it has `escalate` (roles) or `bind` (the role) or is in system:masters.

use crate::auth::UserInfo;
use k8s_openapi::api::rbac::v1::PolicyRule;

fn has(list: &[String], v: &str) -> bool {
    list.iter().any(|x| x == "*" || x == v)
}

fn opt(list: &Option<Vec<String>>) -> &[String] {
    list.as_deref().unwrap_or(&[])
}

/// One verb on one resource (or name, or URL): what upstream's BreakdownRule yields.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Atom<'a> {
    verb: &'a str,
    group: Option<&'a str>,
    resource: Option<&'a str>,
    name: Option<&'a str>,
    url: Option<&'a str>,
}

fn breakdown(rule: &PolicyRule) -> Vec<Atom<'_>> {
    let mut out = Vec::new();
    for verb in &rule.verbs {
        for group in opt(&rule.api_groups) {
            for resource in opt(&rule.resources) {
                let names = opt(&rule.resource_names);
                if names.is_empty() {
                    out.push(Atom { verb, group: Some(group), resource: Some(resource), name: None, url: None });
                }
                for name in names {
                    out.push(Atom { verb, group: Some(group), resource: Some(resource), name: Some(name), url: None });
                }
            }
        }
        for url in opt(&rule.non_resource_urls) {
            out.push(Atom { verb, group: None, resource: None, name: None, url: Some(url) });
        }
    }
    out
}

/// Upstream's resourceCoversAll for one resource: `*`, exact, or `*/<subresource>`.
fn resource_covers(owner: &[String], resource: &str) -> bool {
    if owner.iter().any(|r| r == "*" || r == resource) {
        return true;
    }
    match resource.split_once('/') {
        Some((_, sub)) => owner.iter().any(|r| r.strip_prefix("*/") == Some(sub)),
        None => false,
    }
}

fn covers(owner: &PolicyRule, atom: &Atom) -> bool {
    if !has(&owner.verbs, atom.verb) {
        return false;
    }
    if let Some(url) = atom.url {
        return opt(&owner.non_resource_urls).iter().any(|o| o == "*" || o == url || o.strip_suffix('*').is_some_and(|p| url.starts_with(p)));
    }
    let (Some(group), Some(resource)) = (atom.group, atom.resource) else { return false };
    if !has(opt(&owner.api_groups), group) || !resource_covers(opt(&owner.resources), resource) {
        return false;
    }
    let names = opt(&owner.resource_names);
    names.is_empty() || atom.name.is_some_and(|n| names.iter().any(|x| x == n))
}

/// The rules of `wanted` that no rule of `held` covers, compacted as upstream prints them
/// (one rule per group/resource/name with its verbs).
pub fn missing(held: &[PolicyRule], wanted: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut out: Vec<PolicyRule> = Vec::new();
    for rule in wanted {
        for atom in breakdown(rule) {
            if held.iter().any(|h| covers(h, &atom)) {
                continue;
            }
            let same = |r: &PolicyRule| {
                opt(&r.api_groups).first().map(String::as_str) == atom.group
                    && opt(&r.resources).first().map(String::as_str) == atom.resource
                    && opt(&r.resource_names).first().map(String::as_str) == atom.name
                    && opt(&r.non_resource_urls).first().map(String::as_str) == atom.url
            };
            match out.iter_mut().find(|r| same(r)) {
                Some(r) if !r.verbs.iter().any(|v| v == atom.verb) => r.verbs.push(atom.verb.to_string()),
                Some(_) => {}
                None => {
                    let one = |x: Option<&str>| x.map(|s| vec![s.to_string()]);
                    out.push(PolicyRule {
                        verbs: vec![atom.verb.to_string()],
                        api_groups: one(atom.group),
                        resources: one(atom.resource),
                        resource_names: one(atom.name),
                        non_resource_urls: one(atom.url),
                    });
                }
            }
        }
    }
    // Upstream sorts the missing rules by their string form.
    out.sort_by_cached_key(compact_string);
    out
}

/// Upstream's PolicyRule.CompactString: `{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}`.
pub fn compact_string(r: &PolicyRule) -> String {
    let q = |l: &[String]| format!("[{}]", l.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(" "));
    let mut parts = Vec::new();
    for (label, list) in [("APIGroups", &r.api_groups), ("Resources", &r.resources), ("ResourceNames", &r.resource_names), ("NonResourceURLs", &r.non_resource_urls)] {
        if let Some(l) = list.as_ref().filter(|l| !l.is_empty()) {
            parts.push(format!("{label}:{}", q(l)));
        }
    }
    parts.push(format!("Verbs:{}", q(&r.verbs)));
    format!("{{{}}}", parts.join(", "))
}

/// The reason after `<resource> "<name>" is forbidden: `.
pub fn escalation_message(user: &UserInfo, missing: &[PolicyRule]) -> String {
    let groups = format!("[{}]", user.groups.iter().map(|g| format!("{g:?}")).collect::<Vec<_>>().join(" "));
    let rules: Vec<String> = missing.iter().map(compact_string).collect();
    format!("user {:?} (groups={groups}) is attempting to grant RBAC permissions not currently held:\n{}", user.name, rules.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        let v = |x: &[&str]| Some(x.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        PolicyRule { verbs: verbs.iter().map(|s| s.to_string()).collect(), api_groups: v(groups), resources: v(resources), ..Default::default() }
    }

    #[test]
    fn held_rules_cover_narrower_ones() {
        let held = [rule(&["get", "list"], &[""], &["pods", "configmaps"]), rule(&["*"], &["apps"], &["*"])];
        assert!(missing(&held, &[rule(&["get"], &[""], &["pods"])]).is_empty());
        assert!(missing(&held, &[rule(&["delete", "create"], &["apps"], &["deployments", "deployments/scale"])]).is_empty());
        let m = missing(&held, &[rule(&["get", "delete"], &[""], &["pods", "secrets"])]);
        assert_eq!(m.iter().map(compact_string).collect::<Vec<_>>(), [
            r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}"#,
            r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get" "delete"]}"#,
        ]);
    }

    #[test]
    fn subresource_wildcards_and_names() {
        let held = [rule(&["update"], &[""], &["*/status"])];
        assert!(missing(&held, &[rule(&["update"], &[""], &["pods/status"])]).is_empty());
        assert_eq!(missing(&held, &[rule(&["update"], &[""], &["pods"])]).len(), 1);
        let mut named = rule(&["get"], &[""], &["secrets"]);
        named.resource_names = Some(vec!["a".into()]);
        assert!(!missing(&[named.clone()], &[rule(&["get"], &[""], &["secrets"])]).is_empty(), "a name does not cover all");
        assert!(missing(&[rule(&["get"], &[""], &["secrets"])], &[named]).is_empty());
    }

    #[test]
    fn message_is_upstreams() {
        let u = UserInfo { name: "bob".into(), groups: vec!["system:authenticated".into()], ..Default::default() };
        let m = escalation_message(&u, &[rule(&["get"], &[""], &["secrets"])]);
        assert_eq!(m, "user \"bob\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}");
    }
}
