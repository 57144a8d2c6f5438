//! The component schemas of every built-in kind, generated once from k8s-openapi's `schemars`
//! support, and a small walker over them that the patch and validation code share.

use crate::patch::smp_keys::{self, PatchMeta};
use crate::types::Gvk;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::OnceLock;

const REF_PREFIX: &str = "#/components/schemas/";

/// All component schemas plus which definition is the top-level schema of each kind.
pub struct Definitions {
    pub schemas: Map<String, Value>,
    roots: Vec<(Gvk, String)>,
}

macro_rules! roots {
    ($gen:ident, $roots:ident; $($ty:path),* $(,)?) => {{
        $(
            {
                use k8s_openapi::Resource as _;
                $gen.subschema_for::<$ty>();
                let name = <$ty as schemars::JsonSchema>::schema_name().to_string();
                $roots.push((Gvk::new(<$ty>::GROUP, <$ty>::VERSION, <$ty>::KIND), name));
            }
        )*
    }};
}

fn build() -> Definitions {
    use k8s_openapi::api::{
        apps::v1 as apps, authentication::v1 as authentication, authorization::v1 as authorization, autoscaling::v1 as autoscaling, autoscaling::v2 as autoscaling2, batch::v1 as batch,
        coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
        events::v1 as events, networking::v1 as networking, node::v1 as node, policy::v1 as policy, rbac::v1 as rbac,
        scheduling::v1 as scheduling, storage::v1 as storage,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
    let mut settings = SchemaSettings::openapi3();
    settings.meta_schema = None;
    let mut gen = SchemaGenerator::new(settings);
    let mut roots = Vec::new();
    roots!(gen, roots;
        core::Pod, core::Namespace, core::Node, core::Event, core::ConfigMap, core::Secret, core::Service,
        core::Endpoints, core::ServiceAccount, core::Binding, core::PodTemplate, core::ReplicationController,
        core::LimitRange, core::ResourceQuota, core::PersistentVolume, core::PersistentVolumeClaim,
        apps::Deployment, apps::ReplicaSet, apps::DaemonSet, apps::StatefulSet, apps::ControllerRevision,
        batch::Job, batch::CronJob, coordination::Lease, events::Event, discovery::EndpointSlice,
        policy::PodDisruptionBudget, policy::Eviction, scheduling::PriorityClass, autoscaling::Scale,
        autoscaling::HorizontalPodAutoscaler,
        networking::Ingress, networking::NetworkPolicy, networking::IngressClass,
        rbac::Role, rbac::RoleBinding, rbac::ClusterRole, rbac::ClusterRoleBinding, storage::StorageClass,
        storage::CSIDriver, storage::CSINode, storage::VolumeAttachment, node::RuntimeClass, autoscaling2::HorizontalPodAutoscaler,
        authentication::TokenReview, authentication::SelfSubjectReview, authorization::SubjectAccessReview,
        authorization::LocalSubjectAccessReview, authorization::SelfSubjectAccessReview, authorization::SelfSubjectRulesReview,
    );
    // Kinds without a resource of their own that every group-version document references.
    gen.subschema_for::<meta::Status>();
    gen.subschema_for::<meta::DeleteOptions>();
    roots.push((
        Gvk::new("", "v1", "Status"),
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status".into(),
    ));
    roots.push((
        Gvk::new("", "v1", "DeleteOptions"),
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions".into(),
    ));
    let mut schemas = gen.take_definitions(true);
    for schema in schemas.values_mut() {
        wrap_refs(schema);
    }
    for (gvk, name) in &roots {
        if let Some(Value::Object(obj)) = schemas.get_mut(name) {
            let entry =
                serde_json::json!({"group": gvk.group, "version": gvk.version, "kind": gvk.kind});
            match obj.get_mut("x-kubernetes-group-version-kind") {
                Some(Value::Array(list)) => list.push(entry),
                _ => {
                    obj.insert(
                        "x-kubernetes-group-version-kind".into(),
                        Value::Array(vec![entry]),
                    );
                }
            }
        }
    }
    add_patch_extensions(&mut schemas);
    Definitions { schemas, roots }
}

/// `{"$ref": X, "description": D}` becomes `{"allOf": [{"$ref": X}], "description": D}` as upstream
/// writes it: OpenAPI 3.0 readers (kube-openapi among them) ignore siblings of `$ref`.
fn wrap_refs(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            if obj.len() > 1 {
                if let Some(r) = obj.remove("$ref") {
                    obj.insert("allOf".into(), serde_json::json!([{ "$ref": r }]));
                }
            }
            for child in obj.values_mut() {
                wrap_refs(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(wrap_refs),
        _ => {}
    }
}

fn add_patch_extensions(schemas: &mut Map<String, Value>) {
    for def in smp_keys::ATOMIC_STRUCTS {
        if let Some(Value::Object(schema)) = schemas.get_mut(*def) {
            schema.insert("x-kubernetes-map-type".into(), "atomic".into());
        }
    }
    for (def, field, meta) in smp_keys::all() {
        let Some(prop) = schemas
            .get_mut(*def)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(*field))
        else {
            continue;
        };
        if let Value::Object(prop) = prop {
            if let Some(key) = meta.merge_key {
                prop.insert("x-kubernetes-patch-merge-key".into(), key.into());
            }
            prop.insert("x-kubernetes-patch-strategy".into(), meta.strategy.into());
        }
    }
}

/// The process-wide definitions, generated on first use.
pub fn definitions() -> &'static Definitions {
    static DEFS: OnceLock<Definitions> = OnceLock::new();
    DEFS.get_or_init(build)
}

