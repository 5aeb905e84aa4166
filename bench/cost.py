"""What one operation of each scenario costs the server, counted so that a busy machine does
not blur it: the server thread's CPU time, or under valgrind its instructions (PROFILE.md round 7).

The provider is built in this process with the benchmark's configuration (PostgreSQL, Redis),
served by a one-thread WSGI server and driven by the benchmark's own scenario code (the same
set-up as whatif.py and roundtrips.py); only the server thread is measured, never the load
generator. Two instruments:

    .venv/bin/python bench/cost.py [--ops 300] [--scenarios refresh_token,userinfo]
        CPU ms of the server thread per operation (time.thread_time around each request);
        the best of --repeat runs of --ops operations, since other processes only add to it

    valgrind --tool=callgrind --separate-threads=yes --instr-atstart=no \\
        --callgrind-out-file=/tmp/cg.%p .venv/bin/python bench/cost.py --callgrind --ops 20
        instructions per operation of the server thread (callgrind_control switches the
        instrumentation on around the measured operations only, so start-up runs at
        valgrind's plain speed; the count is the same on an idle or a loaded
        machine, to a fraction of a percent). `callgrind_annotate` on the dump files
        shows where they go.

Prints one line per scenario and writes bench/results/cost-<timestamp>.json. Run it in two
checkouts (before and after) one after the other: it uses the benchmark's database and Redis db.
Login includes the argon2id hash (about 21 ms of CPU, 90 % of the operation).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import glob
import json
import os
import shutil
import subprocess  # nosec B404  # callgrind_control, under valgrind only
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# bench/profile.py would shadow the standard library's profile module, which cProfile imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
import cProfile  # noqa: E402
import pstats  # noqa: E402

sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
import run  # noqa: E402

CPU = {"s": 0.0, "n": 0, "profile": None}


def timed(app):
    def wsgi(environ, start_response):
        profile = CPU["profile"]
        if profile is not None:
            profile.enable()
        t0 = time.thread_time()
        body = b"".join(app(environ, start_response))
        CPU["s"] += time.thread_time() - t0
        CPU["n"] += 1
        if profile is not None:
            profile.disable()
        return [body]
    return wsgi


def calls_per_op(profile, ops: int, top: int) -> list[str]:
    """The functions called most often per operation (counts, not times: the same on any machine)."""
    rows = []
    for (filename, line, function), (_, calls, own, _, _) in pstats.Stats(profile).stats.items():
        rows.append((calls / ops, own, f"{function} ({'/'.join(Path(filename).parts[-2:])}:{line})"))
    rows.sort(key=lambda row: -row[0])
    return [f"{n:8.1f}  {name}" for n, _, name in rows[:top]]


def callgrind(*args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True,  # nosec B603 B607
                   stdout=subprocess.DEVNULL)


def server_thread_instructions(out_prefix: str, dump: int) -> int:
    """The largest thread's Ir total in dump ``dump`` (the server thread: the load generator's
    thread does far less per operation, and the revocation listener sleeps)."""
    totals = []
    for path in glob.glob(f"{out_prefix}.{dump}-*"):
        for line in Path(path).read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                totals.append(int(line.split()[1]))
                break
    return max(totals or [0])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scenarios", default="client_credentials,refresh_token,userinfo,introspection,login")
    parser.add_argument("--callgrind", action="store_true",
                        help="count instructions (run under valgrind --tool=callgrind, see above)")
    parser.add_argument("--label", default="")
    parser.add_argument("--calls", type=int, default=0, metavar="N",
                        help="also print the N functions called most often per operation (cProfile)")
    parser.add_argument("--stats-dir", help="with --calls: write each scenario's cProfile stats there")
    args = parser.parse_args()

    app, port, client, instance = run.in_process_provider("idp-cost-")
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", port, timed(app), threaded=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target = run.our_target(port, client)
    run.prepare_tokens(target, 1)
    results: dict = {}
    dump = 0
    out_prefix = f"/tmp/cg.{os.getpid()}"
    try:
        for scenario in args.scenarios.split(","):
            op = loadgen.SCENARIOS[scenario]
            browser = loadgen.Browser("127.0.0.1", port)

            async def go(n: int, op=op, browser=browser) -> int:
                failed = 0
                for _ in range(n):
                    try:
                        await op(browser, target, 0)
                    except Exception:  # noqa: BLE001 - counted and reported
                        failed += 1
                return failed

            asyncio.run(go(5))  # warm: caches, keys, connections
            if args.callgrind:
                callgrind("-z")
                callgrind("-i", "on")
                CPU.update(s=0.0, n=0)
                failed = asyncio.run(go(args.ops))
                callgrind("-i", "off")
                callgrind("-d", scenario)
                dump += 1
                instructions = server_thread_instructions(out_prefix, dump)
                results[scenario] = {"instructions_per_op": instructions // args.ops,
                                     "requests_per_op": round(CPU["n"] / args.ops, 2), "errors": failed}
            else:
                runs = []
                failed = 0
                for _ in range(args.repeat):
                    CPU.update(s=0.0, n=0)
                    failed += asyncio.run(go(args.ops))
                    runs.append(1000 * CPU["s"] / args.ops)
                results[scenario] = {"cpu_ms_per_op": round(min(runs), 4),
                                     "runs": [round(r, 4) for r in runs],
                                     "requests_per_op": round(CPU["n"] / args.ops, 2), "errors": failed}
            if args.calls:
                CPU["profile"] = cProfile.Profile()
                asyncio.run(go(args.ops))
                lines = calls_per_op(CPU["profile"], args.ops, args.calls)
                stats = pstats.Stats(CPU["profile"])
                results[scenario]["function_calls_per_op"] = round(stats.total_calls / args.ops, 1)
                if args.stats_dir:
                    stats.dump_stats(Path(args.stats_dir) / f"{scenario}.pstats")
                CPU["profile"] = None
                results[scenario]["calls_per_op"] = lines
            browser.close()
            summary = {k: v for k, v in results[scenario].items() if k != "calls_per_op"}
            print(f"{args.label} {scenario:20} {summary}", flush=True)
            for line in results[scenario].get("calls_per_op", []):
                print(f"    {line}")
    finally:
        server.shutdown()
        shutil.rmtree(instance, ignore_errors=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    kind = "instructions" if args.callgrind else "cpu"
    (run.RESULTS / f"cost-{kind}-{stamp}.json").write_text(json.dumps({"label": args.label, **results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
