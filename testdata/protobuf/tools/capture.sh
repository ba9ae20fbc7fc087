#!/bin/bash
# Captures the request bodies of real kubectl 1.27 … 1.33 against server.py and refreshes the test
# vectors: testdata/protobuf/<32|33>/<name>.pb (protobuf bodies) and 31/<name>.json (the JSON
# kubectl 1.31 sends for the same command). Prints version × command → Content-Type.
# usage: capture.sh [PORT]   (needs python3, openssl, curl, kubectl.1.27 … kubectl.1.33)
set -euo pipefail
TOOLS=$(cd "$(dirname "$0")" && pwd)
PORT=${1:-38543}
WORK=$(mktemp -d)
trap 'kill "$SERVER" 2>/dev/null; rm -rf "$WORK"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 2>/dev/null
cat > "$WORK/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster: {server: "https://127.0.0.1:$PORT", certificate-authority: "$WORK/cert.pem"}
users:
- name: u
  user: {token: dummy-token}
contexts:
- name: fake
  context: {cluster: fake, user: u, namespace: default}
current-context: fake
KC
python3 "$TOOLS/server.py" "$PORT" "$WORK/raw" "$WORK" > "$WORK/server.log" 2>&1 &
SERVER=$!
sleep 1
for minor in 27 28 29 30 31 32 33; do
  OUT_RC="$WORK/rc.txt" "$TOOLS/driver.sh" "$minor" "$WORK/kubeconfig" "$PORT" "$WORK"
done
python3 "$TOOLS/collect.py" "$WORK/raw" "$TOOLS/.."
