#!/usr/bin/env bash
# Kubelet benchmark: pod start-up latency (creation → Running, seen through a
# watch) for 1 pod and for a burst of N pods on one node, against the same
# number of containers started straight through containerd from the same
# image; kubelet RSS idle and with N pods.
#
#   hack/bench-kubelet.sh [--pods N] [--keep]
#
# Brings up its own one-node cluster (hack/local-up-cluster.sh) on ports and
# paths of its own, so it runs beside a dev cluster, and stops it at the end
# unless --keep.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PODS=30
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --pods) PODS="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "usage: $0 [--pods N] [--keep]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "$0 must run as root" >&2; exit 1; }

export FERROKUBE_UP_DIR="$ROOT/_output/bench-kubelet"
export FERROKUBE_RUN_DIR=/run/ferrokube-bench-kubelet
export ETCD_PORT=23979 ETCD_PEER_PORT=23980 APISERVER_PORT=26443 REGISTRY_PORT=25050
export SCHEDULER_PORT=20259 CONTROLLER_MANAGER_PORT=20257 KUBELET_PORT=20250
export POD_CIDR_PREFIX=10.245 BRIDGE_PREFIX=fkbench
KUBECTL="${KUBECTL:-/usr/lib/google-cloud-sdk/bin/kubectl.1.33}"
CACHE="$(mktemp -d)"
k() { "$KUBECTL" --kubeconfig "$FERROKUBE_UP_DIR/admin.kubeconfig" --cache-dir "$CACHE" "$@"; }
SOCK="$FERROKUBE_RUN_DIR/node-0/containerd.sock"
IMAGE=docker.io/library/busybox:latest
WORK="$(mktemp -d)"

cleanup() {
  k delete pods -l bench=kubelet --wait=false >/dev/null 2>&1 || true
  for id in $(ctr -a "$SOCK" -n k8s.io containers ls -q 2>/dev/null | grep '^bench-raw-' || true); do
    ctr -a "$SOCK" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    ctr -a "$SOCK" -n k8s.io tasks delete "$id" >/dev/null 2>&1 || true
    ctr -a "$SOCK" -n k8s.io containers delete "$id" >/dev/null 2>&1 || true
  done
  if [ "$KEEP" = 0 ]; then
    "$ROOT/hack/local-down-cluster.sh" --purge >/dev/null 2>&1 || true
    # local-down skips a kubelet whose binary was rebuilt meanwhile ("(deleted)" exe): stop ours by PID.
    if [ -n "${KUBELET_PID:-}" ] && [ -d "/proc/$KUBELET_PID" ]; then kill "$KUBELET_PID" 2>/dev/null || true; fi
  fi
  rm -rf "$CACHE" "$WORK"
}
trap cleanup EXIT

# FERROKUBE_BIN_DIR=target/debug benchmarks existing binaries without a release build.
UP_ARGS=(--nodes 1)
[ -n "${FERROKUBE_BIN_DIR:-}" ] && UP_ARGS+=(--no-build)
echo "binaries: ${FERROKUBE_BIN_DIR:-$ROOT/target/release}"
"$ROOT/hack/local-up-cluster.sh" "${UP_ARGS[@]}" >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; exit 1; }
KUBELET_PID="$(cat "$FERROKUBE_UP_DIR/pids/kubelet-node-0.pid")"
export KUBELET_PID
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$KUBELET_PID/status"; }

# percentile P of the numbers in FILE (nearest rank)
pct() { sort -n "$2" | awk -v p="$1" '{a[NR]=$1} END {i=int((p/100)*NR+0.999); if (i<1) i=1; printf "%.3f", a[i]}'; }

pod_yaml() { # name
  cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $1, labels: {bench: kubelet}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: main, image: busybox, imagePullPolicy: IfNotPresent, command: ["sleep", "3600"]}
---
YAML
}

# Warm-up: the image is pulled once, outside the measurements.
pod_yaml warmup | k apply -f - >/dev/null
k wait --for=condition=Ready pod/warmup --timeout=120s >/dev/null
k delete pod warmup --wait=true --timeout=60s >/dev/null
sleep 2
IDLE_RSS="$(rss_mb)"

