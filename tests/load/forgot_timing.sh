#!/usr/bin/env bash
# Does the time to answer forgot-password or resend tell whether an address has an account?
# Against a release build on SQLite: N known and N unknown addresses, asked alternately,
# each once (so every request is outside the mail cooldown), timed by curl.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
binary="$here/../../target/release/gatehouse"
port=${PORT:-18091}
count=${COUNT:-60}
[ -x "$binary" ] || { echo "build first: cargo build --release -p gatehouse-server"; exit 1; }
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
cat > "$dir/gatehouse.toml" <<TOML
issuer = "http://127.0.0.1:$port"
data_dir = "$dir"
[server]
bind = "127.0.0.1:$port"
[database]
url = "sqlite://$dir/gatehouse.db?mode=rwc"
[password]
argon2_memory_kib = 64
argon2_iterations = 1
[mail]
transport = "file"
file_dir = "$dir/mail"
[log]
filter = "warn"
TOML
for i in $(seq 1 "$count"); do
    printf '%s\n' 'timing password 1' | "$binary" --config "$dir/gatehouse.toml" user create --email "known$i@example.com" --verified >/dev/null
done
"$binary" --config "$dir/gatehouse.toml" serve 2>"$dir/server.log" &
pid=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
for path in /api/v1/password/forgot /api/v1/email/verify/resend; do
    : > "$dir/times"
    for i in $(seq 1 "$count"); do
        for who in known unknown; do
            t=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port$path" \
                -H 'content-type: application/json' -d "{\"email\": \"$who$i@example.com\"}" || true)

            echo "$who $t" >> "$dir/times"
        done
    done
    echo "== $path ($count known, $count unknown, alternating; nproc=$(nproc))"
    python3 - "$dir/times" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
for who in ("known", "unknown"):
    t = sorted(float(v) * 1e3 for w, v in rows if w == who)
    print(f"{who:8} median {statistics.median(t):.3f} ms  p90 {t[int(len(t) * 0.9)]:.3f} ms")
k = statistics.median(float(v) for w, v in rows if w == "known")
u = statistics.median(float(v) for w, v in rows if w == "unknown")
print(f"known/unknown median ratio {k / u:.2f}")
PY
done
