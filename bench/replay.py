"""CPU per request of the provider's own code, without a server or a network in the way.

Builds the provider in this process with the benchmark's configuration (PostgreSQL, Redis),
serves it once to capture one real request per scenario (with the benchmark's own scenario
code), then replays the captured request straight into the WSGI application N times in one
thread and reports CPU ms per request. With ``--profile`` it also reports where that CPU goes,
summed by the categories profile.py uses (categories.py; cProfile with a CPU clock; shares,
not absolute times, since the profiler inflates small calls). PROFILE.md round 3 was measured with it.

    .venv/bin/python bench/replay.py [--scenarios userinfo,introspection,client_credentials] [-n 3000] [--profile]

Only scenarios whose request can be sent again unchanged are replayed: a rotated refresh token
or a spent code would fail the second time (use whatif.py for those).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
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

import loadgen
import run
from categories import CATEGORIES

REPLAYABLE = ("discovery", "jwks", "client_credentials", "userinfo", "introspection")


def capture(app, captured: dict):
    def wsgi(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        captured["last"] = ({k: v for k, v in environ.items() if not k.startswith("werkzeug")}, body)
        environ["wsgi.input"] = io.BytesIO(body)
        return app(environ, start_response)
    return wsgi


def replay(app, request) -> str:
    environ, body = request
    environ = dict(environ, **{"wsgi.input": io.BytesIO(body)})
    status = {}

    def start_response(line, headers, exc_info=None):
        status["line"] = line

    result = app(environ, start_response)
    b"".join(result)
    if hasattr(result, "close"):
        result.close()
    return status["line"]


def by_category(profile: cProfile.Profile) -> list[tuple[str, float]]:
    """Own CPU time per category of categories.py, as shares."""
    totals: dict[str, float] = {}
    for (filename, _, function), (_, _, own, _, _) in pstats.Stats(profile).stats.items():
        frame = f"{function} ({filename})"  # the "function (file)" form py-spy's frames have
        name = next((name for name, keys in CATEGORIES if any(k in frame for k in keys)),
                    "provider code" if "/idp/" in filename else "other C calls" if filename == "~" else "other")
        totals[name] = totals.get(name, 0.0) + own
    whole = sum(totals.values()) or 1.0
    return [(name, 100 * t / whole) for name, t in sorted(totals.items(), key=lambda item: -item[1])]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenarios", default="userinfo,introspection,client_credentials")
    parser.add_argument("-n", type=int, default=3000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    unknown = [s for s in scenarios if s not in REPLAYABLE]
    if unknown:
        parser.error(f"not replayable: {', '.join(unknown)} (choose from {', '.join(REPLAYABLE)})")

    app, port, client, instance = run.in_process_provider("idp-replay-")
    captured: dict = {}
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", port, capture(app, captured), threaded=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        target = run.our_target(port, client)
        run.prepare_tokens(target, 1)
        requests = {}
        for scenario in scenarios:
            browser = loadgen.Browser("127.0.0.1", port)
            asyncio.run(loadgen.SCENARIOS[scenario](browser, target, 0))
            browser.close()
            requests[scenario] = captured["last"]
    finally:
        server.shutdown()
    try:
        for scenario in scenarios:
            request = requests[scenario]
            for _ in range(200):
                status = replay(app, request)
            if not status.startswith("200"):
                print(f"{scenario}: the replayed request answers {status}", file=sys.stderr)
                return 1
            start = time.thread_time()
            for _ in range(args.n):
                replay(app, request)
            print(f"{scenario:20} {1000 * (time.thread_time() - start) / args.n:.3f} ms CPU per request")
            if args.profile:
                profile = cProfile.Profile(time.thread_time)
                profile.enable()
                for _ in range(args.n):
                    replay(app, request)
                profile.disable()
                print("  " + ", ".join(f"{name} {share:.0f} %" for name, share in by_category(profile)[:10]))
    finally:
        shutil.rmtree(instance, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
