#!/usr/bin/env bash
# Controller-manager benchmark, in one run:
#  1. time from creating a Deployment of N (default 1000) replicas to N pods
#     existing (and to all of them bound), with the scheduler running against
#     kubelet-less Node objects;
#  2. time to delete it with Foreground propagation (the script stands in for
#     the kubelets: it confirms the termination of pods marked for deletion,
#     as a kubelet's final grace-0 delete would);
#  3. the controller-manager's peak RSS.
#
#   hack/bench-controllers.sh [--replicas N] [--nodes M] [--bin-dir DIR]
#
# Uses target/release binaries when all three exist, else target/debug
# (build with `cargo build --release -p apiserver -p scheduler -p controller-manager`).
# Everything runs on free loopback ports in a temp dir and is stopped by PID.
set -euo pipefail

REPLICAS=1000
NODES=10
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --replicas) REPLICAS="$2"; shift 2 ;;
    --nodes) NODES="$2"; shift 2 ;;
    --bin-dir) BIN_DIR="$2"; shift 2 ;;
    *) echo "usage: $0 [--replicas N] [--nodes M] [--bin-dir DIR]" >&2; exit 2 ;;
  esac
done
if [ -z "$BIN_DIR" ]; then
  BIN_DIR="$ROOT/target/debug"
  if [ -x "$ROOT/target/release/ferrokube-apiserver" ] && [ -x "$ROOT/target/release/ferrokube-scheduler" ] && [ -x "$ROOT/target/release/ferrokube-controller-manager" ]; then
    BIN_DIR="$ROOT/target/release"
  fi
fi
for b in ferrokube-apiserver ferrokube-scheduler ferrokube-controller-manager; do
  [ -x "$BIN_DIR/$b" ] || { echo "missing $BIN_DIR/$b; run cargo build first" >&2; exit 1; }
done
KUBECTL_BIN=/usr/lib/google-cloud-sdk/bin/kubectl.1.33
WORK="$(mktemp -d /tmp/bench-controllers.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
since() { python3 -c "print(f'{$(now) - $1:.2f}')"; }
k() { "$KUBECTL_BIN" --kubeconfig "$WORK/admin.kubeconfig" --cache-dir "$WORK/cache" "$@"; }
wait_until() { # wait_until TIMEOUT_S CMD...: poll until CMD succeeds
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out: $*" >&2; return 1; }
    sleep 0.1
  done
}

ETCD_PORT=$(free_port); PEER_PORT=$(free_port); API_PORT=$(free_port); SCHED_PORT=$(free_port); CM_PORT=$(free_port)
etcd --data-dir "$WORK/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
  --initial-cluster "default=http://127.0.0.1:$PEER_PORT" --log-level warn >"$WORK/etcd.log" 2>&1 &
PIDS+=($!)
wait_until 20 curl -sf "http://127.0.0.1:$ETCD_PORT/health" -o /dev/null
"$BIN_DIR/ferrokube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" --secure-port "$API_PORT" --cert-dir "$WORK/pki" >"$WORK/apiserver.log" 2>&1 &
PIDS+=($!)
wait_until 30 test -s "$WORK/pki/ca.crt"
"$BIN_DIR/ferrokube-apiserver" kubeconfig --cert-dir "$WORK/pki" --server "https://127.0.0.1:$API_PORT" --user admin --group system:masters --out "$WORK/admin.kubeconfig" >/dev/null
wait_until 30 k get --raw /readyz >/dev/null
"$BIN_DIR/ferrokube-scheduler" --kubeconfig "$WORK/admin.kubeconfig" --port "$SCHED_PORT" >"$WORK/scheduler.log" 2>&1 &
PIDS+=($!)
# No kubelets renew node leases here, so the node lifecycle loop would
# (correctly) taint every node unreachable after its grace period.
RUST_LOG="${CM_LOG:-info}" "$BIN_DIR/ferrokube-controller-manager" --kubeconfig "$WORK/admin.kubeconfig" --port "$CM_PORT" --controllers '*,-node-lifecycle-controller' >"$WORK/controller-manager.log" 2>&1 &
CM_PID=$!
PIDS+=($CM_PID)

