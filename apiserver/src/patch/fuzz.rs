//! Thousands of random and malformed patches against real objects: never a panic, always the
//! right error variant.

use super::*;
use serde_json::{json, Map};

/// xorshift: deterministic randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const KEYS: &[&str] = &[
    "metadata",
    "spec",
    "status",
    "labels",
    "annotations",
    "finalizers",
    "containers",
    "name",
    "image",
    "env",
    "ports",
    "containerPort",
    "replicas",
    "template",
    "strategy",
    "rollingUpdate",
    "type",
    "volumes",
    "conditions",
    "$patch",
    "$retainKeys",
    "$setElementOrder/containers",
    "$deleteFromPrimitiveList/finalizers",
    "$setElementOrder/env",
    "value",
    "x",
];
const STRINGS: &[&str] = &[
    "delete",
    "replace",
    "merge",
    "bogus",
    "nginx",
    "a",
    "",
    "Always",
    "/spec/replicas",
    "add",
    "remove",
    "test",
];

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match if depth > 4 {
        rng.below(4)
    } else {
        rng.below(7)
    } {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => json!(rng.below(100) as i64 - 50),
        3 => Value::String(rng.pick(STRINGS).to_string()),
        4 | 5 => {
            let mut m = Map::new();
            for _ in 0..rng.below(4) {
                m.insert(rng.pick(KEYS).to_string(), random_value(rng, depth + 1));
            }
            Value::Object(m)
        }
        _ => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
    }
}

fn random_json_patch(rng: &mut Rng) -> Value {
    let ops: Vec<Value> = (0..1 + rng.below(3))
        .map(|_| {
            let path = ["/spec/replicas", "/metadata/labels/a", "/spec/template/spec/containers/0/image", "/x/y", "", "/spec/containers/-"];
            json!({"op": rng.pick(&["add", "remove", "replace", "move", "copy", "test", "bogus"]),
                   "path": path[rng.below(path.len())], "from": "/metadata/name", "value": random_value(rng, 3)})
        })
        .collect();
    Value::Array(ops)
}

fn objects() -> Vec<(Gvk, Value)> {
    vec![
        (
            Gvk::new("", "v1", "Pod"),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a"]},
            "spec": {"containers": [{"name": "nginx", "image": "nginx", "env": [{"name": "A", "value": "1"}]}]}}),
        ),
        (
            Gvk::new("apps", "v1", "Deployment"),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": 1, "strategy": {"type": "RollingUpdate"}, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        ),
    ]
}

#[test]
fn random_patches_never_panic_and_fail_with_the_right_variant() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for i in 0..6_000 {
        for (gvk, obj) in objects() {
            let (body, ty) = match i % 4 {
                0 => (
                    random_value(&mut rng, 0).to_string().into_bytes(),
                    PatchType::StrategicMerge,
                ),
                1 => (
                    random_value(&mut rng, 0).to_string().into_bytes(),
                    PatchType::Merge,
                ),
                2 => (
                    random_json_patch(&mut rng).to_string().into_bytes(),
                    PatchType::Json,
                ),
                _ => {
                    let mut b = random_value(&mut rng, 0).to_string().into_bytes();
                    let cut = rng.below(b.len() + 1);
                    b.truncate(cut);
                    b.push(rng.next() as u8);
                    (
                        b,
                        [PatchType::StrategicMerge, PatchType::Merge, PatchType::Json]
                            [rng.below(3)],
                    )
                }
            };
            match apply_patch(&gvk, &obj, &body, ty) {
                Ok(_) | Err(PatchError::Malformed(_)) | Err(PatchError::NotApplicable(_)) => {}
                Err(e @ PatchError::Conflict { .. }) => panic!("patch cannot conflict: {e}"),
            }
            let applied = random_value(&mut rng, 0);
            match server_side_apply(&gvk, Some(&obj), &applied, "fuzz", rng.below(2) == 0, "t") {
                Ok(v) => assert!(v.is_object()),
                Err(PatchError::Malformed(_)) => assert!(!applied.is_object()),
                Err(PatchError::NotApplicable(m)) => panic!("apply is never NotApplicable: {m}"),
                Err(PatchError::Conflict { .. }) => {}
            }
            let mut new = random_value(&mut rng, 0);
            record_update(&gvk, Some(&obj), &mut new, "fuzz", "t");
        }
    }
}

