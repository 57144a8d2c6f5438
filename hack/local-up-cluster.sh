#!/usr/bin/env bash
# Brings up a local ferrokube cluster and leaves it running:
# etcd, a local OCI registry with the demo images, the apiserver, the
# scheduler, the controller-manager and N kubelets, each with its own
# containerd (own root, state, socket), pod subnet and kubelet port.
#
#   hack/local-up-cluster.sh [--nodes N] [--no-build]
#
# State: _output/local-up/ (pids/, logs/, data/, admin.kubeconfig).
# Running it again while the cluster is up does nothing and exits 0.
# Stop it with hack/local-down-cluster.sh [--purge].
set -euo pipefail
# shellcheck source=hack/lib/cluster-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster-common.sh"

NODES=1
BUILD=1
usage() { echo "usage: $0 [--nodes N] [--no-build]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) [ $# -ge 2 ] || usage; NODES="$2"; shift 2 ;;
    --nodes=*) NODES="${1#--nodes=}"; shift ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
if ! [[ "$NODES" =~ ^[0-9]+$ ]] || [ "$NODES" -lt 1 ] || [ "$NODES" -gt 50 ]; then
  echo "--nodes must be a number from 1 to 50, got '$NODES'" >&2
  exit 2
fi
[ "$(id -u)" = 0 ] || { echo "$0 must run as root (containers, bridges, mounts)" >&2; exit 1; }

print_export() {
  echo
  echo "Cluster is up. To use it:"
  echo "  export KUBECONFIG=$ADMIN_KUBECONFIG"
  echo "  $KUBECTL get nodes -o wide"
}

# Already up? Every recorded component still running means: nothing to do.
if [ -s "$STATE_FILE" ]; then
  all_up=1
  for name in $(recorded_components); do
    pid_alive "$name" >/dev/null || { all_up=0; log "$name is no longer running"; }
  done
  if [ "$all_up" = 1 ] && [ -n "$(recorded_components)" ]; then
    # shellcheck disable=SC1090
    up_nodes="$(. "$STATE_FILE"; echo "$NODES")"
    log "cluster already up ($up_nodes node(s)); nothing to do"
    [ "$up_nodes" = "$NODES" ] || log "note: it runs $up_nodes node(s), not $NODES; run local-down-cluster.sh first to change that"
    print_export
    exit 0
  fi
  log "cleaning up a partly stopped cluster first"
  teardown
elif [ -n "$(recorded_components)" ]; then
  log "cleaning up after an earlier failed bring-up"
  teardown
fi

"$ROOT/hack/install-deps.sh"

if [ "$BUILD" = 1 ]; then
  log "building release binaries"
  (cd "$ROOT" && cargo build --release --bins --quiet)
fi
BIN="${FERROKUBE_BIN_DIR:-$ROOT/target/release}"
for b in ferrokube-apiserver ferrokube-scheduler ferrokube-controller-manager ferrokube-kubelet ferrokube-proxy ferrokube-dns; do
  [ -x "$BIN/$b" ] || { echo "$BIN/$b missing: run cargo build --release --bins" >&2; exit 1; }
done
[ -x "$KUBECTL" ] || { echo "$KUBECTL missing (set KUBECTL=...)" >&2; exit 1; }

# Every port must be free before anything starts.
check_port() {
  if ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; then
    echo "port $1 ($2) is already in use; stop what uses it or set $3=<port>" >&2
    exit 1
  fi
}
check_port "$ETCD_PORT" etcd ETCD_PORT
check_port "$ETCD_PEER_PORT" "etcd peer" ETCD_PEER_PORT
check_port "$APISERVER_PORT" apiserver APISERVER_PORT
check_port "$REGISTRY_PORT" registry REGISTRY_PORT
check_port "$SCHEDULER_PORT" scheduler SCHEDULER_PORT
check_port "$CONTROLLER_MANAGER_PORT" controller-manager CONTROLLER_MANAGER_PORT
DNS_METRICS_PORT="${DNS_METRICS_PORT:-9153}"
check_port "$DNS_METRICS_PORT" "ferrokube-dns metrics" DNS_METRICS_PORT
# The kube-dns Service: the 10th address of the service CIDR.
DNS_SERVICE_IP="10.96.0.10"
for ((i = 0; i < NODES; i++)); do
  check_port "$(kubelet_port "$i")" "kubelet of node-$i" KUBELET_PORT
  check_port "$((PROXY_METRICS_PORT + 100 * i))" "proxy of node-$i" PROXY_METRICS_PORT
done

