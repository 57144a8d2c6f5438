//! A pod's QoS class (upstream's GetPodQOS / ComputePodQOS), from the cpu
//! and memory of its containers and init containers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use crate::quantity::Quantity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

impl std::fmt::Display for QosClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const QOS_RESOURCES: [&str; 2] = ["cpu", "memory"];

/// The class a pod has: status.qosClass once set (it never changes), else
/// computed from the spec.
pub fn pod_qos(pod: &Pod) -> QosClass {
    let recorded = pod.status.as_ref().and_then(|s| s.qos_class.as_deref());
    match recorded {
        Some("Guaranteed") => QosClass::Guaranteed,
        Some("Burstable") => QosClass::Burstable,
        Some("BestEffort") => QosClass::BestEffort,
        _ => pod.spec.as_ref().map_or(QosClass::BestEffort, pod_qos_class),
    }
}

/// Computes the class from a spec. A missing request defaults to its limit,
/// as API defaulting does, so an undefaulted spec gets the class the stored
/// pod will have.
pub fn pod_qos_class(spec: &PodSpec) -> QosClass {
    let parse = |m: Option<&BTreeMap<String, ApiQuantity>>| -> Vec<(&'static str, Quantity)> {
        QOS_RESOURCES
            .iter()
            .filter_map(|r| Some((*r, Quantity::from_api(m?.get(*r)?).ok()?)))
            .collect()
    };
    let containers = spec.containers.iter().chain(spec.init_containers.iter().flatten());
    classify(containers.map(|c: &Container| {
        let r = c.resources.as_ref();
        (parse(r.and_then(|r| r.requests.as_ref())), parse(r.and_then(|r| r.limits.as_ref())))
    }))
}

/// The same for an unstructured pod spec, for callers that hold JSON.
pub fn pod_qos_class_json(spec: &serde_json::Value) -> QosClass {
    let parse = |m: Option<&serde_json::Value>| -> Vec<(&'static str, Quantity)> {
        QOS_RESOURCES
            .iter()
            .filter_map(|r| Some((*r, Quantity::from_json(m?.get(*r)?).ok()?)))
            .collect()
    };
    let containers = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(serde_json::Value::as_array))
        .flatten();
    classify(containers.map(|c| (parse(c.pointer("/resources/requests")), parse(c.pointer("/resources/limits")))))
}