#[test]
fn random_objects_never_panic_defaulting_validation_or_encoding() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let kinds = [
        ("", "Pod"),
        ("apps", "Deployment"),
        ("batch", "Job"),
        ("", "Service"),
        ("", "Secret"),
        ("", "Namespace"),
        ("apps", "StatefulSet"),
    ];
    for _ in 0..5_000 {
        let (group, kind) = kinds[rng.below(kinds.len())];
        let gvk = Gvk::new(group, "v1", kind);
        let mut obj = random_value(&mut rng, 0);
        let old = random_value(&mut rng, 0);
        let row = crate::resources::by_kind(group, kind).expect("a served kind");
        row.strategy.default(&mut obj);
        crate::registry::strategy::prepare_for_create(row, &mut obj);
        crate::registry::strategy::validate_create(row, &obj);
        crate::registry::strategy::validate_update(row, &obj, &old);
        let _ = crate::validation::decode::decode(&gvk, &mut obj.clone());
        if let Some(m) = obj.as_object_mut() {
            m.insert("apiVersion".into(), json!(gvk.api_version()));
            m.insert("kind".into(), json!(kind));
        }
        if let Ok(bytes) = crate::protobuf::encode(&obj) {
            crate::protobuf::decode(&bytes).expect("what we encode we can decode");
        }
    }
}

/// Random bytes and mangled documents into every decoder a request body or query meets:
/// protobuf, JSON (the duplicate scan and the strict walk), YAML, the schema decode of every
/// served kind, and label and field selector parsing. Bounded (a fixed count), deterministic
/// (a fixed seed); any panic fails the test.
#[test]
fn random_inputs_never_panic_the_decoders_or_selector_parsers() {
    use crate::selectors::{FieldSelector, LabelSelector};
    let mut rng = Rng(0xdec0_de15_f00d);
    let seeds: Vec<Vec<u8>> = objects().iter().map(|(_, v)| serde_json::to_vec(v).unwrap()).collect();
    let selector_bits = ["a", "=", "==", "!=", " in ", " notin ", "(", ")", ",", "!", "x.y/z", "", " ", "metadata.name", "spec.nodeName", "\u{0}", "é", "-", ">", "<", "1"];
    let mut executions = 0u64;
    for i in 0..20_000 {
        // A seed document with a few bytes flipped, cut or duplicated.
        let mut bytes = seeds[rng.below(seeds.len())].clone();
        for _ in 0..rng.below(6) {
            if bytes.is_empty() {
                break;
            }
            let at = rng.below(bytes.len());
            match rng.below(4) {
                0 => bytes[at] = (rng.next() & 0xff) as u8,
                1 => bytes.truncate(at),
                2 => {
                    let chunk: Vec<u8> = bytes[at..(at + 8).min(bytes.len())].to_vec();
                    bytes.splice(at..at, chunk);
                }
                _ => bytes.insert(at, b"{}[]\",:0"[rng.below(8)]),
            }
        }
        let _ = crate::validation::has_duplicate_fields(&bytes);
        let (gvk, _) = &objects()[i % objects().len()];
        let _ = crate::validation::strict_decoding_errors(gvk, &bytes);
        let _ = serde_yaml::from_slice::<Value>(&bytes);
        if let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) {
            for row in crate::resources::RESOURCES {
                let _ = crate::validation::decode::decode(&row.gvk(), &mut v.clone());
            }
            let _ = crate::validation::decode::decode(gvk, &mut v);
        }
        // Raw protobuf, with and without the envelope's magic.
        let mut pb: Vec<u8> = (0..rng.below(64)).map(|_| (rng.next() & 0xff) as u8).collect();
        if rng.below(2) == 0 {
            pb.splice(0..0, b"k8s\x00".iter().copied());
        }
        let _ = crate::protobuf::decode(&pb);
        let sel: String = (0..rng.below(8)).map(|_| rng.pick(&selector_bits)).collect();
        let _ = LabelSelector::parse(&sel);
        let _ = FieldSelector::parse(&sel, "Pod");
        executions += 1;
    }
    eprintln!("decoder fuzz: {executions} executions");
    assert_eq!(executions, 20_000);
}
