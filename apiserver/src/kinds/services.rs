//! Services: defaults, validation, an empty load-balancer status on create, the deleted
//! object as a delete's answer (ReturnDeletedObject), printService's columns, and the
//! cluster IPs and node ports a Service holds (`ServiceAllocations`).

use crate::allocator::{AllocError, ServiceAllocators};
use crate::registry::hooks::{AllocationHooks, Claim, Item, Reserved, UpdateHookError};
use crate::registry::strategy::Strategy;
use crate::status::{ApiError, Target};
use crate::table::{arr, i, or_none, s, Column};
use crate::types::FieldCause;
use crate::validation::{core, defaults, field, meta::NameRule};
use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::sync::Arc;

pub struct Services;

impl Strategy for Services {
    fn default(&self, obj: &mut Value) {
        defaults::service(obj);
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        if !obj.get("status").is_some_and(Value::is_object) {
            obj["status"] = json!({"loadBalancer": {}});
        }
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Dns1035
    }

    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        let mut errs = core::validate_service(obj);
        // Upstream's validateServicePort: only types that take node ports may name one.
        if !matches!(svc_type(obj), "NodePort" | "LoadBalancer") {
            for (i, p) in port_list(obj).iter().enumerate() {
                if node_port(p) != 0 {
                    let path = field::Path::new("spec").child("ports").index(i).child("nodePort");
                    errs.push(field::forbidden(&path, &format!("may not be used when `type` is '{}'", svc_type(obj))));
                }
            }
        }
        if let Some(n) = obj.pointer("/spec/ports").and_then(Value::as_array).map(|a| a.iter().filter_map(|p| p.get("nodePort")).filter(|n| !n.as_i64().is_some_and(|n| (0..=65535).contains(&n))).count()) {
            if n > 0 {
                for (i, p) in port_list(obj).iter().enumerate() {
                    if let Some(v) = p.get("nodePort").filter(|n| !n.as_i64().is_some_and(|n| (0..=65535).contains(&n))) {
                        errs.push(field::invalid(&field::Path::new("spec").child("ports").index(i).child("nodePort"), v, "must be between 1 and 65535, inclusive"));
                    }
                }
            }
        }
        errs
    }

    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        core::validate_service_update(obj, old)
    }

    fn return_deleted_object(&self) -> bool {
        true
    }

    fn columns(&self) -> &'static [Column] {
        &[
            Column("Name", "string", 0), Column("Type", "string", 0), Column("Cluster-IP", "string", 0), Column("External-IP", "string", 0),
            Column("Port(s)", "string", 0), Column("Age", "string", 0), Column("Selector", "string", 1),
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        let age = cells.pop().unwrap_or_default();
        let mut selector: Vec<String> = obj
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect())
            .unwrap_or_default();
        selector.sort();
        cells.extend([
            json!(s(obj, "/spec/type")), json!(or_none(s(obj, "/spec/clusterIP").into())), json!(external_ip(obj)),
            json!(service_ports(obj)), age, json!(or_none(selector.join(","))),
        ]);
        cells
    }
}


/// A Service's cluster IPs and node ports, drawn from the apiserver's pools (upstream's
/// Service REST allocation in pkg/registry/core/service/storage/alloc.go).
pub struct ServiceAllocations {
    pub allocs: Arc<ServiceAllocators>,
}

const IP: &str = "ip";
const NODE_PORT: &str = "nodePort";

fn spec_str<'a>(svc: &'a Value, field: &str) -> &'a str {
    svc.get("spec").and_then(|s| s.get(field)).and_then(Value::as_str).unwrap_or("")
}

fn svc_type(svc: &Value) -> &str {
    match spec_str(svc, "type") {
        "" => "ClusterIP",
        t => t,
    }
}

/// Whether the Service takes a cluster IP: every type but ExternalName, unless headless.
pub fn wants_cluster_ip(svc: &Value) -> bool {
    svc_type(svc) != "ExternalName" && spec_str(svc, "clusterIP") != "None"
}

/// NodePort Services, and LoadBalancers unless allocateLoadBalancerNodePorts is false.
pub fn wants_node_ports(svc: &Value) -> bool {
    match svc_type(svc) {
        "NodePort" => true,
        "LoadBalancer" => svc.pointer("/spec/allocateLoadBalancerNodePorts").and_then(Value::as_bool) != Some(false),
        _ => false,
    }
}

fn wants_health_check_port(svc: &Value) -> bool {
    svc_type(svc) == "LoadBalancer" && spec_str(svc, "externalTrafficPolicy") == "Local"
}

