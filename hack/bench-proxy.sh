#!/usr/bin/env bash
# The service proxy's sync cost against a synthetic state (no cluster): a full sync of
# SERVICES Services with ENDPOINTS endpoints each into a real nft table, then the
# incremental sync after one endpoint changes, and the proxy's RSS after both. Targets
# (issue 13): full <= 1 s, incremental <= 50 ms. The table is removed afterwards.
# Needs root and nft (hack/install-deps.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES="${SERVICES:-1000}"
ENDPOINTS="${ENDPOINTS:-10}"
TABLE="ferrokube-bench-$$"
[ "$(id -u)" = 0 ] || { echo "$0 must run as root (nft)" >&2; exit 1; }
command -v nft >/dev/null || { echo "nft missing: hack/install-deps.sh" >&2; exit 1; }
(cd "$ROOT" && cargo build --release -p proxy --quiet)
BIN="${FERROKUBE_BIN_DIR:-$ROOT/target/release}/ferrokube-proxy"
trap 'nft delete table ip "$TABLE" 2>/dev/null || true' EXIT
out="$("$BIN" --nft-table "$TABLE" bench --services "$SERVICES" --endpoints "$ENDPOINTS")"
echo "$out"
full="$(awk '/^full_sync_seconds/ {print $2}' <<<"$out")"
inc="$(awk '/^incremental_sync_seconds/ {print $2}' <<<"$out")"
rss="$(awk '/^rss_kib/ {print $2}' <<<"$out")"
echo "services=$SERVICES endpoints=$ENDPOINTS full=${full}s (target <= 1) incremental=${inc}s (target <= 0.05) rss=$((rss / 1024))MiB"
awk -v f="$full" -v i="$inc" 'BEGIN { exit !(f <= 1.0 && i <= 0.05) }' || { echo "bench-proxy: over target" >&2; exit 1; }
