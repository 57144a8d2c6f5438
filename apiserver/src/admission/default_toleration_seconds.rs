//! DefaultTolerationSeconds: every pod tolerates not-ready and unreachable nodes for a while
//! (`--default-not-ready-toleration-seconds`, `--default-unreachable-toleration-seconds`)
//! unless it already tolerates them.

use super::{AdmissionConfig, Attributes, Plugin};
use crate::status::ApiError;
use futures::future::BoxFuture;
use serde_json::{json, Value};

pub struct DefaultTolerationSeconds {
    not_ready_seconds: i64,
    unreachable_seconds: i64,
}

impl DefaultTolerationSeconds {
    pub fn new(config: &AdmissionConfig) -> Self {
        DefaultTolerationSeconds {
            not_ready_seconds: config.default_not_ready_toleration_seconds,
            unreachable_seconds: config.default_unreachable_toleration_seconds,
        }
    }

    /// Adds `key:NoExecute` tolerations for not-ready and unreachable nodes unless present.
    pub fn add_tolerations(&self, spec: &mut Value) {
        let mut tols = spec.get("tolerations").and_then(Value::as_array).cloned().unwrap_or_default();
        for (key, secs) in [("node.kubernetes.io/not-ready", self.not_ready_seconds), ("node.kubernetes.io/unreachable", self.unreachable_seconds)] {
            let tolerated = tols.iter().any(|t| {
                let k = t.get("key").and_then(Value::as_str).filter(|k| !k.is_empty());
                let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
                // Upstream's plugin ignores the operator here: any empty-key toleration counts.
                (k == Some(key) || k.is_none()) && (effect.is_empty() || effect == "NoExecute")
            });
            if !tolerated {
                tols.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": secs}));
            }
        }
        spec["tolerations"] = json!(tols);
    }
}

impl Plugin for DefaultTolerationSeconds {
    fn name(&self) -> &'static str {
        "DefaultTolerationSeconds"
    }
    fn admit<'a>(&'a self, attrs: &'a Attributes<'a>, pod: &'a mut Value) -> BoxFuture<'a, Result<(), ApiError>> {
        if attrs.is("", "pods") && pod.get("spec").is_some_and(Value::is_object) {
            self.add_tolerations(&mut pod["spec"]);
        }
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_both_tolerations_unless_already_tolerated() {
        let plugin = DefaultTolerationSeconds::new(&AdmissionConfig { default_not_ready_toleration_seconds: 30, default_unreachable_toleration_seconds: 60 });
        let mut spec = json!({});
        plugin.add_tolerations(&mut spec);
        assert_eq!(spec["tolerations"][0], json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}));
        assert_eq!(spec["tolerations"][1]["tolerationSeconds"], 60);
        // An empty key with Exists tolerates everything.
        let mut all = json!({"tolerations": [{"operator": "Exists"}]});
        plugin.add_tolerations(&mut all);
        assert_eq!(all["tolerations"].as_array().unwrap().len(), 1);
        let mut own = json!({"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]});
        plugin.add_tolerations(&mut own);
        assert_eq!(own["tolerations"].as_array().unwrap().len(), 2);
        assert_eq!(own["tolerations"][0]["tolerationSeconds"], 5);
    }
}
