#!/usr/bin/env bash
# Refresh-token rotation on SQLite: POST /api/v1/token/refresh along chains of refresh
# tokens (refresh.lua), EdDSA signing unless SIGNING_ALG says otherwise. Every request is a
# write transaction (claim the presented token, insert the next one, touch the session):
# this is the run that shows how SQLite's one writer is shared. See tests/load/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
binary=${BINARY:-"$here/../../target/release/gatehouse"}
duration=${DURATION:-15s}
port=${PORT:-18090}
alg=${SIGNING_ALG:-EdDSA}
threads=${THREADS:-1}
connections=${CONNECTIONS:-16}
seeds_per_thread=${SEEDS_PER_THREAD:-64}
[ -x "$binary" ] || { echo "build first: cargo build --release -p gatehouse-server"; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 1; }

dir=$(mktemp -d)
cat > "$dir/gatehouse.toml" <<TOML
issuer = "http://127.0.0.1:$port"
data_dir = "$dir"
[server]
bind = "127.0.0.1:$port"
[database]
url = "sqlite://$dir/gatehouse.db?mode=rwc"
[tokens]
signing_alg = "$alg"
[rate_limit]
# The seeding logins come from one address and one account, and so does every refresh.
enabled = false
[log]
filter = "warn"
TOML
printf '%s\n' 'bench password 1' | "$binary" --config "$dir/gatehouse.toml" user create --email bench@example.com --verified >/dev/null
"$binary" --config "$dir/gatehouse.toml" serve 2>"$dir/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

# One login (one session, one refresh-token chain) per seed.
python3 - "http://127.0.0.1:$port/api/v1/login" $((threads * seeds_per_thread)) > "$dir/tokens" <<'PY'
import json, sys, urllib.request
url, count = sys.argv[1], int(sys.argv[2])
body = json.dumps({"email": "bench@example.com", "password": "bench password 1"}).encode()
for _ in range(count):
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        print(json.load(answer)["refresh_token"])
PY

# CPU time (user + system, in clock ticks) the server has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }

echo "== $alg: POST /api/v1/token/refresh, rotation chains ($(wc -l < "$dir/tokens") sessions, nproc $(nproc))"
before=$(cpu_ticks)
start=$(date +%s.%N)
REFRESH_TOKENS="$dir/tokens" wrk -t"$threads" -c"$connections" -d"$duration" --latency \
    -s "$here/refresh.lua" "http://127.0.0.1:$port/api/v1/token/refresh" \
    | grep -E "Requests/sec|Latency|50%|99%|Non-2xx|requests in"
after=$(cpu_ticks)
end=$(date +%s.%N)
awk -v t="$((after - before))" -v hz="$(getconf CLK_TCK)" -v s="$start" -v e="$end" \
    'BEGIN { printf "  server CPU: %.1f cores busy on average\n", t / hz / (e - s) }'