fn port_list(svc: &Value) -> Vec<Value> {
    svc.pointer("/spec/ports").and_then(Value::as_array).cloned().unwrap_or_default()
}

fn node_port(p: &Value) -> u16 {
    p.get("nodePort").and_then(Value::as_u64).and_then(|n| u16::try_from(n).ok()).unwrap_or(0)
}

/// What a stored Service holds in the pools.
fn held(svc: &Value) -> Vec<Item> {
    let mut out = Vec::new();
    let ip = spec_str(svc, "clusterIP");
    if !ip.is_empty() && ip != "None" {
        out.push(Item { pool: IP, value: ip.to_string() });
    }
    for p in port_list(svc) {
        let n = node_port(&p);
        if n != 0 && !out.iter().any(|i| i.pool == NODE_PORT && i.value == n.to_string()) {
            out.push(Item { pool: NODE_PORT, value: n.to_string() });
        }
    }
    if let Some(h) = svc.pointer("/spec/healthCheckNodePort").and_then(Value::as_u64).filter(|h| *h != 0) {
        if !out.iter().any(|i| i.pool == NODE_PORT && i.value == h.to_string()) {
            out.push(Item { pool: NODE_PORT, value: h.to_string() });
        }
    }
    out
}

fn invalid(svc: &Value, causes: Vec<FieldCause>) -> ApiError {
    let name = svc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    ApiError::invalid(Target::new("", "services", name), "Service", causes)
}

/// Go's `[]string{"a", "b"}`, as upstream prints spec.clusterIPs in its messages.
fn go_strings(v: &[String]) -> String {
    let quoted: Vec<String> = v.iter().map(|s| Value::String(s.clone()).to_string()).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

fn ip_cause(requested: &[String], ip: &str, e: &AllocError, range: &str) -> FieldCause {
    let why = match e {
        AllocError::NotInRange { .. } => format!("the provided IP ({ip}) is not in the valid range. The range of valid IPs is {range}"),
        AllocError::Allocated => "provided IP is already allocated".to_string(),
        AllocError::Full => "range is full".to_string(),
        other => other.to_string(),
    };
    FieldCause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {}: failed to allocate IP {ip}: {why}", go_strings(requested)),
        field: "spec.clusterIPs".into(),
    }
}

fn port_cause(field: &str, port: u16, e: &AllocError, range: &str) -> FieldCause {
    let why = match e {
        AllocError::NotInRange { .. } => format!("provided port is not in the valid range. The range of valid ports is {range}"),
        AllocError::Allocated => "provided port is already allocated".to_string(),
        AllocError::Full => "range is full".to_string(),
        other => other.to_string(),
    };
    FieldCause { reason: "FieldValueInvalid".into(), message: format!("Invalid value: {port}: {why}"), field: field.into() }
}

/// A storage failure while allocating is the server's, not the client's.
fn storage_or(e: AllocError, cause: impl FnOnce(&AllocError) -> FieldCause, svc: &Value) -> ApiError {
    match e {
        AllocError::Storage(s) => crate::registry::store::storage_error(Target::new("", "services", ""), s),
        AllocError::Corrupt(m) => ApiError::Internal(m),
        e => invalid(svc, vec![cause(&e)]),
    }
}

/// Family fields this single-stack IPv4 cluster can honour (upstream's initIPFamilyFields).
fn check_families(svc: &Value) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    if let Some(fams) = svc.pointer("/spec/ipFamilies").and_then(Value::as_array) {
        for (i, f) in fams.iter().enumerate() {
            if f.as_str() != Some("IPv4") {
                errs.push(field::invalid(&field::Path::new("spec").child("ipFamilies").index(i), f, "not configured on this cluster"));
            }
        }
    }
    if spec_str(svc, "ipFamilyPolicy") == "RequireDualStack" {
        errs.push(field::invalid(&field::Path::new("spec").child("ipFamilyPolicy"), &json!("RequireDualStack"), "this cluster is not configured for dual-stack services"));
    }
    errs
}

/// The requested cluster IP: spec.clusterIP, or the first of spec.clusterIPs.
fn requested_ip(svc: &Value) -> (String, Vec<String>) {
    let ips: Vec<String> = svc
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default();
    let ip = match spec_str(svc, "clusterIP") {
        "" => ips.first().cloned().unwrap_or_default(),
        ip => ip.to_string(),
    };
    let ips = if ips.is_empty() && !ip.is_empty() { vec![ip.clone()] } else { ips };
    (ip, ips)
}

