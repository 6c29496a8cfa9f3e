#!/usr/bin/env bash
# tests/service_docs_browser.sh AIFC: the service's /docs page in a real headless browser
# (Debian's chromium). The page must render with its title, one section per route of
# /openapi.json, and the curl examples. Exit 77 (skipped) without chromium unless
# AIFC_REQUIRE_BROWSER=1.
set -euo pipefail
aifc=$1
source "$(dirname "$0")/browser.sh"
tmp=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'url=http://127.0.0.1:9\nuser_name=nobody\njwt=x\n' > "$tmp/rest.conf"
AIFC_API_TOKEN=docs-token "$aifc" service http://127.0.0.1:9 --port "$port" --state-dir "$tmp/state" \
  --slurm-backend rest --slurm-config "$tmp/rest.conf" >"$tmp/service.out" 2>&1 &
service=$!
trap 'kill $service 2>/dev/null; wait $service 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.05; done
dump_dom "http://127.0.0.1:$port/docs" "$tmp/dom.html" "$tmp"
curl -sf "http://127.0.0.1:$port/openapi.json" >"$tmp/openapi.json"
python3 - "$tmp/dom.html" "$tmp/openapi.json" <<'PY'
import json, re, sys
dom, api = open(sys.argv[1]).read(), json.load(open(sys.argv[2]))
assert "<title>aifc client service API</title>" in dom, dom[:300]
sections = re.findall(r'<section id="[^"]+"><h2><span class="m">(\w+)</span> <code>([^<]+)</code></h2>', dom)
routes = {(m.upper(), p) for p, ms in api["paths"].items() for m in ms}
assert set(sections) == routes, (set(sections) ^ routes)
assert dom.count("<pre>curl ") >= 8, dom.count("<pre>curl ")
print(f"service docs page: {len(sections)} routes rendered by {sys.argv[1] and 'chromium'}")
PY
