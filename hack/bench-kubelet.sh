#!/usr/bin/env bash
# Kubelet benchmark: pod start-up latency (creation → Running, seen through a
# watch) for 1 pod and for a burst of N pods on one node, against the same
# number of containers started straight through containerd from the same
# image; kubelet RSS idle and with N pods.
#
#   hack/bench-kubelet.sh [--pods N] [--rounds R] [--keep]
#
# Brings up its own one-node cluster (hack/local-up-cluster.sh) on ports and
# paths of its own, so it runs beside a dev cluster, and stops it at the end
# unless --keep. Run it under the shared lock, without nice:
#   flock /tmp/ferrokube-bench.lock hack/bench-kubelet.sh
#
# A pod's creation is the moment the watch first shows it (ADDED), so the
# figure is not charged with kubectl's own start-up or with the order in
# which `kubectl apply` creates a burst; the time from the start of
# `kubectl apply` is printed beside it. The single pod is measured R times
# (sequentially), and so is its baseline.
#
# The baseline is `ctr run -d` of the same image on the kubelet's containerd
# (same overlayfs snapshotter): snapshot, container, task, start. Pods also
# get a network namespace wired by CNI (bridge + host-local), which the
# baseline does not do.
#
# Env: PROFILE (release) picks target/$PROFILE; SKIP_BUILD=1 uses the binaries
# as built; FERROKUBE_BIN_DIR overrides the binary dir (and skips the build);
# BENCH_LOGS=DIR keeps the components' logs (e.g. with RUST_LOG=info,kubelet=debug).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PODS=30
ROUNDS=5
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --pods) PODS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "usage: $0 [--pods N] [--rounds R] [--keep]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "$0 must run as root" >&2; exit 1; }

PROFILE="${PROFILE:-release}"
if [ -z "${FERROKUBE_BIN_DIR:-}" ]; then
  export FERROKUBE_BIN_DIR="$ROOT/target/$PROFILE"
  if [ "${SKIP_BUILD:-}" != 1 ]; then
    flag=()
    [ "$PROFILE" = release ] && flag=(--release)
    # Only what is measured is rebuilt; the scheduler and the controller-manager
    # are built when missing.
    (cd "$ROOT" && nice -n 10 cargo build "${flag[@]}" -p kubelet -p apiserver --bins)
    for b in scheduler controller-manager; do
      [ -x "$FERROKUBE_BIN_DIR/ferrokube-$b" ] || (cd "$ROOT" && nice -n 10 cargo build "${flag[@]}" -p "$b" --bins)
    done
  fi
fi

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
  raw_cleanup
  [ -z "${BENCH_LOGS:-}" ] || { mkdir -p "$BENCH_LOGS" && cp -r "$FERROKUBE_UP_DIR/logs/." "$BENCH_LOGS/" 2>/dev/null || true; }
  if [ "$KEEP" = 0 ]; then
    "$ROOT/hack/local-down-cluster.sh" --purge >/dev/null 2>&1 || true
    # local-down skips a kubelet whose binary was rebuilt meanwhile ("(deleted)" exe): stop ours by PID.
    if [ -n "${KUBELET_PID:-}" ] && [ -d "/proc/$KUBELET_PID" ]; then kill "$KUBELET_PID" 2>/dev/null || true; fi
  fi
  rm -rf "$CACHE" "$WORK"
}
raw_cleanup() {
  for id in $(ctr -a "$SOCK" -n k8s.io containers ls -q 2>/dev/null | grep '^bench-raw-' || true); do
    ctr -a "$SOCK" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    ctr -a "$SOCK" -n k8s.io tasks delete "$id" >/dev/null 2>&1 || true
    ctr -a "$SOCK" -n k8s.io containers delete "$id" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

echo "binaries: $FERROKUBE_BIN_DIR"
"$ROOT/hack/local-up-cluster.sh" --nodes 1 --no-build >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; exit 1; }
KUBELET_PID="$(cat "$FERROKUBE_UP_DIR/pids/kubelet-node-0.pid")"
export KUBELET_PID
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$KUBELET_PID/status"; }
# CPU seconds (user + system) a process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz}' "/proc/$1/stat"; }
CONTAINERD_PID="$(cat "$FERROKUBE_UP_DIR/pids/containerd-node-0.pid")"

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
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