for i in $(seq 1 "$NODES"); do
  k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata: {name: bench-$i, labels: {kubernetes.io/hostname: bench-$i}}
YAML
  k patch node "bench-$i" --subresource=status --type=merge -p "{\"status\":{\"capacity\":{\"cpu\":\"64\",\"memory\":\"256Gi\",\"pods\":\"500\"},\"allocatable\":{\"cpu\":\"64\",\"memory\":\"256Gi\",\"pods\":\"500\"},\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\",\"message\":\"bench\",\"lastHeartbeatTime\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"lastTransitionTime\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}]}}" >/dev/null
done
wait_until 30 curl -sf "http://127.0.0.1:$CM_PORT/healthz" -o /dev/null

PEAK_RSS=0
sample_rss() {
  local r; r=$(ps -o rss= -p "$CM_PID" 2>/dev/null | tr -d ' ' || echo 0)
  [ -n "$r" ] && [ "$r" -gt "$PEAK_RSS" ] && PEAK_RSS=$r
  return 0
}
pod_counts() { # prints: existing bound terminating
  k get --raw "/api/v1/namespaces/default/pods?labelSelector=app%3Dbench" |
    jq -r '[(.items | length), ([.items[] | select(.spec.nodeName != null and .spec.nodeName != "")] | length), ([.items[] | select(.metadata.deletionTimestamp != null)] | length)] | @tsv'
}

START=$(now)
k create deployment bench --image=busybox --replicas="$REPLICAS" >/dev/null
CREATED="" BOUND=""
while :; do
  sample_rss
  read -r n bound _ < <(pod_counts)
  if [ -z "$CREATED" ] && [ "$n" -ge "$REPLICAS" ]; then CREATED=$(since "$START"); fi
  if [ -n "$CREATED" ] && [ "$bound" -ge "$REPLICAS" ]; then BOUND=$(since "$START"); break; fi
  if python3 -c "import sys; sys.exit(0 if $(now) - $START > ${BENCH_TIMEOUT:-300} else 1)"; then echo "timed out: $n pods, $bound bound" >&2; break; fi
  sleep 0.1
done
RSS_AFTER_CREATE=$PEAK_RSS

START=$(now)
k delete deployment bench --cascade=foreground --wait=false >/dev/null
DELETED=""
while :; do
  sample_rss
  # Stand in for the kubelets: confirm termination of pods marked for deletion.
  doomed=$(k get --raw "/api/v1/namespaces/default/pods?labelSelector=app%3Dbench" | jq -r '.items[] | select(.metadata.deletionTimestamp != null) | .metadata.name')
  if [ -n "$doomed" ]; then
    echo "$doomed" | xargs -P 8 -n 50 "$KUBECTL_BIN" --kubeconfig "$WORK/admin.kubeconfig" --cache-dir "$WORK/cache" \
      delete pod --grace-period=0 --force --wait=false >/dev/null 2>&1 || true
  fi
  if ! k get deployment bench >/dev/null 2>&1; then
    read -r n _ _ < <(pod_counts)
    if [ "$n" -eq 0 ] && [ -z "$(k get rs -o name)" ]; then DELETED=$(since "$START"); break; fi
  fi
  if python3 -c "import sys; sys.exit(0 if $(now) - $START > 300 else 1)"; then echo "timed out deleting" >&2; break; fi
  sleep 0.2
done

echo "binaries:                         $BIN_DIR"
echo "replicas / nodes:                 $REPLICAS / $NODES"
echo "create -> $REPLICAS pods exist:       ${CREATED:-timeout} s"
echo "create -> $REPLICAS pods bound:       ${BOUND:-timeout} s"
echo "foreground delete -> all gone:    ${DELETED:-timeout} s"
echo "controller-manager peak RSS:      $((PEAK_RSS / 1024)) MiB (after create: $((RSS_AFTER_CREATE / 1024)) MiB)"
curl -s "http://127.0.0.1:$CM_PORT/metrics" | grep -E '^controller_reconcile(_errors)?_total\{name="(replicaset|deployment|garbage-collector)-controller"' || true
