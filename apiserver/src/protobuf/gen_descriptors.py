#!/usr/bin/env python3
"""Generates descriptors.txt: the field table of every k8s-pb message of the stable versions under
api/ and apimachinery/, with each field's JSON name taken from k8s-openapi's serde field names.

Run from anywhere after a build has fetched the crates:
    python3 apiserver/src/protobuf/gen_descriptors.py > apiserver/src/protobuf/descriptors.txt

Line format: `<message>|<tag>:<json>:<type>[|...]` where message is the Rust module path with dots
(`api.core.v1.Pod`) and type is `s i32 i64 b f64 y` (string, ints, bool, double, bytes),
`m=<message>`, prefixed with `*` for repeated, or `map<s,<type>>` for maps.
"""
import glob, os, re, sys

reg = glob.glob(os.path.expanduser("~/.cargo/registry/src/*/"))[0]
PB = os.path.join(reg, "k8s-pb-0.9.0/src")
OA = os.path.join(reg, "k8s-openapi-0.29.0/src/v1_33")

def norm(name):
    return name.replace("r#", "").replace("_", "").lower()

def openapi_names():
    """(module, struct) -> {normalized rust field: json name}"""
    out = {}
    for path in glob.glob(OA + "/**/*.rs", recursive=True):
        rel = os.path.relpath(os.path.dirname(path), OA).replace("/", ".")
        text = open(path).read()
        for m in re.finditer(r"pub struct (\w+)", text):
            fields = dict((norm(rf), js) for js, rf in re.findall(r'"([^"]+)" => Field::Key_(\w+),', text))
            out[(rel, m.group(1).lower())] = fields
    return out

INLINE = {"local_object_reference", "ephemeral_container_common", "persistent_volume_source", "handler",
          "volume_source", "ingress_rule_value", "rule_with_operations", "rule"}

SCALARS = {"string": "s", "int32": "i32", "int64": "i64", "bool": "b", "double": "f64", "bytes": "y"}

def resolve(module, rust_type):
    t = rust_type.strip()
    t = re.sub(r"::prost::alloc::boxed::Box<(.*)>", r"\1", t)
    parts = t.split("::")
    mod = module.split(".")
    while parts and parts[0] == "super":
        mod = mod[:-1]
        parts = parts[1:]
    return ".".join(mod + parts)

def main():
    names = openapi_names()
    for path in sorted(glob.glob(PB + "/**/mod.rs", recursive=True)):
        module = os.path.relpath(os.path.dirname(path), PB).replace("/", ".")
        if not (module.startswith("api.") or module.startswith("apimachinery.")) or "testapigroup" in module:
            continue
        # Only the stable versions are served; alpha and beta layouts would only add weight.
        if re.search(r"\.v\d+(alpha|beta)\d+$", module):
            continue
        lines = open(path).read().split("\n")
        i = 0
        struct = None
        fields = []
        def flush():
            if struct:
                print(struct_line(module, struct, fields, names))
        while i < len(lines):
            line = lines[i].strip()
            m = re.match(r"pub struct (\w+) \{", line)
            if m:
                flush()
                struct, fields = m.group(1), []
            elif line.startswith("#[prost(") and struct:
                attr = line
                j = i + 1
                decl = ""
                while True:
                    decl += lines[j].strip() + " "
                    if decl.startswith("pub ") and decl.rstrip().endswith(",") and decl.count("<") == decl.count(">"):
                        break
                    j += 1
                i = j
                fm = re.match(r"pub ([\w#]+):\s*(.*),$", decl.strip())
                if fm is None:
                    sys.exit(f"cannot parse {module}.{struct}: {decl}")
                fields.append((attr, fm.group(1), re.sub(r"\s+", "", fm.group(2))))
            i += 1
        flush()

def struct_line(module, struct, fields, names):
    known = names.get((module, struct.lower()), {})
    out = [f"{module}.{struct}"]
    for attr, fname, ftype in fields:
        tag = re.search(r'tag = "(\d+)"', attr).group(1)
        js = known.get(norm(fname))
        if fname in INLINE and "prost(message" in attr and js is None:
            js = ""  # embedded with `json:",inline"` in Go: its fields sit in the parent object
        if js is None and known:
            print(f"unmatched {module}.{struct}.{fname}", file=sys.stderr)
        if js is None:
            parts = fname.replace("r#", "").split("_")
            js = parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
        kind = re.match(r"#\[prost\((\w+)", attr).group(1)
        if kind == "btree_map":
            k, v = re.search(r'btree_map = "(\w+), (\w+)"', attr).groups()
            if v == "message":
                inner = re.search(r"BTreeMap<::prost::alloc::string::String,(.*)>$", ftype).group(1)
                vt = "m=" + resolve(module, inner.rstrip(","))
            else:
                vt = SCALARS[v]
            ty = f"map<{SCALARS[k]},{vt}>"
        elif kind == "message":
            inner = re.search(r"(?:Option|Vec)<(.*)>$", ftype).group(1)
            ty = "m=" + resolve(module, inner.rstrip(","))
        else:
            ty = SCALARS[kind]
        if "repeated" in attr:
            ty = "*" + ty
        out.append(f"{tag}:{js}:{ty}")
    return "|".join(out)

main()