# bench_pods N OUT [APPLY_OUT]: creates N pods at once; writes each pod's
# creation→Running seconds to OUT (creation = first seen by the watch) and,
# if given, apply-start→Running seconds to APPLY_OUT.
bench_pods() {
  local n="$1" out="$2" apply_out="${3:-}" names=() i
  for ((i = 0; i < n; i++)); do names+=("bench-$n-$RANDOM-$i"); done
  rm -f "$WORK/events" "$WORK/seen"; mkfifo "$WORK/events"
  # The watch writes into a FIFO so that it can be stopped by its own PID.
  # Not through k(): a function would run in a subshell, and $! would not be kubectl's PID.
  "$KUBECTL" --kubeconfig "$FERROKUBE_UP_DIR/admin.kubeconfig" --cache-dir "$CACHE" \
    get pods -l bench=kubelet -w --output-watch-events \
    -o jsonpath='{.object.metadata.name} {.object.status.phase}{"\n"}' >"$WORK/events" 2>/dev/null &
  local watch_pid=$!
  # Timestamps come from bash itself ($EPOCHREALTIME): no process per event.
  (
    declare -A first running
    while read -r name ph; do
      now="$EPOCHREALTIME"
      [ -n "${first[$name]:-}" ] || first[$name]="$now"
      if [ "$ph" = Running ] && [ -z "${running[$name]:-}" ]; then
        running[$name]="$now"
        echo "$name ${first[$name]} $now" >>"$WORK/seen"
      fi
    done <"$WORK/events"
  ) &
  local reader_pid=$!
  sleep 1
  for n2 in "${names[@]}"; do pod_yaml "$n2"; done >"$WORK/pods.yaml"
  local t0="$EPOCHREALTIME"
  k apply -f "$WORK/pods.yaml" >/dev/null
  local deadline=$((SECONDS + 180))
  until [ "$(cat "$WORK/seen" 2>/dev/null | wc -l)" -ge "$n" ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
  kill "$watch_pid" 2>/dev/null || true
  wait "$watch_pid" 2>/dev/null || true
  wait "$reader_pid" 2>/dev/null || true
  awk '{printf "%.3f\n", $3 - $2}' "$WORK/seen" >>"$out"
  [ -z "$apply_out" ] || awk -v t0="$t0" '{printf "%.3f\n", $3 - t0}' "$WORK/seen" >>"$apply_out"
}

# bench_raw N OUT: N containers started at once with ctr run -d (create + start).
bench_raw() {
  local n="$1" out="$2" i pids=()
  for ((i = 0; i < n; i++)); do
    (
      s="$EPOCHREALTIME"
      ctr -a "$SOCK" -n k8s.io run -d "$IMAGE" "bench-raw-$n-$RANDOM-$i" sleep 3600 >/dev/null
      e="$EPOCHREALTIME"
      awk -v s="$s" -v e="$e" 'BEGIN {printf "%.3f\n", e - s}' >>"$out"
    ) &
    pids+=($!)
  done
  wait "${pids[@]}"
}

# bench_ctr_overhead N OUT: N `ctr version` at once: what the ctr client itself
# costs inside each baseline figure (process start and connection).
bench_ctr_overhead() {
  local n="$1" out="$2" i pids=()
  for ((i = 0; i < n; i++)); do
    (
      s="$EPOCHREALTIME"
      ctr -a "$SOCK" version >/dev/null
      e="$EPOCHREALTIME"
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
  printf "%-10s pods: p50 %6.3fs p99 %6.3fs (%d)   raw containerd: p50 %6.3fs p99 %6.3fs (%d)   ratio p50 %.2fx p99 %.2fx\n" \
    "$1" "$p50" "$p99" "$(wc -l <"$2")" "$r50" "$r99" "$(wc -l <"$3")" \
    "$(awk -v a="$p50" -v b="$r50" 'BEGIN {print (b > 0 ? a / b : 0)}')" \
    "$(awk -v a="$p99" -v b="$r99" 'BEGIN {print (b > 0 ? a / b : 0)}')"
}

: >"$WORK/pods1"; : >"$WORK/raw1"; : >"$WORK/podsN"; : >"$WORK/podsN-apply"; : >"$WORK/rawN"
for ((r = 0; r < ROUNDS; r++)); do
  bench_pods 1 "$WORK/pods1"
  k delete pods -l bench=kubelet --wait=true --timeout=120s >/dev/null
  bench_raw 1 "$WORK/raw1"
  raw_cleanup
done
K0="$(cpu_s "$KUBELET_PID")"; C0="$(cpu_s "$CONTAINERD_PID")"
bench_pods "$PODS" "$WORK/podsN" "$WORK/podsN-apply"
K1="$(cpu_s "$KUBELET_PID")"; C1="$(cpu_s "$CONTAINERD_PID")"
BUSY_RSS="$(rss_mb)"
# Steady state: what the kubelet costs while the pods just run.
S0="$(cpu_s "$KUBELET_PID")"; sleep 10; S1="$(cpu_s "$KUBELET_PID")"
k delete pods -l bench=kubelet --wait=true --timeout=120s >/dev/null
bench_raw "$PODS" "$WORK/rawN"
: >"$WORK/ctr1"; : >"$WORK/ctrN"
bench_ctr_overhead 1 "$WORK/ctr1"
bench_ctr_overhead "$PODS" "$WORK/ctrN"

echo "kubelet benchmark (1 node, image busybox pre-pulled, binaries $FERROKUBE_BIN_DIR)"
echo "load average: before the runs $LOAD_START, after $(cut -d' ' -f1-3 /proc/loadavg)"
report "1 pod" "$WORK/pods1" "$WORK/raw1"
report "$PODS pods" "$WORK/podsN" "$WORK/rawN"
printf "%-10s pods from the start of kubectl apply: p50 %6.3fs p99 %6.3fs\n" "$PODS pods" \
  "$(pct 50 "$WORK/podsN-apply")" "$(pct 99 "$WORK/podsN-apply")"
echo "ctr client alone (ctr version, inside each raw figure): 1 at once $(pct 50 "$WORK/ctr1")s, $PODS at once p50 $(pct 50 "$WORK/ctrN")s p99 $(pct 99 "$WORK/ctrN")s"
echo "targets: ratio <= 1.5x, burst p99 <= 2s, RSS with $PODS pods <= 30 MB"
echo "CPU during the $PODS-pod burst: kubelet $(awk -v a="$K0" -v b="$K1" 'BEGIN {printf "%.2f", b - a}')s, containerd $(awk -v a="$C0" -v b="$C1" 'BEGIN {printf "%.2f", b - a}')s"
echo "kubelet CPU with $PODS pods running (10s): $(awk -v a="$S0" -v b="$S1" 'BEGIN {printf "%.1f", (b - a) * 10}')% of a core"
echo "kubelet RSS: idle ${IDLE_RSS} MB, with $PODS pods ${BUSY_RSS} MB"