# bench_pods N OUT: creates N pods at once; writes each pod's creation→Running seconds to OUT.
bench_pods() {
  local n="$1" out="$2" names=() i
  for ((i = 0; i < n; i++)); do names+=("bench-$n-$i"); done
  : >"$WORK/seen"
  rm -f "$WORK/events"; mkfifo "$WORK/events"
  # The watch writes into a FIFO so that it can be stopped by its own PID.
  # Not through k(): a function would run in a subshell, and $! would not be kubectl's PID.
  "$KUBECTL" --kubeconfig "$FERROKUBE_UP_DIR/admin.kubeconfig" --cache-dir "$CACHE" \
    get pods -l bench=kubelet -w --output-watch-events \
    -o jsonpath='{.object.metadata.name} {.object.status.phase}{"\n"}' >"$WORK/events" 2>/dev/null &
  local watch_pid=$!
  while read -r name ph; do
    if [ "$ph" = Running ] && ! grep -q "^$name " "$WORK/seen"; then echo "$name $(date +%s.%N)" >>"$WORK/seen"; fi
  done <"$WORK/events" &
  local reader_pid=$!
  sleep 1
  for n2 in "${names[@]}"; do pod_yaml "$n2"; done >"$WORK/pods.yaml"
  local t0; t0="$(date +%s.%N)"
  k apply -f "$WORK/pods.yaml" >/dev/null
  local deadline=$((SECONDS + 180))
  until [ "$(wc -l <"$WORK/seen")" -ge "$n" ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
  kill "$watch_pid" 2>/dev/null || true
  wait "$watch_pid" 2>/dev/null || true
  wait "$reader_pid" 2>/dev/null || true
  awk -v t0="$t0" '{printf "%.3f\n", $2 - t0}' "$WORK/seen" >"$out"
}

# bench_raw N OUT: N containers started at once with ctr run -d (create + start).
bench_raw() {
  local n="$1" out="$2" i pids=()
  : >"$out"
  for ((i = 0; i < n; i++)); do
    (
      s="$(date +%s.%N)"
      ctr -a "$SOCK" -n k8s.io run -d "$IMAGE" "bench-raw-$n-$i" sleep 3600 >/dev/null
      e="$(date +%s.%N)"
      awk -v s="$s" -v e="$e" 'BEGIN {printf "%.3f\n", e - s}' >>"$out"
    ) &
    pids+=($!)
  done
  wait "${pids[@]}"
}

report() { # label pods-file raw-file
  local p50 p99 r50 r99
  p50="$(pct 50 "$2")"
  p99="$(pct 99 "$2")"
  r50="$(pct 50 "$3")"
  r99="$(pct 99 "$3")"
  printf "%-10s pods: p50 %6.3fs p99 %6.3fs (%d)   raw containerd: p50 %6.3fs p99 %6.3fs   ratio p50 %.2fx p99 %.2fx\n" \
    "$1" "$p50" "$p99" "$(wc -l <"$2")" "$r50" "$r99" \
    "$(awk -v a="$p50" -v b="$r50" 'BEGIN {print (b > 0 ? a / b : 0)}')" \
    "$(awk -v a="$p99" -v b="$r99" 'BEGIN {print (b > 0 ? a / b : 0)}')"
}

bench_pods 1 "$WORK/pods1"
bench_raw 1 "$WORK/raw1"
k delete pods -l bench=kubelet --wait=true --timeout=120s >/dev/null
bench_pods "$PODS" "$WORK/podsN"
BUSY_RSS="$(rss_mb)"
bench_raw "$PODS" "$WORK/rawN"

echo "kubelet benchmark (1 node, image busybox pre-pulled)"
report "1 pod" "$WORK/pods1" "$WORK/raw1"
report "$PODS pods" "$WORK/podsN" "$WORK/rawN"
echo "kubelet RSS: idle ${IDLE_RSS} MB, with $PODS pods ${BUSY_RSS} MB"
