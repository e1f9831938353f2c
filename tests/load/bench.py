#!/usr/bin/env python3
"""Every performance figure Gatehouse claims, beside the bounds measured in the same run.

    python3 tests/load/bench.py                 # all scenarios, SQLite
    python3 tests/load/bench.py --postgres postgres://postgres@127.0.0.1:5432/postgres
    python3 tests/load/bench.py login me refresh --duration 10

It builds the release binary (`cargo build --release -p gatehouse-server`), starts
`gatehouse serve` on a fresh database in a temporary folder, seeds a user and clients with
the CLI, drives each scenario with wrk (Debian package `wrk`; Lua scripts beside this file
for per-request bodies) for a fixed time at a fixed concurrency, and prints one table:
scenario, requests/s, p50, p99, errors, server CPU cores used, peak RSS, and the ratio to
the scenario's bound. The bounds come from the same machine in the same run:

- argon2id hashes/s at the configured parameters on every core (`gatehouse calibrate --json`);
- sign and verify rates of each signature algorithm through `jsonwebtoken` alone, and
  `gatehouse-verify`'s own cost (`cargo bench -p gatehouse-verify --bench verify`);
- the server's own `GET /healthz` (its HTTP floor).

Nothing here is a test: CI never runs it and nothing fails on a figure.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BINARY = ROOT / "target" / "release" / "gatehouse"
# The binary whose `calibrate` measures argon2 (another build's, to bench a build without it).
CALIBRATE_BINARY: Path | None = None
CLK_TCK = os.sysconf("SC_CLK_TCK")
PASSWORD = "bench password 1"
LOGIN_USERS = 64
SCENARIOS = [
    "healthz",
    "login",
    "login_memory",
    "isolation",
    "me",
    "introspect",
    "jwks",
    "refresh",
    "client_credentials",
    "signup",
    "code_flow",
    "admin_search",
    "verify",
    "startup",
]


# --- the server under test -------------------------------------------------------------------


class Server:
    """A release `gatehouse serve` in a folder of its own, with its CLI."""

    def __init__(self, port: int, signing_alg: str, database_url: str | None, smtp_port: int):
        self.dir = Path(tempfile.mkdtemp(prefix="gatehouse-bench-"))
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.database_url = database_url or f"sqlite://{self.dir}/gatehouse.db?mode=rwc"
        self.config = self.dir / "gatehouse.toml"
        self.config.write_text(
            f"""issuer = "{self.base}"
