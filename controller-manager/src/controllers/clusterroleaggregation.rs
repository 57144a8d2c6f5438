//! The ClusterRole aggregation controller (upstream pkg/controller/clusterroleaggregation):
//! a ClusterRole with `aggregationRule.clusterRoleSelectors` holds the rules of every
//! ClusterRole its selectors pick. Any ClusterRole change requeues every aggregated role,
//! since a label or a rule anywhere can change what one aggregates.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::PostParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Api;

use super::{Ctx, Result};
use crate::runtime::{run_workers, Informers, Key, WorkQueue};

pub const NAME: &str = "clusterrole-aggregation-controller";

/// The role with its aggregated rules, or None when it is already up to date (or aggregates nothing).
pub fn plan(role: &ClusterRole, all: &[ClusterRole]) -> Option<ClusterRole> {
    let rules = apimachinery::rbac::aggregated_rules(role, all)?;
    if role.rules.as_deref().unwrap_or(&[]) == rules.as_slice() {
        return None;
    }
    let mut out = role.clone();
    out.rules = Some(rules);
    Some(out)
}

struct State {
    ctx: Ctx,
    roles: Store<ClusterRole>,
}

pub fn register(inf: &mut Informers, ctx: &Ctx) {
    let queue: WorkQueue<Key> = WorkQueue::default();
    let roles: Store<ClusterRole> = inf.store();
    {
        let q = queue.clone();
        let store = roles.clone();
        inf.get::<ClusterRole>().on_change(move |_, _| {
            for r in store.state() {
                if r.aggregation_rule.is_some() {
                    q.add(Key::cluster(r.metadata.name.as_deref().unwrap_or_default()));
                }
            }
        });
    }
    let state = Arc::new(State { ctx: ctx.clone(), roles });
    let synced = vec![inf.synced::<ClusterRole>()];
    run_workers(NAME, queue, 1, ctx.metrics.clone(), synced, move |key| {
        let state = state.clone();
        async move { sync(&state, &key).await }
    });
}

async fn sync(st: &State, key: &Key) -> Result<Option<Duration>> {
    let Some(role) = st.roles.get(&ObjectRef::new(&key.name)) else { return Ok(None) };
    let all: Vec<ClusterRole> = st.roles.state().iter().map(|r| (**r).clone()).collect();
    let Some(updated) = plan(&role, &all) else { return Ok(None) };
    let api: Api<ClusterRole> = Api::all(st.ctx.client.clone());
    match super::timed(api.replace(&key.name, &PostParams::default(), &updated)).await? {
        Ok(_) => Ok(None),
        Err(e) if super::is_not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::{AggregationRule, PolicyRule};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn role(name: &str, labels: &[(&str, &str)], verbs: &[&str]) -> ClusterRole {
        ClusterRole {
            metadata: ObjectMeta { name: Some(name.into()), labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()), ..Default::default() },
            rules: Some(verbs.iter().map(|v| PolicyRule { verbs: vec![v.to_string()], api_groups: Some(vec!["".into()]), resources: Some(vec!["pods".into()]), ..Default::default() }).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn aggregated_roles_gain_the_selected_rules_once() {
        let mut view = role("view", &[], &[]);
        view.aggregation_rule = Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector { match_labels: Some([("rbac.example/agg".to_string(), "true".to_string())].into()), ..Default::default() }]),
        });
        let all = vec![view.clone(), role("a", &[("rbac.example/agg", "true")], &["get", "list"]), role("b", &[], &["delete"])];
        let updated = plan(&view, &all).expect("rules to add");
        assert_eq!(updated.rules.as_ref().unwrap().iter().map(|r| r.verbs[0].as_str()).collect::<Vec<_>>(), ["get", "list"]);
        assert!(plan(&updated, &all).is_none(), "nothing left to do");
        assert!(plan(&all[1], &all).is_none(), "not aggregated");
    }
}
