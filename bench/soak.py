"""`make soak`: the provider under mixed traffic for a bounded time, then a pass/fail verdict
on what must not grow (docs/soak.md).

    .venv/bin/python bench/soak.py [--minutes 10] [--concurrency 4] [--rate 0] [--out DIR]

One run:
  1. PostgreSQL and Redis on 127.0.0.1 (bench/run.py starts them where missing); a database of
     the run's own (`idp_soak_<pid>`, created here and dropped at the end) and a Redis key prefix
     of its own (`idp-soak-<pid>:` in db 12, its keys deleted at the end).
  2. The provider on its production server, `idp serve` (granian), set up as `make bench` sets
     it up (bench/run.py: a trusted confidential client, a user, signing keys).
  3. Mixed traffic on loopback from the benchmark's load generator (bench/loadgen.py): each
     virtual user starts with a full browser login (authorize → login page → login → code →
     token) and then cycles through userinfo, introspection, refreshes and code exchanges on its
     single sign-on session, with a new login every tenth operation. Every response's status is
     counted. It stops by itself at the time limit (or `--max-ops`).
  4. Meanwhile, every few seconds: resident memory and open file descriptors of the server's
     worker processes (/proc), the database's connections (pg_stat_activity) and the server's
     Redis connections (CLIENT LIST, matched to the server processes' own sockets).
  5. After a warm-up (a fifth of the run, 10 s to 5 min), the checks of `evaluate` decide; the
     JSON result and a Markdown summary go to bench/results/ (or `--out`); the exit status is 1
     when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
import run  # noqa: E402

REDIS_DB = 12
MEMORY_GROWTH_LIMIT = 0.05      # resident memory of the workers, end of warm-up → end
WINDOW_FRACTION = 0.10          # the early and the late window, each a tenth of the measured time
CYCLE = ["userinfo", "introspection", "refresh", "userinfo", "code_exchange", "introspection",
         "refresh", "userinfo", "introspection", "login"]
KINDS = ["login", "code_exchange", "refresh", "userinfo", "introspection"]


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the decision: pure functions of the samples (tests/unit/test_soak_checks.py) -------------------

def warmup_seconds(total: float) -> float:
    """A fifth of the run, at least 10 s (a first login per user) and at most 5 min. What is
    bounded but fills with use must be full by then: the verified-token cache of each worker
    (idp.oauth.server, 4,096 access tokens) takes some 6 minutes at the default traffic on 2
    cores, and memory grows meanwhile; a run shorter than half an hour sees part of it."""
    return min(300.0, max(10.0, total / 5))


def _between(samples: list[dict], start: float, end: float, key: str) -> list[float]:
    return [s[key] for s in samples if start <= s["t"] <= end and s.get(key) is not None]


def windows(samples: list[dict], measure_start: float, end: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """The early window (just after warm-up) and the late one (the end of the run), each a tenth
    of the measured time but never shorter than two sampling intervals."""
    times = sorted(s["t"] for s in samples)
    interval = min((b - a for a, b in zip(times, times[1:]) if b > a), default=1.0)
    width = max((end - measure_start) * WINDOW_FRACTION, 2 * interval)
    return (measure_start, measure_start + width), (end - width, end)


def _growth(before: float, after: float) -> float:
    return (after - before) / before if before else float("inf")


def evaluate(samples: list[dict], measure_start: float, end: float, statuses: dict,
             failures: int) -> dict:
    """Pass or fail, check by check, from the samples taken during the run.

    - `no_5xx`: not one 5xx answer during the whole run, warm-up included (stricter than after
      warm-up only: a server error is a defect whenever it happens).
    - `no_failed_operations`: no operation failed otherwise (a wrong answer, a timeout, a
      refused refresh): a soak that passes on wrong answers proves nothing.
    - `memory`: the median of the workers' summed resident memory in the late window is less than
      5 % above its median in the early window, and so is each worker's own (a leak in one of
      several workers is diluted in the sum). Medians, because one sample can catch a worker in
      the middle of a large request.
    - `db_connections`, `redis_connections`, `fds`: no growth. A leak only grows, so it shows as
      a late window whose *lowest* value is above the *highest* of the early window; a pool that
      opens and closes an overflow connection now and then stays within its early range.
    - `workers_unchanged`: the same worker processes from the first sample to the last (a worker
      restarted by the server would hide its own growth).
    Every check needs samples in both windows: without them it fails, as "no data"."""
    early, late = windows(samples, measure_start, end)
    checks: dict[str, dict] = {}
    server_errors = {code: n for code, n in statuses.items() if int(code) >= 500}
    checks["no_5xx"] = {"ok": not server_errors, "server_errors": server_errors,
                        "rule": "no HTTP 5xx answer in the whole run"}
    checks["no_failed_operations"] = {"ok": failures == 0, "failed": failures,
                                      "rule": "every operation got the answer it expects"}

    before, after = _between(samples, *early, "rss_kib"), _between(samples, *late, "rss_kib")
    if before and after:
        base, last = statistics.median(before), statistics.median(after)
        growth = _growth(base, last)
        per_worker = {}
        for pid in sorted({p for s in samples for p in s.get("workers", [])}):
            mine = [{"t": s["t"], "rss": dict(zip(s["workers"], s.get("rss_kib_per_worker") or [])).get(pid)}
                    for s in samples]
            w_before, w_after = _between(mine, *early, "rss"), _between(mine, *late, "rss")
            if w_before and w_after:
                per_worker[str(pid)] = round(100 * _growth(statistics.median(w_before), statistics.median(w_after)), 2)
        worst = max(per_worker.values(), default=None)
        ok = growth < MEMORY_GROWTH_LIMIT and (worst is None or worst < 100 * MEMORY_GROWTH_LIMIT)
        checks["memory"] = {"ok": ok, "early_kib": base, "late_kib": last, "growth_pct": round(100 * growth, 2),
                            "worker_growth_pct": per_worker, "limit_pct": 100 * MEMORY_GROWTH_LIMIT,
                            "rule": "median RSS in the late window < 1.05 × in the early window, "
                                    "for the workers together and for each one"}
    else:
        checks["memory"] = {"ok": False, "reason": "no_data", "rule": "samples in both windows"}

    for key, name in (("pg_connections", "db_connections"), ("redis_connections", "redis_connections"),
                      ("fds", "fds")):
        before, after = _between(samples, *early, key), _between(samples, *late, key)
        if before and after:
            checks[name] = {"ok": min(after) <= max(before), "early_max": max(before), "late_min": min(after),
                            "late_max": max(after), "rule": "lowest value late ≤ highest value early"}
        else:
            checks[name] = {"ok": False, "reason": "no_data", "rule": "samples in both windows"}

    pid_sets = {tuple(sorted(s["workers"])) for s in samples if s.get("workers")}
    checks["workers_unchanged"] = {"ok": len(pid_sets) == 1, "worker_sets": [list(p) for p in sorted(pid_sets)],
                                   "rule": "the same worker processes in every sample"}
    return {"passed": all(c["ok"] for c in checks.values()), "early_window_s": list(early),
            "late_window_s": list(late), "checks": checks}


# -- what is sampled ------------------------------------------------------------------------------

def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except OSError:
        pass
    return inodes


def _fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def local_ports_to(pids: list[int], remote_port: int) -> set[int]:
    """Local ports of the TCP connections that these processes hold to `remote_port` (from
    /proc/net/tcp{,6}, matched by socket inode)."""
    inodes: set[int] = set()
    for pid in pids:
        inodes |= _socket_inodes(pid)
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == remote_port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


class Sampler(threading.Thread):
    """Reads the figures every `interval` seconds until stopped; one reading = one sample."""

    def __init__(self, server: run.Server, database: str, interval: float, t0: float) -> None:
        super().__init__(daemon=True)
        self.server, self.database, self.interval, self.t0 = server, database, interval, t0
        self.samples: list[dict] = []
        self.stop_event = threading.Event()
        self.failures: list[str] = []

    def read(self) -> dict:
        import psycopg
        import redis

        workers = self.server.workers()
        everyone = self.server.pids()
        memory = [run.memory_kib(p).get("rss_kib") for p in workers]
        fds = [_fd_count(p) for p in workers]
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True,
                             connect_timeout=5) as conn:
            states = dict(conn.execute("SELECT coalesce(state, '?'), count(*) FROM pg_stat_activity "
                                       "WHERE datname = %s GROUP BY 1", (self.database,)).fetchall())
        ports = local_ports_to(everyone, 6379)
        client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5)
        try:
            listed = client.client_list()
        finally:
            client.close()
        redis_conns = sum(1 for c in listed if int(c["addr"].rsplit(":", 1)[1]) in ports)
        return {"t": round(time.monotonic() - self.t0, 2), "workers": workers,
                "rss_kib": sum(m for m in memory if m) if all(memory) else None,
                "rss_kib_per_worker": memory,
                "fds": sum(fds) if all(f is not None for f in fds) else None, "fds_per_worker": fds,
                "pg_connections": sum(states.values()), "pg_states": states, "redis_connections": redis_conns,
                "server_cpu_s": round(run.cpu_seconds(everyone), 2), "machine_cpu": run.machine_cpu()}

    def run(self) -> None:
        reported = 0.0
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                sample = self.read()
                self.samples.append(sample)
                if sample["t"] - reported >= 60:  # a sign of life on long runs
                    reported = sample["t"]
                    log(f"{sample['t'] / 60:4.1f} min: RSS {(sample['rss_kib'] or 0) / 1024:.0f} MiB, "
                        f"{sample['fds']} fds, {sample['pg_connections']} database and "
                        f"{sample['redis_connections']} Redis connections")
            except Exception as exc:  # noqa: BLE001  (a missed sample is reported, the run goes on)
                self.failures.append(f"{time.monotonic() - self.t0:.0f}s: {exc!r}"[:300])
            self.stop_event.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)


# -- traffic --------------------------------------------------------------------------------------

class Tally:
    """Every answer's status, by phase, and a few samples of the server errors."""

    def __init__(self) -> None:
        self.phase = "warmup"
        self.statuses = {"warmup": Counter(), "measured": Counter()}
        self.server_error_samples: list[dict] = []

    def record(self, method: str, path: str, response: loadgen.Response) -> None:
        self.statuses[self.phase][response.status] += 1
        if response.status >= 500 and len(self.server_error_samples) < 5:
            self.server_error_samples.append({
                "phase": self.phase, "status": response.status, "request": f"{method} {path.split('?', 1)[0]}",
                "request_id": response.header("x-request-id"),
                "body": response.body[:200].decode("utf-8", "replace")})