fn parse_ip(ip: &str) -> Result<Ipv4Addr, FieldCause> {
    ip.parse::<Ipv4Addr>().map_err(|_| {
        field::invalid(&field::Path::new("spec").child("clusterIPs").index(0), &json!(ip), "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
    })
}

fn set_ip(svc: &mut Value, ip: &str) {
    if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
    }
}

fn set_node_port(svc: &mut Value, i: usize, port: u16) {
    if let Some(p) = svc.pointer_mut(&format!("/spec/ports/{i}")).and_then(Value::as_object_mut) {
        p.insert("nodePort".into(), json!(port));
    }
}

impl ServiceAllocations {
    async fn release(&self, items: &[Item]) {
        for item in items {
            let res = match item.pool {
                IP => match item.value.parse() {
                    Ok(ip) => self.allocs.ips.release(ip).await,
                    Err(_) => Ok(()),
                },
                _ => match item.value.parse() {
                    Ok(p) => self.allocs.ports.release(p).await,
                    Err(_) => Ok(()),
                },
            };
            // Repair frees what a failed release leaves behind.
            if let Err(e) = res {
                tracing::warn!(pool = item.pool, value = %item.value, error = %e, "releasing a service allocation failed; repair will free it");
            }
        }
    }

    async fn create(&self, svc: &mut Value, dry_run: bool, taken: &mut Vec<Item>) -> Result<(), ApiError> {
        if svc_type(svc) == "ExternalName" {
            return Ok(());
        }
        let errs = check_families(svc);
        if !errs.is_empty() {
            return Err(invalid(svc, errs));
        }
        let (ip, requested) = requested_ip(svc);
        let range = self.allocs.ips.range.to_string();
        match ip.as_str() {
            "None" => set_ip(svc, "None"),
            "" if dry_run => {}
            "" => {
                let got = self.allocs.ips.allocate_next().await.map_err(|e| storage_or(e, |e| ip_cause(&requested, "", e, &range), svc))?;
                taken.push(Item { pool: IP, value: got.to_string() });
                set_ip(svc, &got.to_string());
            }
            ip => {
                let addr = parse_ip(ip).map_err(|c| invalid(svc, vec![c]))?;
                if dry_run {
                    if !self.allocs.ips.range.contains(addr) || self.allocs.ips.range.offset(addr).is_none() {
                        return Err(invalid(svc, vec![ip_cause(&requested, ip, &AllocError::NotInRange { valid: range.clone() }, &range)]));
                    }
                } else {
                    self.allocs.ips.allocate(addr).await.map_err(|e| storage_or(e, |e| ip_cause(&requested, ip, e, &range), svc))?;
                    taken.push(Item { pool: IP, value: ip.to_string() });
                }
                set_ip(svc, ip);
            }
        }
        if !wants_node_ports(svc) || dry_run {
            return Ok(());
        }
        let prange = self.allocs.ports.range.to_string();
        for (i, p) in port_list(svc).iter().enumerate() {
            let field = format!("spec.ports[{i}].nodePort");
            match node_port(p) {
                0 => {
                    let got = self.allocs.ports.allocate_next().await.map_err(|e| storage_or(e, |e| port_cause(&field, 0, e, &prange), svc))?;
                    taken.push(Item { pool: NODE_PORT, value: got.to_string() });
                    set_node_port(svc, i, got);
                }
                // The same port for TCP and UDP of one Service is one allocation.
                n if taken.iter().any(|t| t.pool == NODE_PORT && t.value == n.to_string()) => {}
                n => {
                    self.allocs.ports.allocate(n).await.map_err(|e| storage_or(e, |e| port_cause(&field, n, e, &prange), svc))?;
                    taken.push(Item { pool: NODE_PORT, value: n.to_string() });
                }
            }
        }
        if wants_health_check_port(svc) {
            let field = "spec.healthCheckNodePort";
            let want = svc.pointer("/spec/healthCheckNodePort").and_then(Value::as_u64).and_then(|n| u16::try_from(n).ok()).unwrap_or(0);
            let got = if want == 0 {
                self.allocs.ports.allocate_next().await.map_err(|e| storage_or(e, |e| port_cause(field, 0, e, &prange), svc))?
            } else {
                self.allocs.ports.allocate(want).await.map_err(|e| storage_or(e, |e| port_cause(field, want, e, &prange), svc))?;
                want
            };
            taken.push(Item { pool: NODE_PORT, value: got.to_string() });
            svc["spec"]["healthCheckNodePort"] = json!(got);
        }
        Ok(())
    }
}

