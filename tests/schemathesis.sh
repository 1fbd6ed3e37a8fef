#!/usr/bin/env bash
# Property-based test of the HTTP service against its own OpenAPI document (GET /v1/openapi.json):
# schemathesis (from PyPI, a pinned version, in a venv under ~/.cache) generates requests, valid
# and not, for every documented operation and checks each answer: no 5xx, a documented status,
# the documented content type and the documented body schema. It runs against `carelog serve` on
# a fresh demo store, with an admin token, on a free loopback port, and stops the server after.
#
# Usage: tests/schemathesis.sh [path/to/carelog]   (default: target/release/carelog, built first
# when missing). SCHEMATHESIS_EXAMPLES (default 100) bounds the cases per operation.
#
# Not run by schemathesis: /v1/subscribe (a stream that never ends by itself) and /v1/export (every
# event of the demo, some 100 MB, each time); tests/http.rs covers both.
set -euo pipefail
cd "$(dirname "$0")/.."

version=4.32.5
examples="${SCHEMATHESIS_EXAMPLES:-100}"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/carelog/schemathesis-$version"
target="${CARGO_TARGET_DIR:-target}"
bin="${1:-$target/release/carelog}"

if [[ ! -x "$venv/bin/schemathesis" ]]; then
    echo "== installing schemathesis $version into $venv"
    python="$(command -v python3.11 || command -v python3)"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi
if [[ ! -x "$bin" ]]; then
    cargo build --release --bin carelog
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

store="$work/store"
"$bin" --data "$store" demo > /dev/null
token="$("$bin" --data "$store" token create --role admin 2> /dev/null)"

# Port 0: the OS picks a free port; serve prints it on its first line.
RUST_LOG=warn "$bin" --data "$store" serve --addr 127.0.0.1:0 > "$work/serve.out" 2> "$work/serve.log" &
server_pid=$!
base=""
for _ in $(seq 1 100); do
    if read -r first < "$work/serve.out" 2> /dev/null && [[ "$first" == "listening on "* ]]; then
        base="${first#listening on }"
        break
    fi
    if ! kill -0 "$server_pid" 2> /dev/null; then
        break
    fi
    sleep 0.1
done
if [[ -z "$base" ]]; then
    echo "carelog serve did not start:" >&2
    cat "$work/serve.log" >&2
    exit 1
fi
echo "== schemathesis $version against $base ($examples cases per operation)"

status=0
# From the scratch directory: schemathesis keeps a `.schemathesis/` folder where it runs.
(cd "$work" && "$venv/bin/schemathesis" run "$base/v1/openapi.json" \
    --url "$base" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --exclude-path /v1/subscribe \
    --exclude-path /v1/export \
    --max-examples "$examples" \
    --seed 18 \
    --workers 2 \
    --request-timeout 30 \
    --suppress-health-check all \
    --generation-database none \
    --no-color) || status=$?

if [[ $status -ne 0 ]]; then
    echo "== the server's log (warnings and errors)" >&2
    tail -n 50 "$work/serve.log" >&2
fi
exit $status
