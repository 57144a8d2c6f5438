//! The nftables backend, laid out as kube-proxy's nftables mode: one table (named by
//! `--nft-table`), base chains that send Service traffic through a verdict map keyed by
//! `ip daddr . meta l4proto . th dport`, a chain per Service port choosing an endpoint with
//! `numgen random` rules, a chain per endpoint that DNATs (and marks hairpin traffic
//! for masquerade), ClientIP affinity as a timeout set per endpoint, and filter chains that
//! reject traffic to Services without endpoints. Programs go through `nft -j -f -`, one
//! transaction per sync; after the first sync only changed chains and map elements are
//! written. Nothing is flushed at start: the first sync replaces the table's contents in
//! one transaction, so traffic keeps flowing across a proxy restart.

use crate::backend::{ProxyBackend, SyncError, SyncStats};
use crate::state::{usable, Endpoint, ServicePort, ServicePortName, ServiceState};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};

const MASQ_MARK: u64 = 0x4000;

/// A base chain's hook: (type, hook, priority).
type Hook = (&'static str, &'static str, i32);

/// A chain and its rules, each rule's expression list kept as its JSON text: a ruleset of
/// 1,000 Services is ~22,000 rules, and JSON trees of them cost ten times the memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Chain {
    pub hook: Option<Hook>,
    pub rules: Vec<String>,
}

fn rules(list: Vec<Vec<Value>>) -> Vec<String> {
    list.into_iter().map(|r| Value::Array(r).to_string()).collect()
}

/// The whole desired content of the table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ruleset {
    pub chains: BTreeMap<String, Chain>,
    /// Map name → element key → verdict, both as JSON text.
    pub maps: BTreeMap<&'static str, BTreeMap<String, String>>,
    /// Affinity sets → timeout seconds.
    pub sets: BTreeMap<String, u32>,
}

impl Ruleset {
    pub fn rule_count(&self) -> usize {
        self.chains.values().map(|c| c.rules.len()).sum()
    }
}

const MAPS: &[(&str, &[&str])] = &[
    ("service-ips", &["ipv4_addr", "inet_proto", "inet_service"]),
    ("service-nodeports", &["inet_proto", "inet_service"]),
    ("no-endpoint-services", &["ipv4_addr", "inet_proto", "inet_service"]),
    ("no-endpoint-nodeports", &["inet_proto", "inet_service"]),
];

fn payload(proto: &str, field: &str) -> Value {
    json!({"payload": {"protocol": proto, "field": field}})
}
fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}
fn eq(left: Value, right: Value) -> Value {
    json!({"match": {"op": "==", "left": left, "right": right}})
}
fn jump(t: &str) -> Value {
    json!({"jump": {"target": t}})
}
fn goto(t: &str) -> Value {
    json!({"goto": {"target": t}})
}
fn fib_local(which: &str) -> Value {
    eq(json!({"fib": {"result": "type", "flags": [which]}}), json!("local"))
}
fn service_key() -> Value {
    json!({"concat": [payload("ip", "daddr"), meta("l4proto"), payload("th", "dport")]})
}
fn nodeport_key() -> Value {
    json!({"concat": [meta("l4proto"), payload("th", "dport")]})
}

/// A short stable hash, so chain names stay unique and short-ish (upstream: base32 sha256).
fn hash(s: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:08x}", (h >> 32) as u32 ^ h as u32)
}

pub fn service_chain(sp: &ServicePort) -> String {
    let n = sp.name.to_string();
    format!("service-{}-{n}", hash(&n))
}
fn external_chain(sp: &ServicePort) -> String {
    let n = sp.name.to_string();
    format!("external-{}-{n}", hash(&n))
}
fn local_chain(sp: &ServicePort) -> String {
    let n = sp.name.to_string();
    format!("local-{}-{n}", hash(&n))
}
pub fn endpoint_chain(sp: &ServicePort, ep: &Endpoint) -> String {
    let n = format!("{}__{}/{}", sp.name, ep.ip, ep.port);
    format!("endpoint-{}-{n}", hash(&n))
}
fn affinity_set(sp: &ServicePort, ep: &Endpoint) -> String {
    let n = format!("{}__{}/{}", sp.name, ep.ip, ep.port);
    format!("affinity-{}-{}", hash(&n), sp.affinity_seconds.unwrap_or(0))
}

