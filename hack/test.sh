#!/usr/bin/env bash
# Runs every test: installs what is missing, builds, then unit + integration
# tests (which start their own etcd/containerd via testkit), then the e2e
# tests (whole clusters driven by kubectl.1.33). The exit code is non-zero if
# any stage failed or ran out of time. The whole run is bounded by
# FERROKUBE_TEST_BUDGET seconds (default 29 minutes).
#
#   hack/test.sh            everything
#   hack/test.sh --no-e2e   skip the e2e stage
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUDGET="${FERROKUBE_TEST_BUDGET:-1740}"
E2E=1
[ "${1:-}" = "--no-e2e" ] && E2E=0

export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Rust tests print a component's logs when they fail; keep backtraces short.
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

START=$SECONDS
FAILED=()
log() { echo "=== [$(date +%H:%M:%S) +$((SECONDS - START))s] $*" >&2; }

# run_stage NAME MAX_SECONDS CMD...: runs CMD with the smaller of MAX_SECONDS
# and what is left of the budget. timeout signals CMD's whole process group,
# so processes a killed test started go too.
run_stage() {
  local name="$1" max="$2"; shift 2
  local left=$((BUDGET - (SECONDS - START)))
  [ "$left" -lt "$max" ] && max="$left"
  if [ "$max" -le 0 ]; then
    log "$name: SKIPPED, time budget (${BUDGET}s) used up"
    FAILED+=("$name (no time left)")
    return 1
  fi
  log "$name (limit ${max}s): $*"
  timeout -k 20 "$max" "$@"
  local rc=$?
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    log "$name: TIMED OUT after ${max}s"
    FAILED+=("$name (timeout)")
  elif [ "$rc" != 0 ]; then
    log "$name: FAILED (exit $rc)"
    FAILED+=("$name")
  else
    log "$name: ok"
  fi
  return "$rc"
}

finish() {
  log "done in $((SECONDS - START))s"
  if [ "${#FAILED[@]}" -gt 0 ]; then
    printf '=== FAILED: %s\n' "${FAILED[@]}" >&2
    exit 1
  fi
  echo "=== all stages passed" >&2
  exit 0
}

# First, name every missing package at once (a missing one would otherwise
# surface minutes later as a build error); then install what is missing.
if ! run_stage deps-check 60 "$ROOT/hack/install-deps.sh" --check; then
  unset 'FAILED[${#FAILED[@]}-1]'
  run_stage install-deps 600 "$ROOT/hack/install-deps.sh" || finish
fi
run_stage build 1200 cargo build --workspace --bins --tests || finish
run_stage images 300 "$ROOT/hack/lib/images.sh" ensure || finish
# Host port rules that an earlier, killed run's test pods left behind would redirect
# whatever port this run's etcds and apiservers pick. Only the test subnets.
(
  source "$ROOT/hack/lib/cluster-common.sh"
  for prefix in 10.99 10.88; do POD_CIDR_PREFIX=$prefix remove_hostport_rules; done
)
# Unit and integration tests of every crate but e2e.
run_stage "unit+integration tests" 900 cargo test --workspace --exclude e2e --no-fail-fast
if [ "$E2E" = 1 ]; then
  # One cluster per e2e test binary; tests within a binary share it but use
  # their own namespaces. One thread: the machine has two cores.
  run_stage "e2e tests" 1200 cargo test -p e2e --no-fail-fast -- --test-threads=1
fi
finish