class CountingBrowser(loadgen.Browser):
    """The load generator's virtual user, with every response counted."""

    def __init__(self, host: str, port: int, tally: Tally) -> None:
        super().__init__(host, port)
        self.tally = tally

    async def request(self, method: str, path: str, *args, **kwargs) -> loadgen.Response:
        response = await super().request(method, path, *args, **kwargs)
        self.tally.record(method, path, response)
        return response


class User:
    """One virtual user: a browser with its single sign-on session and its latest tokens."""

    def __init__(self, browser: CountingBrowser, number: int) -> None:
        self.browser, self.number = browser, number
        self.access_token = self.refresh_token = None
        self.step = number  # users out of phase: not all log in at once

    def take(self, tokens: dict) -> None:
        self.access_token = tokens["access_token"]
        self.refresh_token = tokens.get("refresh_token") or self.refresh_token


def _token_answer(response: loadgen.Response, what: str) -> dict:
    loadgen._expect(response, 200, what)
    data = response.json()
    if "access_token" not in data:
        raise loadgen.FlowError(f"{what}: no access_token")
    return data


async def op_login(user: User, target: loadgen.Target) -> None:
    user.take(await loadgen.full_login(user.browser, target))


async def op_code_exchange(user: User, target: loadgen.Target) -> None:
    """An authorization request on the user's existing session (single sign-on: no login page),
    then the code exchanged for tokens (RFC 6749 §4.1.3)."""
    b = user.browser
    state = f"c{time.monotonic_ns()}"
    query = {"response_type": "code", "client_id": target.client_id, "redirect_uri": target.redirect_uri,
             "scope": target.scope, "state": state}
    r = await b.request("GET", target.paths["authorize"] + "?" + urlencode(query))
    location = r.header("location") or ""
    if r.status not in (302, 303) or not location.startswith(target.redirect_uri):
        raise loadgen.FlowError(f"code_exchange: authorize answered {r.status} {location[:80]}")
    params = parse_qs(urlsplit(location).query)
    if params.get("state", [None])[0] != state or "code" not in params:
        raise loadgen.FlowError(f"code_exchange: {location[:120]}")
    token = await b.request("POST", target.paths["token"], headers={"Authorization": target.basic},
                            form={"grant_type": "authorization_code", "code": params["code"][0],
                                  "redirect_uri": target.redirect_uri}, cookies=False)
    data = _token_answer(token, "code_exchange")
    if "id_token" not in data:
        raise loadgen.FlowError("code_exchange: no id_token")
    user.take(data)


