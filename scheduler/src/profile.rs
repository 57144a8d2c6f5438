//! Profiles from a KubeSchedulerConfiguration (`--config`): which plugins
//! run at which point, score weights, plugin args. A pod picks its profile
//! with spec.schedulerName.
//!
//! Built in (from `manifests/scheduler-profiles.yaml`): `default-scheduler`,
//! and the ECS placement strategies `spread`, `binpack` and `random`.
//! Profiles in `--config` are added to these, replacing any of the same name.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Deserialize;

use crate::framework::{Framework, Plugin};
use crate::plugins::registry::{factory, DEFAULT_FILTERS, DEFAULT_SCORES};

pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
pub const BUILTIN_PROFILES: &str = include_str!("../../manifests/scheduler-profiles.yaml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing scheduler configuration: {0}")]
    Parse(#[from] serde_yaml::Error),
    #[error("unsupported configuration kind {0:?} (want KubeSchedulerConfiguration)")]
    Kind(String),
    #[error("profile {profile}: unknown plugin {plugin:?}")]
    UnknownPlugin { profile: String, plugin: String },
    #[error("profile {profile}: plugin {plugin}: invalid args: {message}")]
    Args {
        profile: String,
        plugin: String,
        message: String,
    },
    #[error("profile {profile}: score weight of {plugin} must be in 1..=100")]
    Weight { profile: String, plugin: String },
    #[error("a profile needs a schedulerName")]
    MissingName,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeSchedulerConfiguration {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<u32>,
    #[serde(default)]
    pub profiles: Vec<ProfileConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileConfig {
    #[serde(default)]
    pub scheduler_name: String,
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<u32>,
    #[serde(default)]
    pub plugins: Plugins,
    #[serde(default)]
    pub plugin_config: Vec<PluginConfig>,
}

/// Extension points as upstream names them. PreFilter, Filter and Reserve
/// go together here ("filter"), as do PreScore and Score ("score").
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plugins {
    #[serde(default)]
    pub multi_point: PluginSet,
    #[serde(default)]
    pub pre_filter: PluginSet,
    #[serde(default)]
    pub filter: PluginSet,
    #[serde(default)]
    pub post_filter: PluginSet,
    #[serde(default)]
    pub pre_score: PluginSet,
    #[serde(default)]
    pub score: PluginSet,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PluginSet {
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PluginRef {
    pub name: String,
    #[serde(default)]
    pub weight: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PluginConfig {
    pub name: String,
    #[serde(default)]
    pub args: Option<serde_json::Value>,
}

pub fn parse(yaml: &str) -> Result<KubeSchedulerConfiguration, ConfigError> {
    let cfg: KubeSchedulerConfiguration = serde_yaml::from_str(yaml)?;
    match cfg.kind.as_deref() {
        None | Some("KubeSchedulerConfiguration") => Ok(cfg),
        Some(other) => Err(ConfigError::Kind(other.to_string())),
    }
}

fn apply(list: &mut Vec<(String, i64)>, set: &PluginSet, default_weight: i64) {
    for d in &set.disabled {
        if d.name == "*" {
            list.clear();
        } else {
            list.retain(|(n, _)| *n != d.name);
        }
    }
    for e in &set.enabled {
        let w = e.weight.unwrap_or(default_weight);
        match list.iter_mut().find(|(n, _)| *n == e.name) {
            Some(entry) => entry.1 = e.weight.unwrap_or(entry.1),
            None => list.push((e.name.clone(), w)),
        }
    }
}

/// Builds one profile's Framework from the defaults and the overrides.
pub fn build_profile(p: &ProfileConfig, global_percentage: Option<u32>) -> Result<Framework, ConfigError> {
    if p.scheduler_name.is_empty() {
        return Err(ConfigError::MissingName);
    }
    let profile = p.scheduler_name.clone();
    let mut filters: Vec<(String, i64)> = DEFAULT_FILTERS.iter().map(|n| (n.to_string(), 0)).collect();
    let mut scores: Vec<(String, i64)> = DEFAULT_SCORES.iter().map(|(n, w)| (n.to_string(), *w)).collect();
    let pl = &p.plugins;
    apply(&mut filters, &pl.multi_point, 0);
    apply(&mut scores, &pl.multi_point, 1);
    apply(&mut filters, &pl.pre_filter, 0);
    apply(&mut filters, &pl.filter, 0);
    apply(&mut filters, &pl.post_filter, 0);
    apply(&mut scores, &pl.pre_score, 1);
    apply(&mut scores, &pl.score, 1);
    // A multiPoint-enabled plugin without Score support is not a scorer.
    scores.retain(|(n, _)| DEFAULT_SCORES.iter().any(|(d, _)| d == n) || pl.score.enabled.iter().any(|e| &e.name == n));

    let args: HashMap<&str, &serde_json::Value> = p
        .plugin_config
        .iter()
        .filter_map(|c| c.args.as_ref().map(|a| (c.name.as_str(), a)))
        .collect();
    let mut instances: BTreeMap<String, Arc<dyn Plugin>> = BTreeMap::new();
    let mut instance = |name: &str| -> Result<Arc<dyn Plugin>, ConfigError> {
        if let Some(p) = instances.get(name) {
            return Ok(p.clone());
        }
        let f = factory(name).ok_or_else(|| ConfigError::UnknownPlugin {
            profile: profile.clone(),
            plugin: name.to_string(),
        })?;
        let plugin = f(args.get(name).copied()).map_err(|message| ConfigError::Args {
            profile: profile.clone(),
            plugin: name.to_string(),
            message,
        })?;
        instances.insert(name.to_string(), plugin.clone());
        Ok(plugin)
    };
    let mut filter_plugins = Vec::new();
    for (name, _) in &filters {
        filter_plugins.push(instance(name)?);
    }
    let mut score_plugins = Vec::new();
    for (name, w) in &scores {
        if !(1..=100).contains(w) {
            return Err(ConfigError::Weight {
                profile: profile.clone(),
                plugin: name.clone(),
            });
        }
        let plugin = instance(name)?;
        if plugin.as_score().is_some() {
            score_plugins.push((plugin, *w));
        }
    }
    let mut fw = Framework::new(&profile, filter_plugins, score_plugins);
    fw.percentage_of_nodes_to_score = p
        .percentage_of_nodes_to_score
        .or(global_percentage)
        .unwrap_or(0)
        .min(100);
    Ok(fw)
}

/// The built-in profiles, then those of `extra` (a --config file's text).
pub fn load_profiles(extra: Option<&str>) -> Result<BTreeMap<String, Arc<Framework>>, ConfigError> {
    let mut out = BTreeMap::new();
    for text in std::iter::once(BUILTIN_PROFILES).chain(extra) {
        let cfg = parse(text)?;
        for p in &cfg.profiles {
            out.insert(
                p.scheduler_name.clone(),
                Arc::new(build_profile(p, cfg.percentage_of_nodes_to_score)?),
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score_names(fw: &Framework) -> Vec<(&'static str, i64)> {
        fw.score_weights.iter().map(|(p, w)| (p.name(), *w)).collect()
    }

    #[test]
    fn builtin_profiles_load() {
        let profiles = load_profiles(None).unwrap();
        let names: Vec<&str> = profiles.keys().map(|s| s.as_str()).collect();
        assert_eq!(names, vec!["binpack", "default-scheduler", "random", "spread"]);
        assert_eq!(score_names(&profiles["binpack"]), vec![("NodeResourcesFit", 1)]);
        assert!(score_names(&profiles["random"]).is_empty());
        assert_eq!(profiles["default-scheduler"].score_weights.len(), 7);
        assert_eq!(profiles["default-scheduler"].plugins.len(), 10);
    }

    #[test]
    fn config_overrides_weights_and_rejects_unknown_plugins() {
        let yaml = r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: mine
  plugins:
    score:
      enabled:
      - name: ImageLocality
        weight: 9
"#;
        let profiles = load_profiles(Some(yaml)).unwrap();
        assert!(score_names(&profiles["mine"]).contains(&("ImageLocality", 9)));
        let bad = yaml.replace("ImageLocality", "Nope");
        assert!(matches!(
            load_profiles(Some(&bad)),
            Err(ConfigError::UnknownPlugin { .. })
        ));
    }

    #[test]
    fn bad_args_are_a_config_error() {
        let yaml = r#"
profiles:
- schedulerName: x
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: Sideways
"#;
        assert!(matches!(load_profiles(Some(yaml)), Err(ConfigError::Args { .. })));
    }
}
