# Shared by local-up-cluster.sh and local-down-cluster.sh: where the local
# cluster keeps its state, and how its processes are tracked and stopped.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
UP_DIR="${FERROKUBE_UP_DIR:-$ROOT/_output/local-up}"
PID_DIR="$UP_DIR/pids"
LOG_DIR="$UP_DIR/logs"
DATA_DIR="$UP_DIR/data"
KUBECONFIG_DIR="$UP_DIR/kubeconfigs"
ADMIN_KUBECONFIG="$UP_DIR/admin.kubeconfig"
STATE_FILE="$UP_DIR/cluster.env"
# Sockets live under /run: a deep checkout path would overflow sun_path (108).
RUN_DIR="${FERROKUBE_RUN_DIR:-/run/ferrokube-local-up}"
KUBECTL="${KUBECTL:-/usr/lib/google-cloud-sdk/bin/kubectl.1.33}"

# Ports (override with env vars). Kubelet i listens on KUBELET_PORT + 100*i.
ETCD_PORT="${ETCD_PORT:-2379}"
ETCD_PEER_PORT="${ETCD_PEER_PORT:-2380}"
APISERVER_PORT="${APISERVER_PORT:-6443}"
REGISTRY_PORT="${REGISTRY_PORT:-5050}"
SCHEDULER_PORT="${SCHEDULER_PORT:-10259}"
CONTROLLER_MANAGER_PORT="${CONTROLLER_MANAGER_PORT:-10257}"
KUBELET_PORT="${KUBELET_PORT:-10250}"
PROXY_METRICS_PORT="${PROXY_METRICS_PORT:-10249}"
# Service networking (docs/CONTRACTS.md): never the test clusters' 10.(100+s)/fkhost<s>/ferrokube-t*.
SERVICE_CIDR="10.96.0.0/16"
HOST_LINK="fkhostup"
HOST_IP="10.87.255.1"
NFT_TABLE_PREFIX="ferrokube-n"
# Pod CIDRs and bridges differ from the test harness's (10.88.x / fkN), so a
# dev cluster and `cargo test` can run side by side.
POD_CIDR_PREFIX="${POD_CIDR_PREFIX:-10.244}"
BRIDGE_PREFIX="${BRIDGE_PREFIX:-fkup}"

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

kubelet_port() { echo $((KUBELET_PORT + 100 * $1)); }

# The binary a recorded component runs, to refuse to signal a recycled PID.
expected_exe() {
  case "$1" in
    etcd) echo etcd ;;
    registry) echo docker-registry ;;
    apiserver) echo ferrokube-apiserver ;;
    scheduler) echo ferrokube-scheduler ;;
    controller-manager) echo ferrokube-controller-manager ;;
    containerd-*) echo containerd ;;
    kubelet-*) echo ferrokube-kubelet ;;
    *) echo "$1" ;;
  esac
}

# pid_alive NAME -> prints the PID and succeeds if NAME's recorded process runs.
pid_alive() {
  local name="$1" f="$PID_DIR/$1.pid" pid exe
  [ -s "$f" ] || return 1
  pid="$(cat "$f")"
  [ -d "/proc/$pid" ] || return 1
  exe="$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null || true)")"
  # A binary rebuilt while it runs shows as "NAME (deleted)"; it is still ours.
  exe="${exe% (deleted)}"
  [ "$exe" = "$(expected_exe "$name")" ] || return 1
  echo "$pid"
}

# start_component NAME LOGNAME CMD... : detached from this shell, PID recorded.
start_component() {
  local name="$1"; shift
  mkdir -p "$PID_DIR" "$LOG_DIR"
  # setsid: a new session, so closing the terminal does not stop the cluster.
  setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$PID_DIR/$name.pid"
}

# Gone, or a zombie nobody reaps yet (its parent, this script's earlier run, is gone).
pid_gone() {
  [ ! -d "/proc/$1" ] || [ "$(sed -E 's/.*\) ([A-Z]).*/\1/' "/proc/$1/stat" 2>/dev/null)" = Z ]
}

# stop_component NAME [GRACE_SECONDS]: SIGTERM, wait, SIGKILL; only our PID.
stop_component() {
  local name="$1" grace="${2:-10}" pid i
  if pid="$(pid_alive "$name")"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
      pid_gone "$pid" && break
      sleep 0.1
    done
    if ! pid_gone "$pid"; then
      log "$name (pid $pid) did not stop in ${grace}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$PID_DIR/$name.pid"
}

