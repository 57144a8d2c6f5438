#!/usr/bin/env bash
# Apiserver soak: starts its own etcd and release-built ferrokube-apiserver on free loopback
# ports (with short compaction and Event TTL, so both act many times during the run), then
# runs the soak driver (apiserver/examples/soak.rs): a steady mixed load of creates, updates,
# deletes, Events, lists and resuming watches. It prints the apiserver's RSS and etcd's db
# size every 10 s and fails if either keeps growing, or if any request got a 5xx.
#
# Too long for hack/test.sh; run it by hand. SOAK_SECONDS=60 is a quick check.
#
# Env: SOAK_SECONDS (300), SOAK_COMPACTION (a Go duration; SOAK_SECONDS/10 within 5s..30s, so
# a short run still sees several compactions), SOAK_EVENT_TTL (20s), SKIP_BUILD=1, KEEP=1,
# and the driver's knobs (SOAK_OBJECTS, SOAK_WATCHERS, SOAK_CONCURRENCY, SOAK_RATE,
# SOAK_GROWTH_RATIO, SOAK_RSS_SLACK_MB, SOAK_DB_SLACK_MB; see the driver's doc comment).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export SOAK_SECONDS=${SOAK_SECONDS:-300}
if [ -z "${SOAK_COMPACTION:-}" ]; then
  c=$((SOAK_SECONDS / 10)); [ "$c" -lt 5 ] && c=5; [ "$c" -gt 30 ] && c=30
  SOAK_COMPACTION=${c}s
fi
SOAK_EVENT_TTL=${SOAK_EVENT_TTL:-20s}
PIDS=()
WORK=$(mktemp -d /tmp/soak.XXXXXX)

cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
  if [ "${KEEP:-}" = 1 ]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

ulimit -n 65536 2>/dev/null || true
cd "$ROOT"
if [ "${SKIP_BUILD:-}" != 1 ]; then
  cargo build --release -p apiserver --bin ferrokube-apiserver --example soak
fi
BIN=$ROOT/target/release/ferrokube-apiserver
DRIVER=$ROOT/target/release/examples/soak

etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)
etcd --data-dir "$WORK/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
  --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" --initial-cluster "default=http://127.0.0.1:$peer_port" \
  --quota-backend-bytes 8589934592 >"$WORK/etcd.log" 2>&1 &
etcd_pid=$!
PIDS+=("$etcd_pid")
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$etcd_port/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$etcd_port/health" >/dev/null || { echo "etcd did not start:"; tail -20 "$WORK/etcd.log"; exit 1; }

token=soak-$RANDOM$RANDOM
echo "$token,soak,soak-uid,\"system:masters\"" >"$WORK/tokens.csv"
RUST_LOG=warn "$BIN" --etcd-servers "http://127.0.0.1:$etcd_port" --bind-address 127.0.0.1 --secure-port "$api_port" \
  --cert-dir "$WORK/pki" --token-auth-file "$WORK/tokens.csv" \
  --etcd-compaction-interval "$SOAK_COMPACTION" --event-ttl "$SOAK_EVENT_TTL" >"$WORK/apiserver.log" 2>&1 &
api_pid=$!
PIDS+=("$api_pid")
for _ in $(seq 1 300); do
  curl -sfk "https://127.0.0.1:$api_port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sfk "https://127.0.0.1:$api_port/readyz" >/dev/null || { echo "apiserver did not start:"; tail -20 "$WORK/apiserver.log"; exit 1; }

echo "== soak: etcd 127.0.0.1:$etcd_port (pid $etcd_pid)  apiserver https://127.0.0.1:$api_port (pid $api_pid)" \
  " compaction every $SOAK_COMPACTION, event TTL $SOAK_EVENT_TTL"
status=0
SOAK_ETCD="http://127.0.0.1:$etcd_port" SOAK_URL="https://127.0.0.1:$api_port" SOAK_TOKEN="$token" \
  SOAK_CA="$WORK/pki/ca.crt" SOAK_PID="$api_pid" "$DRIVER" || status=$?
if ! kill -0 "$api_pid" 2>/dev/null; then
  echo "the apiserver exited during the soak:"; tail -20 "$WORK/apiserver.log"; status=1
fi
if [ "$status" != 0 ]; then
  echo "apiserver log tail:"; tail -5 "$WORK/apiserver.log"
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$status"
