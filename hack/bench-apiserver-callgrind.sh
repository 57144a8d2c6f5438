#!/usr/bin/env bash
# Instructions the apiserver executes per pod create, counted by callgrind: unlike CPU
# seconds this does not move with whatever else the machine runs, so a before/after of a few
# percent can be read off one run.
#
# Usage: hack/bench-apiserver-callgrind.sh BIN [BIN...]   (each BIN an ferrokube-apiserver)
# For each binary: a fresh etcd, the apiserver under `valgrind --tool=callgrind`, a warm-up
# of WARMUP creates, counters zeroed, then N creates (the bench's pod, one keep-alive
# connection, one client at a time) and the counters dumped. Prints instructions per create.
# Env: N (300), WARMUP (50), KEEP=1 keeps the callgrind output (for callgrind_annotate).
set -euo pipefail

N=${N:-300}
WARMUP=${WARMUP:-50}
WORK=$(mktemp -d /tmp/bench-callgrind.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  [ "${KEEP:-}" = 1 ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

command -v valgrind >/dev/null || { echo "valgrind is missing: hack/install-deps.sh installs it" >&2; exit 1; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# The pod of apiserver/benches/apiserver.rs, named by generateName so one body serves all.
pod_body() {
  python3 - <<'EOF'
import json
print(json.dumps({
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {"generateName": "cg-", "namespace": "default",
               "labels": {"app": "bench", "tier": "backend", "pod-template-hash": "5d8f7b9c4"},
               "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x" * 400}},
  "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"],
           "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
           "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
           "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}}))
EOF
}

# creates COUNT URL TOKEN CA: COUNT sequential POSTs over one connection.
creates() {
  local count=$1 url=$2 token=$3 ca=$4 cfg=$WORK/curl.cfg
  : >"$cfg"
  for _ in $(seq 1 "$count"); do echo "url = \"$url/api/v1/namespaces/default/pods\"" >>"$cfg"; echo 'output = "/dev/null"' >>"$cfg"; done
  curl -s --cacert "$ca" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    --data-binary @"$WORK/pod.json" -w '%{http_code}\n' -K "$cfg" | sort | uniq -c | awk '{printf "%s x %s  ", $1, $2} END {print ""}'
}

pod_body >"$WORK/pod.json"
i=0
for bin in "$@"; do
  i=$((i + 1))
  dir=$WORK/$i
  mkdir -p "$dir"
  etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)
  etcd --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$peer_port" >"$dir/etcd.log" 2>&1 &
  etcd_pid=$!
  PIDS+=($etcd_pid)
  token=cg-$RANDOM$RANDOM
  echo "$token,bench,bench-uid,\"system:masters\"" >"$dir/tokens.csv"
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$etcd_port/health" >/dev/null 2>&1 && break; sleep 0.1; done
  RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
    "$bin" --etcd-servers "http://127.0.0.1:$etcd_port" --secure-port "$api_port" \
    --cert-dir "$dir/pki" --token-auth-file "$dir/tokens.csv" >"$dir/apiserver.log" 2>&1 &
  api_pid=$!
  PIDS+=($api_pid)
  for _ in $(seq 1 600); do curl -sfk "https://127.0.0.1:$api_port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
  url=https://127.0.0.1:$api_port
  echo "== $bin"
  printf '   warm-up: '; creates "$WARMUP" "$url" "$token" "$dir/pki/ca.crt"
  callgrind_control -z "$api_pid" >/dev/null 2>&1
  printf '   measured: '; creates "$N" "$url" "$token" "$dir/pki/ca.crt"
  callgrind_control -d "$api_pid" >/dev/null 2>&1
  kill "$api_pid" "$etcd_pid" 2>/dev/null || true
  wait "$api_pid" "$etcd_pid" 2>/dev/null || true
  # The dump after the zeroing is the last file written besides the final one at exit.
  total=0
  dump=$(ls -t "$dir"/callgrind.out.* 2>/dev/null | grep -v '\.out$' | tail -1 || true)
  [ -n "$dump" ] || dump=$(ls "$dir"/callgrind.out* | head -1)
  total=$(grep -m1 '^summary:\|^totals:' "$dump" | awk '{print $2}')
  echo "   instructions per create: $((total / N))  ($dump)"
  echo "$bin $((total / N))" >>"$WORK/results"
done
if [ "$#" -ge 2 ]; then
  python3 - "$WORK/results" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1])]
base = int(rows[0][1])
for b, n in rows:
    print(f"   {int(n):>12,} instr/create  {100 * (int(n) - base) / base:+6.1f}%  {b}")
EOF
fi