data_dir = "{self.dir}"
[server]
bind = "127.0.0.1:{port}"
[database]
url = "{self.database_url}"
[tokens]
signing_alg = "{signing_alg}"
[mail]
transport = "smtp"
smtp_url = "smtp://127.0.0.1:{smtp_port}"
[rate_limit]
# The load comes from one address on purpose: the limits would measure themselves.
enabled = false
[log]
filter = "warn"
""",
            encoding="utf-8",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, stdin: str | None = None) -> str:
        return subprocess.run(
            [str(BINARY), "--config", str(self.config), *args],
            input=stdin.encode() if stdin is not None else None,
            capture_output=True,
            check=True,
        ).stdout.decode()

    def start(self) -> float:
        """Starts the server; returns the seconds until `/healthz` first answered 200."""
        started = time.perf_counter()
        log = open(self.dir / "server.log", "ab")  # noqa: SIM115 (kept open for the process)
        self.process = subprocess.Popen(
            [str(BINARY), "--config", str(self.config), "serve"], stdout=log, stderr=log
        )
        while True:
            if self.process.poll() is not None:
                sys.exit(f"the server exited; see {self.dir / 'server.log'}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.002)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_kib(self, key: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def reset_peak_rss(self) -> None:
        # Writing 5 resets VmHWM (the peak) to the current RSS (proc(5), clear_refs).
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(self.base + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def login(self, email: str = "bench@example.com") -> dict:
        return self.post("/api/v1/login", {"email": email, "password": PASSWORD})

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- a mail sink: the SMTP listener sign-ups deliver to ---------------------------------------


class SmtpSink:
    """Accepts every message (RFC 5321's minimum) and counts them; keeps nothing."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.messages = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            conn, _ = self.listener.accept()
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        conn.sendall(b"220 sink ESMTP\r\n")
        try:
            for line in reader:
                verb = line[:4].upper()
                if verb == b"DATA":
                    conn.sendall(b"354 go on\r\n")
                    for data in reader:
                        if data == b".\r\n":
                            break
                    with self.lock:
                        self.messages += 1
                    conn.sendall(b"250 queued\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    break
                elif verb == b"EHLO":
                    conn.sendall(b"250-sink\r\n250 8BITMIME\r\n")
                else:
                    conn.sendall(b"250 ok\r\n")
        finally:
            conn.close()


# --- wrk ---------------------------------------------------------------------------------------


@dataclass
class Load:
    """What wrk measured, and what the server spent meanwhile."""

    rate: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    cores: float = 0.0
    peak_rss_kib: int = 0
    extra: dict = field(default_factory=dict)


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def millis(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()
    return float(number) * UNITS[unit]


def wrk(server: Server, path: str, duration: int, connections: int, script: str | None = None,
        headers: dict | None = None, env: dict | None = None, measure: bool = True) -> Load:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if script:
        command += ["-s", str(HERE / script)]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    command.append(server.base + path)
    if measure:
        server.reset_peak_rss()
        cpu = server.cpu_seconds()
    started = time.perf_counter()
    output = subprocess.run(command, capture_output=True, check=True, text=True,
                            env={**os.environ, **(env or {})}).stdout
    load = parse_wrk(output)
    if measure:
        load.cores = (server.cpu_seconds() - cpu) / (time.perf_counter() - started)
        load.peak_rss_kib = server.rss_kib("VmHWM")
    return load


def parse_wrk(output: str) -> Load:
    load = Load()
    load.rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    load.p50_ms = millis(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
    load.p99_ms = millis(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    load.errors = (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(int(n) for n in sockets.groups()) if sockets else 0)
    for key, value in re.findall(r"^bench (\w+)=(\S+)$", output, re.M):
        load.extra[key] = float(value)
    return load


# --- the bounds --------------------------------------------------------------------------------


def argon2_bound(server: Server) -> dict:
    """argon2id at the configured parameters: hashes/s on one core and on all of them."""
    output = subprocess.run(
        [str(CALIBRATE_BINARY or BINARY), "--config", str(server.config), "calibrate", "--json"],
        capture_output=True, check=True,
    ).stdout
    return json.loads(output)["configured"]


def signature_bounds() -> dict[str, dict[str, float]]:
    """Per algorithm, per second on one core: `sign`, `raw_verify` and `verify_cached`."""
    subprocess.run(
        ["cargo", "bench", "-p", "gatehouse-verify", "--bench", "verify", "--",
         "--warm-up-time", "1", "--measurement-time", "3", "--noplot"],
        cwd=ROOT, check=True, capture_output=True,
    )
    bounds: dict[str, dict[str, float]] = {}
    for group in ("sign", "raw_verify", "verify_cached"):
        for alg in ("RS256", "ES256", "EdDSA"):
            estimates = ROOT / "target" / "criterion" / group / alg / "new" / "estimates.json"
            nanos = json.loads(estimates.read_text())["mean"]["point_estimate"]
            bounds.setdefault(alg, {})[group] = 1e9 / nanos
    return bounds


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    load: Load | None = None
    value: str = ""
    bound: str = ""
    ratio: float | None = None
    note: str = ""


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rows: list[Row] = []
        self.sink = SmtpSink()
        self.cores = os.cpu_count() or 1
        self.databases: list[str] = []

    def server(self, alg: str, login_users: int = 0) -> Server:
        database_url = None
        if self.args.postgres:
            name = "gatehouse_bench_" + uuid.uuid4().hex[:12]
            psql(self.args.postgres, f"CREATE DATABASE {name}")
            database_url = self.args.postgres.rsplit("/", 1)[0] + "/" + name
            self.databases.append(name)
        server = Server(free_port(), alg, database_url, self.sink.port)
        server.cli("migrate")
        server.cli("user", "create", "--email", "bench@example.com", "--verified",
                   stdin=PASSWORD + "\n")
        server.cli("user", "create", "--email", "admin@example.com", "--verified", "--role",
                   "admin", stdin=PASSWORD + "\n")
        # The login floods take turns over these (login.lua, LOGIN_USERS): the lockout
        # counts a login in flight against its account.
        for n in range(login_users):
            server.cli("user", "create", "--email", f"bench-{n}@example.com", "--verified",
                       stdin=PASSWORD + "\n")
        service = json.loads(server.cli("client", "create", "--name", "bench", "--type",
                                        "confidential", "--grant", "client_credentials"))
        server.service = (service["client_id"], service["client_secret"])
        return server

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(format_row(row), flush=True)

    def run(self) -> None:
        wanted = self.args.scenarios or SCENARIOS
        duration, connections = self.args.duration, self.args.connections
        print(f"# machine: {self.cores} cores, {machine()}; wrk -t1 -c{connections} "
              f"-d{duration}s; database: {'PostgreSQL' if self.args.postgres else 'SQLite'}",
              flush=True)
        signatures = signature_bounds() if {"client_credentials", "verify"} & set(wanted) else {}
        main = self.server(self.args.alg, LOGIN_USERS)
        try:
            main.start()
            time.sleep(1)
            idle_kib = main.rss_kib()
            idle_anon_kib = main.rss_kib("RssAnon")
            argon2 = argon2_bound(main)
            hash_bound = argon2["hashes_per_second_all_cores"]
            print(f"# bound: argon2id m={argon2['m_cost_kib']} t={argon2['t_cost']} "
                  f"p={argon2['p_cost']}: {argon2['hash_ms']:.1f} ms a hash, "
                  f"{hash_bound:.0f} hashes/s on {self.cores} cores", flush=True)
            for alg, rates in signatures.items():
                print(f"# bound: {alg} on one core: sign {rates['sign']:.0f}/s, "
                      f"verify {rates['raw_verify']:.0f}/s", flush=True)
            healthz = wrk(main, "/healthz", duration, connections)
            self.add(Row("GET /healthz (HTTP floor)", healthz, bound="", note="the floor"))
            token = main.login()
            if self.args.users:
                started = time.perf_counter()
                seed(main, self.args.users)
                print(f"# seeded {self.args.users:,} users, a session and an audit entry each, "
                      f"in {time.perf_counter() - started:.0f} s", flush=True)
            if "login" in wanted:
                load = wrk(main, "/api/v1/login", duration, connections, "login.lua",
                           env={"LOGIN_USERS": str(LOGIN_USERS)})
                self.add(Row("POST /api/v1/login", load, bound=f"{hash_bound:.0f}/s argon2",
                             ratio=load.rate / hash_bound))
            if "login_memory" in wanted:
                self.login_memory(main, idle_kib, argon2)
            if "isolation" in wanted:
                self.isolation(main, token["access_token"], duration)
            if "me" in wanted:
                load = wrk(main, "/api/v1/me", duration, connections,
                           headers={"Authorization": "Bearer " + token["access_token"]})
                self.add(Row("GET /api/v1/me", load, bound=f"{healthz.rate:.0f}/s healthz",
                             ratio=load.rate / healthz.rate))
            if "introspect" in wanted:
                load = wrk(main, "/oauth2/introspect", duration, connections, "introspect.lua",
                           env={"CLIENT_AUTH": basic(*main.service),
                                "TOKEN": token["access_token"]})
                self.add(Row("POST /oauth2/introspect", load, bound=f"{healthz.rate:.0f}/s healthz",
                             ratio=load.rate / healthz.rate))
            if "jwks" in wanted:
                load = wrk(main, "/.well-known/jwks.json", duration, connections)
                self.add(Row("GET /.well-known/jwks.json", load,
                             bound=f"{healthz.rate:.0f}/s healthz", ratio=load.rate / healthz.rate))
            if "refresh" in wanted:
                self.refresh(main, duration, connections)
            if "signup" in wanted:
                self.signup(main, duration, connections, hash_bound)
            if "code_flow" in wanted:
                self.code_flow(main, duration, connections)
            if "admin_search" in wanted:
                self.admin_search(main, duration)
            if "client_credentials" in wanted:
                self.client_credentials(main, self.args.alg, duration, connections, signatures)
            # RssFile is the binary's code and the libraries as the kernel maps them from
            # the page cache (shared, clean, dropped under memory pressure); RssAnon is
            # what the process allocated.
            self.add(Row("RSS idle (after start, before any load)",
                         value=f"{idle_kib / 1024:.1f} MB, of it allocated (RssAnon) "
                               f"{idle_anon_kib / 1024:.1f} MB",
                         bound="10 MB (target)", ratio=idle_kib / 1024 / 10))
            main.stop()
            if "startup" in wanted:
                ready = main.start()
                self.add(Row("start to ready, migrated database", value=f"{ready * 1000:.0f} ms"))
                main.stop()
        finally:
            main.cleanup()
        if "client_credentials" in wanted:
            for alg in ("RS256", "ES256", "EdDSA"):
                if alg == self.args.alg:
                    continue
                other = self.server(alg)
                try:
                    other.start()
                    self.client_credentials(other, alg, duration, connections, signatures)
                finally:
                    other.cleanup()
        if "verify" in wanted:
            for alg, rates in signatures.items():
                self.add(Row(f"gatehouse-verify {alg} (1 core)",
                             value=f"{rates['verify_cached']:.0f}/s",
                             bound=f"{rates['raw_verify']:.0f}/s raw verify",
                             ratio=rates["verify_cached"] / rates["raw_verify"]))
        for name in self.databases:
            psql(self.args.postgres, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        print()
        print_table(self.rows)

    def login_memory(self, server: Server, idle_kib: int, argon2: dict) -> None:
        """1,000 concurrent login attempts: the hashing slots bound memory, the queue the wait."""
        password = tomllib.loads((ROOT / "config" / "default.toml").read_text())["password"]
        slots = password["max_concurrent_hashes"] or self.cores
        bound_kib = idle_kib + slots * argon2["m_cost_kib"] + 20 * 1024
        load = wrk(server, "/api/v1/login", self.args.duration, 1000, "login.lua",
                   env={"LOGIN_USERS": str(LOGIN_USERS)})
        self.add(Row("POST /api/v1/login, 1,000 connections", load,
                     bound=f"{bound_kib / 1024:.0f} MB RSS (idle+{slots}xm+20)",
                     ratio=load.peak_rss_kib / bound_kib,
                     note=f"ratio = peak RSS / bound; errors are the 503s beyond "
                          f"{password['max_queued_hashes']} queued"))

    def isolation(self, server: Server, access_token: str, duration: int) -> None:
        """`/me`, introspection and JWKS while a login flood fills the hashing queue."""
        cases = [
            ("GET /api/v1/me during a login flood", "/api/v1/me", None,
             {"Authorization": "Bearer " + access_token}, {}),
            ("POST /oauth2/introspect during a login flood", "/oauth2/introspect", "introspect.lua",
             {}, {"CLIENT_AUTH": basic(*server.service), "TOKEN": access_token}),
            ("GET /.well-known/jwks.json during a login flood", "/.well-known/jwks.json", None, {},
             {}),
        ]
        for name, path, script, headers, env in cases:
            flood = subprocess.Popen(
                ["wrk", "-t1", "-c64", f"-d{duration + 2}s", "-s", str(HERE / "login.lua"),
                 server.base + "/api/v1/login"], stdout=subprocess.DEVNULL,
                env={**os.environ, "LOGIN_USERS": str(LOGIN_USERS)})
            time.sleep(1)
            load = wrk(server, path, duration, 4, script, headers=headers, env=env)
            flood.wait()
            self.add(Row(name, load, bound="5 ms p99 (target)", ratio=load.p99_ms / 5.0,
                         note="ratio = p99 / 5 ms"))

    def refresh(self, server: Server, duration: int, connections: int) -> None:
        """Refresh chains: each answer's refresh token is the next request's."""
        chains = server.dir / "refresh_tokens"
        tokens = [server.login()["refresh_token"] for _ in range(connections * 4)]
        chains.write_text("\n".join(tokens) + "\n")
        load = wrk(server, "/api/v1/token/refresh", duration, connections, "refresh.lua",
                   env={"REFRESH_TOKENS": str(chains)})
        self.add(Row("POST /api/v1/token/refresh (rotation chains)", load,
                     bound="5,000/s, p99 20 ms (target)", ratio=load.rate / 5000))

    def signup(self, server: Server, duration: int, connections: int, hash_bound: float) -> None:
        """Sign-ups with unique addresses; each queues a verification mail to the sink."""
        before = self.sink.messages
        load = wrk(server, "/api/v1/signup", duration, connections, "signup.lua",
                   env={"SIGNUP_PREFIX": uuid.uuid4().hex[:8]})
        accepted = int(load.extra.get("accepted", 0))
        deadline = time.monotonic() + 60
        while self.sink.messages - before < accepted and time.monotonic() < deadline:
            time.sleep(0.1)
        load.extra["mails"] = self.sink.messages - before
        self.add(Row("POST /api/v1/signup (+ mail over SMTP)", load,
                     bound=f"{hash_bound:.0f}/s argon2", ratio=load.rate / hash_bound,
                     note=f"{accepted} accepted, {self.sink.messages - before} mails received"))

    def code_flow(self, server: Server, duration: int, connections: int) -> None:
        """Authorization code flow for a logged-in browser: authorize, then the code exchange."""
        redirect = "http://127.0.0.1:9/cb"
        app = json.loads(server.cli("client", "create", "--name", "app", "--type", "confidential",
                                    "--grant", "authorization_code", "--redirect-uri", redirect,
                                    "--first-party"))
        cookie = browser_login(server)
        load = wrk(server, "/", duration, connections, "code_flow.lua",
                   headers={"Cookie": cookie},
                   env={"CLIENT_ID": app["client_id"], "CLIENT_AUTH": basic(app["client_id"],
                        app["client_secret"]), "REDIRECT_URI": redirect})
        flows = load.extra.get("flows", 0) / duration
        load.rate = flows
        self.add(Row("authorization code flow (authorize + token)", load, note="flows/s"))

    def admin_search(self, server: Server, duration: int) -> None:
        """`GET /api/v1/admin/users?email=`: an address nobody has, and a prefix of many."""
        admin = server.login("admin@example.com")["access_token"]
        users = self.args.users or 0
        for name, query in [("no match", "zz-nobody@"), ("prefix of many", "seed-1")]:
            load = wrk(server, f"/api/v1/admin/users?email={query}", duration, 4,
                       headers={"Authorization": "Bearer " + admin})
            self.add(Row(f"GET /api/v1/admin/users?email= ({name}, {users:,} seeded)", load))

    def client_credentials(self, server: Server, alg: str, duration: int, connections: int,
                           signatures: dict) -> None:
        load = wrk(server, "/oauth2/token", duration, connections, "service_token.lua",
                   env={"CLIENT_AUTH": basic(*server.service)})
        sign = signatures[alg]["sign"] * self.cores
        self.add(Row(f"POST /oauth2/token client_credentials {alg}", load,
                     bound=f"{sign:.0f}/s sign ({self.cores} cores)", ratio=load.rate / sign))


def seed(server: Server, users: int) -> None:
    """Adds `users` accounts to a SQLite database, each with a session and an audit entry,
    copied from the benchmark user's rows (same hash, timestamps and shape)."""
    if server.database_url.startswith("postgres"):
        sys.exit("--users seeds SQLite only")
    db = sqlite3.connect(server.dir / "gatehouse.db", timeout=60)
    columns = lambda table: [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
    numbers = "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "

    def copy(table: str, overrides: dict[str, str], source: str, template: str,
             parameters: tuple = ()) -> None:
        names = columns(table)
        exprs = [overrides.get(name, f"t.{name}") for name in names]
        db.execute(f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(exprs)} "
                   f"FROM {source}, ({template}) AS t", parameters)

    bench_user = "(SELECT id FROM users WHERE email = 'bench@example.com')"
    with db:
        copy("users", {"id": "randomblob(16)", "email": "'seed-' || n.i || '@example.com'"},
             numbers + "SELECT i FROM n) AS n",
             "SELECT * FROM users WHERE email = 'bench@example.com'", (users,))
        seeded = "(SELECT id FROM users WHERE email LIKE 'seed-%') AS u"
        copy("sessions", {"id": "randomblob(16)", "user_id": "u.id"}, seeded,
             f"SELECT * FROM sessions WHERE user_id = {bench_user} LIMIT 1")
        copy("audit_events", {"id": "NULL", "subject_user_id": "u.id", "actor_user_id": "NULL",
                              "session_id": "NULL"}, seeded,
             "SELECT * FROM audit_events ORDER BY id DESC LIMIT 1")
    db.close()


def browser_login(server: Server) -> str:
    """Logs a browser in through the hosted form; returns its session cookie."""
    jar = server.dir / "cookies"
    page = subprocess.run(["curl", "-s", "-c", jar, "-b", jar, server.base + "/login"],
                          capture_output=True, text=True, check=True).stdout
    csrf = re.search(r'name="csrf_token" value="([^"]*)"', page).group(1)
    subprocess.run(["curl", "-s", "-o", "/dev/null", "-c", jar, "-b", jar, server.base + "/login",
                    "--data-urlencode", f"csrf_token={csrf}", "--data-urlencode",
                    "email=bench@example.com", "--data-urlencode", f"password={PASSWORD}"],
                   check=True)
    for line in jar.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) == 7 and parts[5] == "gatehouse":
            return f"gatehouse={parts[6]}"
    sys.exit("the browser login set no session cookie")


def psql(url: str, statement: str) -> None:
    subprocess.run(["psql", url, "-q", "-c", statement], check=True, capture_output=True)


def machine() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def format_row(row: Row) -> str:
    if row.load:
        l = row.load
        value = (f"{l.rate:>9.0f}/s p50 {l.p50_ms:7.2f} ms p99 {l.p99_ms:7.2f} ms "
                 f"err {l.errors:>4} cores {l.cores:4.2f} peak {l.peak_rss_kib / 1024:5.0f} MB")
    else:
        value = row.value
    ratio = f"{row.ratio:6.2f}" if row.ratio is not None else "      "
    return f"| {row.scenario:<52} | {value} | {row.bound:<32} | {ratio} | {row.note}"


def print_table(rows: list[Row]) -> None:
    print("| scenario | result | bound (same run) | ratio | note |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(format_row(row).replace(" |  ", " | ").rstrip() + " |")


def main() -> None:
    global BINARY
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help=f"any of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--postgres", metavar="URL",
                        help="run on PostgreSQL: a server URL whose database can CREATE DATABASE")
    parser.add_argument("--duration", type=int, default=15, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--alg", default="EdDSA", choices=["EdDSA", "ES256", "RS256"],
                        help="signing algorithm of the main run")
    parser.add_argument("--no-build", action="store_true", help="use target/release as it is")
    parser.add_argument("--users", type=int, default=0,
                        help="seed this many accounts (each with a session and an audit entry) "
                             "into the SQLite database before the scenarios run")
    parser.add_argument("--binary", type=Path, default=BINARY,
                        help="the gatehouse binary (default: target/release/gatehouse)")
    parser.add_argument("--calibrate-binary", type=Path,
                        help="the binary whose `calibrate` gives the argon2 bound (default: --binary)")
    args = parser.parse_args()
    BINARY = args.binary.resolve()
    if args.calibrate_binary:
        global CALIBRATE_BINARY
        CALIBRATE_BINARY = args.calibrate_binary.resolve()
    if args.scenarios == ["all"]:
        args.scenarios = []
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "gatehouse-server"], cwd=ROOT,
                       check=True)
    Bench(args).run()


if __name__ == "__main__":
    main()