fn base_chains(rs: &mut Ruleset) {
    let mut add = |name: &str, hook: Option<Hook>, list: Vec<Vec<Value>>| {
        rs.chains.insert(name.to_string(), Chain { hook, rules: rules(list) });
    };
    add("nat-prerouting", Some(("nat", "prerouting", -100)), vec![vec![jump("services")]]);
    add("nat-output", Some(("nat", "output", -100)), vec![vec![jump("services")]]);
    add("nat-postrouting", Some(("nat", "postrouting", 100)), vec![vec![jump("masquerading")]]);
    let new_conn = json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}});
    let rejects = vec![
        vec![new_conn.clone(), json!({"vmap": {"key": service_key(), "data": "@no-endpoint-services"}})],
        vec![new_conn, fib_local("daddr"), json!({"vmap": {"key": nodeport_key(), "data": "@no-endpoint-nodeports"}})],
    ];
    add("filter-forward", Some(("filter", "forward", -110)), rejects.clone());
    add("filter-output", Some(("filter", "output", -110)), rejects);
    add("reject-chain", None, vec![vec![json!({"reject": null})]]);
    add(
        "masquerading",
        None,
        vec![
            vec![eq(json!({"&": [meta("mark"), MASQ_MARK]}), json!(0)), json!({"return": null})],
            vec![json!({"mangle": {"key": meta("mark"), "value": {"^": [meta("mark"), MASQ_MARK]}}}), json!({"masquerade": {"flags": ["fully-random"]}})],
        ],
    );
    add("mark-for-masquerade", None, vec![vec![json!({"mangle": {"key": meta("mark"), "value": {"|": [meta("mark"), MASQ_MARK]}}})]]);
    add(
        "services",
        None,
        vec![
            vec![json!({"vmap": {"key": service_key(), "data": "@service-ips"}})],
            // NodePorts on every local address, 127.0.0.1 included (route_localnet).
            vec![fib_local("daddr"), json!({"vmap": {"key": nodeport_key(), "data": "@service-nodeports"}})],
        ],
    );
}

/// The chain that picks one of `eps` at random, affinity first.
fn chooser(sp: &ServicePort, eps: &[&Endpoint]) -> Vec<String> {
    let mut rules = Vec::new();
    if sp.affinity_seconds.is_some() {
        for ep in eps {
            rules.push(vec![eq(payload("ip", "saddr"), json!(format!("@{}", affinity_set(sp, ep)))), goto(&endpoint_chain(sp, ep))]);
        }
    }
    if eps.is_empty() {
        rules.push(vec![json!({"drop": null})]);
        return self::rules(rules);
    }
    // Rule i takes the packet with probability 1/(N-i) (`numgen random mod (N-i) == 0`), so
    // each endpoint gets 1/N, as iptables' statistic rules. Upstream's nftables mode uses one
    // `numgen random mod N vmap {..}`, but every such anonymous set makes nft load the set
    // cache on each later transaction (~100 ms at 1,000 Services), which this avoids.
    let n = eps.len();
    for (i, ep) in eps.iter().enumerate() {
        if i + 1 < n {
            rules.push(vec![eq(json!({"numgen": {"mode": "random", "mod": n - i, "offset": 0}}), json!(0)), goto(&endpoint_chain(sp, ep))]);
        } else {
            rules.push(vec![goto(&endpoint_chain(sp, ep))]);
        }
    }
    self::rules(rules)
}

