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
    oidc_runs "$dir"
    echo "== $1: GET /healthz (HTTP floor of this server)"
    wrk -t2 -c32 -d"$duration" "http://127.0.0.1:$port/healthz" | grep -E "Requests/sec|Latency|Non-2xx"
}

# The browser side of OpenID Connect: the login page, code issuance for a logged-in
# browser, and userinfo with a code-flow access token.
oidc_runs() { # $1 = the run's folder
    local dir=$1 base="http://127.0.0.1:$port" redirect="http://127.0.0.1:9/cb"
    local app; app=$("$binary" --config "$dir/gatehouse.toml" client create --name app --type confidential \
        --grant authorization_code --redirect-uri "$redirect" --first-party)
    local app_id app_secret
    app_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_id"])' "$app")
    app_secret=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_secret"])' "$app")
    local jar="$dir/cookies" csrf
    csrf=$(curl -s -c "$jar" -b "$jar" "$base/login" | sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | head -1)
    curl -s -o /dev/null -c "$jar" -b "$jar" "$base/login" --data-urlencode "csrf_token=$csrf" \
        --data-urlencode "email=bench@example.com" --data-urlencode "password=bench password 1"
    local cookie; cookie=$(awk '$6 == "gatehouse" { print "gatehouse=" $7 }' "$jar")
    local authorize="$base/oauth2/authorize?client_id=$app_id&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&response_type=code&scope=openid%20email&state=s"
    local code
    code=$(curl -s -o /dev/null -w '%{redirect_url}' -H "Cookie: $cookie" "$authorize" | sed -n 's/.*code=\([^&]*\).*/\1/p')
    local access
    access=$(curl -s -u "$app_id:$app_secret" "$base/oauth2/token" -d grant_type=authorization_code \
        --data-urlencode "code=$code" --data-urlencode "redirect_uri=$redirect" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

    echo "== GET /login (template + a new browser session row per request)"
    wrk -t2 -c32 -d"$duration" "$base/login" | grep -E "Requests/sec|Latency|Non-2xx"
    echo "== GET /oauth2/authorize, logged in, first-party (one code per request)"
    wrk -t2 -c32 -d"$duration" -H "Cookie: $cookie" "$authorize" | grep -E "Requests/sec|Latency|Non-2xx"
    echo "== GET /oauth2/userinfo (token check + session lookup)"
    wrk -t2 -c32 -d"$duration" -H "Authorization: Bearer $access" "$base/oauth2/userinfo" | grep -E "Requests/sec|Latency|Non-2xx"
}

run RS256
run EdDSA