/// Upstream's patchAllocatedValues and dropTypeDependentFields: an update that omits an
/// allocated value keeps it; one that changes the type drops what the new type does not
/// use, when the client left it as it was.
pub fn carry_allocations(old: &Value, new: &mut Value) {
    let old_ports = port_list(old);
    if wants_cluster_ip(new) && wants_cluster_ip(old) && spec_str(new, "clusterIP").is_empty() && !spec_str(old, "clusterIP").is_empty() {
        let ip = spec_str(old, "clusterIP").to_string();
        set_ip(new, &ip);
    }
    if svc_type(new) == "ExternalName" && svc_type(old) != "ExternalName" {
        if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
            for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                if spec.get(f) == old.get("spec").and_then(|s| s.get(f)) {
                    spec.remove(f);
                }
            }
        }
    }
    let keep_ports = wants_node_ports(new);
    let n = port_list(new).len();
    for i in 0..n {
        let Some(p) = new.pointer_mut(&format!("/spec/ports/{i}")).and_then(Value::as_object_mut) else { continue };
        let key = (p.get("port").cloned(), p.get("protocol").cloned().unwrap_or(json!("TCP")));
        let matching = old_ports.iter().find(|o| (o.get("port").cloned(), o.get("protocol").cloned().unwrap_or(json!("TCP"))) == key);
        let old_np = matching.map(node_port).unwrap_or(0);
        let new_np = p.get("nodePort").and_then(Value::as_u64).unwrap_or(0);
        if keep_ports && new_np == 0 && old_np != 0 && wants_node_ports(old) {
            p.insert("nodePort".into(), json!(old_np));
        } else if !keep_ports && new_np != 0 && new_np == old_np as u64 {
            p.remove("nodePort");
        }
    }
    let old_h = old.pointer("/spec/healthCheckNodePort").cloned();
    let wants_health = wants_health_check_port(new);
    if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
        if wants_health {
            if spec.get("healthCheckNodePort").is_none_or(|v| v.as_u64() == Some(0)) {
                if let Some(h) = old_h {
                    spec.insert("healthCheckNodePort".into(), h);
                }
            }
        } else if spec.get("healthCheckNodePort") == old_h.as_ref() {
            spec.remove("healthCheckNodePort");
        }
    }
}

/// Takes, for each value `new` needs, a reservation: the exact one asked for, or the next
/// unused `Any` of the pool. Returns the claims nothing answers.
fn fill_from_reserved(old: &Value, new: &mut Value, reserved: &Reserved) -> Result<Vec<Claim>, FieldCause> {
    let old_held = held(old);
    let mut used: Vec<usize> = Vec::new();
    let mut missing = Vec::new();
    let mut take = |claim: Claim, used: &mut Vec<usize>| -> Option<String> {
        let found = reserved.items.iter().enumerate().position(|(i, (c, _))| !used.contains(&i) && *c == claim);
        match found {
            Some(i) => {
                used.push(i);
                Some(reserved.items[i].1.value.clone())
            }
            None => {
                missing.push(claim);
                None
            }
        }
    };
    if wants_cluster_ip(new) {
        let ip = spec_str(new, "clusterIP").to_string();
        if ip.is_empty() {
            if let Some(got) = take(Claim::Any(IP), &mut used) {
                set_ip(new, &got);
            }
        } else {
            parse_ip(&ip)?;
            let item = Item { pool: IP, value: ip.clone() };
            if !old_held.contains(&item) {
                take(Claim::Exactly(item), &mut used);
            }
            set_ip(new, &ip);
        }
    }
    if wants_node_ports(new) {
        let mut seen: Vec<u16> = Vec::new();
        for (i, p) in port_list(new).iter().enumerate() {
            match node_port(p) {
                0 => {
                    if let Some(got) = take(Claim::Any(NODE_PORT), &mut used) {
                        set_node_port(new, i, got.parse().unwrap_or(0));
                    }
                }
                n if seen.contains(&n) => {}
                n => {
                    seen.push(n);
                    let item = Item { pool: NODE_PORT, value: n.to_string() };
                    if !old_held.contains(&item) {
                        take(Claim::Exactly(item), &mut used);
                    }
                }
            }
        }
    }
    Ok(missing)
}

