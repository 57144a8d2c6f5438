#!/usr/bin/env bash
# Apiserver benchmark: starts its own etcd and ferrokube-apiserver (release build) on free
# loopback ports and prints, in one run: get/list of 10,000 pods and the RSS with exactly
# those in the store, raw etcd txn creates (values as large as a stored pod) vs apiserver pod
# creates at 1/16/64 clients (throughput, p50, p99, ratio, CPU per operation of the apiserver,
# etcd and the driver), mutating p99 at 100 req/s beside raw etcd's, watch fan-out to 1,000
# watchers, RSS idle.
#
# Env: PROFILE (release) for the apiserver, DRIVER_PROFILE (= PROFILE) for the load driver,
# SKIP_BUILD=1 uses the binaries as last built (no cargo at all, so nothing compiles while a
# caller holds the benchmark lock), BENCH_SCALE (1), BENCH_WATCHERS (1000),
# BENCH_PHASES (creates,paced,watch; the list phase always runs), KEEP=1.
# BASELINE_REV=<git rev> also builds the apiserver of that revision (in a worktree, its own
# target dir) and runs the same phases against it first, then prints the apiserver's CPU per
# create of both side by side: "before and after" measured in one run on one machine, and
# (BENCH_CALLGRIND=1, the default) the instructions per create of both, counted by callgrind
# (hack/bench-apiserver-callgrind.sh), which the machine's other load does not move.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PROFILE=${PROFILE:-release}
DRIVER_PROFILE=${DRIVER_PROFILE:-$PROFILE}
PIDS=()
WORK=$(mktemp -d /tmp/bench-apiserver.XXXXXX)

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

ulimit -n 65536 2>/dev/null || true
cd "$ROOT"
cargo_profile() { [ "$1" = release ] && echo --profile=bench || echo --profile=dev; }
DRIVER_PATH_FILE=$ROOT/target/bench-apiserver-driver.$DRIVER_PROFILE
DRIVER=""
[ "${SKIP_BUILD:-}" = 1 ] && [ -f "$DRIVER_PATH_FILE" ] && DRIVER=$(cat "$DRIVER_PATH_FILE")
if [ "${SKIP_BUILD:-}" != 1 ]; then
  cargo build --profile "$([ "$PROFILE" = release ] && echo release || echo dev)" -p apiserver --bin ferrokube-apiserver
fi
if [ -z "$DRIVER" ] || [ ! -x "$DRIVER" ]; then
  cargo bench -p apiserver --bench apiserver --no-run "$(cargo_profile "$DRIVER_PROFILE")" 2>&1 | tee "$WORK/driver-build.log"
  DRIVER=$(sed -n 's/.*Executable benches\/apiserver.rs (\(.*\))/\1/p' "$WORK/driver-build.log" | tail -1)
  case "$DRIVER" in /*) ;; *) DRIVER=$ROOT/$DRIVER ;; esac
  echo "$DRIVER" >"$DRIVER_PATH_FILE"
fi
BIN=$ROOT/target/$PROFILE/ferrokube-apiserver

BASELINE_BIN=""
if [ -n "${BASELINE_REV:-}" ]; then
  BASELINE_BIN=$ROOT/target/baseline/$PROFILE/ferrokube-apiserver
  if [ "${SKIP_BUILD:-}" != 1 ]; then
    git -C "$ROOT" worktree add --detach "$WORK/baseline-src" "$BASELINE_REV" >/dev/null
    (cd "$WORK/baseline-src" && cargo build --profile "$([ "$PROFILE" = release ] && echo release || echo dev)" \
      -p apiserver --bin ferrokube-apiserver --target-dir "$ROOT/target/baseline")
    git -C "$ROOT" worktree remove --force "$WORK/baseline-src"
  fi
fi

# run_bench BIN LABEL: a fresh etcd and apiserver on free ports, then the driver.
run_bench() {
  local bin=$1 label=$2 dir=$WORK/$2
  mkdir -p "$dir"
  local etcd_port peer_port api_port
  etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)
  etcd --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --quota-backend-bytes 8589934592 >"$dir/etcd.log" 2>&1 &
  local etcd_pid=$!
  PIDS+=($etcd_pid)
  local token=bench-$RANDOM$RANDOM
  echo "$token,bench,bench-uid,\"system:masters\"" >"$dir/tokens.csv"
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$etcd_port/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  RUST_LOG=warn "$bin" --etcd-servers "http://127.0.0.1:$etcd_port" --secure-port "$api_port" \
    --cert-dir "$dir/pki" --token-auth-file "$dir/tokens.csv" >"$dir/apiserver.log" 2>&1 &
  local api_pid=$!
  PIDS+=($api_pid)
  for _ in $(seq 1 100); do
    curl -sfk "https://127.0.0.1:$api_port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  echo "== $label: etcd 127.0.0.1:$etcd_port  apiserver https://127.0.0.1:$api_port (pid $api_pid)  apiserver $PROFILE, driver $DRIVER_PROFILE"
  BENCH_ETCD="http://127.0.0.1:$etcd_port" BENCH_URL="https://127.0.0.1:$api_port" BENCH_TOKEN="$token" \
  BENCH_CA="$dir/pki/ca.crt" BENCH_PID="$api_pid" BENCH_ETCD_PID="$etcd_pid" "$DRIVER" --bench | tee "$dir/out.txt"
  kill "$api_pid" "$etcd_pid" 2>/dev/null || true
  wait "$api_pid" "$etcd_pid" 2>/dev/null || true
}

if [ -n "$BASELINE_BIN" ]; then
  run_bench "$BASELINE_BIN" "baseline-$BASELINE_REV"
fi
run_bench "$BIN" current
if [ -n "$BASELINE_BIN" ]; then
  echo
  echo "apiserver CPU per create (us), baseline $BASELINE_REV vs current, same run:"
  for clients in " 1" "16" "64"; do
    before=$(grep "api    $clients clients" "$WORK/baseline-$BASELINE_REV/out.txt" | sed -n 's/.*cpu\/op: apiserver *\([0-9]*\) us.*/\1/p')
    after=$(grep "api    $clients clients" "$WORK/current/out.txt" | sed -n 's/.*cpu\/op: apiserver *\([0-9]*\) us.*/\1/p')
    [ -n "$before" ] && [ -n "$after" ] && \
      python3 -c "b,a=$before,$after; print(f'  {\"$clients\".strip():>2} clients: {b:>5} -> {a:>5} us  ({(a-b)/b*100:+.1f}%)')"
  done
  printf '  idle RSS (kB): %s -> %s\n' "$(grep -i 'rss idle' "$WORK/baseline-$BASELINE_REV/out.txt" | head -1)" "$(grep -i 'rss idle' "$WORK/current/out.txt" | head -1)"
fi
if [ -n "$BASELINE_BIN" ] && [ "${BENCH_CALLGRIND:-1}" = 1 ]; then
  # CPU seconds per create move by 10-20% with whatever else the machine runs; instructions
  # counted by callgrind do not, so the before/after is also given in those.
  echo
  echo "apiserver instructions per create (callgrind, 1 client), baseline $BASELINE_REV vs current:"
  "$ROOT/hack/bench-apiserver-callgrind.sh" "$BASELINE_BIN" "$BIN" | grep 'instr/create'
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
