#!/usr/bin/env bash
# Controller-manager benchmark, in one run:
#  1. time from creating a Deployment of N (default 1000) replicas to N pods
#     existing (and to all of them bound), with the scheduler running against
#     kubelet-less Node objects;
#  2. time to delete it with Foreground propagation (a small watcher stands
#     in for the kubelets: it confirms the termination of each pod marked for
#     deletion as soon as it sees it, as a kubelet's final grace-0 delete
#     would), and when the garbage collector had marked every pod;
#  3. the controller-manager's peak RSS.
#
#   hack/bench-controllers.sh [--replicas N] [--nodes M] [--bin-dir DIR]
#   (env: CM_ARGS adds controller-manager flags, e.g. --concurrent-gc-syncs 50;
#    CM_LOG sets its RUST_LOG; KEEP=1 keeps the work dir)
#
# Uses target/release binaries when all three exist, else target/debug
# (build with `cargo build --release -p apiserver -p scheduler -p controller-manager`).
# Everything runs on free loopback ports in a temp dir and is stopped by PID.
set -euo pipefail

REPLICAS=1000
NODES=10
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/secure-port.sh
. "$ROOT/hack/lib/secure-port.sh"
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
"$BIN_DIR/ferrokube-scheduler" --kubeconfig "$WORK/admin.kubeconfig" --port "$SCHED_PORT" --client-ca-file "$WORK/pki/ca.crt" >"$WORK/scheduler.log" 2>&1 &
PIDS+=($!)
# No kubelets renew node leases here, so the node lifecycle loop would
# (correctly) taint every node unreachable after its grace period.
RUST_LOG="${CM_LOG:-info}" "$BIN_DIR/ferrokube-controller-manager" --kubeconfig "$WORK/admin.kubeconfig" --port "$CM_PORT" --client-ca-file "$WORK/pki/ca.crt" --controllers '*,-node-lifecycle-controller' ${CM_ARGS:-} >"$WORK/controller-manager.log" 2>&1 &
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
wait_until 30 curl -sfk "https://127.0.0.1:$CM_PORT/healthz" -o /dev/null

# Watches and polls go through one small Python client (no kubectl start-up
# per sample, and no 1000-pod list every 100 ms loading the apiserver that is
# being measured).
"$KUBECTL_BIN" --kubeconfig "$WORK/admin.kubeconfig" config view --raw -o jsonpath='{.users[0].user.client-certificate-data}' | base64 -d >"$WORK/admin.crt"
"$KUBECTL_BIN" --kubeconfig "$WORK/admin.kubeconfig" config view --raw -o jsonpath='{.users[0].user.client-key-data}' | base64 -d >"$WORK/admin.key"
cat >"$WORK/pods.py" <<'PY'
"""pods.py PORT DIR MODE N: watch the bench pods.
count:   print 'ready', then 'created T' when N pods exist and 'bound T' when N are bound.
kubelet: confirm the deletion (grace 0) of every pod marked for deletion; print
         'marked T' once N pods have been seen marked, 'confirmed T' once N are deleted.
gone:    print 'gone T' once the Deployment, its ReplicaSets and its pods are all gone."""
import concurrent.futures, http.client, json, ssl, sys, threading, time

port, d, mode, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=f"{d}/pki/ca.crt")
ctx.load_cert_chain(f"{d}/admin.crt", f"{d}/admin.key")
local = threading.local()
PODS = "/api/v1/namespaces/default/pods"
SEL = "labelSelector=app%3Dbench"

def conn():
    if getattr(local, "c", None) is None:
        local.c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
    return local.c

def request(method, path, body=None):
    for _ in range(3):
        try:
            c = conn()
            c.request(method, path, body=body, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, r.read()
        except (OSError, http.client.HTTPException):
            local.c = None
    return 0, b""

def say(*words):
    print(*words, flush=True)

def watch():
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=600)
    c.request("GET", f"{PODS}?watch=1&{SEL}&timeoutSeconds=600")
    r = c.getresponse()
    while True:
        line = r.readline()
        if not line:
            return
        yield json.loads(line)

if mode == "count":
    say("ready")
    existing, bound, created = set(), set(), None
    for ev in watch():
        o = ev["object"]; name = o["metadata"]["name"]
        if ev["type"] == "DELETED":
            existing.discard(name); bound.discard(name); continue
        existing.add(name)
        if o.get("spec", {}).get("nodeName"):
            bound.add(name)
        if created is None and len(existing) >= n:
            created = time.time(); say("created", created)
        if created is not None and len(bound) >= n:
            say("bound", time.time()); break
