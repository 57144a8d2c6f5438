#!/usr/bin/env bash
# Installs what ferrokube needs on Debian 12 and prepares the host.
# Idempotent: installs only missing packages, and only runs `apt-get update`
# when something is missing. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  etcd-server containerd runc containernetworking-plugins protobuf-compiler
  docker-registry skopeo busybox-static iptables iproute2 nginx-light jq
  util-linux procps gzip tar wget curl ca-certificates build-essential pkg-config
)

log() { echo "install-deps: $*" >&2; }
die() { log "$*"; exit 1; }

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "run as root (or install sudo)"
  SUDO="sudo"
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

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

# The Rust toolchain cannot come from apt on Debian 12 at the version the
# workspace needs; require rustup's cargo.
if ! command -v cargo >/dev/null; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    log "cargo is in $HOME/.cargo/bin but not on PATH: export PATH=\$HOME/.cargo/bin:\$PATH"
  fi
  die "cargo not found: install Rust with rustup (https://rustup.rs), stable >= 1.85"
fi
rust_minor="$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')"
if [ "${rust_minor:-0}" -lt 85 ]; then
  die "rustc $(rustc --version) is too old: need >= 1.85 (edition 2024 dependencies)"
fi

# Pods on different nodes talk through the host, which must route between bridges.
if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != 1 ]; then
  $SUDO sysctl -qw net.ipv4.ip_forward=1
  log "enabled net.ipv4.ip_forward"
fi

for bin in etcd containerd runc docker-registry skopeo busybox ip iptables jq /usr/lib/cni/bridge /usr/lib/cni/host-local; do
  command -v "$bin" >/dev/null || [ -x "$bin" ] || die "$bin missing after install"
done
log "ok"
