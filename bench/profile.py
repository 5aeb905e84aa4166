"""Where the time goes in our provider, scenario by scenario (bench/PROFILE.md).

Starts our provider exactly as `make bench` does (`idp serve`, PostgreSQL, Redis), drives one
scenario at a time with the benchmark's load generator and records every server worker with
py-spy (sampling, from outside the process: the code runs unchanged). The stacks of all workers
are merged and summarised:

  * by category (argon2, RSA key loading, JOSE, SQL, Redis, templates, CSRF/forms, Flask/Werkzeug,
    the server (granian or gunicorn), logging, ...), from the innermost frame that belongs to a category;
  * the provider's own functions (idp/*) by inclusive share of samples;
  * the hottest leaf functions.

    .venv/bin/python bench/profile.py [--scenarios login,userinfo] [--duration 8] [--concurrency 8]

Writes bench/results/profile/<scenario>.txt (the summary) and <scenario>.collapsed /
<scenario>.gil.collapsed (folded stacks for flamegraph.pl or speedscope; not committed). Needs py-spy (pip install py-spy) and ptrace rights (root).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run
from categories import CATEGORIES

OUT = HERE / "results" / "profile"



def record(pid: int, seconds: float, out: Path, rate: int, gil: bool = False) -> subprocess.Popen:
    return subprocess.Popen(
        [str(run.VENV_BIN / "py-spy"), "record", "--pid", str(pid), "--duration", str(int(seconds)),
         "--rate", str(rate), "--format", "raw", "--output", str(out), "--nonblocking",
         *(["--gil"] if gil else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def parse(paths: list[Path]) -> collections.Counter:
    stacks: collections.Counter = collections.Counter()
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                stacks[stack] += int(count)
    return stacks


def _frames(stack: str) -> list[str]:
    # py-spy raw frames look like "function (path/file.py:line)"; the first is the thread name
    return [f for f in stack.split(";") if f]


def summarise(stacks: collections.Counter) -> str:
    total = sum(stacks.values()) or 1
    categories: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    leaves: collections.Counter = collections.Counter()
    for stack, n in stacks.items():
        frames = _frames(stack)
        found = "other (Python runtime, stdlib, socket I/O)"
        for frame in reversed(frames):
            hit = next((name for name, keys in CATEGORIES if any(k in frame for k in keys)), None)
            if hit:
                found = hit
                break
        categories[found] += n
        seen = set()
        for frame in frames:
            if ("/idp/" in frame or "(idp/" in frame) and not frame.startswith("serve (idp/cli.py"):
                key = frame.split(":")[0] + ")" if ":" in frame else frame
                if key not in seen:
                    seen.add(key)
                    own[key] += n
        if frames:
            leaves[frames[-1].split(":")[0]] += n
    lines = [f"samples: {total}", "", "by category (innermost matching frame):"]
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in categories.most_common()]
    lines += ["", "provider functions (inclusive):"]
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in own.most_common(25)]
    lines += ["", "hottest leaf frames (self):"]
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in leaves.most_common(15)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenarios", default=",".join(run.SCENARIOS))
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", "0")) or os.cpu_count())
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    args = parser.parse_args()

    bench_args = argparse.Namespace(duration=args.duration, warmup=0.5, max_warmup=0.5, max_ops=10**9)
    run.ensure_postgres()
    run.ensure_redis()
    OUT.mkdir(parents=True, exist_ok=True)
    instance = Path(tempfile.mkdtemp(prefix="idp-profile-"))
    port = run.free_port()
    env = run.our_env(port, instance)
    client = run.setup_ours(env)
    server = run.Server("ours", [str(run.VENV_BIN / "idp"), "serve", "--workers", str(args.workers)], env,
                        run.ROOT, instance / "ours.log")
    try:
        server.wait_http(f"http://127.0.0.1:{port}/.well-known/openid-configuration")
        target = run.our_target(port, client)
        run.prepare_tokens(target, args.concurrency)
        for scenario in args.scenarios.split(","):
            workers = server.workers()
            files = [OUT / f"{scenario}.{pid}.tmp" for pid in workers]
            gil_files = [OUT / f"{scenario}.{pid}.gil.tmp" for pid in workers]
            result: dict = {}

            def drive(result: dict = result, scenario: str = scenario) -> None:
                result.update(run.measure(scenario, target, server, args.concurrency, bench_args))

            driver = threading.Thread(target=drive)
            driver.start()
            time.sleep(0.5)
            spies = [record(pid, args.duration - 0.5, f, args.rate) for pid, f in zip(workers, files)]
            spies += [record(pid, args.duration - 0.5, f, args.rate, gil=True) for pid, f in zip(workers, gil_files)]
            for spy in spies:
                _, err = spy.communicate()
                if spy.returncode:
                    print(f"py-spy: {err.strip()[-300:]}", file=sys.stderr)
            driver.join()
            stacks, gil_stacks = parse(files), parse(gil_files)
            for name, data in ((f"{scenario}.collapsed", stacks), (f"{scenario}.gil.collapsed", gil_stacks)):
                (OUT / name).write_text("\n".join(f"{s} {n}" for s, n in data.most_common()) + "\n")
            for f in files + gil_files:
                f.unlink(missing_ok=True)
            head = (f"scenario {scenario}, c={args.concurrency}, {args.workers} workers: {result.get('rps')} ops/s, "
                    f"p50 {result.get('p50_ms')} ms, p99 {result.get('p99_ms')} ms, errors {result.get('errors')}, "
                    f"server CPU {result.get('server_cpu_ms_per_op')} ms/op")
            text = (head + "\n\n== threads at work (wall time of busy threads: where a request's latency goes;"
                    " waits in C calls that py-spy cannot tell from work count too)\n" + summarise(stacks)
                    + "\n\n== holding the GIL (Python CPU, the resource the threads of a worker share; C code"
                    " that releases the GIL, such as argon2 and socket waits, is absent)\n"
                    + summarise(gil_stacks) + "\n")
            (OUT / f"{scenario}.txt").write_text(text)
            print(text)
    finally:
        server.stop()
        shutil.rmtree(instance, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