# From here on, a failure stops whatever this run started.
SUCCESS=0
on_exit() {
  if [ "$SUCCESS" != 1 ]; then
    log "bring-up failed; stopping what was started (logs in $LOG_DIR)"
    teardown
  fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

mkdir -p "$PID_DIR" "$LOG_DIR" "$DATA_DIR" "$KUBECONFIG_DIR" "$RUN_DIR"

# wait_until DESCRIPTION TIMEOUT_SECONDS COMPONENT CMD...: poll CMD; fail early
# (with the log tail) if COMPONENT dies.
wait_until() {
  local what="$1" timeout="$2" comp="$3"; shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$comp" ] && ! pid_alive "$comp" >/dev/null; then
      echo "$comp exited while waiting for $what; last log lines:" >&2
      tail -n 30 "$LOG_DIR/$comp.log" >&2 || true
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "timed out after ${timeout}s waiting for $what; last log lines of $comp:" >&2
      tail -n 30 "$LOG_DIR/$comp.log" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
}

log "starting etcd on 127.0.0.1:$ETCD_PORT"
start_component etcd etcd --name default --data-dir "$DATA_DIR/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" --log-level warn
etcd_healthy() { wget -qO- "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null | grep -q '"true"'; }
wait_until "etcd /health" 30 etcd etcd_healthy
# The apiserver compacts etcd's history (--etcd-compaction-interval, 5m), which frees pages
# inside etcd's database file but never shrinks it; defragmenting returns that space. It
# blocks etcd while it runs, so it is done here, before anything uses etcd, and covers what
# earlier runs left in a kept data dir (local-down-cluster.sh without --purge).
log "defragmenting etcd"
wget -qO- --post-data='{}' "http://127.0.0.1:$ETCD_PORT/v3/maintenance/defragment" >/dev/null \
  || log "etcd defragmentation failed; continuing"

log "starting the registry on 127.0.0.1:$REGISTRY_PORT"
mkdir -p "$UP_DIR/registry"
cat >"$UP_DIR/registry/config.yml" <<REG
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $DATA_DIR/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
REG
start_component registry docker-registry serve "$UP_DIR/registry/config.yml"
registry_up() { wget -qO- "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null 2>&1; }
wait_until "registry /v2/" 30 registry registry_up
log "building and pushing the demo images"
"$ROOT/hack/lib/images.sh" push "127.0.0.1:$REGISTRY_PORT"

SERVER="https://127.0.0.1:$APISERVER_PORT"
CERT_DIR="$DATA_DIR/certs"
mkdir -p "$CERT_DIR"
kubeconfig_for() { # USER OUT [GROUP...]
  local user="$1" out="$2"; shift 2
  local groups=()
  for g in "$@"; do groups+=(--group "$g"); done
  "$BIN/ferrokube-apiserver" kubeconfig --cert-dir "$CERT_DIR" --server "$SERVER" \
    --user "$user" "${groups[@]}" --out "$out"
}
kubeconfig_for admin "$ADMIN_KUBECONFIG" system:masters

# Pods reach the apiserver through the kubernetes Service (10.96.0.1:443), DNATed to an
# address of an interface the project owns (docs/CONTRACTS.md, "Service networking").
ip link del "$HOST_LINK" 2>/dev/null || true
# A dummy interface, or a bridge without ports where the kernel has no dummy driver.
ip link add "$HOST_LINK" type dummy 2>/dev/null || ip link add "$HOST_LINK" type bridge
ip addr add "$HOST_IP/32" dev "$HOST_LINK"
ip link set "$HOST_LINK" up
# The proxies set route_localnet for NodePorts on 127.0.0.1; down puts it back.
[ -e "$UP_DIR/route_localnet.orig" ] || cat /proc/sys/net/ipv4/conf/all/route_localnet >"$UP_DIR/route_localnet.orig"
log "starting the apiserver on $SERVER (and $HOST_IP, the kubernetes Service's endpoint)"
start_component apiserver "$BIN/ferrokube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --secure-port "$APISERVER_PORT" --cert-dir "$CERT_DIR" \
  --service-cluster-ip-range "$SERVICE_CIDR" --advertise-address "$HOST_IP"
k() { "$KUBECTL" --kubeconfig "$ADMIN_KUBECONFIG" --cache-dir "$UP_DIR/kubectl-cache" "$@"; }
apiserver_ready() { k get --raw /readyz; }
wait_until "apiserver /readyz" 60 apiserver apiserver_ready

kubeconfig_for system:kube-scheduler "$KUBECONFIG_DIR/scheduler.kubeconfig"
log "starting the scheduler"
start_component scheduler "$BIN/ferrokube-scheduler" --kubeconfig "$KUBECONFIG_DIR/scheduler.kubeconfig" \
  --port "$SCHEDULER_PORT" --client-ca-file "$CERT_DIR/ca.crt"

kubeconfig_for system:kube-controller-manager "$KUBECONFIG_DIR/controller-manager.kubeconfig"
log "starting the controller-manager"
start_component controller-manager "$BIN/ferrokube-controller-manager" \
  --kubeconfig "$KUBECONFIG_DIR/controller-manager.kubeconfig" --port "$CONTROLLER_MANAGER_PORT" --client-ca-file "$CERT_DIR/ca.crt"

# Cluster DNS on the host address (as the kube-dns ServiceAccount, bootstrap role
# system:kube-dns), behind kube-system/kube-dns which the proxies DNAT to it.
kubeconfig_for system:serviceaccount:kube-system:kube-dns "$KUBECONFIG_DIR/kube-dns.kubeconfig" \
  system:serviceaccounts system:serviceaccounts:kube-system
log "starting ferrokube-dns on $HOST_IP:53 (kube-system/kube-dns at $DNS_SERVICE_IP, metrics 127.0.0.1:$DNS_METRICS_PORT)"
start_component dns "$BIN/ferrokube-dns" --kubeconfig "$KUBECONFIG_DIR/kube-dns.kubeconfig" \
  --listen "$HOST_IP:53" --metrics-bind-address "127.0.0.1:$DNS_METRICS_PORT"
dns_ready() { curl -sf "http://127.0.0.1:$DNS_METRICS_PORT/ready"; }
wait_until "ferrokube-dns /ready" 30 dns dns_ready
sed -e "s/\${DNS_SERVICE_IP}/$DNS_SERVICE_IP/g" -e "s/\${DNS_SERVER_IP}/$HOST_IP/g" \
  "$ROOT/manifests/kube-dns.yaml" | k apply -f - >/dev/null

for ((i = 0; i < NODES; i++)); do
  node="node-$i"
  run="$RUN_DIR/$node"
  mkdir -p "$run" "$DATA_DIR/$node/containerd" "$DATA_DIR/$node/kubelet" "$UP_DIR/$node"
  cat >"$UP_DIR/$node/containerd.toml" <<CTD
version = 2
root = "$DATA_DIR/$node/containerd"
state = "$run/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$run/containerd.sock"
[ttrpc]
  address = "$run/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$DATA_DIR/$node/containerd-opt"
CTD
  log "starting containerd for $node ($run/containerd.sock)"
  start_component "containerd-$node" containerd --config "$UP_DIR/$node/containerd.toml"
  containerd_up() { ctr --address "$1" version; }
  wait_until "containerd of $node" 30 "containerd-$node" containerd_up "$run/containerd.sock"

  kubeconfig_for "system:node:$node" "$KUBECONFIG_DIR/$node.kubeconfig" system:nodes
  log "starting the kubelet of $node (port $(kubelet_port "$i"), pods ${POD_CIDR_PREFIX}.$i.0/24)"
  start_component "kubelet-$node" "$BIN/ferrokube-kubelet" \
    --kubeconfig "$KUBECONFIG_DIR/$node.kubeconfig" --node-name "$node" --node-ip 127.0.0.1 \
    --containerd-socket "$run/containerd.sock" --root-dir "$DATA_DIR/$node/kubelet" \
    --pod-cidr "${POD_CIDR_PREFIX}.$i.0/24" --port "$(kubelet_port "$i")" \
    --registry-mirror "docker.io=http://127.0.0.1:$REGISTRY_PORT" \
    --client-ca-file "$CERT_DIR/ca.crt" --cni-bin-dir /usr/lib/cni --bridge-name "${BRIDGE_PREFIX}$i" \
    --cluster-dns "$DNS_SERVICE_IP" --cluster-domain cluster.local

  [ -e "$KUBECONFIG_DIR/kube-proxy.kubeconfig" ] || kubeconfig_for system:kube-proxy "$KUBECONFIG_DIR/kube-proxy.kubeconfig"
  log "starting the proxy of $node (nft table ${NFT_TABLE_PREFIX}$i, metrics 127.0.0.1:$((PROXY_METRICS_PORT + 100 * i)))"
  start_component "proxy-$node" "$BIN/ferrokube-proxy" --kubeconfig "$KUBECONFIG_DIR/kube-proxy.kubeconfig" \
    --hostname-override "$node" --cluster-cidr "${POD_CIDR_PREFIX}.0.0/16" \
    --metrics-bind-address "127.0.0.1:$((PROXY_METRICS_PORT + 100 * i))" --nft-table "${NFT_TABLE_PREFIX}$i"
done

nodes_ready() {
  local n
  n="$(k get nodes -o json | jq '[.items[] | select(any(.status.conditions[]?; .type == "Ready" and .status == "True"))] | length')"
  [ "$n" = "$NODES" ]
}
all_running() {
  for name in $(recorded_components); do pid_alive "$name" >/dev/null || { echo "$name exited" >&2; return 1; }; done
}
log "waiting for $NODES node(s) to be Ready"
deadline=$((SECONDS + 120))
until nodes_ready; do
  if ! all_running 2>"$UP_DIR/dead"; then
    dead="$(sed 's/ exited//' "$UP_DIR/dead" | head -1)"
    echo "$dead exited during bring-up; last log lines:" >&2
    tail -n 30 "$LOG_DIR/$dead.log" >&2 || true
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "timed out after 120s waiting for every node to be Ready:" >&2
    k get nodes >&2 || true
    exit 1
  fi
  sleep 1
done
rm -f "$UP_DIR/dead"
log "creating the default StorageClass (manifests/storageclass-standard.yaml)"
k apply -f "$ROOT/manifests/storageclass-standard.yaml" >/dev/null

cat >"$STATE_FILE" <<ENV
NODES=$NODES
SERVER=$SERVER
REGISTRY=127.0.0.1:$REGISTRY_PORT
ENV
SUCCESS=1
k get nodes -o wide
print_export
