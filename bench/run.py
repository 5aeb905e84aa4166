"""`make bench`: our provider and node-oidc-provider side by side on loopback (bench/README.md).

Steps, in one run:
  1. PostgreSQL and Redis: installed (Debian packages) and started where missing.
  2. Our provider on its production server (`idp serve`: granian) with PostgreSQL and Redis, a
     fresh database `idp_bench`, the captcha off and a plain-http loopback issuer; a confidential
     client (code, refresh, client credentials; trusted: no consent) and a user.
  3. node-oidc-provider (bench/peer, installed with npm) with the same client, user, keys, token
     formats and argon2id parameters, as many cluster workers as ours.
  4. Every scenario at every concurrency, the two systems alternating, with the same load
     generator (bench/loadgen.py); server CPU per operation from /proc.
  5. Floors: argon2id hashes per second on all cores; a bare Flask "hello" under the same server.
  6. Memory: resident memory per worker; Redis memory per session at 100,000 sessions written
     through the provider's own session code path into a private Redis server.
  7. bench/results/<timestamp>.json and latest.json, docs/bench.png, the table in README.md
     (all under one directory instead with --out: tests/integration/test_bench.py runs it so).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import multiprocessing
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import loadgen

VENV_BIN = Path(sys.executable).parent
PEER_DIR = HERE / "peer"
RESULTS = HERE / "results"
CHART = ROOT / "docs" / "bench.png"
README = ROOT / "README.md"

SCENARIOS = ["discovery", "jwks", "client_credentials", "refresh_token", "userinfo", "introspection", "login"]
CONCURRENCY = [1, 8, 32]
# BENCH_DATABASE / BENCH_REDIS_DB: another database name and Redis db for ours, so that two
# sessions on one machine can measure at the same time without dropping each other's database.
BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "idp_bench")
PG_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{BENCH_DATABASE}"
OUR_REDIS_DB, PEER_REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "14")), 13
REDIRECT_URI = "http://127.0.0.1:9/cb"
USER, PASSWORD, USER_NAME = "bench_user", "Bench-pass1!", "测试"
RESOURCE = "urn:idp:bench:api"
README_BEGIN, README_END = "<!-- bench:begin -->", "<!-- bench:end -->"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(cmd: list[str] | str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kwargs)


# -- services -------------------------------------------------------------------------------

def _apt_install(*packages: str) -> None:
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    log(f"installing {' '.join(packages)} (Debian packages)")
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", *packages], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def ensure_postgres() -> None:
    if _port_open(5432):
        return
    if not shutil.which("pg_ctlcluster"):
        _apt_install("postgresql")
        version = min(os.listdir("/etc/postgresql"))
        hba = Path(f"/etc/postgresql/{version}/main/pg_hba.conf")
        # a fresh Debian cluster asks for passwords on TCP; the benchmark connects with trust
        hba.write_text(re.sub(r"(?m)^(host\s+all\s+all\s+127\.0\.0\.1/32\s+)\S+", r"\1trust", hba.read_text()))
    version = min(os.listdir("/etc/postgresql"))
    log(f"starting PostgreSQL {version}")
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
    for _ in range(30):
        if _port_open(5432):
            return
        time.sleep(1)
    raise SystemExit("PostgreSQL did not start on 127.0.0.1:5432")


def ensure_redis() -> None:
    if _port_open(6379):
        return
    if not shutil.which("redis-server"):
        _apt_install("redis-server", "redis-tools")
    log("starting Redis")
    os.makedirs("/var/lib/redis", exist_ok=True)
    os.makedirs("/var/log/redis", exist_ok=True)
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
                    "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
                    "--logfile", "/var/log/redis/ci.log"], check=True)
    for _ in range(30):
        if _port_open(6379):
            return
        time.sleep(1)
    raise SystemExit("Redis did not start on 127.0.0.1:6379")


def fresh_database(name: str = BENCH_DATABASE) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def flush_redis(db: int) -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()


# -- processes --------------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def memory_kib(pid: int) -> dict:
    """RSS and PSS (proportional: shared pages split between the processes sharing them)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("Rss", "Pss"):
                out[key.lower() + "_kib"] = int(value.split()[0])
    except OSError:
        pass
    return out


