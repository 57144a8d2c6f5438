#!/usr/bin/env bash
# Builds the demo OCI images from Debian packages (no registry needed) and
# pushes them to a local registry.
#
#   hack/lib/images.sh build             -> _output/images/{busybox,nginx}.tar
#   hack/lib/images.sh push HOST:PORT    -> library/busybox:latest,
#                                           library/nginx:{latest,1.0,2.0}
#
# busybox: busybox-static with its applet links, /etc/passwd, /etc/group, /tmp.
# nginx:   busybox layer + Debian's nginx-light with the libraries it links
#          (ldd) + an index page (1.0/latest and 2.0 differ, for rollouts).
#          Serves / and /healthz on port 80; SIGTERM = fast, SIGQUIT = graceful.
#
# Builds are reproducible (fixed mtimes, sorted tars, gzip -n), so rebuilding
# gives the same digests.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${FERROKUBE_IMAGES_DIR:-$ROOT/_output/images}"
BUSYBOX_BIN="${BUSYBOX_BIN:-/bin/busybox}"
NGINX_BIN="${NGINX_BIN:-/usr/sbin/nginx}"
EPOCH=0

die() { echo "images.sh: $*" >&2; exit 1; }

arch() {
  case "$(dpkg --print-architecture 2>/dev/null || uname -m)" in
    amd64|x86_64) echo amd64 ;;
    arm64|aarch64) echo arm64 ;;
    *) dpkg --print-architecture ;;
  esac
}

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

# make_layer ROOTFS_DIR LAYOUT_DIR -> prints "<blob digest> <blob size> <diff_id>"
make_layer() {
  local rootfs="$1" layout="$2" tmp
  tmp="$(mktemp -d)"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" \
      --format=gnu -C "$rootfs" -cf "$tmp/layer.tar" .
  local diff_id; diff_id="$(sha "$tmp/layer.tar")"
  gzip -n -9 "$tmp/layer.tar"
  local digest; digest="$(sha "$tmp/layer.tar.gz")"
  local sz; sz="$(size "$tmp/layer.tar.gz")"
  mv "$tmp/layer.tar.gz" "$layout/blobs/sha256/$digest"
  rm -rf "$tmp"
  echo "$digest $sz $diff_id"
}

# put_blob LAYOUT FILE -> prints "<digest> <size>", moving FILE into blobs/
put_blob() {
  local layout="$1" file="$2" digest sz
  digest="$(sha "$file")"; sz="$(size "$file")"
  mv "$file" "$layout/blobs/sha256/$digest"
  echo "$digest $sz"
}

# write_image LAYOUT CMD_JSON EXTRA_CONFIG_JSON "layer1 layer2 ..." -> prints "<manifest digest> <size>"
# Each layer is "digest:size:diff_id".
write_image() {
  local layout="$1" cmd="$2" extra="$3" layers="$4" tmp
  tmp="$(mktemp -d)"
  local diff_ids="" layer_descs="" l d s i
  for l in $layers; do
    IFS=: read -r d s i <<<"$l"
    diff_ids="${diff_ids:+$diff_ids,}\"sha256:$i\""
    layer_descs="${layer_descs:+$layer_descs,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$s}"
  done
  jq -cn --arg arch "$(arch)" --argjson cmd "$cmd" --argjson extra "$extra" \
     --argjson diff "[$diff_ids]" '{
      architecture: $arch, os: "linux", created: "1970-01-01T00:00:00Z",
      config: ({Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
               Cmd: $cmd, WorkingDir: "/"} + $extra),
      rootfs: {type: "layers", diff_ids: $diff},
      history: [{created: "1970-01-01T00:00:00Z", created_by: "ferrokube hack/lib/images.sh"}]
    }' >"$tmp/config.json"
  local cfg; cfg="$(put_blob "$layout" "$tmp/config.json")"
  jq -cn --arg cd "sha256:${cfg% *}" --argjson cs "${cfg#* }" --argjson layers "[$layer_descs]" '{
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
      layers: $layers
    }' >"$tmp/manifest.json"
  put_blob "$layout" "$tmp/manifest.json"
  rm -rf "$tmp"
}

# write_index LAYOUT "tag=digest:size ..." ; pack LAYOUT OUT_TAR
write_index() {
  local layout="$1" refs="$2" entries="" r tag d s
  for r in $refs; do
    tag="${r%%=*}"; IFS=: read -r d s <<<"${r#*=}"
    entries="${entries:+$entries,}{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$d\",\"size\":$s,\"annotations\":{\"org.opencontainers.image.ref.name\":\"$tag\"}}"
  done
  echo "{\"schemaVersion\":2,\"manifests\":[$entries]}" | jq -c . >"$layout/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
}

pack() {
  local layout="$1" out="$2"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" \
      -C "$layout" -cf "$out.tmp" oci-layout index.json blobs
  mv "$out.tmp" "$out"
}

busybox_rootfs() {
  local r="$1" link
  [ -x "$BUSYBOX_BIN" ] || die "$BUSYBOX_BIN missing: apt-get install busybox-static"
  mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,root,var,home,proc,sys,dev,run}
  mkdir -p -m 1777 "$r/tmp"
  cp "$BUSYBOX_BIN" "$r/bin/busybox"
  chmod 0755 "$r/bin/busybox"
  for link in $("$BUSYBOX_BIN" --list-full); do
    [ "$link" = "bin/busybox" ] && continue
    mkdir -p "$r/$(dirname "$link")"
    ln -sf /bin/busybox "$r/$link"
  done
  cat >"$r/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
P
  cat >"$r/etc/group" <<'G'
