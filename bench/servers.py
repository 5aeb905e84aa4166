"""Choose the WSGI server and worker model by measurement (bench/PROFILE.md).

Serves the bare hello app and our provider (`wsgi:app`, the same configuration as `idp serve`:
PostgreSQL, Redis, captcha off) under several servers and worker models, and drives a few cheap
scenarios with the benchmark's load generator at one concurrency. Nothing in idp/ changes: the
servers are started from their own command lines.

    .venv/bin/python bench/servers.py [--workers 2] [--concurrency 8] [--duration 4]
                                      [--servers gthread4,gthread4-nolog,...]

Servers that are not installed (gevent, granian) are installed with pip into a directory under
the system's temporary directory and put on PYTHONPATH, so the project's virtualenv is left as
it is. Results: bench/results/servers-<timestamp>.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run

EXTRA = Path(tempfile.gettempdir()) / "idp-bench-servers-pkgs"
PACKAGES = {"gevent": "gevent>=24", "granian": "granian>=2"}


def gunicorn(worker: str, threads: int = 1, log: bool = True, extra: tuple = ()) -> callable:
    def cmd(app: str, port: int, workers: int) -> list[str]:
        out = [str(run.VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
               "--worker-class", worker, "--timeout", "60", "--pythonpath", str(HERE), *extra]
        if threads > 1:
            out += ["--threads", str(threads)]
        if log:
            out += ["--access-logfile", "-"]
        return out + [app]
    return cmd


def granian(threads: int) -> callable:
    def cmd(app: str, port: int, workers: int) -> list[str]:
        return [sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers), "--blocking-threads", str(threads), "--working-dir", str(run.ROOT),
                app.replace("hello_app:app", "bench.hello_app:app")]
    return cmd


SERVERS = {
    "gthread4": (gunicorn("gthread", 4), None, "gunicorn gthread, 4 threads, access log (= idp serve with IDP_SERVER=gunicorn)"),
    "gthread4-nolog": (gunicorn("gthread", 4, log=False), None, "gunicorn gthread, 4 threads, no access log"),
    "gthread1-nolog": (gunicorn("gthread", 1, log=False), None, "gunicorn gthread, 1 thread, no access log"),
    "sync-nolog": (gunicorn("sync", log=False), None, "gunicorn sync (no keep-alive), no access log"),
    "gevent-nolog": (gunicorn("gevent", log=False, extra=("--worker-connections", "100")), "gevent",
                     "gunicorn gevent, no access log"),
    "granian": (granian(4), "granian", "granian (Rust) WSGI, 4 blocking threads"),
    "granian1": (granian(1), "granian", "granian (Rust) WSGI, 1 blocking thread"),
}


def ensure(package: str | None) -> bool:
    if package is None:
        return True
    probe = subprocess.run([sys.executable, "-c", f"import {package}"], env=_env({}), capture_output=True,
                           check=False)
    if probe.returncode == 0:
        return True
    print(f"installing {PACKAGES[package]} into {EXTRA} (not the project's virtualenv)", file=sys.stderr)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(EXTRA), PACKAGES[package]],
                          check=False)
    return done.returncode == 0


def _env(base: dict) -> dict:
    env = dict(base or os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(EXTRA), str(HERE), env.get("PYTHONPATH", "")) if p)
    return env


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", "0")) or os.cpu_count())
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--scenarios", default="hello,discovery,jwks,userinfo")
    args = parser.parse_args()
    bench_args = argparse.Namespace(duration=args.duration, warmup=1.0, max_warmup=10.0, max_ops=50_000)

    run.ensure_postgres()
    run.ensure_redis()
    instance = Path(tempfile.mkdtemp(prefix="idp-servers-"))
    port0 = run.free_port()
    env = run.our_env(port0, instance)
    client = run.setup_ours(env)
    results: dict = {"workers": args.workers, "concurrency": args.concurrency, "duration_s": args.duration,
                     "servers": {}}
    for name in args.servers.split(","):
        cmd, package, label = SERVERS[name]
        if not ensure(package):
            print(f"{name}: {package} not available, skipped", file=sys.stderr)
            continue
        row = results["servers"].setdefault(name, {"label": label})
        for scenario in args.scenarios.split(","):
            app = "hello_app:app" if scenario == "hello" else "wsgi:app"
            port = run.free_port()
            senv = _env(run.our_env(port, instance))
            server = run.Server(name, cmd(app, port, args.workers), senv, run.ROOT, instance / f"{name}.log")
            try:
                server.wait_http(f"http://127.0.0.1:{port}" + ("/hello" if scenario == "hello"
                                                                else "/.well-known/openid-configuration"))
                target = run.our_target(port, client)
                target.paths["hello"] = "/hello"
                if scenario in ("userinfo", "introspection", "refresh_token"):
                    run.prepare_tokens(target, args.concurrency)
                r = run.measure(scenario, target, server, args.concurrency, bench_args)
            except SystemExit as exc:
                r = {"failed": str(exc)[:300]}
            finally:
                server.stop()
            row[scenario] = r
            print(f"{name:15} {scenario:10} {r.get('rps', 0):>9.1f}/s p99 {r.get('p99_ms')} ms "
                  f"cpu {r.get('server_cpu_ms_per_op')} ms/op err {r.get('errors')}", file=sys.stderr)
    shutil.rmtree(instance, ignore_errors=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (run.RESULTS / f"servers-{stamp}.json").write_text(json.dumps(results, indent=2))
    scenarios = args.scenarios.split(",")
    print(f"| server ({args.workers} workers, c={args.concurrency}) | "
          + " | ".join(f"{s} req/s (p99 ms, CPU ms/op)" for s in scenarios) + " |")
    print("|---|" + "--:|" * len(scenarios))
    for name, row in results["servers"].items():
        cells = []
        for s in scenarios:
            r = row.get(s, {})
            cells.append("failed" if "failed" in r or not r else
                         f"{r['rps']:,.0f} ({r['p99_ms']}, {r['server_cpu_ms_per_op']})")
        print(f"| {row['label']} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