class Server:
    def __init__(self, name: str, cmd: list[str], env: dict, cwd: Path, logfile: Path) -> None:
        self.name, self.logfile = name, logfile
        self._log = open(logfile, "w")  # noqa: SIM115  (closed in stop())
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_http(self, url: str, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited ({self.proc.returncode}); see {self.logfile}:\n"
                                 + self.logfile.read_text()[-3000:])
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"{self.name} did not answer {url} within {timeout:.0f}s; see {self.logfile}")

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    def workers(self) -> list[int]:
        return _children(self.proc.pid) or [self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


# -- our provider -----------------------------------------------------------------------------

def our_env(port: int, instance: Path, redis_db: int = OUR_REDIS_DB, database_url: str = PG_URL) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    runtime = instance / "run"
    runtime.mkdir(exist_ok=True)
    env.update(
        IDP_ENV="development", IDP_CAPTCHA="off", IDP_ISSUER=f"http://127.0.0.1:{port}", PORT=str(port),
        IDP_DATABASE_URL=database_url, IDP_REDIS_URL=f"redis://127.0.0.1:6379/{redis_db}",
        IDP_INSTANCE_DIR=str(instance),
        # each gunicorn gets its own control socket, not the shared ~/.gunicorn/gunicorn.ctl
        XDG_RUNTIME_DIR=str(runtime),
    )
    for key in ("IDP_ARGON2_TIME_COST", "IDP_ARGON2_MEMORY_KIB", "IDP_ARGON2_PARALLELISM", "IDP_CONFIG",
                "IDP_SERVER", "IDP_THREADS", "IDP_ACCESS_LOG"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def idp(env: dict, *args: str) -> dict:
    result = sh([str(VENV_BIN / "idp"), *args], env=env, cwd=ROOT)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else {}


def setup_ours(env: dict, database: str = BENCH_DATABASE, redis_db: int | None = OUR_REDIS_DB) -> dict:
    """A fresh database ``database`` and (unless ``redis_db`` is None: a caller with a key prefix
    of its own, bench/soak.py) an emptied Redis db, then the client and the user."""
    fresh_database(database)
    if redis_db is not None:
        flush_redis(redis_db)
    idp(env, "db", "upgrade")
    idp(env, "demo", "seed")
    client = idp(env, "clients", "create", "--name", "bench", "--redirect-uri", REDIRECT_URI,
                 "--grant-type", "authorization_code", "--grant-type", "refresh_token",
                 "--grant-type", "client_credentials", "--scope", "openid", "--scope", "profile",
                 "--trusted", "--json")
    idp(env, "users", "create", "--type", "natural", "--login", USER, "--password", PASSWORD, "--name", USER_NAME)
    # Signing keys exist before the workers start, as after any first start: workers that meet
    # an empty key table at once each create keys (PROFILE.md, "correctness findings").
    idp(env, "keys", "rotate")
    return client


def in_process_provider(prefix: str):
    """Our provider built in this process with the benchmark's configuration (fresh database,
    client and user, as `make bench` sets up), for the tools that instrument it from inside
    (roundtrips.py, whatif.py): (app, port for it, client, instance directory)."""
    import logging

    ensure_postgres()
    ensure_redis()
    instance = Path(tempfile.mkdtemp(prefix=prefix))
    port = free_port()
    env = our_env(port, instance)
    client = setup_ours(env)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    from idp import create_app

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    return create_app(), port, client, instance


def our_settings(env: dict, *keys: str) -> dict:
    """Settings as `idp serve` resolves them with ``env`` (idp.settings, in a subprocess)."""
    code = ("import json, sys; from idp.settings import load_settings as l; c = l(); "
            "print(json.dumps({k: c[k] for k in sys.argv[1:]}))")
    out = sh([sys.executable, "-c", code, *keys], env=env, cwd=ROOT).stdout.strip().splitlines()[-1]
    return json.loads(out)


def argon2_params(env: dict) -> dict:
    data = our_settings(env, "ARGON2_TIME_COST", "ARGON2_MEMORY_KIB", "ARGON2_PARALLELISM")
    return {"time_cost": data["ARGON2_TIME_COST"], "memory_kib": data["ARGON2_MEMORY_KIB"],
            "parallelism": data["ARGON2_PARALLELISM"]}


# -- the peer ---------------------------------------------------------------------------------

def install_peer() -> str:
    if not shutil.which("node") or not shutil.which("npm"):
        _apt_install("nodejs", "npm")
    stamp = PEER_DIR / "node_modules" / ".package-lock.json"
    lock = PEER_DIR / "package-lock.json"
    if not stamp.exists() or (lock.exists() and lock.stat().st_mtime > stamp.stat().st_mtime):
        log("installing node-oidc-provider into bench/peer (npm)")
        cmd = ["npm", "ci"] if lock.exists() else ["npm", "install"]
        subprocess.run([*cmd, "--no-audit", "--no-fund", "--loglevel=error"], cwd=PEER_DIR, check=True)
    version = json.loads((PEER_DIR / "node_modules" / "oidc-provider" / "package.json").read_text())["version"]
    return version


def peer_env(port: int, workers: int, client: dict, argon: dict) -> dict:
    env = dict(os.environ)
    env.update(
        PEER_PORT=str(port), PEER_ISSUER=f"http://127.0.0.1:{port}", PEER_WORKERS=str(workers),
        PEER_REDIS_URL=f"redis://127.0.0.1:6379/{PEER_REDIS_DB}",
        BENCH_CLIENT_ID=client["client_id"], BENCH_CLIENT_SECRET=client["client_secret"],
        BENCH_REDIRECT_URI=REDIRECT_URI, BENCH_USER=USER, BENCH_PASSWORD=PASSWORD, BENCH_USER_NAME=USER_NAME,
        BENCH_RESOURCE=RESOURCE, ARGON2_MEMORY_KIB=str(argon["memory_kib"]),
        ARGON2_TIME_COST=str(argon["time_cost"]), ARGON2_PARALLELISM=str(argon["parallelism"]),
        NODE_ENV="production",
    )
    return env


# -- targets --------------------------------------------------------------------------------

def our_target(port: int, client: dict) -> loadgen.Target:
    return loadgen.Target(
        "ours", "127.0.0.1", port,
        {"discovery": "/.well-known/openid-configuration", "jwks": "/jwks.json", "authorize": "/authorize",
         "token": "/token", "userinfo": "/userinfo", "introspect": "/introspect"},
        client["client_id"], client["client_secret"], REDIRECT_URI, USER, PASSWORD,
    )


def peer_target(port: int, client: dict) -> loadgen.Target:
    # JWT access tokens in node-oidc-provider are for a resource server (RFC 8707): the login and
    # refresh scenarios name one; client_credentials gets it by default (peer/server.js).
    return loadgen.Target(
        "peer", "127.0.0.1", port,
        {"discovery": "/.well-known/openid-configuration", "jwks": "/jwks", "authorize": "/auth",
         "token": "/token", "userinfo": "/me", "introspect": "/token/introspection"},
        client["client_id"], client["client_secret"], REDIRECT_URI, USER, PASSWORD,
        scope="openid profile api", auth_extra={"resource": RESOURCE},
    )


def prepare_tokens(target: loadgen.Target, chains: int) -> None:
    """Refresh-token chains (one per virtual user) and the bearer token for userinfo and
    introspection. node-oidc-provider serves userinfo and introspects only opaque access tokens
    (a JWT access token is for a resource server, not for it), so its bearer token comes from a
    login without a resource indicator; ours are JWTs, as every access token of ours is."""
    logins = loadgen.prepare_logins(target, chains)
    target.state["refresh_tokens"] = [t["refresh_token"] for t in logins]
    if target.name == "peer":
        plain = loadgen.Target(**{**target.__dict__, "scope": "openid profile", "auth_extra": {}, "state": {}})
        bearer = loadgen.prepare_logins(plain, 1)[0]["access_token"]
    else:
        bearer = logins[0]["access_token"]
    target.state["userinfo_token"] = target.state["introspection_token"] = bearer


# -- floors -----------------------------------------------------------------------------------

def _argon2_worker(args) -> int:
    time_cost, memory_kib, parallelism, seconds = args
    from argon2 import PasswordHasher

    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
    stored = hasher.hash("Bench-pass1!")
    end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        hasher.verify(stored, "Bench-pass1!")
        n += 1
    return n


def argon2_floor(argon: dict, cores: int, seconds: float = 4.0) -> dict:
    """Verifications per second with the configured parameters, one process per core (a
    verification costs what a hash costs)."""
    args = (argon["time_cost"], argon["memory_kib"], argon["parallelism"], seconds)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(cores) as pool:
        t0 = time.perf_counter()
        counts = pool.map(_argon2_worker, [args] * cores)
        elapsed = time.perf_counter() - t0 - 0.0
    alone = min(seconds, 1.5)
    single = _argon2_worker((*args[:3], alone)) / alone
    return {"processes": cores, "hashes_per_s": round(sum(counts) / seconds, 2),
            "hashes_per_s_one_core": round(single, 2), "wall_s": round(elapsed, 2), **argon}


# -- memory -----------------------------------------------------------------------------------

def session_template(redis_db: int) -> dict | None:
    """A real signed-in session of ours, as the login scenario left it in Redis."""
    import redis

    r = redis.Redis(host="127.0.0.1", port=6379, db=redis_db)
    for key in r.scan_iter(match="idp:session:*", count=500):
        value = r.hget(key, "v")
        if value:
            data = json.loads(value)
            if data.get("account_id"):
                return data
    return None


def redis_session_memory(template: dict | None, count: int, lifetime: int) -> dict:
    """`count` sessions written with the provider's RedisStore, as StoreSessionInterface writes
    them, into a private redis-server (so nobody else's keys move the figure)."""
    import redis

    from idp.clock import SystemClock
    from idp.sessions import _KEY
    from idp.store import RedisStore

    if template is None:  # what login/flow.py finish() stores, should the capture fail
        template = {"account_id": 1, "login_name": USER, "account_type": "natural", "auth_time": int(time.time()),
                    "amr": ["pwd"], "sid": secrets.token_urlsafe(24), "fresh_login_for": "/authorize?" + "x" * 150,
                    "csrf_token": secrets.token_hex(20), "_refreshed": int(time.time())}
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="idp-bench-redis-"))
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(50):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        store = RedisStore(f"redis://127.0.0.1:{port}/0", SystemClock(), "idp:")
        before = client.info("memory")
        t0 = time.perf_counter()

        def write(i: int) -> None:
            data = dict(template)
            data["account_id"] = 100000 + i
            data["login_name"] = f"user{i:07d}"
            if "sid" in data:
                data["sid"] = secrets.token_urlsafe(24)
            if "csrf_token" in data:
                data["csrf_token"] = secrets.token_hex(20)
            sid = secrets.token_urlsafe(32)
            store.set(_KEY + sid, json.dumps(data).encode(), lifetime)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for _ in pool.map(write, range(count), chunksize=256):
                pass
        elapsed = time.perf_counter() - t0
        after = client.info("memory")
        keys = client.dbsize()
        sample_key = client.randomkey()
        sample = client.memory_usage(sample_key) if sample_key else None
        delta = after["used_memory"] - before["used_memory"]
        return {
            "sessions": count, "keys": keys, "used_memory_before": before["used_memory"],
            "used_memory_after": after["used_memory"], "bytes_per_session": round(delta / count, 1),
            "memory_usage_one_key": sample, "session_json_bytes": len(json.dumps(template).encode()),
            "write_seconds": round(elapsed, 2), "target_bytes": 2048,
            "meets_target": delta / count <= 2048, "template_keys": sorted(template),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def peer_session_sample(db: int = PEER_REDIS_DB) -> int | None:
    import redis

    r = redis.Redis(host="127.0.0.1", port=6379, db=db)
    for key in r.scan_iter(match="peer:Session:*", count=500):
        return r.memory_usage(key)
    return None


# -- measuring --------------------------------------------------------------------------------

def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return (total - idle) / tick, total / tick


def median_run(runs: list[dict]) -> dict:
    """Of several rounds of one scenario, the run with the median throughput, whole (its
    latencies and CPU belong together); its errors are those of every round, so none is hidden."""
    if len(runs) == 1:
        return runs[0]
    chosen = dict(sorted(runs, key=lambda r: r["rps"])[len(runs) // 2])
    chosen["rps_rounds"] = [r["rps"] for r in runs]
    chosen["errors"] = sum(r["errors"] for r in runs)
    samples = sum((Counter(r.get("error_samples", {})) for r in runs), Counter())
    chosen["error_samples"] = dict(samples.most_common(3))
    return chosen


def measure(scenario: str, target: loadgen.Target, server: Server, concurrency: int, args) -> dict:
    """One run; the server's CPU (all its processes, from /proc) is read as the window opens
    and closes, so CPU per operation covers exactly the operations counted. The machine's
    busy CPU is read too: what neither the server nor the load generator used is other load
    (other people's work on a shared machine), reported as `other_cpu_pct`."""
    pids = server.pids()
    cpu: dict = {}

    def reading(key: str) -> None:
        cpu[key] = (cpu_seconds(pids), *machine_cpu())

    hooks = {"start": lambda: reading("start"), "end": lambda: reading("end")}
    result = loadgen.run(scenario, target, concurrency, duration=args.duration, max_ops=args.max_ops,
                         warmup=args.warmup, max_warmup=args.max_warmup, hooks=hooks)
    start, end = cpu.get("start", (0.0, 0.0, 0.0)), cpu.get("end", (0.0, 0.0, 0.0))
    used = end[0] - start[0]
    seconds = result["duration_s"]
    ended = result["ops"] + result["errors"]
    result["server_cpu_s"] = round(used, 3)
    result["server_cpu_pct"] = round(100 * used / seconds, 1) if seconds else None
    result["server_cpu_ms_per_op"] = round(1000 * used / ended, 3) if ended else None
    busy = end[1] - start[1]
    if seconds:
        result["machine_cpu_pct"] = round(100 * busy / seconds, 1)  # of one core; max = cores × 100
        result["other_cpu_pct"] = round(100 * max(0.0, busy - used - result["loadgen_cpu_s"]) / seconds, 1)
    return result


def summarise(results: dict) -> list[dict]:
    rows = []
    for scenario in SCENARIOS:
        for c in CONCURRENCY:
            ours = results["ours"].get(scenario, {}).get(str(c))
            peer = results.get("peer", {}).get(scenario, {}).get(str(c))
            if not ours:
                continue
            row = {"scenario": scenario, "concurrency": c, "ours": ours, "peer": peer}
            if peer and peer["rps"]:
                row["ratio"] = round(ours["rps"] / peer["rps"], 3)
            if peer and ours["p99_ms"] is not None and peer["p99_ms"] is not None:
                row["p99_no_worse"] = ours["p99_ms"] <= peer["p99_ms"]
            hello = results.get("floors", {}).get("hello", {}).get(str(c))
            if hello and hello["rps"] and scenario != "login":
                row["of_hello_floor"] = round(ours["rps"] / hello["rps"], 3)
            argon = results.get("floors", {}).get("argon2")
            if argon and scenario == "login":
                row["of_argon2_floor"] = round(ours["rps"] / argon["hashes_per_s"], 3)
            rows.append(row)
    return rows


def targets(rows: list[dict]) -> dict:
    out = {"c8_ratio_ge_1": {}, "c8_p99_no_worse": {}}
    for row in rows:
        if row["concurrency"] == 8 and "ratio" in row:
            out["c8_ratio_ge_1"][row["scenario"]] = row["ratio"] >= 1.0
            out["c8_p99_no_worse"][row["scenario"]] = row.get("p99_no_worse")
        if row["scenario"] == "login" and row["concurrency"] == 8 and "of_argon2_floor" in row:
            out["login_ge_0_8_argon2"] = row["of_argon2_floor"] >= 0.8
    return out


# -- reporting --------------------------------------------------------------------------------

def _fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def markdown(results: dict) -> str:
    rows = summarise(results)
    meta = results["meta"]
    argon = results["floors"].get("argon2", {})
    others = [r[k]["other_cpu_pct"] for r in rows for k in ("ours", "peer")
              if r.get(k) and r[k].get("other_cpu_pct") is not None]
    other = sum(others) / len(others) if others else None
    lines = [
        f"Measured {meta['timestamp']} on {meta['cpu']} ({meta['cores']} cores), commit {meta['commit']}; "
        f"{meta['workers']} {meta.get('server') or 'gunicorn'} workers ({meta['worker_class']}) vs node-oidc-provider "
        f"{meta['peer_version']} on Node {meta['node']} with {meta['workers']} cluster workers; "
        f"{meta['duration_s']:g} s per run after a warm-up of at least {meta['warmup_s']:g} s (at most "
        f"{meta['max_ops']:,} operations)"
        + (f"; each row is the median of {meta['rounds']} rounds, the systems alternating"
           if meta.get("rounds", 1) > 1 else "")
        + f". argon2id m = {argon.get('memory_kib')} KiB, t = {argon.get('time_cost')}, "
        f"p = {argon.get('parallelism')}. Load average at start {meta['loadavg_start']:.1f}"
        + (f"; processes other than the two servers and the load generator (PostgreSQL and Redis among them) "
           f"used {other:.0f} % CPU on average during the runs (of {100 * meta['cores']} %)"
           if other is not None else "") + ".",
        "",
        ("| scenario | c | ours req/s | peer req/s | ours/peer | ours p50 / p95 / p99 ms | peer p50 / p95 / p99 ms "
         "| errors ours / peer | ours CPU ms/op | peer CPU ms/op | loadgen CPU ours / peer | of floor |"),
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        o, p = row["ours"], row["peer"] or {}
        ratio = row.get("ratio")
        mark = "" if ratio is None else (" ✓" if ratio >= 1 else " ✗")
        p99flag = "" if row.get("p99_no_worse") in (None, True) else " ✗"
        floor = row.get("of_hello_floor", row.get("of_argon2_floor"))
        floor_txt = "–" if floor is None else f"{100 * floor:.0f} % of {'argon2' if row['scenario'] == 'login' else 'hello'}"
        lines.append(
            f"| {row['scenario']} | {row['concurrency']} | {_fmt(o['rps'])} | {_fmt(p.get('rps'))} | "
            f"{_fmt(ratio, 2)}{mark} | {_fmt(o['p50_ms'])} / {_fmt(o['p95_ms'])} / {_fmt(o['p99_ms'])}{p99flag} | "
            f"{_fmt(p.get('p50_ms'))} / {_fmt(p.get('p95_ms'))} / {_fmt(p.get('p99_ms'))} | "
            f"{o['errors']} / {p.get('errors', '–')} | {_fmt(o.get('server_cpu_ms_per_op'), 2)} | "
            f"{_fmt(p.get('server_cpu_ms_per_op'), 2)} | {_fmt(o['loadgen_cpu_pct'])} % / "
            f"{_fmt(p.get('loadgen_cpu_pct'))} % | {floor_txt} |")
    floors = results["floors"]
    hello = floors.get("hello", {})
    mem = results.get("memory", {})
    lines += [
        "",
        "Floors: argon2id "
        f"{_fmt(argon.get('hashes_per_s'))} hashes/s on {argon.get('processes')} processes "
        f"({_fmt(argon.get('hashes_per_s_one_core'))} on one core); bare Flask hello under the same server "
        + ", ".join(f"c={c}: {_fmt(hello[str(c)]['rps'])} req/s (p99 {_fmt(hello[str(c)]['p99_ms'])} ms)"
                    for c in CONCURRENCY if str(c) in hello) + ".",
    ]
    workers = mem.get("ours_workers", [])
    if workers:
        rss = sum(w.get("rss_kib", 0) for w in workers) / len(workers) / 1024
        pss = sum(w.get("pss_kib", 0) for w in workers) / len(workers) / 1024
        line = f"Memory: ours {rss:.0f} MiB RSS ({pss:.0f} MiB PSS) per worker after the runs"
        pw = mem.get("peer_workers", [])
        if pw:
            prss = sum(w.get("rss_kib", 0) for w in pw) / len(pw) / 1024
            line += f", peer {prss:.0f} MiB RSS per worker"
        rs = mem.get("redis_sessions")
        if rs:
            line += (f"; Redis {rs['bytes_per_session']:,.0f} bytes per signed-in session at "
                     f"{rs['sessions']:,} sessions (target ≤ 2,048: {'met' if rs['meets_target'] else 'NOT met'})")
        if mem.get("peer_session_key_bytes"):
            line += f"; one peer session key: {mem['peer_session_key_bytes']} bytes"
        lines.append(line + ".")
    t = results.get("targets", {})
    if t:
        missed = [s for s, ok in t.get("c8_ratio_ge_1", {}).items() if not ok]
        worse = [s for s, ok in t.get("c8_p99_no_worse", {}).items() if ok is False]
        lines.append("")
        lines.append("Targets at c = 8: ratio ≥ 1.0 " + ("met everywhere" if not missed else
                     "missed by " + ", ".join(f"{s} ({next(r['ratio'] for r in rows if r['scenario'] == s and r['concurrency'] == 8):.2f})" for s in missed))
                     + "; p99 no worse " + ("everywhere" if not worse else "missed by " + ", ".join(worse))
                     + "; logins/s ≥ 0.8 × argon2id hashes/s: "
                     + ({True: "met", False: "NOT met", None: "–"}[t.get("login_ge_0_8_argon2")]) + ".")
    return "\n".join(lines)


def update_readme(table: str, readme: Path = README) -> None:
    text = readme.read_text()
    block = f"{README_BEGIN}\n{table}\n{README_END}"
    if README_BEGIN in text and README_END in text:
        head, rest = text.split(README_BEGIN, 1)
        _, tail = rest.split(README_END, 1)
        readme.write_text(head + block + tail)
    else:  # first run: the Performance section goes at the end
        readme.write_text(text.rstrip("\n") + "\n\n## Performance\n\n" + block + "\n")


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rows = summarise(results)
    floors = results.get("floors", {})
    fig, axes = plt.subplots(2, 4, figsize=(16, 7.5))
    width = 0.38
    for ax, scenario in zip(axes.flat, SCENARIOS):
        sel = [r for r in rows if r["scenario"] == scenario]
        xs = list(range(len(sel)))
        ours = [r["ours"]["rps"] or 0 for r in sel]
        peer = [(r["peer"] or {}).get("rps") or 0 for r in sel]
        ax.bar([x - width / 2 for x in xs], ours, width, color="#b22222")
        ax.bar([x + width / 2 for x in xs], peer, width, color="#4d7ea8")
        values = [v for v in ours + peer if v > 0]
        for x, r in zip(xs, sel):
            if "ratio" in r:
                ax.annotate(f"×{r['ratio']:.2f}", (x, max(ours[x], peer[x], 0.1)), ha="center", va="bottom",
                            fontsize=8, xytext=(0, 2), textcoords="offset points")
        if scenario == "login" and "argon2" in floors:
            floor = floors["argon2"]["hashes_per_s"]
            ax.axhline(floor, color="grey", ls="--", lw=1)
            values.append(floor)
        elif "hello" in floors:
            hello = [floors["hello"].get(str(r["concurrency"]), {}).get("rps") for r in sel]
            ax.plot(xs, hello, color="grey", ls="--", marker="_", lw=1)
            values += [v for v in hello if v]
        ax.set_yscale("log")
        if values:
            ax.set_ylim(min(values) / 2, max(values) * 2.5)
        ax.set_title(scenario + (" — logins/s" if scenario == "login" else " — req/s"), fontsize=10)
        ax.set_xticks(xs, [f"c={r['concurrency']}" for r in sel])
        ax.tick_params(labelsize=8)
    ax = axes.flat[-1]
    c8 = [r for r in rows if r["concurrency"] == 8]
    xs = list(range(len(c8)))
    ax.bar([x - width / 2 for x in xs], [r["ours"]["p99_ms"] or 0 for r in c8], width, color="#b22222")
    ax.bar([x + width / 2 for x in xs], [(r["peer"] or {}).get("p99_ms") or 0 for r in c8], width, color="#4d7ea8")
    ax.set_yscale("log")
    ax.set_title("p99 latency at c=8 (ms)", fontsize=10)
    ax.set_xticks(xs, [r["scenario"] for r in c8], fontsize=7, rotation=35, ha="right")
    handles = [Patch(color="#b22222", label=f"ours (Flask, Authlib, {results['meta'].get('server') or 'gunicorn'})"),
               Patch(color="#4d7ea8", label="node-oidc-provider"),
               Line2D([], [], color="grey", ls="--", label="floor: bare Flask hello (logins: argon2id hashes/s)")]
    fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=9)
    meta = results["meta"]
    fig.text(0.5, 0.01, f"make bench, {meta['timestamp']}: {meta['cores']} cores, {meta['workers']} workers each, "
             f"log scales; ×ratio = ours/peer", ha="center", fontsize=9)
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def metadata(args, workers: int, peer_version: str | None) -> dict:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = sh(["git", "log", "-1", "--format=%h"], cwd=ROOT).stdout.strip()
        dirty = bool(sh(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT).stdout.strip())
        commit += "+changes" if dirty else ""
    except (subprocess.CalledProcessError, FileNotFoundError):
        commit = "unknown"
    node = sh(["node", "--version"]).stdout.strip() if shutil.which("node") else None
    from importlib.metadata import version

    return {
        "timestamp": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": cpu, "cores": os.cpu_count(), "commit": commit, "workers": workers,
        "worker_class": None, "python": platform.python_version(), "node": node,
        "peer_version": peer_version, "authlib": version("authlib"), "gunicorn": version("gunicorn"), "granian": version("granian"),
        "flask": version("flask"), "duration_s": args.duration, "warmup_s": args.warmup,
        "max_ops": args.max_ops, "concurrency": args.concurrency, "rounds": args.rounds,
        "loadavg_start": os.getloadavg()[0],
        "loadgen": "bench/loadgen.py (one asyncio process, the same for both systems)",
    }


# -- main -------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", "0")) or None,
                        help="server workers for ours and cluster workers for the peer "
                             "(default: BENCH_WORKERS, else the number of cores)")
    parser.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_DURATION", "5")))
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds of warm-up; it goes on until every virtual user has finished one "
                             "operation, up to --max-warmup")
    parser.add_argument("--max-warmup", type=float, default=20.0)
    parser.add_argument("--max-ops", type=int, default=50_000)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--sessions", type=int, default=100_000, help="sessions for the Redis memory figure")
    parser.add_argument("--no-peer", action="store_true", help="measure ours only (no ratios)")
    parser.add_argument("--no-floors", action="store_true")
    parser.add_argument("--no-report", action="store_true", help="write no README table and no chart")
    parser.add_argument("--label", default="", help="added to the result file name")
    parser.add_argument("--floor-seconds", type=float, default=4.0,
                        help="seconds of the argon2id floor's measurement")
    parser.add_argument("--out", type=Path,
                        help="write the results, the chart and the README table under this directory "
                             "(results/, bench.png, a copy of README.md) instead of bench/results, "
                             "docs/bench.png and README.md: for trials and the benchmark's own test")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds of each scenario, the systems alternating; the run with the median "
                             "throughput is reported (a shared machine's noise: bench/README.md)")
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    scenarios = [s for s in args.scenarios.split(",") if s]
    global CONCURRENCY
    CONCURRENCY = args.concurrency
    cores = os.cpu_count() or 1
    workers = args.workers or cores
    t_begin = time.monotonic()

    results_dir, chart_path, readme = RESULTS, CHART, README
    if args.out:
        results_dir, chart_path, readme = args.out / "results", args.out / "bench.png", args.out / "README.md"
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(README, readme)
    ensure_postgres()
    ensure_redis()
    peer_version = None if args.no_peer else install_peer()
    results_dir.mkdir(exist_ok=True)
    instance = Path(tempfile.mkdtemp(prefix="idp-bench-"))
    servers: list[Server] = []
    results: dict = {"meta": metadata(args, workers, peer_version), "ours": {}, "peer": {}, "floors": {},
                     "memory": {}}
    try:
        our_port = free_port()
        env = our_env(our_port, instance)
        log(f"setting up our provider (fresh database {BENCH_DATABASE}, client, user)")
        client = setup_ours(env)
        argon = argon2_params(env)
        results["meta"]["argon2"] = argon
        log(f"starting idp serve --workers {workers} on :{our_port}")
        ours = Server("ours", [str(VENV_BIN / "idp"), "serve", "--workers", str(workers)], env, ROOT,
                      instance / "ours.log")
        servers.append(ours)
        ours.wait_http(f"http://127.0.0.1:{our_port}/.well-known/openid-configuration")
        served = our_settings(env, "SERVER", "THREADS")
        results["meta"]["server"] = served["SERVER"]
        results["meta"]["worker_class"] = (f"{served['THREADS']} blocking threads" if served["SERVER"] == "granian"
                                           else f"gthread, {served['THREADS']} threads")
        systems = [("ours", ours, our_target(our_port, client))]

        if not args.no_peer:
            flush_redis(PEER_REDIS_DB)
            peer_port = free_port()
            log(f"starting node-oidc-provider {peer_version} with {workers} worker(s) on :{peer_port}")
            peer = Server("peer", ["node", "server.js"], peer_env(peer_port, workers, client, argon), PEER_DIR,
                          instance / "peer.log")
            servers.append(peer)
            peer.wait_http(f"http://127.0.0.1:{peer_port}/.well-known/openid-configuration")
            systems.append(("peer", peer, peer_target(peer_port, client)))

        for name, _, target in systems:
            log(f"{name}: {max(args.concurrency)} logins for refresh-token chains and bearer tokens")
            prepare_tokens(target, max(args.concurrency))

        for i, scenario in enumerate(scenarios):
            for j, c in enumerate(args.concurrency):
                runs: dict[str, list] = {name: [] for name, _, _ in systems}
                for k in range(args.rounds):
                    order = systems if (i + j + k) % 2 == 0 else list(reversed(systems))
                    for name, server, target in order:
                        r = measure(scenario, target, server, c, args)
                        runs[name].append(r)
                        log(f"{name:4} {scenario:18} c={c:<3} {r['rps']:>9.1f}/s p50 {r['p50_ms']} p99 {r['p99_ms']} "
                            f"ms err {r['errors']} cpu {r['server_cpu_ms_per_op']} ms/op lg {r['loadgen_cpu_pct']}%")
                        if r["errors"]:
                            log(f"     errors: {r['error_samples']}")
                for name, measured in runs.items():
                    results[name].setdefault(scenario, {})[str(c)] = median_run(measured)

        mem = results["memory"]
        mem["ours_workers"] = [{"pid": p, **memory_kib(p)} for p in ours.workers()]
        mem["ours_master"] = memory_kib(ours.proc.pid)
        if not args.no_peer:
            mem["peer_workers"] = [{"pid": p, **memory_kib(p)} for p in systems[1][1].workers()]
            mem["peer_session_key_bytes"] = peer_session_sample()
        template = session_template(OUR_REDIS_DB)
        for server in servers:
            server.stop()
        servers.clear()

        if not args.no_floors:
            log(f"floor: argon2id verifications per second on {cores} processes")
            results["floors"]["argon2"] = argon2_floor(argon, cores, args.floor_seconds)
            log(f"       {results['floors']['argon2']['hashes_per_s']} hashes/s")
            hello_port = free_port()
            hello_env = our_env(hello_port, instance)
            hello = Server("hello", [sys.executable, str(HERE / "hello_serve.py"), "--workers", str(workers)],
                           hello_env, ROOT, instance / "hello.log")
            servers.append(hello)
            hello.wait_http(f"http://127.0.0.1:{hello_port}/hello")
            target = loadgen.Target("hello", "127.0.0.1", hello_port, {"hello": "/hello"}, "", "", "", "", "")
            for c in args.concurrency:
                r = measure("hello", target, hello, c, args)
                results["floors"].setdefault("hello", {})[str(c)] = r
                log(f"hello c={c:<3} {r['rps']:>9.1f}/s p99 {r['p99_ms']} ms")
            hello.stop()
            servers.clear()

        if args.sessions:
            log(f"memory: {args.sessions:,} sessions through RedisStore into a private redis-server")
            mem["redis_sessions"] = redis_session_memory(template, args.sessions, 28800)
            log(f"       {mem['redis_sessions']['bytes_per_session']} bytes per session")
    except BaseException:
        for server in servers:
            server.stop()
        servers.clear()
        for logfile in sorted(instance.glob("*.log")):
            tail = logfile.read_text(errors="replace")[-4000:]
            log(f"--- end of {logfile.name} ---\n{tail}")
        raise
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(instance, ignore_errors=True)

    rows = summarise(results)
    results["rows"] = rows
    results["targets"] = targets(rows)
    results["meta"]["wall_s"] = round(time.monotonic() - t_begin, 1)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S") + (f"-{args.label}" if args.label else "")
    text = json.dumps(results, indent=2, ensure_ascii=False)
    (results_dir / f"{stamp}.json").write_text(text)
    (results_dir / "latest.json").write_text(text)
    table = markdown(results)
    if not args.no_report:
        try:
            chart(results, chart_path)
        except ImportError:
            log("matplotlib is missing: no chart (pip install matplotlib)")
        update_readme(table, readme)
    print(table)
    log(f"done in {results['meta']['wall_s']:.0f} s; results in {results_dir / stamp}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
