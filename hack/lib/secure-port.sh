# component_get PORT PATH KUBECONFIG: GET https://127.0.0.1:PORT/PATH of the scheduler or the
# controller-manager (self-signed serving certificate, so -k) with the client certificate
# embedded in KUBECONFIG; those ports authorize /metrics through the apiserver.
component_get() {
  local port=$1 path=$2 kubeconfig=$3 dir
  dir=$(mktemp -d)
  python3 - "$kubeconfig" "$dir" <<'PY'
import base64, re, sys
text = open(sys.argv[1]).read()
for field, name in (("client-certificate-data", "crt"), ("client-key-data", "key")):
    m = re.search(field + r":\s*(\S+)", text)
    if m:
        open(f"{sys.argv[2]}/client.{name}", "wb").write(base64.b64decode(m.group(1)))
PY
  curl -sk --cert "$dir/client.crt" --key "$dir/client.key" "https://127.0.0.1:$port$path"
  local rc=$?
  rm -rf "$dir"
  return $rc
}
