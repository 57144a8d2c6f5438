//! The field table of every k8s-pb message, generated from k8s-pb's prost attributes with the
//! JSON names of k8s-openapi (see `gen_descriptors.py`), parsed once at first use.

use std::collections::HashMap;
use std::sync::OnceLock;

static TABLE: &str = include_str!("descriptors.txt");

#[derive(Clone, Debug, PartialEq)]
pub enum FieldType {
    Str,
    I32,
    I64,
    Bool,
    F64,
    Bytes,
    /// A nested message, by its table name (`api.core.v1.PodSpec`).
    Message(&'static str),
    Map(Box<FieldType>, Box<FieldType>),
}

#[derive(Clone, Debug)]
pub struct Field {
    pub tag: u32,
    /// Empty for a Go struct embedded with `json:",inline"`.
    pub json: &'static str,
    pub ty: FieldType,
    pub repeated: bool,
}

#[derive(Debug, Default)]
pub struct Message {
    pub fields: Vec<Field>,
}

impl Message {
    pub fn by_tag(&self, tag: u32) -> Option<&Field> {
        self.fields.iter().find(|f| f.tag == tag)
    }
    pub fn by_json(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| !f.json.is_empty() && f.json == name)
    }
}

fn parse_type(s: &'static str) -> Option<FieldType> {
    Some(match s {
        "s" => FieldType::Str,
        "i32" => FieldType::I32,
        "i64" => FieldType::I64,
        "b" => FieldType::Bool,
        "f64" => FieldType::F64,
        "y" => FieldType::Bytes,
        _ => {
            if let Some(name) = s.strip_prefix("m=") {
                FieldType::Message(name)
            } else {
                let inner = s.strip_prefix("map<")?.strip_suffix('>')?;
                let (k, v) = inner.split_once(',')?;
                FieldType::Map(Box::new(parse_type(k)?), Box::new(parse_type(v)?))
            }
        }
    })
}

fn parse() -> HashMap<&'static str, Message> {
    let mut out = HashMap::new();
    for line in TABLE.lines() {
        let mut parts = line.split('|');
        let Some(name) = parts.next() else { continue };
        let mut msg = Message::default();
        for f in parts {
            let mut it = f.splitn(3, ':');
            let (Some(tag), Some(json), Some(ty)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let (repeated, ty) = match ty.strip_prefix('*') {
                Some(t) => (true, t),
                None => (false, ty),
            };
            if let (Ok(tag), Some(ty)) = (tag.parse(), parse_type(ty)) {
                msg.fields.push(Field {
                    tag,
                    json,
                    ty,
                    repeated,
                });
            }
        }
        out.insert(name, msg);
    }
    out
}

pub fn table() -> &'static HashMap<&'static str, Message> {
    static T: OnceLock<HashMap<&'static str, Message>> = OnceLock::new();
    T.get_or_init(parse)
}

pub fn message(name: &str) -> Option<&'static Message> {
    table().get(name)
}

/// The table name of the message for an `apiVersion` and `kind`: `apps/v1` + `Deployment` is
/// `api.apps.v1.Deployment`; kinds of meta/v1 (Status, DeleteOptions, ...) come last.
pub fn message_for(api_version: &str, kind: &str) -> Option<&'static str> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let package = match group {
        "" => "core",
        "internal.apiserver.k8s.io" => "apiserverinternal",
        g => g.split('.').next().unwrap_or(g),
    };
    let candidates = [
        format!("api.{package}.{version}.{kind}"),
        format!("apimachinery.pkg.apis.meta.{version}.{kind}"),
        format!("apimachinery.pkg.apis.meta.v1.{kind}"),
    ];
    let allow_meta =
        matches!(group, "" | "meta.k8s.io") || kind == "Status" || kind == "DeleteOptions";
    candidates
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || allow_meta)
        .find_map(|(_, c)| table().get_key_value(c.as_str()).map(|(k, _)| *k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_referenced_message_is_in_the_table() {
        for msg in table().values() {
            for field in &msg.fields {
                let inner = match &field.ty {
                    FieldType::Message(name) => Some(*name),
                    FieldType::Map(_, v) => match v.as_ref() {
                        FieldType::Message(name) => Some(*name),
                        _ => None,
                    },
                    _ => None,
                };
                if let Some(name) = inner {
                    assert!(table().contains_key(name), "dangling reference to {name}");
                }
            }
        }
    }

    #[test]
    fn table_knows_the_kinds_kubectl_sends() {
        for (av, kind, want) in [
            ("v1", "Pod", "api.core.v1.Pod"),
            ("apps/v1", "Deployment", "api.apps.v1.Deployment"),
            (
                "coordination.k8s.io/v1",
                "Lease",
                "api.coordination.v1.Lease",
            ),
            ("v1", "Status", "apimachinery.pkg.apis.meta.v1.Status"),
            (
                "meta.k8s.io/v1",
                "DeleteOptions",
                "apimachinery.pkg.apis.meta.v1.DeleteOptions",
            ),
            ("autoscaling/v1", "Scale", "api.autoscaling.v1.Scale"),
            ("v1", "PodList", "api.core.v1.PodList"),
        ] {
            assert_eq!(message_for(av, kind), Some(want), "{av} {kind}");
        }
        assert_eq!(message_for("apps/v1", "Nope"), None);
        let pod_ip = message("api.core.v1.PodStatus")
            .unwrap()
            .by_json("podIP")
            .unwrap();
        assert_eq!(pod_ip.tag, 6);
        let volume = message("api.core.v1.Volume").unwrap();
        assert_eq!(volume.by_tag(2).unwrap().json, "");
    }
}
#[cfg(test)]
mod json_names {
    /// Fields k8s-pb 0.9 knows from releases after v1.33, which k8s-openapi's v1_33 schemas lack.
    const NEWER_THAN_V1_33: &[&str] = &[
        "api.core.v1.Container.restartPolicyRules",
        "api.core.v1.EnvVarSource.fileKeyRef",
        "api.core.v1.NodeStatus.declaredFeatures",
        "api.core.v1.PodSpec.hostnameOverride",
        "api.core.v1.PodSpec.workloadRef",
        "api.core.v1.PodStatus.allocatedResources",
        "api.core.v1.PodStatus.extendedResourceClaimStatus",
        "api.core.v1.PodStatus.resources",
        "api.core.v1.VolumeProjection.podCertificate",
        "api.storage.v1.CSIDriverSpec.serviceAccountTokenInSecrets",
    ];

    #[test]
    fn json_names_match_the_openapi_schemas() {
        let defs = crate::openapi::schemas::definitions();
        let mut checked = 0;
        for (name, msg) in super::table() {
            let Some(schema) = defs.schemas.get(&format!("io.k8s.{name}")) else {
                continue;
            };
            let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
                continue;
            };
            for f in msg.fields.iter().filter(|f| !f.json.is_empty()) {
                let id = format!("{name}.{}", f.json);
                assert!(
                    props.contains_key(f.json) || NEWER_THAN_V1_33.contains(&id.as_str()),
                    "{id} is not in the schema"
                );
                checked += 1;
            }
        }
        assert!(checked > 1000, "only {checked} fields checked");
    }
}
