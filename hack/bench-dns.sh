#!/usr/bin/env bash
# Cluster DNS benchmark: ferrokube-dns (release, fed a static zone of BENCH_SERVICES
# Services, no cluster) against dnsmasq serving the same names from a hosts file, in the
# same run, each on its own 127.0.0.x loopback port, driven by the same bounded load
# (ferrokube-dns-load: BENCH_CONCURRENCY workers, one query in flight each, for
# BENCH_SECONDS or BENCH_MAX_QUERIES). Prints queries per second, p50 and p99 of both, and
# ferrokube-dns's RSS idle and after the load.
#
# Env: BENCH_SERVICES (1000), BENCH_SECONDS (5), BENCH_CONCURRENCY (16),
# BENCH_MAX_QUERIES (200000), SKIP_BUILD=1, KEEP=1 (keep the work dir).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVICES=${BENCH_SERVICES:-1000}
SECONDS_EACH=${BENCH_SECONDS:-5}
CONC=${BENCH_CONCURRENCY:-16}
MAXQ=${BENCH_MAX_QUERIES:-200000}
WORK=$(mktemp -d /tmp/bench-dns.XXXXXX)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  [ "${KEEP:-}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

command -v dnsmasq >/dev/null || { echo "dnsmasq missing: run hack/install-deps.sh" >&2; exit 1; }
cd "$ROOT"
if [ "${SKIP_BUILD:-}" != 1 ]; then
  cargo build --release -p dns --bins >&2
fi
DNS_BIN=target/release/ferrokube-dns
LOAD_BIN=target/release/ferrokube-dns-load

# The same names in both: svc-<i>.bench.svc.cluster.local -> 10.96.<i/250>.<i%250+1>.
python3 - "$SERVICES" "$WORK" <<'PY'
import json, sys
n, work = int(sys.argv[1]), sys.argv[2]
items, hosts, names = [], [], []
for i in range(n):
    ip = f"10.96.{i // 250}.{i % 250 + 1}"
    name = f"svc-{i}"
    items.append({"apiVersion": "v1", "kind": "Service",
                  "metadata": {"name": name, "namespace": "bench"},
                  "spec": {"clusterIP": ip, "clusterIPs": [ip],
                           "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
    fqdn = f"{name}.bench.svc.cluster.local"
    hosts.append(f"{ip} {fqdn}")
    names.append(fqdn + ".")
json.dump({"apiVersion": "v1", "kind": "List", "items": items}, open(f"{work}/zone.json", "w"))
open(f"{work}/hosts", "w").write("\n".join(hosts) + "\n")
open(f"{work}/names", "w").write("\n".join(names) + "\n")
PY

DNS_PORT=$(free_port)
DNS_METRICS=$(free_port)
"$DNS_BIN" --static-zone "$WORK/zone.json" --listen "127.0.0.2:$DNS_PORT" --upstream none \
  --metrics-bind-address "127.0.0.1:$DNS_METRICS" >"$WORK/dns.log" 2>&1 &
DNS_PID=$!
PIDS+=("$DNS_PID")

MASQ_PORT=$(free_port)
dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
  --addn-hosts="$WORK/hosts" --listen-address=127.0.0.3 --bind-interfaces \
  --port="$MASQ_PORT" --cache-size=10000 --pid-file="$WORK/dnsmasq.pid" --user=root \
  >"$WORK/dnsmasq.log" 2>&1 &
PIDS+=("$!")

for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$DNS_METRICS/ready" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$DNS_METRICS/ready" >/dev/null || { cat "$WORK/dns.log" >&2; exit 1; }
RSS_IDLE=$(rss_kb "$DNS_PID")

run() {
  "$LOAD_BIN" --server "$1" --names "$WORK/names" --concurrency "$CONC" \
    --seconds "$SECONDS_EACH" --max-queries "$MAXQ"
}
# Warm both (dnsmasq reads its hosts file lazily, ferrokube-dns pages in).
for s in "127.0.0.3:$MASQ_PORT" "127.0.0.2:$DNS_PORT"; do
  "$LOAD_BIN" --server "$s" --names "$WORK/names" --concurrency 2 --seconds 1 --max-queries 2000 >/dev/null
done
FK=$(run "127.0.0.2:$DNS_PORT")
MASQ=$(run "127.0.0.3:$MASQ_PORT")
RSS_LOAD=$(rss_kb "$DNS_PID")

field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
printf '%-14s %10s %10s %10s %8s\n' server qps p50_ms p99_ms lost
printf '%-14s %10s %10s %10s %8s\n' ferrokube-dns "$(field "$FK" qps)" "$(field "$FK" p50_ms)" "$(field "$FK" p99_ms)" "$(field "$FK" lost)"
printf '%-14s %10s %10s %10s %8s\n' dnsmasq "$(field "$MASQ" qps)" "$(field "$MASQ" p50_ms)" "$(field "$MASQ" p99_ms)" "$(field "$MASQ" lost)"
echo "ferrokube-dns RSS: idle $((RSS_IDLE / 1024)) MB, after load $((RSS_LOAD / 1024)) MB ($SERVICES Services in the zone)"
