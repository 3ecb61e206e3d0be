#!/usr/bin/env bash
# Runs testssl.sh (Debian package `testssl.sh`, command `testssl`) once against a mesh-proxy
# inbound listener as a mesh runs it: TLS 1.3, an X.509-SVID from a fresh @mesh/tls-identity
# CA, client certificate required (policy all-authenticated). Slow (minutes); not a test.
#
#   bench/scripts/testssl.sh [output-dir]      # default: a temp dir; prints the summary
#
# Needs the packages built (npm run build) and `apt-get install -y testssl.sh`.
# testssl 3.0 cannot present a client certificate, so it sees what any unauthenticated
# client sees: the server's side of the handshake (protocols, ciphers, certificate), after
# which the listener refuses it for lack of a client certificate.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NODE="$ROOT/node_modules/.bin/node"
TESTSSL="$(command -v testssl || command -v testssl.sh || true)"
if [[ -z "$TESTSSL" ]]; then
  echo "testssl not found: apt-get install -y testssl.sh" >&2
  exit 2
fi
OUT="${1:-$(mktemp -d)}"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
PROXY_PID=""
cleanup() {
  if [[ -n "$PROXY_PID" ]]; then kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

ID_CLI="$ROOT/packages/tls-identity/dist/cli.js"
TD="testssl.mesh.local"
"$NODE" "$ID_CLI" ca create --trust-domain "$TD" --out "$WORK/ca" >/dev/null
"$NODE" "$ID_CLI" issue --id "spiffe://$TD/ns/default/sa/books" --ca "$WORK/ca" --out "$WORK/books" >/dev/null

PORT="$("$NODE" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
ADMIN="$("$NODE" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
cat >"$WORK/inbound.json" <<JSON
{
  "proxyId": "testssl-inbound",
  "admin": { "listen": "127.0.0.1:$ADMIN" },
  "log": { "level": "warn", "accessLog": false },
  "identity": {
    "trustDomain": "$TD",
    "id": "spiffe://$TD/ns/default/sa/books",
    "files": { "cert": "$WORK/books/svid.pem", "key": "$WORK/books/svid.key.pem", "bundle": "$WORK/books/bundle.pem" }
  },
  "inbound": {
    "listen": "127.0.0.1:$PORT",
    "app": "127.0.0.1:1",
    "policy": { "default": "all-authenticated" }
  }
}
JSON
"$NODE" "$ROOT/packages/proxy/dist/cli.js" --config "$WORK/inbound.json" >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$ADMIN/ready" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$ADMIN/ready" >/dev/null || { cat "$WORK/proxy.log" >&2; exit 1; }

echo "testssl $("$TESTSSL" --version 2>/dev/null | grep -m1 -o '3\.[0-9.a-z+-]*' || echo '?') against 127.0.0.1:$PORT (inbound, mTLS)" >&2
"$TESTSSL" --quiet --color 0 --warnings off --ip one \
  --logfile "$OUT/testssl.log" --jsonfile "$OUT/testssl.json" \
  "127.0.0.1:$PORT" >/dev/null 2>&1 || true
# The failing or noteworthy findings (severity above INFO/OK), one per line.
"$NODE" -e '
  const f = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const rank = { OK: 0, INFO: 1, LOW: 2, MEDIUM: 3, HIGH: 4, CRITICAL: 5, WARN: 1, DEBUG: -1 };
  for (const x of f) if ((rank[x.severity] ?? 1) >= 1 && x.severity !== "OK")
    console.log(`${x.severity}\t${x.id}\t${x.finding}`);
' "$OUT/testssl.json" | tee "$OUT/findings.tsv"
echo "full log: $OUT/testssl.log, JSON: $OUT/testssl.json" >&2
