"""What the proposed optimisations would save, measured before anyone changes idp/ (PROFILE.md).

Builds the provider in this process with the benchmark's configuration (PostgreSQL, Redis),
serves it with a one-thread WSGI server, and measures the server thread's CPU time
(time.thread_time around each request, argon2 included) and wall time per operation of each
scenario, N operations, with the benchmark's own scenario code. Then it applies the proposals
one after another as monkeypatches from outside — the code in idp/ is not touched — and
measures again:

  keys      signing keys imported once (joserfc import_key cached per JWK)
  session   SQLAlchemy sessions with expire_on_commit=False (no reload SELECT after a commit)
  preping   no pool_pre_ping (no SELECT 1 per connection checkout)
  clients   clients cached per process (no SELECT per look-up)

    .venv/bin/python bench/whatif.py [--ops 40] [--scenarios login,refresh_token]

Each step includes the ones before it. Numbers are for one request at a time in one thread:
they show the cost of an operation, not throughput under load.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shutil
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import loadgen
import run

CPU = {"s": 0.0, "n": 0}


def timed(app):
    def wsgi(environ, start_response):
        t0 = time.thread_time()
        body = b"".join(app(environ, start_response))
        CPU["s"] += time.thread_time() - t0
        CPU["n"] += 1
        return [body]
    return wsgi


def patch_keys() -> None:
    import json as _json

    from idp.oauth import server

    if not hasattr(server, "import_key"):  # idp already keeps imported keys: nothing to patch
        return
    original = server.import_key
    cache: dict = {}

    def import_key(value, *args, **kwargs):
        if args or kwargs or not isinstance(value, dict):
            return original(value, *args, **kwargs)
        key = _json.dumps(value, sort_keys=True)
        if key not in cache:
            cache[key] = original(value)
        return cache[key]

    server.import_key = import_key


def patch_session(app) -> None:
    from idp.extensions import db

    with app.app_context():
        db.session.remove()
    db.session.session_factory.kw["expire_on_commit"] = False


def patch_preping(app) -> None:
    from idp.extensions import db

    with app.app_context():
        db.engine.pool._pre_ping = False


def patch_clients() -> None:
    from idp.extensions import db
    from idp.oauth import storage

    original = storage.query_client
    cache: dict = {}

    def query_client(client_id):
        hit = cache.get(client_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        client = original(client_id)
        if client is not None:
            db.session.expunge(client)
            cache[client_id] = (time.monotonic() + 30, client)
        return client

    storage.query_client = query_client
    from flask import current_app

    import idp.oauth.server  # noqa: F401  (the server holds query_client through init_app)

    with APP.app_context():
        current_app.extensions["idp.oauth_server"].query_client = query_client


APP = None


def main() -> int:
    global APP
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=40)
    parser.add_argument("--scenarios", default="client_credentials,refresh_token,userinfo,introspection,login")
    args = parser.parse_args()

    APP, port, client, instance = run.in_process_provider("idp-whatif-")
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", port, timed(APP), threaded=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target = run.our_target(port, client)
    run.prepare_tokens(target, 1)
    steps = [("baseline", lambda: None), ("+ keys", patch_keys), ("+ session", lambda: patch_session(APP)),
             ("+ preping", lambda: patch_preping(APP)), ("+ clients", patch_clients)]
    scenarios = args.scenarios.split(",")
    results: dict = {}
    try:
        for step, apply in steps:
            apply()
            results[step] = {}
            for scenario in scenarios:
                op = loadgen.SCENARIOS[scenario]
                browser = loadgen.Browser("127.0.0.1", port)

                async def go(n: int, op=op, browser=browser) -> int:
                    failed = 0
                    for _ in range(n):
                        try:
                            await op(browser, target, 0)
                        except Exception:  # noqa: BLE001
                            failed += 1
                    return failed

                asyncio.run(go(2))  # warm
                CPU.update(s=0.0, n=0)
                t0 = time.perf_counter()
                failed = asyncio.run(go(args.ops))
                wall = time.perf_counter() - t0
                browser.close()
                results[step][scenario] = {"cpu_ms_per_op": round(1000 * CPU["s"] / args.ops, 2),
                                           "wall_ms_per_op": round(1000 * wall / args.ops, 2),
                                           "requests_per_op": round(CPU["n"] / args.ops, 2), "errors": failed}
                print(f"{step:10} {scenario:18} {results[step][scenario]}", file=sys.stderr)
    finally:
        server.shutdown()
        shutil.rmtree(instance, ignore_errors=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (run.RESULTS / f"whatif-{stamp}.json").write_text(json.dumps(results, indent=2))
    print("| step (cumulative) | " + " | ".join(f"{s} CPU / wall ms" for s in scenarios) + " |")
    print("|---|" + "--:|" * len(scenarios))
    for step, row in results.items():
        print(f"| {step} | " + " | ".join(
            f"{row[s]['cpu_ms_per_op']} / {row[s]['wall_ms_per_op']}" + (" (errors)" if row[s]["errors"] else "")
            for s in scenarios) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