elif mode == "kubelet":
    pool = concurrent.futures.ThreadPoolExecutor(8)
    marked, reported, done, lock = set(), False, [0], threading.Lock()
    body = json.dumps({"gracePeriodSeconds": 0}).encode()
    def confirm(name):
        request("DELETE", f"{PODS}/{name}", body)
        with lock:
            done[0] += 1
            if done[0] == n:
                say("confirmed", time.time())
    for ev in watch():
        o = ev["object"]; name = o["metadata"]["name"]
        if ev["type"] == "DELETED" or not o["metadata"].get("deletionTimestamp") or name in marked:
            continue
        marked.add(name)
        pool.submit(confirm, name)
        if not reported and len(marked) >= n:
            reported = True; say("marked", time.time())
elif mode == "gone":
    while True:
        dep, _ = request("GET", "/apis/apps/v1/namespaces/default/deployments/bench")
        if dep == 404:
            _, pods = request("GET", f"{PODS}?{SEL}")
            _, rss = request("GET", "/apis/apps/v1/namespaces/default/replicasets")
            if pods and rss and not json.loads(pods)["items"] and not json.loads(rss)["items"]:
                say("gone", time.time()); break
        time.sleep(0.05)
PY
pods_py() { timeout "${BENCH_TIMEOUT:-300}" python3 "$WORK/pods.py" "$API_PORT" "$WORK" "$@"; }
field() { awk -v k="$1" '$1 == k {print $2; exit}' "$2"; }
elapsed() { [ -n "$2" ] && python3 -c "print(f'{$2 - $1:.2f}')"; }

PEAK_RSS=0
sample_rss() {
  local r; r=$(ps -o rss= -p "$CM_PID" 2>/dev/null | tr -d ' ' || echo 0)
  [ -n "$r" ] && [ "$r" -gt "$PEAK_RSS" ] && PEAK_RSS=$r
  return 0
}
wait_pid_sampling() { # wait for a background PID, sampling the controller-manager's RSS
  while kill -0 "$1" 2>/dev/null; do sample_rss; sleep 0.1; done
  wait "$1" || true
}

pods_py count "$REPLICAS" >"$WORK/count.out" &
COUNT_PID=$!; PIDS+=($COUNT_PID)
wait_until 30 grep -q ready "$WORK/count.out"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(now)
k create deployment bench --image=busybox --replicas="$REPLICAS" >/dev/null
wait_pid_sampling "$COUNT_PID"
CREATED=$(elapsed "$START" "$(field created "$WORK/count.out")") || true
BOUND=$(elapsed "$START" "$(field bound "$WORK/count.out")") || true
RSS_AFTER_CREATE=$PEAK_RSS

pods_py kubelet "$REPLICAS" >"$WORK/kubelet.out" &
PIDS+=($!)
pods_py gone 0 >"$WORK/gone.out" &
GONE_PID=$!; PIDS+=($GONE_PID)
START=$(now)
k delete deployment bench --cascade=foreground --wait=false >/dev/null
wait_pid_sampling "$GONE_PID"
DELETED=$(elapsed "$START" "$(field gone "$WORK/gone.out")") || true
MARKED=$(elapsed "$START" "$(field marked "$WORK/kubelet.out")") || true
CONFIRMED=$(elapsed "$START" "$(field confirmed "$WORK/kubelet.out")") || true

echo "binaries:                         $BIN_DIR"
echo "replicas / nodes:                 $REPLICAS / $NODES"
echo "load average (before, after):     $LOAD_BEFORE; $(cut -d' ' -f1-3 /proc/loadavg)"
echo "create -> $REPLICAS pods exist:       ${CREATED:-timeout} s"
echo "create -> $REPLICAS pods bound:       ${BOUND:-timeout} s"
echo "foreground delete -> all marked:  ${MARKED:-timeout} s (every pod has a deletionTimestamp)"
echo "foreground delete -> all deleted: ${CONFIRMED:-timeout} s (the kubelet stand-in's last grace-0 delete returned)"
echo "foreground delete -> all gone:    ${DELETED:-timeout} s (Deployment, ReplicaSet and pods)"
echo "controller-manager peak RSS:      $((PEAK_RSS / 1024)) MiB (after create: $((RSS_AFTER_CREATE / 1024)) MiB)"
component_get "$CM_PORT" /metrics "$WORK/admin.kubeconfig" | grep -E '^controller_reconcile(_errors)?_total\{name="(replicaset|deployment|garbage-collector)-controller"' || true