async def op_refresh(user: User, target: loadgen.Target) -> None:
    r = await user.browser.request("POST", target.paths["token"], headers={"Authorization": target.basic},
                                   form={"grant_type": "refresh_token", "refresh_token": user.refresh_token},
                                   cookies=False)
    data = _token_answer(r, "refresh")
    if not data.get("refresh_token") or data["refresh_token"] == user.refresh_token:
        raise loadgen.FlowError("refresh: refresh token not rotated")
    user.take(data)


async def op_userinfo(user: User, target: loadgen.Target) -> None:
    r = await user.browser.request("GET", target.paths["userinfo"],
                                   headers={"Authorization": "Bearer " + user.access_token}, cookies=False)
    loadgen._expect(r, 200, "userinfo")
    if b'"sub"' not in r.body:
        raise loadgen.FlowError("userinfo: no sub")


async def op_introspection(user: User, target: loadgen.Target) -> None:
    r = await user.browser.request("POST", target.paths["introspect"], headers={"Authorization": target.basic},
                                   form={"token": user.access_token}, cookies=False)
    loadgen._expect(r, 200, "introspection")
    if r.json().get("active") is not True:
        raise loadgen.FlowError("introspection: token not active")


OPS = {"login": op_login, "code_exchange": op_code_exchange, "refresh": op_refresh,
       "userinfo": op_userinfo, "introspection": op_introspection}


