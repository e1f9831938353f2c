#!/usr/bin/env bash
# Memory under a login flood (issue 8): a release build on SQLite with the default password
# settings (argon2id m=19456 KiB t=2 p=1, one hashing slot per core), 600 logins of one
# verified user over 64 concurrent connections (curl --parallel) on 127.0.0.1. Prints the
# RSS before any login, the peak RSS (VmHWM) and the bound idle + slots x m_cost.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root="$here/../.."
binary="$root/target/release/gatehouse"
port=${PORT:-18090}
logins=${LOGINS:-600}
connections=${CONNECTIONS:-64}
command -v curl >/dev/null || { echo "curl is missing: apt-get install curl"; exit 1; }
(cd "$root" && cargo build --release -q -p gatehouse-server)

dir=$(mktemp -d)
cat > "$dir/gatehouse.toml" <<TOML
issuer = "http://127.0.0.1:$port"
data_dir = "$dir"
[server]
bind = "127.0.0.1:$port"
[database]
url = "sqlite://$dir/gatehouse.db?mode=rwc"
[log]
filter = "warn"
TOML
printf '%s\n' 'bench password 1' | "$binary" --config "$dir/gatehouse.toml" user create --email bench@example.com --verified >/dev/null 2>&1
"$binary" --config "$dir/gatehouse.toml" serve 2>"$dir/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

kib() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$pid/status"; }
# The settings in force: the defaults (max_concurrent_hashes = 0: one slot per core).
m_cost_kib=19456
slots=$(nproc)
idle=$(kib VmRSS)

# One curl, $connections transfers at once, each on its own HTTP/1.1 connection.
for _ in $(seq 1 "$logins"); do
    printf '%s\n' next "url = \"http://127.0.0.1:$port/api/v1/login\"" 'request = "POST"' \
        'header = "content-type: application/json"' \
        'data = "{\"email\": \"bench@example.com\", \"password\": \"bench password 1\"}"' \
        'output = "/dev/null"' 'write-out = "%{http_code}\n"'
done | tail -n +2 > "$dir/logins.curl"
start=$(date +%s.%N)
curl -sS --no-progress-meter --parallel --parallel-immediate --parallel-max "$connections" -K "$dir/logins.curl" > "$dir/codes"
end=$(date +%s.%N)

peak=$(kib VmHWM)
after=$(kib VmRSS)
bound=$((idle + slots * m_cost_kib))
echo "nproc: $(nproc); hashing slots: $slots; argon2id m=$m_cost_kib KiB t=2 p=1"
echo "logins: $logins over $connections connections in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s; answers: $(sort "$dir/codes" | uniq -c | awk '{ printf "%s x %s ", $1, $2 }')"
echo "idle RSS (before any login): $((idle / 1024)) MiB"
echo "peak RSS (VmHWM): $((peak / 1024)) MiB"
echo "RSS after the flood: $((after / 1024)) MiB"
echo "bound (idle + $slots x $((m_cost_kib / 1024)) MiB): $((bound / 1024)) MiB"
echo "peak / bound: $(awk -v p="$peak" -v b="$bound" 'BEGIN { printf "%.2f", p / b }')"