impl AllocationHooks for ServiceAllocations {
    fn begin_create<'a>(&'a self, obj: &'a mut Value, dry_run: bool) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let mut taken = Vec::new();
            let res = self.create(obj, dry_run, &mut taken).await;
            if res.is_err() {
                self.release(&taken).await;
            }
            res
        })
    }

    fn abort_create<'a>(&'a self, obj: &'a Value) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.release(&held(obj)).await })
    }

    fn update(&self, old: &Value, new: &mut Value, reserved: &Reserved) -> Result<(), UpdateHookError> {
        carry_allocations(old, new);
        if wants_cluster_ip(new) {
            let errs = check_families(new);
            if !errs.is_empty() {
                return Err(UpdateHookError::Api(invalid(new, errs)));
            }
        }
        match fill_from_reserved(old, new, reserved) {
            Err(cause) => Err(UpdateHookError::Api(invalid(new, vec![cause]))),
            Ok(missing) if missing.is_empty() => Ok(()),
            Ok(missing) => Err(UpdateHookError::Needs(missing)),
        }
    }

    fn reserve<'a>(&'a self, claims: Vec<Claim>, reserved: &'a mut Reserved) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let (range, prange) = (self.allocs.ips.range.to_string(), self.allocs.ports.range.to_string());
            let none = json!({});
            for claim in claims {
                let item = match &claim {
                    Claim::Any(IP) => {
                        let ip = self.allocs.ips.allocate_next().await.map_err(|e| storage_or(e, |e| ip_cause(&[], "", e, &range), &none))?;
                        Item { pool: IP, value: ip.to_string() }
                    }
                    Claim::Any(_) => {
                        let p = self.allocs.ports.allocate_next().await.map_err(|e| storage_or(e, |e| port_cause("spec.ports.nodePort", 0, e, &prange), &none))?;
                        Item { pool: NODE_PORT, value: p.to_string() }
                    }
                    Claim::Exactly(item) if item.pool == IP => {
                        let ip = item.value.clone();
                        let addr = parse_ip(&ip).map_err(|c| invalid(&none, vec![c]))?;
                        self.allocs.ips.allocate(addr).await.map_err(|e| storage_or(e, |e| ip_cause(std::slice::from_ref(&ip), &ip, e, &range), &none))?;
                        item.clone()
                    }
                    Claim::Exactly(item) => {
                        let p: u16 = item.value.parse().unwrap_or(0);
                        self.allocs.ports.allocate(p).await.map_err(|e| storage_or(e, |e| port_cause("spec.ports.nodePort", p, e, &prange), &none))?;
                        item.clone()
                    }
                };
                reserved.items.push((claim, item));
            }
            Ok(())
        })
    }

    fn finish_update<'a>(&'a self, old: Option<&'a Value>, new: Option<&'a Value>, reserved: Reserved) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let keep = new.map(held).unwrap_or_default();
            let mut free: Vec<Item> = Vec::new();
            let candidates = old.filter(|_| true).map(held).unwrap_or_default().into_iter();
            let reserved_items = reserved.items.into_iter().map(|(_, i)| i);
            let from_old: Vec<Item> = if old.is_some() { candidates.collect() } else { Vec::new() };
            for item in from_old.into_iter().chain(reserved_items) {
                // Nothing written: every reservation goes back, whatever `new` shows.
                let kept = old.is_some() && keep.contains(&item);
                if !kept && !free.contains(&item) {
                    free.push(item);
                }
            }
            self.release(&free).await;
        })
    }

    fn after_delete<'a>(&'a self, obj: &'a Value) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.release(&held(obj)).await })
    }
}

fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = arr(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) => format!("{}:{np}/{proto}", i(p, "/port")),
                None => format!("{}/{proto}", i(p, "/port")),
            }
        })
        .collect();
    or_none(ports.join(","))
}

fn external_ip(svc: &Value) -> String {
    let ty = s(svc, "/spec/type");
    let ext: Vec<&str> = arr(svc, "/spec/externalIPs").iter().filter_map(Value::as_str).collect();
    match ty {
        "LoadBalancer" => {
            let lb: Vec<&str> = arr(svc, "/status/loadBalancer/ingress").iter().map(|i| if s(i, "/ip").is_empty() { s(i, "/hostname") } else { s(i, "/ip") }).collect();
            let all: Vec<&str> = lb.into_iter().chain(ext).collect();
            if all.is_empty() { "<pending>".into() } else { all.join(",") }
        }
        "ExternalName" => s(svc, "/spec/externalName").to_string(),
        _ => or_none(ext.join(",")),
    }
}