async def traffic(target: loadgen.Target, concurrency: int, t0: float, warmup: float, total: float,
                  rate: float, max_ops: int, tally: Tally, burst: int = 0) -> dict:
    """Closed loop (paced to `rate` operations per second in all when it is above 0) until
    `total` seconds after t0 or `max_ops` operations; operations under way then finish.

    During the first half of the warm-up, `burst` more users (unpaced) join: more requests at
    once than the server has threads, so every worker's database and Redis pools open all the
    connections its threads can ever hold at once. Pools open connections lazily, at the first
    moment that many requests overlap in one worker; without the burst, that moment may come
    late in the run by chance and look like growth (it did: 5 → 6 database connections at
    minute 7 of a 30-minute run). After the burst, a connection more than that is a leak."""
    deadline = t0 + total
    done: dict[str, list[float]] = {k: [] for k in KINDS}
    failed: dict[str, Counter] = {k: Counter() for k in KINDS}
    started = [0]
    pace = {"next": time.monotonic()}

    async def phase_clock() -> None:
        await asyncio.sleep(max(0.0, t0 + warmup - time.monotonic()))
        tally.phase = "measured"

    async def one(user: User, until: float = deadline, paced: bool = True) -> None:
        while time.monotonic() < until and started[0] < max_ops:
            if rate > 0 and paced:
                slot = pace["next"] = max(pace["next"], time.monotonic()) + 1 / rate
                await asyncio.sleep(max(0.0, slot - time.monotonic()))
                if time.monotonic() >= deadline:
                    break
            started[0] += 1
            kind = "login" if user.access_token is None else CYCLE[user.step % len(CYCLE)]
            user.step += 1
            begun = time.perf_counter()
            try:
                await OPS[kind](user, target)
                if tally.phase == "measured":
                    done[kind].append(time.perf_counter() - begun)
            except (loadgen.FlowError, loadgen.HttpError, ValueError, KeyError, OSError) as exc:
                failed[kind][f"{tally.phase}: {exc}"[:200]] += 1
                if kind == "login":
                    user.access_token = None

    async def bursting(user: User) -> None:
        try:
            await one(user, until=min(deadline, t0 + warmup / 2), paced=False)
        finally:
            user.browser.close()

    users = [User(CountingBrowser(target.host, target.port, tally), i) for i in range(concurrency)]
    extra = [User(CountingBrowser(target.host, target.port, tally), concurrency + i) for i in range(burst)]
    clock = asyncio.create_task(phase_clock())
    try:
        await asyncio.gather(*(one(u) for u in users), *(bursting(u) for u in extra))
    finally:
        clock.cancel()
        for u in users + extra:
            u.browser.close()
    measured_s = max(1e-9, min(time.monotonic(), deadline) - (t0 + warmup))
    out = {}
    for kind in KINDS:
        lat = sorted(done[kind])
        ms = lambda v: None if v is None else round(v * 1000, 1)  # noqa: E731
        out[kind] = {"ops": len(lat), "per_s": round(len(lat) / measured_s, 2),
                     "failed": sum(failed[kind].values()), "failure_samples": dict(failed[kind].most_common(3)),
                     "p50_ms": ms(loadgen._percentile(lat, 0.5)), "p99_ms": ms(loadgen._percentile(lat, 0.99))}
    out["_started"] = started[0]
    return out


