#!/usr/bin/env bash
# Load runs against a release build on 127.0.0.1; see tests/load/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
binary="$here/../../target/release/gatehouse"
duration=${DURATION:-10s}
port=${PORT:-18089}
[ -x "$binary" ] || { echo "build first: cargo build --release -p gatehouse-server"; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 1; }

run() { # $1 = signing algorithm
    local dir; dir=$(mktemp -d)
    cat > "$dir/gatehouse.toml" <<TOML
issuer = "http://127.0.0.1:$port"
data_dir = "$dir"
[server]
bind = "127.0.0.1:$port"
[database]
url = "sqlite://$dir/gatehouse.db?mode=rwc"
[tokens]
signing_alg = "$1"
[log]
filter = "warn"
TOML
    printf '%s\n' 'bench password 1' | "$binary" --config "$dir/gatehouse.toml" user create --email bench@example.com --verified >/dev/null
    local client; client=$("$binary" --config "$dir/gatehouse.toml" client create --name bench --type confidential --grant client_credentials)
    local id secret
    id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_id"])' "$client")
    secret=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_secret"])' "$client")
    "$binary" --config "$dir/gatehouse.toml" serve 2>"$dir/server.log" &
    local pid=$!
    trap 'kill $pid 2>/dev/null; rm -rf "$dir"' RETURN
    for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
    local token
    token=$(curl -s "http://127.0.0.1:$port/api/v1/login" -H 'content-type: application/json' \
        -d '{"email": "bench@example.com", "password": "bench password 1"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

    echo "== $1: POST /api/v1/login (argon2id m=19456 t=2 p=1)"
    wrk -t2 -c16 -d"$duration" -s "$here/login.lua" "http://127.0.0.1:$port/api/v1/login" | grep -E "Requests/sec|Latency|Non-2xx"
    echo "== $1: GET /api/v1/me (token check + session lookup)"
    wrk -t2 -c32 -d"$duration" -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/me" | grep -E "Requests/sec|Latency|Non-2xx"
    echo "== $1: POST /oauth2/token client_credentials (signing)"
    CLIENT_AUTH=$(printf '%s:%s' "$id" "$secret" | base64 -w0) \
        wrk -t2 -c32 -d"$duration" -s "$here/service_token.lua" "http://127.0.0.1:$port/oauth2/token" | grep -E "Requests/sec|Latency|Non-2xx"
    echo "== $1: GET /healthz (HTTP floor of this server)"
    wrk -t2 -c32 -d"$duration" "http://127.0.0.1:$port/healthz" | grep -E "Requests/sec|Latency|Non-2xx"
}

run RS256
run EdDSA