/// The definition name a schema node refers to, through `$ref` or a one-element `allOf`.
pub fn ref_name(schema: &Value) -> Option<&str> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return r.strip_prefix(REF_PREFIX);
    }
    match schema.get("allOf").and_then(Value::as_array) {
        Some(list) if list.len() == 1 => ref_name(&list[0]),
        _ => None,
    }
}

impl Definitions {
    /// The definition name of the top-level schema of a kind.
    pub fn root_for(&self, gvk: &Gvk) -> Option<&str> {
        self.roots
            .iter()
            .find(|(g, _)| g == gvk)
            .map(|(_, n)| n.as_str())
    }

    pub fn roots(&self) -> impl Iterator<Item = (&Gvk, &str)> {
        self.roots.iter().map(|(g, n)| (g, n.as_str()))
    }

    /// Follows `$ref`s until a schema with content.
    pub fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..8 {
            match ref_name(schema).and_then(|n| self.schemas.get(n)) {
                Some(next) => schema = next,
                None => break,
            }
        }
        schema
    }

    /// The schema of property `field` of an object schema (resolved).
    pub fn property<'a>(&'a self, schema: &'a Value, field: &str) -> Option<&'a Value> {
        let schema = self.resolve(schema);
        schema
            .get("properties")
            .and_then(|p| p.get(field))
            .map(|s| self.resolve(s))
    }

    /// The item schema of an array schema or the value schema of a map schema (resolved).
    pub fn element<'a>(&'a self, schema: &'a Value) -> Option<&'a Value> {
        let schema = self.resolve(schema);
        schema
            .get("items")
            .or_else(|| schema.get("additionalProperties").filter(|v| v.is_object()))
            .map(|s| self.resolve(s))
    }

    /// The schema of a child of an object: a declared property, else the value schema of a map.
    pub fn child<'a>(&'a self, schema: &'a Value, key: &str) -> Option<&'a Value> {
        let schema = self.resolve(schema);
        match schema.get("properties").and_then(|p| p.get(key)) {
            Some(prop) => Some(self.resolve(prop)),
            None => schema
                .get("additionalProperties")
                .filter(|v| v.is_object())
                .map(|s| self.resolve(s)),
        }
    }

    /// True when the object schema is a map (`additionalProperties`) rather than a struct.
    pub fn is_map(&self, schema: &Value) -> bool {
        let schema = self.resolve(schema);
        schema.get("properties").is_none()
            && schema
                .get("additionalProperties")
                .is_some_and(Value::is_object)
    }

    /// True when the schema accepts anything below it (RawExtension, FieldsV1, JSON).
    pub fn is_free_form(&self, schema: &Value) -> bool {
        let schema = self.resolve(schema);
        schema
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            == Some(true)
            || (schema.get("type").and_then(Value::as_str) == Some("object")
                && schema.get("properties").is_none()
                && schema.get("additionalProperties").is_none())
    }

    /// True for structs that server-side apply treats as one value.
    pub fn is_atomic(&self, schema: &Value) -> bool {
        self.resolve(schema)
            .get("x-kubernetes-map-type")
            .and_then(Value::as_str)
            == Some("atomic")
    }

    /// The strategic-merge-patch strategy of `field` of an object schema.
    pub fn field_patch_meta(
        &'static self,
        schema: &'static Value,
        field: &str,
    ) -> Option<PatchMeta> {
        let prop = self.resolve(schema).get("properties")?.get(field)?;
        let strategy = match prop.get("x-kubernetes-patch-strategy")?.as_str()? {
            "merge" => "merge",
            "retainKeys" => "retainKeys",
            "merge,retainKeys" => "merge,retainKeys",
            _ => return None,
        };
        let merge_key = prop
            .get("x-kubernetes-patch-merge-key")
            .and_then(Value::as_str);
        Some(PatchMeta {
            strategy,
            merge_key,
        })
    }

    /// The names of all definitions reachable from `start` (inclusive).
    pub fn closure(&self, start: impl IntoIterator<Item = String>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = start.into_iter().collect();
        while let Some(name) = todo.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(schema) = self.schemas.get(&name) {
                collect_refs(schema, &mut todo);
            }
        }
        seen
    }

    /// The definition name behind a property schema, for SMP key lookups.
    pub fn definition_name_of(&self, parent: &str, field: &str) -> Option<&str> {
        let prop = self.schemas.get(parent)?.get("properties")?.get(field)?;
        let elem = prop
            .get("items")
            .or_else(|| prop.get("additionalProperties"))
            .unwrap_or(prop);
        ref_name(elem)
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(obj) => {
            if let Some(r) = obj
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(REF_PREFIX))
            {
                out.push(r.to_string());
            }
            obj.values().for_each(|c| collect_refs(c, out));
        }
        Value::Array(items) => items.iter().for_each(|c| collect_refs(c, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_root_has_gvk_and_spec_refs() {
        let d = definitions();
        let root = d.root_for(&Gvk::new("", "v1", "Pod")).unwrap();
        assert_eq!(root, "io.k8s.api.core.v1.Pod");
        let pod = &d.schemas[root];
        assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
        let containers = d
            .property(pod, "spec")
            .and_then(|s| d.property(s, "containers"))
            .unwrap();
        assert_eq!(containers["type"], "array");
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        let c = d.element(containers).unwrap();
        assert!(d.property(c, "image").is_some());
    }

    #[test]
    fn refs_with_siblings_are_wrapped_in_all_of() {
        let d = definitions();
        let spec = &d.schemas["io.k8s.api.core.v1.Pod"]["properties"]["spec"];
        assert!(spec.get("$ref").is_none());
        assert_eq!(ref_name(spec), Some("io.k8s.api.core.v1.PodSpec"));
    }
}
