//! Taints and tolerations (upstream's `Toleration.ToleratesTaint` and the
//! v1 helpers around it).

use k8s_openapi::api::core::v1::{Taint, Toleration};

pub const NO_SCHEDULE: &str = "NoSchedule";
pub const PREFER_NO_SCHEDULE: &str = "PreferNoSchedule";
pub const NO_EXECUTE: &str = "NoExecute";

/// Does `t` tolerate `taint`? An empty effect matches every effect, an empty
/// key every key; `Exists` ignores the value, `Equal` (the default) compares
/// it. An operator this version does not know tolerates nothing.
pub fn tolerates_taint(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "Exists" => true,
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// Upstream's TolerationsTolerateTaint: some toleration tolerates `taint`.
pub fn tolerations_tolerate_taint(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates_taint(t, taint))
}

/// Upstream's FindMatchingUntoleratedTaint: the first taint passing
/// `filter` that no toleration tolerates.
pub fn find_untolerated_taint<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    filter: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints.iter().filter(|t| filter(t)).find(|t| !tolerations_tolerate_taint(tolerations, t))
}

/// Taints that keep pods off a node: NoSchedule and NoExecute.
pub fn is_scheduling_taint(taint: &Taint) -> bool {
    taint.effect == NO_SCHEDULE || taint.effect == NO_EXECUTE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Toleration { key: opt(key), operator: opt(op), value: opt(value), effect: opt(effect), toleration_seconds: None }
    }

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint { key: key.into(), value: (!value.is_empty()).then(|| value.into()), effect: effect.into(), time_added: None }
    }

    /// Upstream's TestTolerationToleratesTaint cases for Exists and Equal.
    #[test]
    fn upstream_cases() {
        let ns = NO_SCHEDULE;
        for (t, tn, want) in [
            (tol("foo", "Exists", "", ns), taint("foo", "", ns), true),
            (tol("foo", "Exists", "", ns), taint("foo", "bar", ns), true),
            (tol("", "Exists", "", ns), taint("foo", "bar", ns), true),
            (tol("foo", "Equal", "bar", ns), taint("foo", "bar", ns), true),
            (tol("foo", "Equal", "value1", ns), taint("foo", "value2", ns), false),
            (tol("foo", "Equal", "bar", ns), taint("foo", "bar", NO_EXECUTE), false),
        ] {
            assert_eq!(tolerates_taint(&t, &tn), want, "{t:?} vs {tn:?}");
        }
    }

    #[test]
    fn empty_key_and_effect_match_everything() {
        let all = tol("", "Exists", "", "");
        assert!(tolerates_taint(&all, &taint("node.kubernetes.io/not-ready", "", NO_EXECUTE)));
        assert!(tolerates_taint(&all, &taint("x", "y", PREFER_NO_SCHEDULE)));
        assert!(tolerates_taint(&tol("k", "Exists", "", ""), &taint("k", "v", NO_SCHEDULE)));
        assert!(!tolerates_taint(&tol("k", "Exists", "", NO_SCHEDULE), &taint("k", "v", NO_EXECUTE)));
    }

    /// The scheduler's old copy refused an empty key with Equal; upstream
    /// compares the value (validation forbids the combination anyway).
    #[test]
    fn empty_key_with_equal_compares_the_value() {
        assert!(tolerates_taint(&tol("", "", "", ""), &taint("k", "", NO_SCHEDULE)));
        assert!(!tolerates_taint(&tol("", "Equal", "v", ""), &taint("k", "w", NO_SCHEDULE)));
    }

    #[test]
    fn default_operator_is_equal_and_unknown_operators_tolerate_nothing() {
        assert!(tolerates_taint(&tol("k", "", "v", ""), &taint("k", "v", NO_SCHEDULE)));
        assert!(!tolerates_taint(&tol("k", "", "", ""), &taint("k", "v", NO_SCHEDULE)));
        assert!(!tolerates_taint(&tol("k", "Gt", "1", ""), &taint("k", "2", NO_SCHEDULE)));
    }

    #[test]
    fn untolerated_taints() {
        let taints = [taint("a", "", PREFER_NO_SCHEDULE), taint("b", "", NO_SCHEDULE), taint("c", "", NO_EXECUTE)];
        let tols = [tol("b", "Exists", "", "")];
        assert_eq!(find_untolerated_taint(&taints, &tols, is_scheduling_taint).map(|t| t.key.as_str()), Some("c"));
        assert!(tolerations_tolerate_taint(&tols, &taints[1]));
        assert_eq!(find_untolerated_taint(&taints[..2], &tols, is_scheduling_taint), None);
    }
}
