#!/usr/bin/env bash
# Scheduler throughput: etcd + apiserver + scheduler in one run, M Ready
# Node objects (no kubelets), then N pods; pods/s from the first create to
# the last binding observed through a watch, beside the raw etcd write rate
# at the same concurrency and the ratio. Then the scheduling cycle alone
# (Criterion, no API) and the scheduler's RSS.
#
# Usage: hack/bench-scheduler.sh [small|large|all|cycle]   (default: all)
#   small: 500 nodes / 5,000 pods     large: 5,000 nodes / 10,000 pods
# Env: CONCURRENCY (64), PROFILE (release), LOADGEN (path of bench_load), SKIP_BUILD=1 uses the binaries
# already in target/$PROFILE, KEEP=1 keeps the temp dir, PERF=1 records the scheduler and the
# apiserver with `perf record -g` during the pod phase (implies KEEP; see perf-*.data in the dir).
# After each run it prints the CPU seconds each process used: on a 2-core machine the
# end-to-end rate is bounded by whoever burns the CPU.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib/secure-port.sh
. "$ROOT/hack/lib/secure-port.sh"
PROFILE=${PROFILE:-release}
CONCURRENCY=${CONCURRENCY:-64}
WHAT=${1:-all}
BIN=$ROOT/target/$PROFILE
LOADGEN=${LOADGEN:-$BIN/examples/bench_load}
PIDS=()

cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  [ "${KEEP:-}" = 1 ] || rm -rf "${WORK:-/nonexistent-bench-dir}"
}
trap cleanup EXIT

# CPU seconds (user + system) a process has used so far.
cpu_secs() {
  awk -v tck="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / tck }' "/proc/$1/stat" 2>/dev/null || echo "?"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

build() {
  [ "${SKIP_BUILD:-}" = 1 ] && return
  local flag=""
  [ "$PROFILE" = release ] && flag="--release"
  (cd "$ROOT" && cargo build $flag -p apiserver -p scheduler --bins && cargo build $flag -p scheduler --example bench_load) >&2
}

# run_config NODES PODS
run_config() {
  local nodes=$1 pods=$2
  WORK=$(mktemp -d /tmp/fk-bench-sched.XXXXXX)
  local etcd_port peer_port api_port sched_port
  etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port); sched_port=$(free_port)
  etcd --name bench --data-dir "$WORK/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "bench=http://127.0.0.1:$peer_port" --quota-backend-bytes 8589934592 \
    >"$WORK/etcd.log" 2>&1 &
  PIDS+=($!)
  "$BIN/ferrokube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" --bind-address 127.0.0.1 \
    --secure-port "$api_port" --cert-dir "$WORK/certs" >"$WORK/apiserver.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    [ -f "$WORK/certs/ca.crt" ] && curl -s --cacert "$WORK/certs/ca.crt" "https://127.0.0.1:$api_port/readyz" -o /dev/null -w '%{http_code}' | grep -qE '200|401|403' && break
    sleep 0.2
  done
  "$BIN/ferrokube-apiserver" kubeconfig --cert-dir "$WORK/certs" --server "https://127.0.0.1:$api_port" \
    --user admin --group system:masters --out "$WORK/admin.kubeconfig" >/dev/null
  "$BIN/ferrokube-apiserver" kubeconfig --cert-dir "$WORK/certs" --server "https://127.0.0.1:$api_port" \
    --user system:kube-scheduler --out "$WORK/scheduler.kubeconfig" >/dev/null
  RUST_LOG=warn ${SCHED_WRAP:-} "$BIN/ferrokube-scheduler" --kubeconfig "$WORK/scheduler.kubeconfig" --port "$sched_port" \
    --client-ca-file "$WORK/certs/ca.crt" >"$WORK/scheduler.log" 2>&1 &
  local sched_pid=$!
  PIDS+=($sched_pid)
  local etcd_pid=${PIDS[0]} api_pid=${PIDS[1]}
  local perf_pids=()
  if [ "${PERF:-}" = 1 ]; then
    KEEP=1
    perf record -g -o "$WORK/perf-scheduler.data" -p "$sched_pid" >/dev/null 2>&1 &
    perf_pids+=($!)
    perf record -g -o "$WORK/perf-apiserver.data" -p "$api_pid" >/dev/null 2>&1 &
    perf_pids+=($!)
  fi

  echo "== $nodes nodes / $pods pods (concurrency $CONCURRENCY) =="
  BENCH_SETTLE_SECS=${BENCH_SETTLE_SECS:-3} "$LOADGEN" \
    --kubeconfig "$WORK/admin.kubeconfig" --nodes "$nodes" --pods "$pods" \
    --concurrency "$CONCURRENCY" --etcd "http://127.0.0.1:$etcd_port" \
    --timeout-secs "${TIMEOUT_SECS:-600}" --cpu-of "etcd=$etcd_pid,apiserver=$api_pid,scheduler=$sched_pid" \
    || echo "load generator failed (see above)"
  for pid in "${perf_pids[@]:-}"; do [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${perf_pids[@]:-}"; do [ -n "$pid" ] && wait "$pid" 2>/dev/null || true; done
  echo "CPU seconds: etcd $(cpu_secs "$etcd_pid"), apiserver $(cpu_secs "$api_pid"), scheduler $(cpu_secs "$sched_pid")"
  echo "scheduler RSS: $(awk '/VmRSS/ {printf "%.0f MB", $2/1024}' /proc/$sched_pid/status)"
  component_get "$sched_port" /metrics "$WORK/admin.kubeconfig" |
    grep -E '^scheduler_schedule_attempts_total|^scheduler_scheduling_attempt_duration_seconds_(sum|count)|^scheduler_framework_extension_point_duration_seconds_(sum|count)|^scheduler_events_dropped|^scheduler_pending_pods' || true
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
  [ "${KEEP:-}" = 1 ] && echo "logs in $WORK" || rm -rf "$WORK"
}

cycle() {
  echo "== scheduling cycle alone (Criterion; thrpt elem/s = pods/s) =="
  (cd "$ROOT" && cargo bench -p scheduler --bench scheduling_cycle -- --warm-up-time 1 --measurement-time 3 2>/dev/null) |
    grep -E '^scheduling_cycle/|thrpt:'
}

case "$WHAT" in
  small) build; run_config 500 5000 ;;
  large) build; run_config 5000 10000 ;;
  cycle) cycle ;;
  all) build; run_config 500 5000; run_config 5000 10000; cycle ;;
  *) echo "usage: $0 [small|large|all|cycle]" >&2; exit 2 ;;
esac
