#!/usr/bin/env bash
# Fuzzes the running server against its own OpenAPI document with schemathesis (the step
# "schemathesis" of .ci/run; docs/ci.md says how to run it alone).
#
# Builds the release binary, starts `gatehouse serve` on a fresh SQLite database in a temp
# dir on a free port of 127.0.0.1 (cheap argon2, the rate limiter off so the fuzzer is
# answered, not throttled), seeds an admin account and a confidential
# client (the CLI), installs the pinned schemathesis, and runs it on every operation of
# /api/v1/openapi.json with the admin's Bearer token (logged in by schemathesis) and
# the client's HTTP Basic credentials (tests/fuzz/schemathesis.toml). Fails on any 5xx and on any response that
# does not conform to the document (status code, content type, headers, body schema).
#
# Environment: GATEHOUSE_FUZZ_MAX_EXAMPLES (default 20 test cases per operation and phase,
# some two thousand requests in all, under a minute), GATEHOUSE_FUZZ_SEED (a fixed seed reproduces a run),
# GATEHOUSE_FUZZ_BINARY (a gatehouse binary to use instead of building the release one).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd -P)

SCHEMATHESIS_VERSION=4.32.5
max_examples=${GATEHOUSE_FUZZ_MAX_EXAMPLES:-20}

if [ -n "${GATEHOUSE_FUZZ_BINARY:-}" ]; then
    binary=$GATEHOUSE_FUZZ_BINARY
else
    cargo build --release --quiet -p gatehouse-server
    binary="$root/target/release/gatehouse"
fi

installed=$(python3 -m pip show schemathesis 2>/dev/null | sed -n 's/^Version: //p') || installed=""
if [ "$installed" != "$SCHEMATHESIS_VERSION" ]; then
    python3 -m pip install --quiet "schemathesis==$SCHEMATHESIS_VERSION" ||
        python3 -m pip install --quiet --break-system-packages "schemathesis==$SCHEMATHESIS_VERSION"
fi

# The `st` of that Python (pip puts it beside the interpreter's scripts), else the PATH's.
st=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/st
if [ ! -x "$st" ]; then
    st=$(command -v st)
fi

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
config="$work/gatehouse.toml"
cat >"$config" <<TOML
issuer = "$base"
data_dir = "$work/data"

[server]
bind = "127.0.0.1:$port"

[database]
url = "sqlite://$work/data/gatehouse.db?mode=rwc"

[mail]
transport = "file"
file_dir = "$work/mail"

[password]
argon2_memory_kib = 256
argon2_iterations = 1

[log]
filter = "warn"

# The fuzzer sends wrong passwords to /api/v1/reauthenticate with the admin's token, which
# count as the admin's failed logins: under the default lockout its own login (how it gets
# that token) would soon be throttled. The lockout has journeys of its own.
[lockout]
slow_down_after = 999999
max_failures = 1000000
TOML
# The rate limiter is off for the fuzzer: it would answer 429 to most of its requests.
if grep -q '^\[rate_limit\]' config/default.toml; then
    printf '\n[rate_limit]\nenabled = false\n' >>"$config"
fi

export GATEHOUSE_CONFIG=$config
admin_email=fuzz-admin@example.com
admin_password="fuzz admin password 1"
printf '%s' "$admin_password" |
    "$binary" user create --email "$admin_email" --role admin --verified >/dev/null
client=$("$binary" client create --name fuzz --type confidential --grant client_credentials)
client_id=$(printf '%s' "$client" | python3 -c 'import json, sys; print(json.load(sys.stdin)["client_id"])')
client_secret=$(printf '%s' "$client" | python3 -c 'import json, sys; print(json.load(sys.stdin)["client_secret"])')

"$binary" serve >"$work/server.log" 2>&1 &
server_pid=$!
deadline=$((SECONDS + 60))
until curl --silent --fail --output /dev/null "$base/readyz"; do
    if ! kill -0 "$server_pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
        echo "schemathesis.sh: the server did not become ready:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    sleep 0.2
done

export GATEHOUSE_FUZZ_ADMIN_EMAIL=$admin_email GATEHOUSE_FUZZ_ADMIN_PASSWORD=$admin_password
export GATEHOUSE_FUZZ_CLIENT_ID=$client_id GATEHOUSE_FUZZ_CLIENT_SECRET=$client_secret

seed=()
if [ -n "${GATEHOUSE_FUZZ_SEED:-}" ]; then
    seed=(--seed "$GATEHOUSE_FUZZ_SEED")
fi
status=0
# `POST /api/v1/logout` is left out: it would end the session of every request that
# follows with the same token (the journeys test it). schemathesis logs in again on a 401,
# but a run that ends most of its own sessions tests little else.
# From the temp dir, where schemathesis keeps its cache (.schemathesis/).
(cd "$work" && "$st" --config-file "$root/tests/fuzz/schemathesis.toml" run "$base/api/v1/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --max-examples "$max_examples" \
    --exclude-path /api/v1/logout \
    --workers 1 \
    --request-timeout 10 \
    --no-color \
    "${seed[@]}") || status=$?
if [ $status -ne 0 ]; then
    echo "schemathesis.sh: failures above; the server's log:" >&2
    tail -n 50 "$work/server.log" >&2
fi
exit $status
