#!/usr/bin/env bash
# Stops exactly the processes hack/local-up-cluster.sh started (PIDs in
# _output/local-up/pids), their containers, and the mounts and bridges the
# cluster made. --purge also deletes the cluster's data (etcd, images,
# certificates, kubeconfigs, logs).
set -euo pipefail
# shellcheck source=hack/lib/cluster-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster-common.sh"

PURGE=0
case "${1:-}" in
  "") ;;
  --purge) PURGE=1 ;;
  *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac

if [ -z "$(recorded_components)" ] && [ ! -e "$STATE_FILE" ]; then
  log "no local cluster recorded in $UP_DIR"
else
  teardown
  log "local cluster stopped"
fi
if [ "$PURGE" = 1 ] && [ -d "$UP_DIR" ]; then
  unmount_under "$UP_DIR"
  rm -rf "$UP_DIR"
  log "removed $UP_DIR"
fi
