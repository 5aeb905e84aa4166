"""`make bench` itself (bench/run.py, bench/README.md), run whole at a tiny scale: our provider on
`idp serve` with PostgreSQL and Redis, node-oidc-provider installed into bench/peer/ and run
beside it, every scenario at two concurrency levels for both, the floors, the memory figures,
and the JSON, chart and README table it writes. Its own directory takes the output, so the
project's README, chart and results stay as they are.

Like the benchmark, it uses the machine's PostgreSQL (database idp_bench) and Redis (db 13 and
14), whatever the suite runs on: marked ``bench`` so that CI runs it once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ["discovery", "jwks", "client_credentials", "refresh_token", "userinfo", "introspection", "login"]
CHEAP_ARGON2 = {"time_cost": 1, "memory_kib": 1024, "parallelism": 1}
DURATION, MAX_OPS, SESSIONS = 0.3, 5000, 2000

pytestmark = pytest.mark.bench


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(IDP_ARGON2_TIME_COST="1", IDP_ARGON2_MEMORY_KIB="1024", IDP_ARGON2_PARALLELISM="1")
    readme_before = (ROOT / "README.md").read_text()
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--out", str(out), "--duration", str(DURATION),
         "--warmup", "0.1", "--max-warmup", "5", "--max-ops", str(MAX_OPS), "--concurrency", "1,8",
         "--sessions", str(SESSIONS), "--floor-seconds", "0.5"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (ROOT / "README.md").read_text() == readme_before  # the project's README untouched
    return out, json.loads((out / "results" / "latest.json").read_text()), done.stdout


def test_the_benchmark_runs_ours_on_idp_serve_beside_the_installed_peer(bench_run):
    _, results, _ = bench_run
    meta = results["meta"]
    assert meta["server"] == "granian" and meta["workers"] == (os.cpu_count() or 1)
    installed = json.loads((ROOT / "bench" / "peer" / "node_modules" / "oidc-provider" / "package.json").read_text())
    assert meta["peer_version"] == installed["version"]
    # Both systems got the same argon2id parameters, the ones configured.
    assert meta["argon2"] == CHEAP_ARGON2 == {k: results["floors"]["argon2"][k] for k in CHEAP_ARGON2}


def test_every_scenario_is_measured_for_both_systems_at_each_concurrency(bench_run):
    _, results, _ = bench_run
    for system in ("ours", "peer"):
        assert set(results[system]) == set(SCENARIOS)
        for scenario in SCENARIOS:
            for c in ("1", "8"):
                run = results[system][scenario][c]
                where = f"{system} {scenario} c={c}: {run.get('error_samples')}"
                assert run["errors"] == 0, where
                assert run["ops"] > 0 and run["rps"] > 0, where
                assert run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"], where
                assert run["duration_s"] < DURATION + 1 and run["ops"] <= MAX_OPS, where  # bounded
                assert run["loadgen_cpu_pct"] is not None and run["server_cpu_ms_per_op"] > 0, where


def test_each_row_has_the_ratio_and_the_targets_are_judged_at_concurrency_8(bench_run):
    _, results, _ = bench_run
    rows = {(row["scenario"], row["concurrency"]): row for row in results["rows"]}
    assert set(rows) == {(s, c) for s in SCENARIOS for c in (1, 8)}
    for row in rows.values():
        assert row["ratio"] == round(row["ours"]["rps"] / row["peer"]["rps"], 3)
        assert isinstance(row["p99_no_worse"], bool)
    targets = results["targets"]
    assert set(targets["c8_ratio_ge_1"]) == set(SCENARIOS) == set(targets["c8_p99_no_worse"])
    assert targets["login_ge_0_8_argon2"] == (rows["login", 8]["of_argon2_floor"] >= 0.8)


def test_the_floors_are_measured_in_the_same_run(bench_run):
    _, results, _ = bench_run
    argon2 = results["floors"]["argon2"]
    assert argon2["processes"] == (os.cpu_count() or 1) and argon2["hashes_per_s"] > 0
    for c in ("1", "8"):
        hello = results["floors"]["hello"][c]
        assert hello["errors"] == 0 and hello["rps"] > 0
    rows = {(row["scenario"], row["concurrency"]): row for row in results["rows"]}
    assert rows["login", 8]["of_argon2_floor"] == round(rows["login", 8]["ours"]["rps"] / argon2["hashes_per_s"], 3)
    assert "of_hello_floor" in rows["userinfo", 8]


def test_memory_is_reported_per_worker_and_per_redis_session(bench_run):
    _, results, _ = bench_run
    memory = results["memory"]
    assert len(memory["ours_workers"]) == (os.cpu_count() or 1)
    assert all(worker["rss_kib"] > 0 for worker in memory["ours_workers"] + memory["peer_workers"])
    sessions = memory["redis_sessions"]
    assert sessions["sessions"] == sessions["keys"] == SESSIONS
    assert 0 < sessions["bytes_per_session"] <= 2048 and sessions["meets_target"]
    assert "account_id" in sessions["template_keys"]  # a real signed-in session, from the login scenario


def test_the_results_go_to_json_a_chart_and_the_readme_table(bench_run):
    out, results, stdout = bench_run
    stamped = [p for p in (out / "results").glob("2*.json")]
    assert len(stamped) == 1 and json.loads(stamped[0].read_text()) == results
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    readme = (out / "README.md").read_text()
    project = (ROOT / "README.md").read_text()
    table = readme.split("<!-- bench:begin -->")[1].split("<!-- bench:end -->")[0]
    assert table.strip() in stdout  # the table printed is the table written
    for scenario in SCENARIOS:
        assert f"| {scenario} | 1 |" in table and f"| {scenario} | 8 |" in table
    assert "argon2id m = 1024 KiB, t = 1, p = 1" in table and "Targets at c = 8" in table
    # Only the table changed: what stands before and after it is the project's README.
    assert readme.split("<!-- bench:begin -->")[0] == project.split("<!-- bench:begin -->")[0]
    assert readme.split("<!-- bench:end -->")[1] == project.split("<!-- bench:end -->")[1]