/// Upstream's rule over (requests, limits) per container: only positive
/// amounts count; Guaranteed needs cpu and memory limits on every container
/// and pod-wide request sums equal to limit sums; no amounts is BestEffort.
fn classify(containers: impl Iterator<Item = (Vec<(&'static str, Quantity)>, Vec<(&'static str, Quantity)>)>) -> QosClass {
    let mut requests: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut limits: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut guaranteed = true;
    let add = |sums: &mut BTreeMap<&'static str, Quantity>, name, q: &Quantity| {
        let sum = sums.entry(name).or_insert(Quantity::ZERO);
        *sum = sum.checked_add(q).unwrap_or(*sum);
    };
    for (mut req, lim) in containers {
        for (name, l) in &lim {
            if !req.iter().any(|(n, _)| n == name) {
                req.push((name, *l));
            }
        }
        for (name, q) in req.iter().filter(|(_, q)| q.signum() > 0) {
            add(&mut requests, name, q);
        }
        let positive_limits: Vec<_> = lim.iter().filter(|(_, q)| q.signum() > 0).collect();
        for (name, q) in &positive_limits {
            add(&mut limits, name, q);
        }
        if !QOS_RESOURCES.iter().all(|r| positive_limits.iter().any(|(n, _)| n == r)) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    if guaranteed && requests.len() == limits.len() && requests.iter().all(|(n, r)| limits.get(n) == Some(r)) {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    fn list(cpu: &str, mem: &str) -> Option<BTreeMap<String, ApiQuantity>> {
        let mut m = BTreeMap::new();
        for (k, v) in [("cpu", cpu), ("memory", mem)] {
            if !v.is_empty() {
                m.insert(k.to_string(), ApiQuantity(v.into()));
            }
        }
        Some(m)
    }

    fn c(req: (&str, &str), lim: (&str, &str)) -> Container {
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements { requests: list(req.0, req.1), limits: list(lim.0, lim.1), ..Default::default() }),
            ..Default::default()
        }
    }

    fn spec(containers: Vec<Container>, init: Vec<Container>) -> PodSpec {
        PodSpec { containers, init_containers: Some(init), ..Default::default() }
    }

    /// Upstream's TestComputePodQOS cases without pod-level resources.
    #[test]
    fn upstream_cases() {
        let none = ("", "");
        for (name, containers, init, want) in [
            ("guaranteed", vec![c(("100m", "100Mi"), ("100m", "100Mi"))], vec![], QosClass::Guaranteed),
            ("guaranteed-guaranteed", vec![c(("100m", "100Mi"), ("100m", "100Mi")), c(("100m", "100Mi"), ("100m", "100Mi"))], vec![], QosClass::Guaranteed),
            ("best-effort-best-effort", vec![c(none, none), c(none, none)], vec![], QosClass::BestEffort),
            ("best-effort", vec![c(none, none)], vec![], QosClass::BestEffort),
            ("best-effort-burstable", vec![c(none, none), c(("1", ""), ("2", ""))], vec![], QosClass::Burstable),
            ("best-effort-guaranteed", vec![c(none, none), c(("10m", "100Mi"), ("10m", "100Mi"))], vec![], QosClass::Burstable),
            ("burstable-cpu-guaranteed-memory", vec![c(("", "100Mi"), ("", "100Mi"))], vec![], QosClass::Burstable),
            ("burstable-no-limits", vec![c(("100m", "100Mi"), none)], vec![], QosClass::Burstable),
            ("burstable-guaranteed", vec![c(("1", "100Mi"), ("2", "100Mi")), c(("100m", "100Mi"), ("100m", "100Mi"))], vec![], QosClass::Burstable),
            (
                "burstable-unbounded-but-requests-match-limits",
                vec![c(("100m", "100Mi"), ("200m", "200Mi")), c(("100m", "100Mi"), none)],
                vec![],
                QosClass::Burstable,
            ),
            ("burstable-1", vec![c(("10m", "100Mi"), ("100m", "200Mi"))], vec![], QosClass::Burstable),
            ("burstable-2", vec![c(("0", "0"), ("100m", "200Mi"))], vec![], QosClass::Burstable),
            ("init-container", vec![c(none, none)], vec![c(("10m", "100Mi"), ("100m", "200Mi"))], QosClass::Burstable),
        ] {
            assert_eq!(pod_qos_class(&spec(containers, init)), want, "{name}");
        }
    }

    #[test]
    fn hugepages_alone_are_best_effort() {
        let mut ct = c(("0", "0"), ("0", "0"));
        let r = ct.resources.as_mut().unwrap();
        for m in [r.requests.as_mut().unwrap(), r.limits.as_mut().unwrap()] {
            m.insert("hugepages-2Mi".into(), ApiQuantity("1Gi".into()));
        }
        assert_eq!(pod_qos_class(&spec(vec![ct], vec![])), QosClass::BestEffort);
    }

    /// The kubelet's old copy compared strings; equal values in other
    /// spellings are still Guaranteed.
    #[test]
    fn limits_alone_default_requests_and_values_compare_exactly() {
        assert_eq!(pod_qos_class(&spec(vec![c(none(), ("1", "64Mi"))], vec![])), QosClass::Guaranteed);
        assert_eq!(pod_qos_class(&spec(vec![c(("1000m", "65536Ki"), ("1", "64Mi"))], vec![])), QosClass::Guaranteed);
    }

    fn none() -> (&'static str, &'static str) {
        ("", "")
    }

    #[test]
    fn recorded_class_wins_and_json_agrees() {
        let mut pod = Pod { spec: Some(spec(vec![c(none(), none())], vec![])), ..Default::default() };
        assert_eq!(pod_qos(&pod), QosClass::BestEffort);
        pod.status = Some(k8s_openapi::api::core::v1::PodStatus { qos_class: Some("Burstable".into()), ..Default::default() });
        assert_eq!(pod_qos(&pod), QosClass::Burstable);
        let g = serde_json::json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]});
        assert_eq!(pod_qos_class_json(&g), QosClass::Guaranteed);
        let b = serde_json::json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]});
        assert_eq!(pod_qos_class_json(&b), QosClass::Burstable);
        assert_eq!(pod_qos_class_json(&serde_json::json!({"containers": [{}]})), QosClass::BestEffort);
    }
}