# Containers outlive containerd in their shims: kill the shims serving this
# node's socket and their direct children (each a container's PID-namespace init).
stop_shims() {
  local sock="$1" pid ppid shims="" p
  for p in /proc/[0-9]*; do
    pid="${p#/proc/}"
    if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q "containerd-shim.* -address $sock\( \|$\)"; then
      shims="$shims $pid"
    fi
  done
  [ -n "$shims" ] || return 0
  for p in /proc/[0-9]*; do
    pid="${p#/proc/}"
    ppid="$(awk '{print $4}' "$p/stat" 2>/dev/null || true)"
    for s in $shims; do
      [ "$ppid" = "$s" ] && kill -KILL "$pid" 2>/dev/null || true
    done
  done
  for s in $shims; do kill -KILL "$s" 2>/dev/null || true; done
  log "killed containerd shims for $sock:$shims"
}

# Unmount everything below a dir, deepest first (pod netns files, rootfs).
unmount_under() {
  local dir="$1" m
  [ -d "$dir" ] || return 0
  local real; real="$(realpath "$dir")"
  awk '{print $5}' /proc/self/mountinfo | { grep -E "^${real}(/|$)" || true; } | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# Every component name recorded, kubelets first (teardown order).
recorded_components() {
  local f names=""
  [ -d "$PID_DIR" ] || return 0
  for f in "$PID_DIR"/kubelet-*.pid; do [ -e "$f" ] && names="$names $(basename "$f" .pid)"; done
  for f in "$PID_DIR"/containerd-*.pid; do [ -e "$f" ] && names="$names $(basename "$f" .pid)"; done
  for n in scheduler controller-manager apiserver registry etcd; do
    [ -e "$PID_DIR/$n.pid" ] && names="$names $n"
  done
  echo "$names"
}

# The portmap plugin's DNAT chains into our pod CIDRs: pods still running when the
# kubelets stop never get their CNI DEL, and a leaked rule would keep redirecting
# that host port to an address that no longer exists.
remove_hostport_rules() {
  command -v iptables >/dev/null || return 0
  local rules chains rule chain
  rules=$(iptables -t nat -S 2>/dev/null) || return 0
  chains=$(printf '%s\n' "$rules" | grep '^-A CNI-DN-' | grep -F -- "--to-destination ${POD_CIDR_PREFIX}." | awk '{print $2}' | sort -u || true)
  [ -n "$chains" ] || return 0
  while IFS= read -r rule; do
    chain=${rule##*-j }
    if printf '%s\n' "$chains" | grep -qxF "$chain"; then
      # iptables -S quotes its comments for a shell; let one parse them back.
      sh -c "iptables -t nat -D ${rule#-A }" 2>/dev/null || true
    fi
  done < <(printf '%s\n' "$rules" | grep '^-A CNI-HOSTPORT-DNAT ' || true)
  for chain in $chains; do
    iptables -t nat -F "$chain" 2>/dev/null || true
    if iptables -t nat -X "$chain" 2>/dev/null; then log "removed host port chain $chain"; fi
  done
}

# Stop everything recorded and undo the host changes (mounts, bridges).
teardown() {
  local name n
  for name in $(recorded_components); do
    case "$name" in
      containerd-*)
        n="${name#containerd-}"
        stop_shims "$RUN_DIR/$n/containerd.sock"
        stop_component "$name" 10
        ;;
      *) stop_component "$name" 10 ;;
    esac
  done
  unmount_under "$UP_DIR"
  unmount_under "$RUN_DIR"
  local link
  for link in $(ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}' | grep -E "^${BRIDGE_PREFIX}[0-9]+$" || true); do
    ip link del "$link" 2>/dev/null && log "deleted bridge $link"
  done
  remove_hostport_rules
  local table
  for table in $(nft list tables ip 2>/dev/null | awk '{print $3}' | grep -E "^${NFT_TABLE_PREFIX}[0-9]+$" || true); do
    nft delete table ip "$table" && log "deleted nft table $table"
  done
  ip link del "$HOST_LINK" 2>/dev/null && log "deleted $HOST_LINK"
  if [ -e "$UP_DIR/route_localnet.orig" ]; then
    cat "$UP_DIR/route_localnet.orig" >/proc/sys/net/ipv4/conf/all/route_localnet || true
    rm -f "$UP_DIR/route_localnet.orig"
  fi
  rm -rf "$RUN_DIR"
  rm -f "$STATE_FILE"
}
