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

ETCD_PORT=$(free_port); PEER_PORT=$(free_port); API_PORT=$(free_port)
etcd --data-dir "$WORK/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls "http://127.0.0.1:$PEER_PORT" \
  --quota-backend-bytes 8589934592 >"$WORK/etcd.log" 2>&1 &
ETCD_PID=$!
PIDS+=($ETCD_PID)
TOKEN=bench-$RANDOM$RANDOM
echo "$TOKEN,bench,bench-uid,\"system:masters\"" >"$WORK/tokens.csv"
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$ETCD_PORT/health" >/dev/null 2>&1 && break
  sleep 0.1
done
RUST_LOG=warn "$BIN" --etcd-servers "http://127.0.0.1:$ETCD_PORT" --secure-port "$API_PORT" \
  --cert-dir "$WORK/pki" --token-auth-file "$WORK/tokens.csv" >"$WORK/apiserver.log" 2>&1 &
API_PID=$!
PIDS+=($API_PID)
for _ in $(seq 1 100); do
  curl -sfk "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "etcd 127.0.0.1:$ETCD_PORT  apiserver https://127.0.0.1:$API_PORT (pid $API_PID)  apiserver $PROFILE, driver $DRIVER_PROFILE"

BENCH_ETCD="http://127.0.0.1:$ETCD_PORT" BENCH_URL="https://127.0.0.1:$API_PORT" BENCH_TOKEN="$TOKEN" \
BENCH_CA="$WORK/pki/ca.crt" BENCH_PID="$API_PID" BENCH_ETCD_PID="$ETCD_PID" "$DRIVER" --bench
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