/// The desired table for `state` (pure).
pub fn ruleset(state: &ServiceState) -> Ruleset {
    ruleset_cached(state, &mut FragmentCache::default())
}

/// Each Service port's part of the table, kept between syncs: an incremental sync only
/// recomputes the ports whose Service or endpoints changed.
#[derive(Default)]
pub struct FragmentCache {
    ports: std::collections::HashMap<ServicePortName, (ServicePort, Ruleset)>,
    /// What every fragment was computed for (node, cluster CIDR).
    context: Option<(String, Option<(std::net::Ipv4Addr, u8)>)>,
}

/// As [`ruleset`], reusing `cache`'s fragments of unchanged ports.
pub fn ruleset_cached(state: &ServiceState, cache: &mut FragmentCache) -> Ruleset {
    let context = Some((state.node.clone(), state.cluster_cidr));
    if cache.context != context {
        cache.ports.clear();
        cache.context = context;
    }
    cache.ports.retain(|k, _| state.ports.contains_key(k));
    let mut rs = Ruleset::default();
    base_chains(&mut rs);
    for (name, _) in MAPS {
        rs.maps.insert(name, BTreeMap::new());
    }
    for (key, sp) in &state.ports {
        let fresh = match cache.ports.get(key) {
            Some((old, _)) => old != sp,
            None => true,
        };
        if fresh {
            cache.ports.insert(key.clone(), (sp.clone(), port_fragment(state, sp)));
        }
        let Some((_, frag)) = cache.ports.get(key) else { continue };
        for (n, c) in &frag.chains {
            rs.chains.insert(n.clone(), c.clone());
        }
        for (m, elems) in &frag.maps {
            if let Some(dst) = rs.maps.get_mut(m) {
                dst.extend(elems.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        rs.sets.extend(frag.sets.iter().map(|(k, v)| (k.clone(), *v)));
    }
    rs
}

/// One Service port's chains, map elements and sets.
fn port_fragment(state: &ServiceState, sp: &ServicePort) -> Ruleset {
    let mut rs = Ruleset::default();
    for (name, _) in MAPS {
        rs.maps.insert(name, BTreeMap::new());
    }
    let proto = sp.name.protocol.nft();
    let svc_key = json!({"concat": [sp.cluster_ip.to_string(), proto, sp.port]});
    let cluster_eps = usable(&sp.endpoints, sp.internal_local, &state.node);
    let all_eps = usable(&sp.endpoints, false, &state.node);
    // Every endpoint any chain of this port may pick.
    let mut programmed: Vec<&Endpoint> = cluster_eps.clone();
    for e in &all_eps {
        if !programmed.contains(e) {
            programmed.push(e);
        }
    }
    if cluster_eps.is_empty() {
        rs.maps.get_mut("no-endpoint-services").map(|m| m.insert(svc_key.to_string(), goto("reject-chain").to_string()));
    } else {
        let chain = service_chain(sp);
        let mut rules = Vec::new();
        if let Some((net, len)) = state.cluster_cidr {
            // Off-cluster sources reaching a cluster IP are masqueraded so replies return here.
            rules.push(vec![json!({"match": {"op": "!=", "left": payload("ip", "saddr"), "right": {"prefix": {"addr": net.to_string(), "len": len}}}}), jump("mark-for-masquerade")]);
        }
        let mut rules = self::rules(rules);
        rules.extend(chooser(sp, &cluster_eps));
        rs.chains.insert(chain.clone(), Chain { hook: None, rules });
        rs.maps.get_mut("service-ips").map(|m| m.insert(svc_key.to_string(), goto(&chain).to_string()));
    }
    if let Some(np) = sp.node_port {
        let np_key = json!({"concat": [proto, np]});
        let local_eps = usable(&sp.endpoints, true, &state.node);
        let reachable = if sp.external_local { !local_eps.is_empty() } else { !all_eps.is_empty() };
        if !reachable {
            rs.maps.get_mut("no-endpoint-nodeports").map(|m| m.insert(np_key.to_string(), goto("reject-chain").to_string()));
        } else {
            let ext = external_chain(sp);
            // The cluster-wide chooser for external traffic (all endpoints, whatever iTP).
            let cluster_chain = format!("{}-ext", service_chain(sp));
            rs.chains.insert(cluster_chain.clone(), Chain { hook: None, rules: chooser(sp, &all_eps) });
            let rules = if sp.external_local {
                let local = local_chain(sp);
                rs.chains.insert(local.clone(), Chain { hook: None, rules: chooser(sp, &local_eps) });
                // The node's own traffic (127.0.0.1 included) must come back through here.
                vec![vec![fib_local("saddr"), jump("mark-for-masquerade")], vec![fib_local("saddr"), goto(&cluster_chain)], vec![goto(&local)]]
            } else {
                vec![vec![jump("mark-for-masquerade")], vec![goto(&cluster_chain)]]
            };
            rs.chains.insert(ext.clone(), Chain { hook: None, rules: self::rules(rules) });
            rs.maps.get_mut("service-nodeports").map(|m| m.insert(np_key.to_string(), goto(&ext).to_string()));
        }
    }
    for ep in programmed {
        let mut rules = vec![vec![eq(payload("ip", "saddr"), json!(ep.ip.to_string())), jump("mark-for-masquerade")]];
        if let Some(t) = sp.affinity_seconds {
            let set = affinity_set(sp, ep);
            rs.sets.insert(set.clone(), t);
            rules.push(vec![json!({"set": {"op": "update", "elem": payload("ip", "saddr"), "set": format!("@{set}")}})]);
        }
        rules.push(vec![eq(meta("l4proto"), json!(proto)), json!({"dnat": {"addr": ep.ip.to_string(), "port": ep.port}})]);
        rs.chains.insert(endpoint_chain(sp, ep), Chain { hook: None, rules: self::rules(rules) });
    }
    rs
}

/// What exists in the kernel's table that a first sync must remove if unwanted.
#[derive(Debug, Default, Clone)]
pub struct Existing {
    pub chains: BTreeSet<String>,
    pub sets: BTreeSet<String>,
}

/// The transaction from `prev` (None: unknown, rewrite everything) to `next`: one JSON
/// command per entry, in order.
pub fn transaction(table: &str, prev: Option<&Ruleset>, existing: &Existing, next: &Ruleset) -> (Vec<String>, SyncStats) {
    let tq = Value::String(table.to_string()).to_string();
    // `{"<verb>":{"<what>":{"family":"ip","table":T,<fields>}}}` without building a tree.
    let cmd = |verb: &str, what: &str, fields: String| format!(r#"{{"{verb}":{{"{what}":{{"family":"ip","table":{tq},{fields}}}}}}}"#);
    let name = |n: &str| format!(r#""name":{}"#, Value::String(n.to_string()));
    let mut cmds = vec![json!({"add": {"table": {"family": "ip", "name": table}}}).to_string()];
    let mut stats = SyncStats { full: prev.is_none(), ..Default::default() };
    if prev.is_none() {
        for (m, types) in MAPS {
            cmds.push(cmd("add", "map", format!(r#"{},"type":{},"map":"verdict""#, name(m), json!(types))));
        }
    }
    for (set, timeout) in &next.sets {
        // An existing set is left alone (nft refuses to re-add one with a timeout); its name
        // carries the timeout, so a changed timeout is a new set.
        let exists = match prev {
            Some(p) => p.sets.contains_key(set),
            None => existing.sets.contains(set),
        };
        if !exists {
            cmds.push(cmd("add", "set", format!(r#"{},"type":"ipv4_addr","flags":["timeout"],"timeout":{timeout}"#, name(set))));
        }
    }
    // Chains first (created empty), so rules and map elements may name any of them.
    let changed: Vec<(&String, &Chain)> = next.chains.iter().filter(|(n, c)| prev.is_none_or(|p| p.chains.get(*n) != Some(*c))).collect();
    for (n, chain) in &changed {
        let mut fields = name(n);
        if let Some((ty, hook, prio)) = chain.hook {
            fields.push_str(&format!(r#","type":"{ty}","hook":"{hook}","prio":{prio},"policy":"accept""#));
        }
        cmds.push(cmd("add", "chain", fields));
    }
    for (n, chain) in &changed {
        cmds.push(cmd("flush", "chain", name(n)));
        let chain_name = Value::String(n.to_string()).to_string();
        for rule in &chain.rules {
            cmds.push(cmd("add", "rule", format!(r#""chain":{chain_name},"expr":{rule}"#)));
        }
    }
    stats.chains_written = changed.len();
    for (m, elems) in &next.maps {
        let pairs = |it: &mut dyn Iterator<Item = (&String, &String)>| it.map(|(k, v)| format!("[{k},{v}]")).collect::<Vec<_>>().join(",");
        match prev {
            None => {
                cmds.push(cmd("flush", "map", name(m)));
                if !elems.is_empty() {
                    cmds.push(cmd("add", "element", format!(r#"{},"elem":[{}]"#, name(m), pairs(&mut elems.iter()))));
                }
            }
            Some(p) => {
                let empty = BTreeMap::new();
                let old = p.maps.get(m).unwrap_or(&empty);
                let gone: Vec<&String> = old.iter().filter(|(k, v)| elems.get(*k) != Some(*v)).map(|(k, _)| k).collect();
                if !gone.is_empty() {
                    let keys: Vec<&str> = gone.iter().map(|k| k.as_str()).collect();
                    cmds.push(cmd("delete", "element", format!(r#"{},"elem":[{}]"#, name(m), keys.join(","))));
                }
                let mut added = elems.iter().filter(|(k, v)| old.get(*k) != Some(*v)).peekable();
                if added.peek().is_some() {
                    cmds.push(cmd("add", "element", format!(r#"{},"elem":[{}]"#, name(m), pairs(&mut added))));
                }
            }
        }
    }
    // Then what is no longer wanted: flushed first, as stale chains may jump to each other.
    let stale: Vec<String> = match prev {
        Some(p) => p.chains.keys().filter(|n| !next.chains.contains_key(*n)).cloned().collect(),
        None => existing.chains.iter().filter(|n| !next.chains.contains_key(*n)).cloned().collect(),
    };
    for n in &stale {
        cmds.push(cmd("flush", "chain", name(n)));
    }
    for n in &stale {
        cmds.push(cmd("delete", "chain", name(n)));
    }
    stats.chains_deleted = stale.len();
    let stale_sets: Vec<String> = match prev {
        Some(p) => p.sets.keys().filter(|n| !next.sets.contains_key(*n)).cloned().collect(),
        None => existing.sets.iter().filter(|n| !next.sets.contains_key(*n) && !MAPS.iter().any(|(m, _)| m == n)).cloned().collect(),
    };
    for n in &stale_sets {
        cmds.push(cmd("delete", "set", name(n)));
    }
    stats.rules_total = next.rule_count();
    (cmds, stats)
}

/// Runs `nft`: the seam tests replace.
pub trait Nft {
    /// Applies one transaction (`nft -j -f -`) of JSON commands.
    fn apply(&mut self, cmds: &[String]) -> Result<(), SyncError>;
    /// The table's chains and sets; empty when it does not exist.
    fn existing(&mut self, table: &str) -> Result<Existing, SyncError>;
}

/// The `nft` binary.
pub struct NftCli;

impl Nft for NftCli {
    fn apply(&mut self, cmds: &[String]) -> Result<(), SyncError> {
        let mut body = String::with_capacity(cmds.iter().map(|c| c.len() + 1).sum::<usize>() + 16);
        body.push_str(r#"{"nftables":["#);
        for (i, c) in cmds.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(c);
        }
        body.push_str("]}");
        // Debugging aid: FERROKUBE_NFT_DUMP=/path keeps each transaction as /path.N.
        if let Ok(path) = std::env::var("FERROKUBE_NFT_DUMP") {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let _ = std::fs::write(format!("{path}.{n}"), &body);
        }
        let mut child = Command::new("nft")
            .args(["-j", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| SyncError::Exec { cmd: "nft".into(), source })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(body.as_bytes()).map_err(|source| SyncError::Exec { cmd: "nft".into(), source })?;
        }
        let out = child.wait_with_output().map_err(|source| SyncError::Exec { cmd: "nft".into(), source })?;
        if !out.status.success() {
            return Err(SyncError::Nft(String::from_utf8_lossy(&out.stderr).chars().take(2000).collect()));
        }
        Ok(())
    }

    fn existing(&mut self, table: &str) -> Result<Existing, SyncError> {
        let out = Command::new("nft").args(["-j", "list", "table", "ip", table]).output().map_err(|source| SyncError::Exec { cmd: "nft".into(), source })?;
        let mut ex = Existing::default();
        if !out.status.success() {
            return Ok(ex);
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        for item in v.get("nftables").and_then(Value::as_array).into_iter().flatten() {
            if let Some(n) = item.pointer("/chain/name").and_then(Value::as_str) {
                ex.chains.insert(n.to_string());
            }
            if let Some(n) = item.pointer("/set/name").and_then(Value::as_str) {
                ex.sets.insert(n.to_string());
            }
        }
        Ok(ex)
    }
}

pub struct NftBackend<N: Nft = NftCli> {
    table: String,
    nft: N,
    /// What the kernel holds after the last successful sync.
    last: Option<Ruleset>,
    cache: FragmentCache,
}

impl NftBackend<NftCli> {
    pub fn new(table: &str) -> Self {
        NftBackend { table: table.to_string(), nft: NftCli, last: None, cache: FragmentCache::default() }
    }
}

impl<N: Nft> NftBackend<N> {
    pub fn with_nft(table: &str, nft: N) -> Self {
        NftBackend { table: table.to_string(), nft, last: None, cache: FragmentCache::default() }
    }

    /// The next sync rewrites everything (after an error the kernel's state is unknown).
    pub fn invalidate(&mut self) {
        self.last = None;
    }

    pub fn nft(&mut self) -> &mut N {
        &mut self.nft
    }
}

/// Removes `table` entirely (tests and benches clean up with this).
pub fn delete_table(table: &str) -> Result<(), SyncError> {
    let st = Command::new("nft").args(["delete", "table", "ip", table]).stderr(Stdio::null()).status().map_err(|source| SyncError::Exec { cmd: "nft".into(), source })?;
    let _ = st;
    Ok(())
}

impl<N: Nft> ProxyBackend for NftBackend<N> {
    fn sync(&mut self, state: &ServiceState) -> Result<SyncStats, SyncError> {
        let next = ruleset_cached(state, &mut self.cache);
        let existing = if self.last.is_none() { self.nft.existing(&self.table)? } else { Existing::default() };
        let (cmds, mut stats) = transaction(&self.table, self.last.as_ref(), &existing, &next);
        let t = std::time::Instant::now();
        let applied = self.nft.apply(&cmds);
        if std::env::var_os("FERROKUBE_BENCH_DETAIL").is_some() {
            eprintln!("nft apply of {} commands {:?}", cmds.len(), t.elapsed());
        }
        if let Err(e) = applied {
            self.last = None;
            return Err(e);
        }
        stats.endpoints_total = state.ports.values().map(|p| usable(&p.endpoints, false, &state.node).len()).sum();
        self.last = Some(next);
        Ok(stats)
    }
}

#[cfg(test)]
mod tests;
