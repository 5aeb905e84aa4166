"""Round trips per operation: SQL statements, transactions, connection checkouts (no ping
since round 2) and Redis round trips that one operation of each scenario costs
our provider (bench/PROFILE.md).

The provider is built in this process with `create_app()` and the benchmark's configuration
(PostgreSQL, Redis), instrumented from outside through SQLAlchemy and redis-py hooks (nothing
in idp/ changes), served by a one-thread WSGI server, and driven by the benchmark's own
scenario code over HTTP, N operations each:

    .venv/bin/python bench/roundtrips.py [--ops 20]

Prints a table and writes bench/results/roundtrips-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import shutil
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import loadgen
import run

COUNTS: collections.Counter = collections.Counter()
STATEMENTS: collections.Counter = collections.Counter()


def instrument(app) -> None:
    import redis.connection
    from sqlalchemy import event

    from idp.extensions import db

    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(conn, cursor, statement, parameters, context, executemany):
        COUNTS["sql statements"] += 1
        verb = statement.lstrip().split(None, 1)[0].upper()
        COUNTS[f"sql {verb}"] += 1
        table = ""
        words = statement.replace("\n", " ").split()
        # The table the statement is about: not one named in a subquery after it.
        key = {"UPDATE": "UPDATE", "INSERT": "INTO"}.get(verb, "FROM")
        if key in words:
            table = words[words.index(key) + 1].strip('"')
        STATEMENTS[f"{verb} {table}"] += 1

    @event.listens_for(engine, "commit")
    def _commit(conn):
        COUNTS["sql commits"] += 1

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn, record, proxy):
        COUNTS["pool checkouts"] += 1

    original = redis.connection.AbstractConnection.send_packed_command

    def send(self, command, check_health=True):
        COUNTS["redis round trips"] += 1
        return original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = send


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=20)
    parser.add_argument("--scenarios", default=",".join(run.SCENARIOS))
    args = parser.parse_args()

    app, port, client, instance = run.in_process_provider("idp-roundtrips-")
    from werkzeug.serving import make_server

    instrument(app)
    server = make_server("127.0.0.1", port, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    target = run.our_target(port, client)
    run.prepare_tokens(target, 1)
    results: dict = {}
    try:
        for scenario in args.scenarios.split(","):
            op = loadgen.SCENARIOS[scenario]
            browser = loadgen.Browser("127.0.0.1", port)
            COUNTS.clear()
            STATEMENTS.clear()
            errors = 0

            async def go(op=op, browser=browser) -> int:
                failed = 0
                for _ in range(args.ops):
                    try:
                        await op(browser, target, 0)
                    except Exception:  # noqa: BLE001 - counted, the point is the round trips
                        failed += 1
                return failed

            errors = asyncio.run(go())
            browser.close()
            per_op = {k: round(v / args.ops, 2) for k, v in sorted(COUNTS.items())}
            results[scenario] = {"ops": args.ops, "errors": errors, "per_op": per_op,
                                 "statements_per_op": {k: round(v / args.ops, 2)
                                                       for k, v in STATEMENTS.most_common()}}
            print(f"{scenario}: {per_op} errors={errors}", file=sys.stderr)
    finally:
        server.shutdown()
        shutil.rmtree(instance, ignore_errors=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (run.RESULTS / f"roundtrips-{stamp}.json").write_text(json.dumps(results, indent=2))
    cols = ["sql statements", "sql commits", "pool checkouts", "redis round trips"]
    print("| scenario (per operation) | SQL statements | commits | pool checkouts "
          "| Redis round trips | statements |")
    print("|---|--:|--:|--:|--:|---|")
    for scenario, r in results.items():
        cells = [str(r["per_op"].get(c, 0)) for c in cols]
        top = ", ".join(f"{k.strip()} ×{v:g}" for k, v in r["statements_per_op"].items())
        print(f"| {scenario}{' (errors)' if r['errors'] else ''} | " + " | ".join(cells) + f" | {top} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