# -- the run --------------------------------------------------------------------------------------

def cleanup(database: str, prefix: str) -> None:
    import psycopg
    import redis

    try:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    except psycopg.Error as exc:
        log(f"could not drop database {database}: {exc}")
    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])
    client.close()


def markdown(result: dict) -> str:
    meta, verdict, traffic_ = result["meta"], result["verdict"], result["traffic"]
    c = verdict["checks"]
    lines = [
        f"**Soak {'PASSED' if verdict['passed'] else 'FAILED'}**: {meta['minutes']:g} min "
        f"(warm-up {meta['warmup_s']:.0f} s) of mixed traffic against `idp serve` ({meta['server']}, "
        f"{meta['workers']} workers) on PostgreSQL + Redis, {meta['concurrency']} virtual users"
        + (f" paced to {meta['rate']:g} operations/s" if meta["rate"] else ", closed loop")
        + f"; {meta['timestamp']}, commit {meta['commit']}, {meta['cpu']} ({meta['cores']} cores).",
        "",
        f"Machine: load average {meta['loadavg_start']:.1f} at start, {meta['loadavg_end']:.1f} at the end; "
        f"the server used {meta['server_cpu_pct']:.0f} %, the load generator {meta['loadgen_cpu_pct']:.0f} % "
        f"and everything else (PostgreSQL, Redis, other work on the machine) {meta['other_cpu_pct']:.0f} % "
        f"of one core on average (of {100 * meta['cores']} %).",
        "",
        "| operation | after warm-up | per s | p50 ms | p99 ms | failed |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for kind in KINDS:
        t = traffic_[kind]
        lines.append(f"| {kind} | {t['ops']:,} | {t['per_s']:.1f} | {run._fmt(t['p50_ms'])} | "
                     f"{run._fmt(t['p99_ms'])} | {t['failed']} |")
    statuses = result["statuses"]
    lines += [
        "",
        "Statuses: " + "; ".join(f"{phase}: " + ", ".join(f"{code} × {n:,}" for code, n in sorted(s.items()))
                                 for phase, s in statuses.items()) + ".",
        "",
        "| check | figures | result |",
        "|---|---|---|",
        f"| no 5xx | {sum(c['no_5xx']['server_errors'].values())} server errors | {_ok(c['no_5xx'])} |",
        f"| no failed operations | {c['no_failed_operations']['failed']} failed | {_ok(c['no_failed_operations'])} |",
    ]
    m = c["memory"]
    lines.append(f"| workers' RSS growth < 5 % | " + (
        f"{m['early_kib'] / 1024:.1f} → {m['late_kib'] / 1024:.1f} MiB ({m['growth_pct']:+.2f} %; per worker "
        + ", ".join(f"{g:+.2f} %" for g in m["worker_growth_pct"].values()) + ")"
        if "growth_pct" in m else "no data") + f" | {_ok(m)} |")
    for name, label in (("db_connections", "database connections"), ("redis_connections", "Redis connections"),
                        ("fds", "workers' file descriptors")):
        k = c[name]
        lines.append(f"| no growth of {label} | " + (
            f"early max {k['early_max']}, late {k['late_min']}–{k['late_max']}" if "early_max" in k else "no data")
            + f" | {_ok(k)} |")
    w = c["workers_unchanged"]
    lines.append(f"| same worker processes | {len(w['worker_sets'])} set(s) of pids | {_ok(w)} |")
    return "\n".join(lines)


def _ok(check: dict) -> str:
    return "pass" if check["ok"] else "**FAIL**"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES") or 10),
                        help="length of the run, warm-up included (default: SOAK_MINUTES, else 10)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up (default: a fifth, 10 s to 2 min)")
    parser.add_argument("--concurrency", type=int, default=4, help="virtual users")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="operations per second in all (0: closed loop, as fast as the server answers)")
    parser.add_argument("--burst", type=int,
                        help="users added during the first half of the warm-up, so that every pool reaches "
                             "the size the server's threads can use (default: 2 × workers × threads)")
    parser.add_argument("--max-ops", type=int, default=1_000_000, help="stop after this many operations")
    parser.add_argument("--workers", type=int, help="server workers (default: the number of cores)")
    parser.add_argument("--interval", type=float, help="seconds between samples (default: 1 to 5)")
    parser.add_argument("--out", type=Path, help="directory of the JSON result and the Markdown summary "
                                                 "(default: bench/results)")
    parser.add_argument("--label", default="", help="added to the result file names")
    args = parser.parse_args()
    total = args.minutes * 60
    if not 0 < total <= 24 * 3600:
        parser.error("--minutes: more than 0, at most a day")
    warmup = args.warmup if args.warmup is not None else warmup_seconds(total)
    if not 0 <= warmup < total:
        parser.error("--warmup must be shorter than the run")
    interval = args.interval or min(5.0, max(1.0, (total - warmup) / 100))
    workers = args.workers or os.cpu_count() or 1
    out_dir = args.out or run.RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)

    # Stopped early (Ctrl-C, SIGTERM; a shell's background job ignores SIGINT unless told), the
    # run still stops its server and drops its database and keys: the `finally` below.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run.ensure_postgres()
    run.ensure_redis()
    database, prefix = f"idp_soak_{os.getpid()}", f"idp-soak-{os.getpid()}:"
    instance = Path(tempfile.mkdtemp(prefix="idp-soak-"))
    port = run.free_port()
    env = run.our_env(port, instance, redis_db=REDIS_DB,
                      database_url=f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}")
    env["IDP_REDIS_PREFIX"] = prefix
    meta = {"timestamp": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "minutes": args.minutes, "warmup_s": warmup, "interval_s": interval, "concurrency": args.concurrency,
            "rate": args.rate, "max_ops": args.max_ops, "workers": workers, "database": database,
            "redis": f"db {REDIS_DB}, prefix {prefix}", "cycle": ["login", *CYCLE],
            "loadavg_start": os.getloadavg()[0]}
    base = run.metadata(argparse.Namespace(duration=total, warmup=warmup, max_ops=args.max_ops,
                                           concurrency=[args.concurrency], rounds=1), workers, None)
    for key in ("cpu", "cores", "commit", "python", "authlib", "granian", "flask"):
        meta[key] = base[key]
    server = None
    try:
        log(f"setting up: database {database}, Redis db {REDIS_DB} prefix {prefix}, client, user")
        client = run.setup_ours(env, database=database, redis_db=None)
        log(f"starting idp serve --workers {workers} on 127.0.0.1:{port}")
        server = run.Server("ours", [str(run.VENV_BIN / "idp"), "serve", "--workers", str(workers)], env, run.ROOT,
                            instance / "server.log")
        server.wait_http(f"http://127.0.0.1:{port}/.well-known/openid-configuration")
        served = run.our_settings(env, "SERVER", "THREADS")
        meta["server"], meta["threads"] = served["SERVER"], served["THREADS"]
        burst = meta["burst_users"] = (args.burst if args.burst is not None
                                       else 2 * workers * int(served["THREADS"] or 1))
        target = run.our_target(port, client)

        log(f"traffic for {args.minutes:g} min (warm-up {warmup:.0f} s, {burst} more users in its first half), "
            f"{args.concurrency} users, samples every {interval:g} s")
        tally = Tally()
        t0 = time.monotonic()
        sampler = Sampler(server, database, interval, t0)
        sampler.start()
        lg0 = loadgen._cpu()
        try:
            figures = asyncio.run(traffic(target, args.concurrency, t0, warmup, total, args.rate, args.max_ops,
                                          tally, burst))
        finally:
            sampler.stop()
        end = time.monotonic() - t0
        lg_cpu = loadgen._cpu() - lg0
        samples = sampler.samples
        failures = sum(figures[k]["failed"] for k in KINDS)
        all_statuses = tally.statuses["warmup"] + tally.statuses["measured"]
        verdict = evaluate(samples, warmup, end, dict(all_statuses), failures)
        if server.proc.poll() is not None:
            verdict["passed"] = False
            verdict["checks"]["server_running"] = {"ok": False, "rule": "the server still runs at the end",
                                                   "exit_code": server.proc.returncode}
        meta["loadavg_end"] = os.getloadavg()[0]
        meta["operations_started"] = figures.pop("_started")
        meta["sampling_failures"] = sampler.failures[:5]
        if len(samples) >= 2:
            first, last = samples[0], samples[-1]
            seconds = last["t"] - first["t"]
            busy = last["machine_cpu"][0] - first["machine_cpu"][0]
            used = last["server_cpu_s"] - first["server_cpu_s"]
            meta["server_cpu_pct"] = round(100 * used / seconds, 1)
            meta["loadgen_cpu_pct"] = round(100 * lg_cpu / end, 1)
            meta["other_cpu_pct"] = round(100 * max(0.0, busy - used - lg_cpu * seconds / end) / seconds, 1)
        meta["note"] = ("shared 2-core machine: other work (test runs of other people) may have run at the same "
                        "time; other_cpu_pct is what neither the server nor the load generator used")
        result = {"meta": meta, "verdict": verdict, "traffic": figures,
                  "statuses": {phase: {str(k): v for k, v in sorted(c.items())} for phase, c in tally.statuses.items()},
                  "server_error_samples": tally.server_error_samples, "samples": samples}
    except BaseException:
        if server is not None:
            tail = (instance / "server.log").read_text(errors="replace")[-4000:]
            log(f"--- end of the server's log ---\n{tail}")
        raise
    finally:
        if server is not None:
            server.stop()
        cleanup(database, prefix)
        shutil.rmtree(instance, ignore_errors=True)

    stamp = "soak-" + dt.datetime.now().strftime("%Y%m%d-%H%M%S") + (f"-{args.label}" if args.label else "")
    (out_dir / f"{stamp}.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    summary = markdown(result)
    (out_dir / f"{stamp}.md").write_text(summary + "\n")
    print(summary)
    log(f"result: {out_dir / stamp}.json and .md")
    for name, check in verdict["checks"].items():
        if not check["ok"]:
            log(f"FAILED {name}: {json.dumps({k: v for k, v in check.items() if k != 'ok'}, ensure_ascii=False)}")
    if tally.server_error_samples:
        log(f"server errors: {tally.server_error_samples}")
    return 0 if verdict["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
