#!/usr/bin/env bash
# Installs every Debian package that ferrokube's build, cluster scripts,
# benches and tests use, and prepares the host. Debian 12, as root.
#
#   hack/install-deps.sh          install what is missing (apt-get update only then)
#   hack/install-deps.sh --check  list what is missing, install nothing; exit 1 if anything is
#
# Each package is listed with the part of the project that needs it, so a
# reader can tell why it is here and what breaks without it.
set -euo pipefail

# package|who needs it
PACKAGE_TABLE=(
  # The build.
  "build-essential|cargo build: cc and ld for -sys crates (ring, zstd) and linking"
  "pkg-config|cargo build: -sys crates locate system libraries"
  "protobuf-compiler|cargo build: protoc for etcd-client and containerd-client's build scripts"
  "libprotobuf-dev|cargo build: google/protobuf/*.proto includes that protoc needs (etcd-client)"
  # The cluster's own components.
  "etcd-server|apiserver storage; testkit's integration tests start it"
  "containerd|kubelet runtime (and ctr, used by the scripts and testkit)"
  "runc|containerd's OCI runtime"
  "containernetworking-plugins|kubelet pod networking: CNI bridge, host-local, portmap, loopback"
  "iptables|CNI bridge masquerade and portmap rules; scripts remove leaked hostPort chains"
  "iproute2|ip netns / ip link for pod networks and test cleanup; ss for port checks"
  "nftables|ferrokube-proxy programs Services through nft -j -f - (nftables mode, as kube-proxy)"
  "conntrack|ferrokube-proxy flushes stale UDP conntrack entries when Service endpoints go away"
  "dnsmasq-base|hack/bench-dns.sh: the simple host resolver ferrokube-dns is measured against"
  "util-linux|flock (image build, test slot locks) and setsid (cluster scripts)"
  "procps|ps in the benches, sysctl for ip_forward here"
  "mawk|awk in the cluster scripts and benches"
  # Images, built from Debian packages and served locally.
  "docker-registry|the local OCI registry that kubelets mirror docker.io to"
  "skopeo|pushes the built OCI archives into the local registry"
  "busybox-static|the busybox image and the base layer of the nginx image"
  "nginx-light|the nginx demo image (hack/lib/images.sh)"
  "libc-bin|ldd: finds the libraries nginx links for its image"
  "jq|image manifests (images.sh) and JSON in the cluster scripts"
  "tar|image layers"
  "gzip|image layers"
  "coreutils|sha256sum, stat, timeout, mktemp"
  "file|bench scripts check that binaries are release builds"
  # Downloads and health checks in scripts.
  "curl|cluster scripts and benches poll /healthz and /metrics"
  "wget|local-up waits on the registry"
  "ca-certificates|TLS roots for cargo's crates.io downloads"
  # Benches.
  "python3|bench scripts: free ports, load generators (standard library only)"
  "linux-perf|bench-scheduler.sh PERF=1 profiles (perf record)"
  "valgrind|bench-apiserver-callgrind.sh: instructions per create (callgrind, callgrind_control)"
  "git|bench-apiserver.sh BASELINE_REV= builds the baseline in a git worktree"
)

CHECK=0
case "${1:-}" in
  --check) CHECK=1 ;;
  "") ;;
  -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

log() { echo "install-deps: $*" >&2; }
die() { log "$*"; exit 1; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for row in "${PACKAGE_TABLE[@]}"; do
  p="${row%%|*}"
  installed "$p" || missing+=("$p")
done

# Things apt cannot give at the needed version: the Rust toolchain (rustup)
# and kubectl (the machine's google-cloud-sdk kubectl.1.27..1.33 binaries).
tool_problems=()
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null; then
  tool_problems+=("cargo not found: install Rust with rustup, stable >= 1.85")
else
  rust_minor="$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')"
  [ "${rust_minor:-0}" -ge 85 ] || tool_problems+=("rustc $(rustc --version) is too old: need >= 1.85")
fi
KUBECTL="${KUBECTL:-/usr/lib/google-cloud-sdk/bin/kubectl.1.33}"
[ -x "$KUBECTL" ] || tool_problems+=("$KUBECTL missing: the e2e tests and local-up need kubectl 1.33 (set KUBECTL=...)")

if [ "$CHECK" = 1 ]; then
  for row in "${PACKAGE_TABLE[@]}"; do
    p="${row%%|*}"
    installed "$p" || log "missing: $p  (${row#*|})"
  done
  for t in "${tool_problems[@]:-}"; do [ -n "$t" ] && log "missing: $t"; done
  if [ "${#missing[@]}" -gt 0 ] || [ "${#tool_problems[@]}" -gt 0 ]; then
    log "would install: ${missing[*]:-(no packages)}"
    exit 1
  fi
  log "all ${#PACKAGE_TABLE[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "run as root (or install sudo)"
  SUDO="sudo"
fi

if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # The packaged services (containerd, etcd, docker-registry) are not used:
  # the scripts and tests run their own instances on their own ports.
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "all packages present"
fi
# On a systemd host, Debian starts the packaged daemons it just installed. Ours
# run with their own ports and state, and the packaged ones would only hold
# the default ports; stop those that this run installed, and no others.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  for pair in etcd-server:etcd docker-registry:docker-registry containerd:containerd nginx-light:nginx; do
    case " ${missing[*]:-} " in
      *" ${pair%%:*} "*) $SUDO systemctl disable --now "${pair#*:}" >/dev/null 2>&1 || true ;;
    esac
  done
fi

for t in "${tool_problems[@]:-}"; do [ -n "$t" ] && die "$t"; done

# Pods on different nodes talk through the host, which must route between bridges.
if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != 1 ]; then
  $SUDO sysctl -qw net.ipv4.ip_forward=1
  log "enabled net.ipv4.ip_forward"
fi

for bin in etcd containerd ctr runc docker-registry skopeo busybox ip ss iptables jq flock ldd protoc \
           /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/portmap /usr/include/google/protobuf/descriptor.proto; do
  command -v "$bin" >/dev/null || [ -e "$bin" ] || die "$bin missing after install"
done
log "ok"