root:x:0:
daemon:x:1:
www-data:x:33:
nogroup:x:65534:
G
  echo "hosts: files dns" >"$r/etc/nsswitch.conf"
}

nginx_rootfs() {
  local r="$1" lib
  [ -x "$NGINX_BIN" ] || die "$NGINX_BIN missing: apt-get install nginx-light"
  mkdir -p "$r/usr/sbin" "$r/etc/nginx" "$r/var/lib/nginx" "$r/var/log/nginx" "$r/run" "$r/usr/share/nginx/html"
  cp "$NGINX_BIN" "$r/usr/sbin/nginx"
  # Every shared library nginx links, at the path the loader looks for it.
  for lib in $(ldd "$NGINX_BIN" | grep -o '/[^ ]*'); do
    mkdir -p "$r$(dirname "$lib")"
    cp -L "$lib" "$r$lib"
  done
  cp /etc/nginx/mime.types "$r/etc/nginx/mime.types" 2>/dev/null || echo 'types { text/html html; }' >"$r/etc/nginx/mime.types"
  cat >"$r/etc/nginx/nginx.conf" <<'N'
user www-data www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log /dev/stderr notice;
events { worker_connections 256; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log /dev/stdout;
  sendfile on;
  server {
    listen 80 default_server;
    root /usr/share/nginx/html;
    index index.html;
    location = /healthz { default_type text/plain; return 200 "ok\n"; }
  }
}
N
}

index_rootfs() {
  local r="$1" version="$2"
  mkdir -p "$r/usr/share/nginx/html"
  cat >"$r/usr/share/nginx/html/index.html" <<H
<!DOCTYPE html>
<html><head><title>Welcome to nginx!</title></head>
<body><h1>Welcome to nginx!</h1><p>ferrokube demo web server, version $version</p></body></html>
H
}

build() {
  command -v jq >/dev/null || die "jq missing: apt-get install jq"
  mkdir -p "$OUT"
  local work; work="$(mktemp -d)"
  # A RETURN trap outlives the function in bash: it clears itself so that it fires once.
  trap 'rm -rf "${work:-}"; trap - RETURN' RETURN

  # busybox
  local L="$work/busybox"; mkdir -p "$L/blobs/sha256"
  busybox_rootfs "$work/rootfs-busybox"
  local bb; bb="$(make_layer "$work/rootfs-busybox" "$L")"
  local bb_layer="${bb// /:}"
  local m; m="$(write_image "$L" '["sh"]' '{}' "$bb_layer")"
  write_index "$L" "latest=${m// /:}"
  pack "$L" "$OUT/busybox.tar"

  # nginx: shared base layers, one index layer per version
  L="$work/nginx"; mkdir -p "$L/blobs/sha256"
  bb="$(make_layer "$work/rootfs-busybox" "$L")"; bb_layer="${bb// /:}"
  nginx_rootfs "$work/rootfs-nginx"
  local ng; ng="$(make_layer "$work/rootfs-nginx" "$L")"
  local ng_layer="${ng// /:}"
  local extra='{"ExposedPorts":{"80/tcp":{}},"StopSignal":"SIGQUIT"}'
  local cmd='["nginx","-g","daemon off;"]'
  index_rootfs "$work/rootfs-v1" "1.0"
  index_rootfs "$work/rootfs-v2" "2.0"
  local v1 v2 m1 m2
  v1="$(make_layer "$work/rootfs-v1" "$L")"; v2="$(make_layer "$work/rootfs-v2" "$L")"
  m1="$(write_image "$L" "$cmd" "$extra" "$bb_layer $ng_layer ${v1// /:}")"
  m2="$(write_image "$L" "$cmd" "$extra" "$bb_layer $ng_layer ${v2// /:}")"
  write_index "$L" "latest=${m1// /:} 1.0=${m1// /:} 2.0=${m2// /:}"
  pack "$L" "$OUT/nginx.tar"
  echo "images.sh: built $OUT/busybox.tar $OUT/nginx.tar"
}

# Build only when an archive is missing; a lock keeps parallel test binaries
# from building over each other.
ensure_built() {
  mkdir -p "$OUT"
  exec 9>"$OUT/.lock"
  flock 9
  if [ ! -s "$OUT/busybox.tar" ] || [ ! -s "$OUT/nginx.tar" ] || [ "${FERROKUBE_REBUILD_IMAGES:-}" = 1 ]; then
    build
  fi
  flock -u 9
}

push() {
  local registry="$1"
  [ -n "$registry" ] || die "usage: images.sh push HOST:PORT"
  command -v skopeo >/dev/null || die "skopeo missing: apt-get install skopeo"
  ensure_built
  local src dst
  for pair in "busybox.tar:latest=library/busybox:latest" \
              "nginx.tar:latest=library/nginx:latest" \
              "nginx.tar:1.0=library/nginx:1.0" \
              "nginx.tar:2.0=library/nginx:2.0"; do
    src="${pair%%=*}"; dst="${pair#*=}"
    skopeo --insecure-policy copy --quiet --dest-tls-verify=false \
      "oci-archive:$OUT/$src" "docker://$registry/$dst" >/dev/null \
      || die "pushing $src to $registry/$dst failed"
  done
  echo "images.sh: pushed busybox:latest nginx:{latest,1.0,2.0} to $registry"
}

case "${1:-}" in
  build) mkdir -p "$OUT"; exec 9>"$OUT/.lock"; flock 9; build ;;
  ensure) ensure_built ;;
  push) push "${2:-}" ;;
  *) echo "usage: $0 build | ensure | push HOST:PORT" >&2; exit 2 ;;
esac
